"""Compiled square-root kernels of the basket filter (Potter's update, Givens
re-triangularisation)."""

from __future__ import annotations

import math

import numpy as np

from hedger.engine.kernels.jit import compiled


@compiled
def sqrt_predict(sqrt_p: np.ndarray, sqrt_q: np.ndarray, work: np.ndarray) -> None:
    """Square-root time update: replace L (n, n) by a lower-triangular L' with
    ``L' L'^T = L L^T + S S^T`` where S = ``sqrt_q`` (n, n).

    The n x 2n matrix ``[L, S]`` (held in ``work``) is reduced to ``[L', 0]`` by Givens
    rotations of column pairs, which are orthogonal and so leave ``A A^T`` unchanged.
    """
    n = sqrt_p.shape[0]
    work[:, :n] = sqrt_p
    work[:, n:] = sqrt_q
    for i in range(n):
        for j in range(i + 1, 2 * n):
            hi = work[i, j]
            if hi == 0.0:
                continue
            lo = work[i, i]
            radius = math.hypot(lo, hi)
            c = lo / radius
            sn = hi / radius
            for row in range(i, n):
                u = work[row, i]
                v = work[row, j]
                work[row, i] = c * u + sn * v
                work[row, j] = c * v - sn * u
    for i in range(n):
        sign = -1.0 if work[i, i] < 0.0 else 1.0
        for row in range(n):
            sqrt_p[row, i] = sign * work[row, i]


@compiled
def sqrt_correct(
    mean: np.ndarray, sqrt_p: np.ndarray, h: np.ndarray, y: float, r: float, f: np.ndarray
) -> tuple[float, float]:
    """Potter's square-root measurement update in place on mean (n,) and L (n, n), with
    ``P = L L^T``; ``f`` (n,) is scratch. Returns (e, s).

    With ``f = L^T h`` and ``s = f.f + r``: ``L <- L - gamma K f^T``, ``K = L f / s``,
    ``gamma = 1 / (1 + sqrt(r / s))``, which gives ``L L^T = P - P h h^T P / s`` exactly and
    keeps P positive semi-definite by construction.
    """
    n = mean.shape[0]
    s = r
    forecast = 0.0
    for j in range(n):
        acc = 0.0
        for i in range(n):
            acc += sqrt_p[i, j] * h[i]
        f[j] = acc
        s += acc * acc
        forecast += h[j] * mean[j]
    e = y - forecast
    gamma = 1.0 / (1.0 + math.sqrt(r / s))
    for i in range(n):
        gain = 0.0
        for j in range(n):
            gain += sqrt_p[i, j] * f[j]
        gain /= s
        mean[i] += gain * e
        for j in range(n):
            sqrt_p[i, j] -= gamma * gain * f[j]
    return e, s
