"""Calibration: the state noise Q and observation noise R by maximum likelihood, and the input
mode (log returns whenever they can be fitted, :func:`choose_mode`).

The model is the one the daemon runs: :class:`~hedger.engine.params.FilterParams` with a fixed
R, ``Q = delta / (1 - delta) * I`` and the default OLS warm-up of ``m = 20`` observations.

Likelihood convention (what :func:`log_likelihood` computes and :func:`fit_noise` maximises).
The mode's transform turns raw prices into observations ``(y_t, x_t)``; a bar with a missing
price (or, in a differenced mode, a missing price on the bar before) has none. The first
``m`` observations are the warm-up: they give the OLS state ``b0 = (H'H)^-1 H'y`` and its
covariance ``R (H'H)^-1``, exactly as :class:`~hedger.engine.filter.HedgeFilter` sets it at the
``m``-th observation, and they are *excluded* from the likelihood. From the bar after the
``m``-th observation on, the filter runs from that state (predict first; bars without an
observation only predict) and every observation adds ``-(log(2 pi S_t) + e_t^2 / S_t) / 2``.
So the log-likelihood is that of the observations after the warm-up, conditional on the
warm-up's OLS fit; it is the sum :class:`HedgeFilter` reports step by step, and what a
statsmodels ``MLEModel`` with ``initialize_known(b0, R (H'H)^-1 + Q)`` computes.

Search: R is concentrated out. Because the starting covariance ``R (H'H)^-1`` scales with R,
writing ``Q = q R`` makes every ``S_t`` proportional to R and every ``e_t`` independent of it,
so for a given ``q`` the likelihood is maximised at ``R(q) = mean(e_t^2 / s_t)`` (``s_t`` the
forecast variance of the filter run with R = 1), leaving a one-dimensional profile likelihood
in ``q``. It is evaluated on a coarse grid of 41 values of ``log q`` (the compiled batch
kernel, one pass per candidate), spanning a signal-to-noise ratio ``q * mean(|h_t|^2)`` (the
forecast variance the state noise adds per step, relative to R) from 1e-8 to 1e2, then refined
by golden-section search in ``log q`` between the best grid point's neighbours.

Edges: when the profile likelihood is largest at the grid's low end and ``q = 0`` does at least
as well, the answer is ``delta = 0`` (a static beta: the filter is recursive OLS) and the fit
says ``static``; a maximum at the high end is flagged ``at_upper`` (the beta then re-fits
almost every bar: treat it with suspicion). Too few observations, a constant leg, or a model
that fits exactly raise :class:`~hedger.errors.ConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from hedger.engine import kernels
from hedger.engine.linalg import FloatArray, ols
from hedger.engine.params import FilterParams, InputMode, OlsWarmupInit
from hedger.engine.units import filter_prices, hedged_pnl, shares_hedge
from hedger.errors import ConfigError

WARMUP = OlsWarmupInit().n_obs
"""Observations of the OLS warm-up (excluded from the likelihood): the FilterParams default."""
MIN_COUNTED = 30
"""Fewest observations after the warm-up that a fit accepts."""
GRID_POINTS = 41
SNR_RANGE = (1e-8, 1e2)
"""The grid's range of ``q * mean(|h|^2)``, the state noise's share of one step's forecast
variance relative to R."""
PREFERRED_MODE = InputMode.RETURNS
"""The mode :func:`choose_mode` keeps whenever it could be fitted."""
_REFINE_TOL = 1e-7  # golden-section stops when the bracket in log q is this narrow
_EXACT_FIT = 1e-20  # R below this share of mean(y^2): y is x times a constant, up to rounding
_LOG_2PI = math.log(2.0 * math.pi)
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True, slots=True)
class NoiseFit:
    """The maximum-likelihood noise of one input mode.

    mode, intercept: the model fitted.
    delta: state noise in Chan's parametrisation, ``Q = delta / (1 - delta) * I`` (squared units
        of beta per bar); 0 means a static beta.
    obs_cov: R, fixed (squared units of the mode's y).
    loglik: the maximised log-likelihood, summed over the ``n_obs`` observations after the
        warm-up (see the module docstring for the convention).
    n_obs: observations counted in ``loglik``.
    hedged_variance: sample variance (ddof 1) of the one-step-ahead hedged P&L per share of Y,
        ``dY_t - h_{t-1} dX_t`` in Y's squared price units, over the bars after the warm-up
        (see :func:`in_sample_hedged_variance`): the criterion for choosing the mode.
    static: the likelihood was largest at ``delta = 0``.
    at_upper: the maximum sat at the top of the search range (a beta that re-fits every bar).
    log_q_se: standard error of ``log(Q / R)`` from the curvature of the profile likelihood
        (NaN when ``static`` or ``at_upper``); ``exp(+-2 se)`` is a rough 95% band for delta.
    """

    mode: InputMode
    intercept: bool
    delta: float
    obs_cov: float
    loglik: float
    n_obs: int
    hedged_variance: float
    static: bool = False
    at_upper: bool = False
    log_q_se: float = math.nan

    @property
    def trans_cov(self) -> float:
        """Q's diagonal entry, ``delta / (1 - delta)``."""
        return self.delta / (1.0 - self.delta)

    def filter_params(self) -> FilterParams:
        """The fitted model as filter parameters: fixed R, the default OLS warm-up."""
        return FilterParams(
            mode=self.mode,
            intercept=self.intercept,
            delta=self.delta,
            obs_cov=self.obs_cov,
            adaptive_r=None,
        )


@dataclass(frozen=True, slots=True)
class Calibration:
    """Fits of several input modes and the one to run.

    best: the fit :func:`choose_mode` chose (returns whenever fitted).
    fits: one per mode fitted, in the order given.
    failed: the modes that could not be fitted, each with the reason (e.g. a leg constant over
        the warm-up in levels, prices <= 0 in a log mode).
    """

    best: NoiseFit
    fits: tuple[NoiseFit, ...]
    failed: tuple[tuple[InputMode, str], ...] = ()

    def fit_for(self, mode: InputMode) -> NoiseFit:
        """The fit of ``mode``; :class:`ConfigError` if it was not tried."""
        for fit in self.fits:
            if fit.mode is InputMode(mode):
                return fit
        raise ConfigError("mode", f"{mode} was not calibrated")


class _Problem(NamedTuple):
    """A pair's observations ready for the filter.

    y, x: (T - start,) the mode's observations from the first bar after the warm-up (NaN on
    bars without one); mean0 (2,), gram (2, 2): the warm-up's OLS coefficients and
    ``(H'H)^-1`` in the pair kernel's padded layout; h1: 1.0 with an intercept, else 0.0;
    snr_scale: mean ``|h_t|^2`` over the counted observations; n_obs: how many there are.
    """

    y: FloatArray
    x: FloatArray
    mean0: FloatArray
    gram: FloatArray
    h1: float
    snr_scale: float
    n_obs: int


def pair_observations(
    y: FloatArray, x: FloatArray, mode: InputMode
) -> tuple[FloatArray, FloatArray]:
    """The observations (T,) each that :class:`~hedger.engine.transforms.InputTransform` forms
    from raw prices ``y``, ``x`` (T,), NaN where it forms none: a differenced mode has no
    observation on the first bar, nor on a bar where a price is missing on it or the bar
    before. Prices must be finite or NaN, and > 0 in the log modes (else ConfigError)."""
    ys, xs = _raw(y, "y"), _raw(x, "x")
    if ys.shape != xs.shape:
        raise ConfigError("prices", f"y and x must have equal length, got {len(ys)} and {len(xs)}")
    mode = InputMode(mode)
    if mode.logarithmic:
        for name, leg in (("y", ys), ("x", xs)):
            if np.any(leg <= 0.0):
                raise ConfigError("prices", f"{mode} mode needs prices > 0 ({name} has some <= 0)")
        ys, xs = np.log(ys), np.log(xs)
    if mode.differenced:
        dy, dx = np.full(len(ys), math.nan), np.full(len(xs), math.nan)
        dy[1:] = ys[1:] - ys[:-1]
        dx[1:] = xs[1:] - xs[:-1]
        ys, xs = dy, dx
    missing = np.isnan(ys) | np.isnan(xs)
    ys[missing] = math.nan
    xs[missing] = math.nan
    return ys, xs


def _raw(values: FloatArray, name: str) -> FloatArray:
    array = np.array(values, dtype=np.float64)
    if array.ndim != 1:
        raise ConfigError("prices", f"{name} must be one-dimensional, got shape {array.shape}")
    if np.any(np.isinf(array)):
        raise ConfigError("prices", f"{name} has infinite prices")
    return array


def _problem(
    y: FloatArray, x: FloatArray, mode: InputMode, intercept: bool, warmup: int = WARMUP
) -> tuple[_Problem, int]:
    """The observations after the warm-up and the warm-up's OLS fit; also returns the bar
    index of the ``warmup``-th observation (the last warm-up bar)."""
    ys, xs = pair_observations(y, x, mode)
    rows = np.flatnonzero(~np.isnan(ys))
    if len(rows) < warmup + MIN_COUNTED:
        raise ConfigError(
            "prices",
            f"{len(rows)} usable {mode} observations; calibration needs at least "
            f"{warmup + MIN_COUNTED} ({warmup} of warm-up, {MIN_COUNTED} to fit)",
        )
    counted = rows[warmup:]
    if np.ptp(ys[counted]) == 0.0:
        raise ConfigError("prices", f"y is constant in {mode} mode: nothing to hedge")
    if np.ptp(xs[counted]) == 0.0 and (intercept or not np.any(xs[counted])):
        raise ConfigError("prices", f"x is constant in {mode} mode: it cannot hedge")
    warm = rows[:warmup]
    design = xs[warm, None] if not intercept else np.column_stack([xs[warm], np.ones(warmup)])
    try:
        coef, gram_inv, _ = ols(design, ys[warm])
    except np.linalg.LinAlgError:
        raise ConfigError(
            "prices", f"x is constant over the {warmup}-observation warm-up in {mode} mode"
        ) from None
    mean0, gram = np.zeros(2), np.zeros((2, 2))
    n = len(coef)
    mean0[:n] = coef
    gram[:n, :n] = gram_inv
    h1 = 1.0 if intercept else 0.0
    last_warm = int(warm[-1])
    xc = xs[counted]
    problem = _Problem(
        y=np.ascontiguousarray(ys[last_warm + 1 :]),
        x=np.ascontiguousarray(xs[last_warm + 1 :]),
        mean0=mean0,
        gram=gram,
        h1=h1,
        snr_scale=float(np.mean(xc * xc)) + h1,
        n_obs=len(counted),
    )
    return problem, last_warm


def _run(problem: _Problem, q: float, r: float) -> FloatArray:
    """Filter the counted part with Q = q I and R = r from ``(mean0, r * gram)``, primed
    (the HedgeFilter's state after its warm-up); returns the kernel's (11, T') output rows."""
    h1 = problem.h1
    p = problem.gram * r
    state = np.array(
        [
            problem.mean0[0],
            problem.mean0[1],
            p[0, 0],
            p[0, 1],
            p[1, 1],
            max(p[0, 0] * p[1, 1] - p[0, 1] * p[0, 1], 0.0),
            r,
        ]
    )
    params = np.array([q, 0.0, q * h1, q * q * h1, h1, 0.0])
    out = np.empty((11, len(problem.y)))
    kernels.pair_series(state, params, True, problem.y, problem.x, out)
    return out


def _profile(problem: _Problem, q: float) -> tuple[float, float]:
    """The log-likelihood maximised over R for ``Q = q R``; returns ``(loglik, R)``."""
    out = _run(problem, q, 1.0)
    e, s = out[6], out[7]
    ok = ~np.isnan(e)
    scaled = e[ok] * e[ok] / s[ok]
    r = float(np.mean(scaled))
    if not (r > 0.0 and math.isfinite(r)):
        return -math.inf, r
    n = problem.n_obs
    loglik = -0.5 * (n * (_LOG_2PI + 1.0 + math.log(r)) + float(np.sum(np.log(s[ok]))))
    return loglik, r


def log_likelihood(
    y: FloatArray,
    x: FloatArray,
    mode: InputMode,
    *,
    delta: float,
    obs_cov: float,
    intercept: bool | None = None,
) -> tuple[float, int]:
    """The log-likelihood of raw prices ``y``, ``x`` (T,) under ``mode`` with
    ``Q = delta / (1 - delta) I`` and R = ``obs_cov``, in the module's convention; returns
    ``(loglik, observations counted)``."""
    mode = InputMode(mode)
    params = FilterParams(mode=mode, intercept=intercept, delta=delta, obs_cov=obs_cov)
    problem, _ = _problem(y, x, mode, params.has_intercept)
    out = _run(problem, delta / (1.0 - delta), obs_cov)
    increments = out[9][~np.isnan(out[9])]
    return float(np.sum(increments)), len(increments)


def in_sample_hedged_variance(
    params: FilterParams, y: FloatArray, x: FloatArray, first_bar: int
) -> float:
    """Sample variance (ddof 1) of the hedged P&L ``dY_t - h_{t-1} dX_t`` (Y's price units
    squared) of the filter ``params`` run over raw prices ``y``, ``x`` (T,), over bars
    ``t > first_bar`` whose hedge ``h_{t-1}`` came from a warm filter and whose P&L exists."""
    path = filter_prices(params, y, x)
    h = shares_hedge(path.beta, y, x, params.mode)
    pnl = hedged_pnl(y, x, h)
    keep = np.zeros(len(y), dtype=bool)
    keep[first_bar + 1 :] = path.warm[first_bar:-1]
    values = pnl[keep & ~np.isnan(pnl)]
    if len(values) < 2:
        return math.nan
    return float(np.var(values, ddof=1))


def _common_first_bar(y: FloatArray, x: FloatArray, warmup: int) -> int:
    """The bar from which every mode is warm when no price is missing: the ``warmup + 1``-th
    bar with both prices (a differenced mode's ``warmup``-th observation)."""
    both = np.flatnonzero(~(np.isnan(y) | np.isnan(x)))
    return int(both[min(warmup, len(both) - 1)])


def fit_noise(
    y: FloatArray,
    x: FloatArray,
    mode: InputMode,
    *,
    intercept: bool | None = None,
    measure_hedge: bool = True,
) -> NoiseFit:
    """Fit delta and R of ``mode`` by maximum likelihood on raw prices ``y``, ``x`` (T,)
    (NaN = no price on that bar); ``intercept`` defaults to the mode's default. Without
    ``measure_hedge`` the (slower, per-bar) hedged-variance run is skipped and
    ``hedged_variance`` is NaN: what a refit of a mode already chosen needs.

    Leading bars in which a leg has not moved yet (a back-filled price) are left out: they
    tell nothing about the hedge and would make the OLS warm-up degenerate."""
    mode = InputMode(mode)
    start = moving_start(y, x)
    y, x = y[start:], x[start:]
    has_intercept = mode.default_intercept if intercept is None else bool(intercept)
    problem, _ = _problem(y, x, mode, has_intercept)
    low, high = (math.log(v / problem.snr_scale) for v in SNR_RANGE)
    grid = np.linspace(low, high, GRID_POINTS)
    values = [_profile(problem, math.exp(u))[0] for u in grid]
    best = int(np.argmax(values))
    static = at_upper = False
    if best == 0 and _profile(problem, 0.0)[0] >= values[0]:
        q, static = 0.0, True
    else:
        step = grid[1] - grid[0]
        u = _golden(problem, grid[best] - step, grid[best] + step)
        at_upper = best == GRID_POINTS - 1 and u > grid[-1] - step / 2
        if best == 0 and u < grid[0]:
            # beyond the grid's low end a static beta is within rounding of the maximum
            static_ll = _profile(problem, 0.0)[0]
            static = static_ll >= _profile(problem, math.exp(u))[0]
        q = 0.0 if static else math.exp(u)
    _, r = _profile(problem, q)
    scale = float(np.nanmean(problem.y * problem.y))
    if not (r > _EXACT_FIT * scale and math.isfinite(r)):
        raise ConfigError("prices", f"y = beta x fits exactly in {mode} mode: no noise to fit")
    trans = q * r
    delta = trans / (1.0 + trans)
    out = _run(problem, trans, r)
    increments = out[9][~np.isnan(out[9])]
    se = math.nan if static or at_upper else _log_q_se(problem, math.log(q))
    fit = NoiseFit(
        mode=mode,
        intercept=has_intercept,
        delta=delta,
        obs_cov=r,
        loglik=float(np.sum(increments)),
        n_obs=len(increments),
        hedged_variance=math.nan,
        static=static,
        at_upper=at_upper,
        log_q_se=se,
    )
    if not measure_hedge:
        return fit
    ys, xs = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
    first = _common_first_bar(ys, xs, WARMUP)
    return replace(
        fit, hedged_variance=in_sample_hedged_variance(fit.filter_params(), ys, xs, first)
    )


def moving_start(y: FloatArray, x: FloatArray) -> int:
    """The first bar to fit from (T,) prices: the last bar before both legs have moved from
    their first price (0 when they move at once)."""
    start = 0
    for prices in (np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)):
        present = np.flatnonzero(np.isfinite(prices))
        if present.size == 0:
            continue
        moved = present[prices[present] != prices[present[0]]]
        if moved.size:
            start = max(start, int(moved[0]) - 1)
    return start


def _golden(problem: _Problem, low: float, high: float) -> float:
    """Golden-section search for the maximum of the profile likelihood in ``log q`` on
    ``[low, high]``."""

    def value(u: float) -> float:
        return _profile(problem, math.exp(u))[0]

    a, b = low, high
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = value(c), value(d)
    while b - a > _REFINE_TOL:
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = value(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = value(d)
    return (a + b) / 2.0


def _log_q_se(problem: _Problem, u: float, step: float = 0.05) -> float:
    """Standard error of ``log q`` from the profile likelihood's curvature at ``u``."""
    up = _profile(problem, math.exp(u + step))[0]
    mid = _profile(problem, math.exp(u))[0]
    down = _profile(problem, math.exp(u - step))[0]
    curvature = (up - 2.0 * mid + down) / (step * step)
    return 1.0 / math.sqrt(-curvature) if curvature < 0.0 else math.nan


def calibrate(
    y: FloatArray, x: FloatArray, *, modes: Sequence[InputMode] = tuple(InputMode)
) -> Calibration:
    """Fit every mode in ``modes`` on raw prices ``y``, ``x`` (T,) and choose one (see
    :func:`choose_mode`). A mode that cannot be fitted is left out and listed in ``failed``;
    :class:`ConfigError` when none can (or when the only mode asked for cannot)."""
    if not modes:
        raise ConfigError("modes", "at least one mode is needed")
    fits: list[NoiseFit] = []
    failed: list[tuple[InputMode, str]] = []
    for mode in modes:
        try:
            fits.append(fit_noise(y, x, InputMode(mode)))
        except ConfigError as exc:
            if len(modes) == 1:
                raise
            failed.append((InputMode(mode), str(exc)))
    if not fits:
        reasons = "; ".join(f"{mode.value}: {why}" for mode, why in failed)
        raise ConfigError("modes", f"no mode could be fitted ({reasons})")
    return Calibration(best=choose_mode(fits), fits=tuple(fits), failed=tuple(failed))


def choose_mode(fits: Sequence[NoiseFit]) -> NoiseFit:
    """The fit to run: :data:`PREFERRED_MODE`'s whenever it was fitted; else the mode with the
    lowest in-sample hedged variance.

    Why not the lowest in sample: the likelihoods of different modes model different data and
    cannot be compared, and the in-sample hedged variances of the modes usually differ by a
    few percent, a ranking that does not survive out of sample (docs/evaluation.md measures
    it). Returns hedge best more often for a structural reason: their beta is an elasticity,
    and the hedge in shares, ``beta * Y / X``, follows the price ratio by itself, where a beta
    in shares has to be re-learnt by the filter as prices drift. An earlier rule left returns
    when another mode was more than 5% lower in sample; out of sample that switch was the
    source of the largest losses against the best candidate, so it is gone.
    """
    ranked = [f for f in fits if not math.isnan(f.hedged_variance)]
    preferred = next((f for f in fits if f.mode is PREFERRED_MODE), None)
    if preferred is not None:
        return preferred
    if not ranked:
        return fits[0]
    return min(ranked, key=lambda f: f.hedged_variance)
