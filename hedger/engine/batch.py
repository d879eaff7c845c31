"""Filtering a whole pair series in one compiled pass (fitting, calibration, evaluation)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from hedger.engine import kernels
from hedger.engine.linalg import FloatArray, MatrixLike, VectorLike

_LOG_2PI = math.log(2.0 * math.pi)


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
    out = np.empty((ys.shape[0], 9))
    kernels.pair_series(state, params, False, ys, xs, out)
    return series_from_rows(ys, xs, out, h1)


def series_from_rows(ys: FloatArray, xs: FloatArray, out: FloatArray, h1: float) -> PairSeries:
    """Assemble a :class:`PairSeries` from the kernel's (T, 9) output rows."""
    beta, alpha = out[:, 0], out[:, 1]
    cov = np.empty((ys.shape[0], 2, 2))
    cov[:, 0, 0] = out[:, 2]
    cov[:, 0, 1] = cov[:, 1, 0] = out[:, 3]
    cov[:, 1, 1] = out[:, 4]
    e, s = out[:, 6], out[:, 7]
    forecast = ys - e
    return PairSeries(
        beta=beta.copy(),
        alpha=alpha.copy(),
        cov=cov,
        forecast=forecast,
        innovation=e.copy(),
        innovation_var=s.copy(),
        zscore=e / np.sqrt(s),
        spread=ys - beta * xs - alpha * h1,
        loglik=-0.5 * (_LOG_2PI + np.log(s) + e * e / s),
        predicted_only=out[:, 8] != 0.0,
    )
