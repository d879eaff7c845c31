"""The online pair filter in plain Python floats: the hot path of a live pair.

State ``theta = [beta, alpha]`` with covariance ``P = [[p00, p01], [p01, p11]]``; the observation
row is ``h = [x, 1]`` (with an intercept) or ``h = [x]`` (without: alpha and its row of P stay 0).

Covariance update without cancellation. For a 2x2 predicted P' and a scalar observation, with
``S = h P' h^T + R`` and ``d = det P'``, the textbook ``P = P' - P' h h^T P' / S`` equals

    P = (R P' + d v v^T) / S,      v = [1, -x]  (h turned by 90 degrees)

and ``det P = d R / S``. Both terms are positive semi-definite, so P is too, and nothing large is
subtracted: where the Joseph form loses definiteness (uncentred prices near 5e4, Q = 0,
R = 1e-4, a diffuse 1e6 prior), this form keeps full relative precision. ``d`` is carried as
state rather than recomputed from P's entries (which would bring the cancellation back); the
predict step grows it by ``det(P + Q) = d + (p00 q11 + p11 q00 - 2 p01 q01) + det Q``, floored
at ``d + det Q`` (Minkowski's determinant inequality), and a last guard clips
``|p01| <= sqrt(p00 p11)`` against rounding in the off-diagonal entry.

Why closures: per update the filter does about 40 float operations; CPython's cell variables
are the cheapest mutable storage it has (no attribute lookups, no tuple packing), which keeps an
update near 0.5 us. The arithmetic is the same, in the same order, as the compiled kernels in
:mod:`hedger.engine.kernels` (``h1 = 1`` or ``0`` there), so the bank and batch paths agree
with this one to the last bit in practice; the tests hold them to 1e-12.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from hedger.engine.linalg import MatrixLike, VectorLike

_sqrt = math.sqrt
_copysign = math.copysign
_NAN = math.nan


class PairState(NamedTuple):
    """A pair filter's complete state, the layout of the kernels' state rows.

    beta, alpha: the state mean (alpha is 0 without an intercept).
    p00, p01, p11: the covariance P (units: squared units of beta / alpha).
    det: the tracked determinant of P.
    r: the observation noise R for the next step (units of y squared).
    primed: whether an observation was absorbed (the next update starts with a predict).
    """

    beta: float
    alpha: float
    p00: float
    p01: float
    p11: float
    det: float
    r: float
    primed: bool


UpdateFn = Callable[[float, float], float]


RawState = tuple[float, float, float, float, float, float, float, bool, float, float]
"""beta, alpha, p00, p01, p11, det, r, primed, then the last step's e and S."""


class _Closures(NamedTuple):
    update: UpdateFn
    predict: Callable[[], None]
    get: Callable[[], RawState]
    put: Callable[[PairState], None]


def _intercept_closures(q00: float, q01: float, q11: float, lam: float) -> _Closures:
    qdet = q00 * q11 - q01 * q01
    b = a = p00 = p01 = p11 = d = r = 0.0
    primed = False
    e = s = _NAN

    def predict() -> None:
        nonlocal p00, p01, p11, d, e, s
        if primed:
            if q01:
                grown = d + (p00 * q11 + p11 * q00 - 2.0 * p01 * q01) + qdet
                floor = d + qdet
                d = grown if grown > floor else floor
                p01 += q01
            else:
                d = d + (p00 * q11 + p11 * q00) + qdet
            p00 += q00
            p11 += q11
        e = s = _NAN

    def update(y: float, x: float) -> float:
        nonlocal b, a, p00, p01, p11, d, r, primed, e, s
        if primed:
            if q01:
                grown = d + (p00 * q11 + p11 * q00 - 2.0 * p01 * q01) + qdet
                floor = d + qdet
                d = grown if grown > floor else floor
                p01 += q01
            else:
                d = d + (p00 * q11 + p11 * q00) + qdet
            p00 += q00
            p11 += q11
        else:
            primed = True
        g0 = p00 * x + p01
        g1 = p01 * x + p11
        s = x * g0 + g1 + r
        e = y - (b * x + a)
        inv = 1.0 / s
        ks = e * inv
        rs = r * inv
        ds = d * inv
        b += g0 * ks
        a += g1 * ks
        p00, p01, p11 = rs * p00 + ds, rs * p01 - ds * x, rs * p11 + ds * x * x
        if p01 * p01 > p00 * p11:
            p01 = _copysign(_sqrt(p00 * p11), p01)
        if lam:
            u = e * rs
            r = lam * r + (1.0 - lam) * (u * u + (s - r) * rs)
        d *= rs
        return e * _sqrt(inv)

    def get() -> RawState:
        return b, a, p00, p01, p11, d, r, primed, e, s

    def put(state: PairState) -> None:
        nonlocal b, a, p00, p01, p11, d, r, primed, e, s
        b, a, p00, p01, p11, d, r, primed = state
        e = s = _NAN

    return _Closures(update, predict, get, put)


def _slope_closures(q00: float, lam: float) -> _Closures:
    b = p00 = r = 0.0
    primed = False
    e = s = _NAN

    def predict() -> None:
        nonlocal p00, e, s
        if primed:
            p00 += q00
        e = s = _NAN

    def update(y: float, x: float) -> float:
        nonlocal b, p00, r, primed, e, s
        if primed:
            p00 += q00
        else:
            primed = True
        g0 = p00 * x
        s = x * g0 + r
        e = y - b * x
        inv = 1.0 / s
        rs = r * inv
        b += g0 * (e * inv)
        p00 = rs * p00
        if lam:
            u = e * rs
            r = lam * r + (1.0 - lam) * (u * u + (s - r) * rs)
        return e * _sqrt(inv)

    def get() -> RawState:
        return b, 0.0, p00, 0.0, 0.0, 0.0, r, primed, e, s

    def put(state: PairState) -> None:
        nonlocal b, p00, r, primed, e, s
        b, p00, r, primed = state.beta, state.p00, state.r, state.primed
        e = s = _NAN

    return _Closures(update, predict, get, put)


class PairFilter:
    """Kalman filter of ``y = beta x + alpha + eps`` (or ``y = beta x + eps``) with a
    random-walk state, in plain floats.

    Args:
        mean: prior state ``(beta, alpha)`` of the first observation (pykalman's convention:
            the first update absorbs it without a predict step); alpha is ignored without an
            intercept.
        cov: the prior covariance, 2x2 rows, positive semi-definite.
        trans_cov: Q as 2x2 rows (only ``Q[0][0]`` is used without an intercept).
        obs_cov: R > 0 (its starting value when ``adaptive_r`` is set).
        intercept: whether alpha is estimated.
        adaptive_r: forgetting factor of the residual-based R estimate, or None for a fixed R.

    ``update(y, x)`` predicts, absorbs the observation and returns ``z = e / sqrt(S)``; after
    it, :attr:`innovation` (e, units of y) and :attr:`innovation_var` (S, units of y squared)
    describe the step. ``predict()`` is a step without an observation.
    """

    __slots__ = ("_lam", "_put", "intercept", "predict", "raw", "update")

    update: UpdateFn
    predict: Callable[[], None]
    raw: Callable[[], RawState]
    """The state and the last step's (e, S) as one plain tuple, the cheapest read there is."""

    def __init__(
        self,
        mean: VectorLike,
        cov: MatrixLike,
        trans_cov: MatrixLike,
        obs_cov: float,
        *,
        intercept: bool = True,
        adaptive_r: float | None = None,
    ) -> None:
        self._lam = 0.0 if adaptive_r is None else float(adaptive_r)
        self.intercept = intercept
        self._build(trans_cov)
        self.reset(mean, cov, obs_cov)

    def _build(self, trans_cov: MatrixLike) -> None:
        q00 = float(trans_cov[0][0])
        if self.intercept:
            q01, q11 = float(trans_cov[0][1]), float(trans_cov[1][1])
            closures = _intercept_closures(q00, q01, q11, self._lam)
        else:
            closures = _slope_closures(q00, self._lam)
        self.update = closures.update
        self.predict = closures.predict
        self.raw = closures.get
        self._put = closures.put

    def set_noise(self, trans_cov: MatrixLike, obs_cov: float) -> None:
        """Replace Q (2x2 rows) and R (> 0; the current value of an adaptive R) and keep the
        state: the mean, P, its tracked determinant and ``primed`` carry on, so the next steps
        are those of a filter built with the new noise and restored to the same state. The
        last step's ``innovation`` and ``innovation_var`` read NaN afterwards."""
        state = self.state
        self._build(trans_cov)
        self._put(state._replace(r=float(obs_cov)))

    def reset(
        self,
        mean: VectorLike,
        cov: MatrixLike,
        obs_cov: float,
        *,
        primed: bool = False,
    ) -> None:
        """Set the state to ``mean`` (2,) and ``cov`` (2, 2) and R to ``obs_cov``. Unprimed,
        they are the prior of the next observation (absorbed without a predict step); primed,
        they are a filtered state and the next update predicts first."""
        b, p00 = float(mean[0]), float(cov[0][0])
        if self.intercept:
            a, p01, p11 = float(mean[1]), float(cov[0][1]), float(cov[1][1])
        else:
            a = p01 = p11 = 0.0
        det = max(p00 * p11 - p01 * p01, 0.0)
        self._put(PairState(b, a, p00, p01, p11, det, float(obs_cov), primed))

    def restore(self, state: PairState) -> None:
        """Resume from a state taken with :attr:`state` (a checkpoint)."""
        self._put(PairState(*state))

    @property
    def state(self) -> PairState:
        """The complete state, a plain serialisable value."""
        return PairState(*self.raw()[:8])

    @property
    def beta(self) -> float:
        """The hedge ratio (units of y per unit of x)."""
        return self.raw()[0]

    @property
    def alpha(self) -> float:
        """The intercept (units of y); exactly 0 without an intercept."""
        return self.raw()[1]

    @property
    def cov(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The state covariance P, 2x2, symmetric positive semi-definite."""
        _, _, p00, p01, p11, *_ = self.raw()
        return ((p00, p01), (p01, p11))

    @property
    def obs_cov(self) -> float:
        """R for the next step (fixed, or the adaptive estimate)."""
        return self.raw()[6]

    @property
    def innovation(self) -> float:
        """e = y - forecast of the last update (NaN after a predict-only step)."""
        return self.raw()[8]

    @property
    def innovation_var(self) -> float:
        """S, the forecast variance of the last update (NaN after a predict-only step)."""
        return self.raw()[9]
