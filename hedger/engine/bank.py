"""A bank of P independent pair filters advanced together in one compiled call.

Uses: many pairs on the same bar (the hedge-ratio matrix), or many parameter candidates on the
same pair (calibration). Each filter has its own Q, R, intercept choice and state; the
arithmetic is the pair filter's, so a bank of P equals P :class:`PairFilter` s.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from hedger.engine import kernels
from hedger.engine.linalg import FloatArray
from hedger.errors import ConfigError


def _per_filter(name: str, value: ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    try:
        return np.array(np.broadcast_to(np.asarray(value, dtype=np.float64), shape))
    except ValueError:
        got = np.shape(value)
        raise ConfigError(name, f"cannot broadcast shape {got} to {shape}") from None


def _column(values: ArrayLike, n: int) -> FloatArray:
    """``values`` as a contiguous float64 (n,) array, without a copy when it already is one."""
    if (
        isinstance(values, np.ndarray)
        and values.dtype == np.float64
        and values.shape == (n,)
        and values.flags.c_contiguous
    ):
        return values
    return np.ascontiguousarray(np.broadcast_to(np.asarray(values, dtype=np.float64), (n,)))


class PairBank:
    """P pair filters, state in one (7, P) array (a row per quantity).

    Args:
        n_filters: P.
        mean: prior (beta, alpha), shape (2,) or (P, 2).
        cov: prior covariance, (2, 2) or (P, 2, 2), PSD.
        trans_cov: Q, (2, 2) or (P, 2, 2).
        obs_cov: R (starting value if adaptive), scalar or (P,).
        intercept: bool, scalar or (P,).
        adaptive_r: forgetting factor, scalar or (P,); 0 or None means a fixed R.

    After :meth:`step`, ``innovation``, ``innovation_var`` and ``zscore`` (P,) describe it.
    """

    def __init__(
        self,
        n_filters: int,
        *,
        mean: ArrayLike = (0.0, 0.0),
        cov: ArrayLike = ((1.0, 0.0), (0.0, 1.0)),
        trans_cov: ArrayLike,
        obs_cov: ArrayLike,
        intercept: ArrayLike = True,
        adaptive_r: ArrayLike | None = None,
    ) -> None:
        if n_filters < 1:
            raise ConfigError("n_filters", f"must be >= 1, got {n_filters}")
        p = n_filters
        h1 = _per_filter("intercept", np.asarray(intercept, dtype=bool), (p,))
        q = _per_filter("trans_cov", trans_cov, (p, 2, 2))
        q[:, 0, 1] *= h1
        q[:, 1, 1] *= h1
        r = _per_filter("obs_cov", obs_cov, (p,))
        if not np.all(r > 0):
            raise ConfigError("obs_cov", "must be > 0 for every filter")
        lam = _per_filter("adaptive_r", 0.0 if adaptive_r is None else adaptive_r, (p,))
        self._params = np.empty((kernels.PARAM_WIDTH, p))
        self._params[0] = q[:, 0, 0]
        self._params[1] = q[:, 0, 1]
        self._params[2] = q[:, 1, 1]
        self._params[3] = q[:, 0, 0] * q[:, 1, 1] - q[:, 0, 1] * q[:, 0, 1]
        self._params[4] = h1
        self._params[5] = lam
        # every filter has the same parameters, bit for bit: the kernel reads one column
        bits = self._params.view(np.uint64)
        self._shared_params = bool(np.all(bits == bits[:, :1]))
        self._state: FloatArray = np.empty((kernels.STATE_WIDTH, p))
        self._primed = np.zeros(p, dtype=bool)
        self.innovation = np.full(p, math.nan)
        self.innovation_var = np.full(p, math.nan)
        self.zscore = np.full(p, math.nan)
        self.reset(mean, cov, r)

    def reset(self, mean: ArrayLike, cov: ArrayLike, obs_cov: ArrayLike) -> None:
        """Make ``mean`` (P, 2) and ``cov`` (P, 2, 2) every filter's prior of its next
        observation, and set R."""
        p = self.n_filters
        h1 = self._params[4]
        m = _per_filter("mean", mean, (p, 2))
        c = _per_filter("cov", cov, (p, 2, 2))
        st = self._state
        st[0] = m[:, 0]
        st[1] = m[:, 1] * h1
        st[2] = c[:, 0, 0]
        st[3] = c[:, 0, 1] * h1
        st[4] = c[:, 1, 1] * h1
        st[5] = np.maximum(st[2] * st[4] - st[3] * st[3], 0.0)
        st[6] = _per_filter("obs_cov", obs_cov, (p,))
        self._primed[:] = False

    @property
    def n_filters(self) -> int:
        """P."""
        return int(self._state.shape[1])

    def step(self, y: ArrayLike, x: ArrayLike) -> None:
        """Advance every filter one step with its observation y[i], x[i] (P,) each, or a
        scalar shared by all. NaN in y[i] or x[i] makes filter i's step predict-only."""
        p = self.n_filters
        ys, xs = _column(y, p), _column(x, p)
        kernels.bank_step(
            self._state,
            self._params,
            self._primed,
            ys,
            xs,
            self.innovation,
            self.innovation_var,
            self.zscore,
            self._shared_params,
        )

    @property
    def beta(self) -> FloatArray:
        """Hedge ratios (P,), a copy."""
        beta: FloatArray = self._state[0].copy()
        return beta

    @property
    def alpha(self) -> FloatArray:
        """Intercepts (P,), a copy (0 where there is no intercept)."""
        alpha: FloatArray = self._state[1].copy()
        return alpha

    @property
    def cov(self) -> FloatArray:
        """State covariances (P, 2, 2), a copy."""
        st = self._state
        out = np.empty((self.n_filters, 2, 2))
        out[:, 0, 0] = st[2]
        out[:, 0, 1] = st[3]
        out[:, 1, 0] = st[3]
        out[:, 1, 1] = st[4]
        return out

    @property
    def obs_cov(self) -> FloatArray:
        """R of every filter for its next step (P,), a copy."""
        r: FloatArray = self._state[6].copy()
        return r
