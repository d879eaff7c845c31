"""pykalman as the reference oracle for the random-walk regression model."""

from __future__ import annotations

import numpy as np
from pykalman import KalmanFilter


def pykalman_filter(
    y: np.ndarray,
    design: np.ndarray,
    *,
    mean: np.ndarray,
    cov: np.ndarray,
    trans_cov: np.ndarray,
    obs_cov: float,
) -> tuple[np.ndarray, np.ndarray]:
    """pykalman ``filter()`` of y (T,) with observation rows ``design`` (T, n); returns the
    filtered means (T, n) and covariances (T, n, n)."""
    n = design.shape[1]
    kf = KalmanFilter(
        transition_matrices=np.eye(n),
        observation_matrices=design[:, None, :],
        transition_covariance=np.asarray(trans_cov, dtype=float),
        observation_covariance=np.array([[obs_cov]]),
        initial_state_mean=np.asarray(mean, dtype=float),
        initial_state_covariance=np.asarray(cov, dtype=float),
    )
    means, covs = kf.filter(y[:, None])
    return np.asarray(means), np.asarray(covs)


def assert_close(ours: np.ndarray, ref: np.ndarray, rtol: float = 1e-9) -> None:
    """Relative agreement, entrywise, with an absolute floor of ``rtol`` times the largest
    entry of the same quantity (an off-diagonal covariance that crosses zero has no useful
    relative error)."""
    ours = np.asarray(ours, dtype=float)
    ref = np.asarray(ref, dtype=float)
    scale = np.max(np.abs(ref), axis=0, keepdims=True)
    err = np.abs(ours - ref)
    bound = rtol * np.maximum(np.abs(ref), scale)
    worst = float(np.max(err / np.where(bound > 0, bound, 1.0) * rtol))
    assert np.all(err <= bound), f"max scaled error {worst:.3g} exceeds {rtol:g}"
