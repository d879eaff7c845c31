"""Filtering a whole pair series in one compiled pass (fitting, calibration, evaluation)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from hedger.engine import kernels
from hedger.engine.linalg import FloatArray, MatrixLike, VectorLike


class PairSeries(NamedTuple):
    """Per-step outputs of a pair filter over T steps (all arrays have T rows).

    beta, alpha: the filtered state after each step.
    cov: (T, 2, 2) the filtered state covariance.
    forecast: the one-step forecast of y (NaN on predict-only steps, like those below).
    innovation: e = y - forecast. innovation_var: S. zscore: e / sqrt(S).
    spread: y - beta x - alpha with the state after the step.
    loglik: the log-likelihood increment -(log(2 pi S) + e^2 / S) / 2.
    predicted_only: True where y or x was NaN and the step only predicted.
    """

    beta: FloatArray
    alpha: FloatArray
    cov: FloatArray
    forecast: FloatArray
    innovation: FloatArray
    innovation_var: FloatArray
    zscore: FloatArray
    spread: FloatArray
    loglik: FloatArray
    predicted_only: np.ndarray


def filter_pair(
    y: ArrayLike,
    x: ArrayLike,
    *,
    mean: VectorLike = (0.0, 0.0),
    cov: MatrixLike = ((1.0, 0.0), (0.0, 1.0)),
    trans_cov: MatrixLike,
    obs_cov: float,
    intercept: bool = True,
    adaptive_r: float | None = None,
) -> PairSeries:
    """Run a pair filter over ``y`` and ``x`` (T,) from the prior ``mean``/``cov`` of the first
    observation (pykalman's ``filter()`` convention) and return every step's outputs."""
    ys = np.ascontiguousarray(y, dtype=np.float64)
    xs = np.ascontiguousarray(x, dtype=np.float64)
    if ys.ndim != 1 or ys.shape != xs.shape:
        raise ValueError(f"y and x must be 1-D of equal length, got {ys.shape} and {xs.shape}")
    h1 = 1.0 if intercept else 0.0
    q00, q01, q11 = float(trans_cov[0][0]), float(trans_cov[0][1]) * h1, float(trans_cov[1][1]) * h1
    params = np.array([q00, q01, q11, q00 * q11 - q01 * q01, h1, adaptive_r or 0.0])
    p00, p01, p11 = float(cov[0][0]), float(cov[0][1]) * h1, float(cov[1][1]) * h1
    state = np.array(
        [mean[0], mean[1] * h1, p00, p01, p11, max(p00 * p11 - p01 * p01, 0.0), obs_cov],
        dtype=np.float64,
    )
    out = np.empty((11, ys.shape[0]))
    kernels.pair_series(state, params, False, ys, xs, out)
    return series_from_rows(ys, out)


def series_from_rows(ys: FloatArray, out: FloatArray) -> PairSeries:
    """Assemble a :class:`PairSeries` from the kernel's (11, T) output rows (views, no
    copies, except the (T, 2, 2) covariance)."""
    cov = np.empty((ys.shape[0], 2, 2))
    cov[:, 0, 0] = out[2]
    cov[:, 0, 1] = out[3]
    cov[:, 1, 0] = out[3]
    cov[:, 1, 1] = out[4]
    e = out[6]
    return PairSeries(
        beta=out[0],
        alpha=out[1],
        cov=cov,
        forecast=ys - e,
        innovation=e,
        innovation_var=out[7],
        zscore=out[8],
        spread=out[10],
        loglik=out[9],
        predicted_only=np.isnan(e),
    )
