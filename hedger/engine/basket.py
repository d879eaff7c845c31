"""A filter for one Y hedged with a basket of k instruments, in square-root form.

The covariance is carried as a square root ``L`` with ``P = L L^T``, so it is symmetric and
positive semi-definite by construction whatever the conditioning: Potter's update absorbs each
observation, and Givens rotations re-triangularise ``[L, sqrt(Q)]`` in the predict step (see
:mod:`hedger.engine.kernels`). For k = 1 it agrees with :class:`~hedger.engine.pair.PairFilter`
to rounding; pairs use that one because it is faster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hedger.engine import kernels
from hedger.engine.linalg import FloatArray, psd_sqrt


class BasketFilter:
    """Kalman filter of ``y = b_1 x_1 + .. + b_k x_k (+ alpha) + eps``, random-walk state.

    Args:
        mean: prior state (n,), ``n = k + intercept``, of the first observation (absorbed
            without a predict step, pykalman's convention).
        cov: prior covariance (n, n), PSD.
        trans_cov: Q (n, n), PSD.
        obs_cov: R > 0 (the starting value when ``adaptive_r`` is set).
        intercept: whether the last state is alpha.
        adaptive_r: forgetting factor of the residual-based R, or None for a fixed R.
    """

    def __init__(
        self,
        mean: Sequence[float] | FloatArray,
        cov: Sequence[Sequence[float]] | FloatArray,
        trans_cov: Sequence[Sequence[float]] | FloatArray,
        obs_cov: float,
        *,
        intercept: bool = True,
        adaptive_r: float | None = None,
    ) -> None:
        self.intercept = intercept
        q = np.asarray(trans_cov, dtype=np.float64)
        self._sqrt_q = psd_sqrt(q)
        self._has_q = bool(np.any(q != 0.0))
        self._lam = 0.0 if adaptive_r is None else float(adaptive_r)
        n = q.shape[0]
        self._h = np.empty(n)
        self._scratch = np.empty(n)
        self._work = np.empty((n, 2 * n))
        self.innovation = math.nan
        self.innovation_var = math.nan
        self.reset(mean, cov, obs_cov)

    def reset(
        self,
        mean: Sequence[float] | FloatArray,
        cov: Sequence[Sequence[float]] | FloatArray,
        obs_cov: float,
        *,
        primed: bool = False,
    ) -> None:
        """Set the state to ``mean`` (n,) and ``cov`` (n, n) and R to ``obs_cov``. Unprimed,
        they are the prior of the next observation (absorbed without a predict step); primed,
        they are a filtered state and the next update predicts first."""
        self._mean = np.array(mean, dtype=np.float64)
        self._sqrt_p = psd_sqrt(cov)
        self._r = float(obs_cov)
        self._primed = primed

    def set_noise(self, trans_cov: Sequence[Sequence[float]] | FloatArray, obs_cov: float) -> None:
        """Replace Q (n, n) and R (the current value of an adaptive R) and keep the state."""
        q = np.asarray(trans_cov, dtype=np.float64)
        self._sqrt_q = psd_sqrt(q)
        self._has_q = bool(np.any(q != 0.0))
        self._r = float(obs_cov)

    def predict(self) -> None:
        """A predict-only step: ``P <- P + Q``."""
        if self._primed and self._has_q:
            kernels.sqrt_predict(self._sqrt_p, self._sqrt_q, self._work)
        self.innovation = self.innovation_var = math.nan

    def update(self, y: float, xs: Sequence[float]) -> float:
        """Predict, then absorb ``y`` and the hedge prices ``xs`` (k,); returns z."""
        if self._primed:
            if self._has_q:
                kernels.sqrt_predict(self._sqrt_p, self._sqrt_q, self._work)
        else:
            self._primed = True
        h = self._h
        h[: len(xs)] = xs
        if self.intercept:
            h[-1] = 1.0
        e, s = kernels.sqrt_correct(self._mean, self._sqrt_p, h, float(y), self._r, self._scratch)
        if self._lam > 0.0:
            self._r = kernels.adapt_r(self._r, self._lam, e, s)
        self.innovation = e
        self.innovation_var = s
        return e * math.sqrt(1.0 / s)

    def save(self) -> tuple[FloatArray, FloatArray, float, bool]:
        """The exact state (mean, square root of P, R, primed), for :meth:`restore`."""
        return self._mean.copy(), self._sqrt_p.copy(), self._r, self._primed

    def restore(self, saved: tuple[FloatArray, FloatArray, float, bool]) -> None:
        """Go back to a state taken with :meth:`save`, bit for bit."""
        mean, sqrt_p, self._r, self._primed = saved
        self._mean[:] = mean
        self._sqrt_p[:] = sqrt_p

    @property
    def mean(self) -> FloatArray:
        """The state mean (n,): betas, then alpha with an intercept."""
        return self._mean.copy()

    @property
    def cov(self) -> FloatArray:
        """The state covariance (n, n) = L L^T, symmetric PSD."""
        cov: FloatArray = self._sqrt_p @ self._sqrt_p.T
        return 0.5 * (cov + cov.T)

    @property
    def obs_cov(self) -> float:
        """R for the next step."""
        return self._r

    @property
    def primed(self) -> bool:
        """Whether an observation was absorbed since the last reset."""
        return self._primed
