"""Small dense linear-algebra helpers shared by the engine (numpy, no state)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
VectorLike = Sequence[float] | FloatArray
"""A vector (n,): a sequence of floats or a float64 array."""
MatrixLike = Sequence[Sequence[float]] | FloatArray
"""A matrix (n, n): rows of floats or a float64 array."""


def psd_sqrt(matrix: Sequence[Sequence[float]] | FloatArray) -> FloatArray:
    """A square root L (n, n) with ``L L^T = matrix`` for a symmetric PSD (n, n) matrix,
    singular ones included (eigen-decomposition; tiny negative eigenvalues from rounding are
    clipped to 0)."""
    m = np.asarray(matrix, dtype=np.float64)
    m = 0.5 * (m + m.T)
    values, vectors = np.linalg.eigh(m)
    root: FloatArray = vectors * np.sqrt(np.clip(values, 0.0, None))
    return root


def ols(design: FloatArray, target: FloatArray) -> tuple[FloatArray, FloatArray, float]:
    """Ordinary least squares of ``target`` (T,) on ``design`` (T, n).

    Returns ``(coef (n,), inverse Gram (H'H)^-1 (n, n), residual variance s^2)`` with
    ``s^2 = RSS / (T - n)``. Raises ``numpy.linalg.LinAlgError`` on a rank-deficient design.
    """
    t, n = design.shape
    q, r_factor = np.linalg.qr(design)
    if np.min(np.abs(np.diag(r_factor))) <= 1e-12 * np.max(np.abs(np.diag(r_factor))):
        raise np.linalg.LinAlgError("design matrix is rank deficient")
    coef: FloatArray = np.linalg.solve(r_factor, q.T @ target)
    r_inv = np.linalg.inv(r_factor)
    gram_inv: FloatArray = r_inv @ r_inv.T
    resid = target - design @ coef
    return coef, gram_inv, float(resid @ resid) / max(t - n, 1)
