"""Compiled kernels (numba) for the batch, bank and basket paths.

The pair kernel performs exactly the operations of :class:`hedger.engine.pair.PairFilter`, in
the same order, so the compiled and the plain-float paths agree to the last bit in practice
(tests hold them to 1e-12). See ``pair.py`` for the derivation of the covariance update.

A pair's state (float64[7]):  beta, alpha, p00, p01, p11, det, r
A pair's params (float64[6]): q00, q01, q11, qdet, h1, lam   (h1 = 1 with intercept, else 0;
                                                             lam = 0 for a fixed R)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

STATE_WIDTH = 7
PARAM_WIDTH = 6


def compiled(fn: F) -> F:
    """Compile ``fn`` in nopython mode, cached on disk, keeping its Python signature for mypy."""
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy")(fn))


@compiled
def pair_predict(
    p00: float, p01: float, p11: float, d: float, q00: float, q01: float, q11: float, qdet: float
) -> tuple[float, float, float, float]:
    """Random-walk predict of a 2x2 covariance and its tracked determinant ``d``.

    ``det(P + Q) >= det P + det Q`` for PSD P and Q (Minkowski), which guards ``d`` against
    the cancellation in the cross term.
    """
    grown = d + (p00 * q11 + p11 * q00 - 2.0 * p01 * q01) + qdet
    floor = d + qdet
    return p00 + q00, p01 + q01, p11 + q11, grown if grown > floor else floor


@compiled
def pair_correct(
    b: float,
    a: float,
    p00: float,
    p01: float,
    p11: float,
    d: float,
    r: float,
    h1: float,
    y: float,
    x: float,
) -> tuple[float, float, float, float, float, float, float, float]:
    """Scalar-observation update of a 2x2 state; returns (b, a, p00, p01, p11, d, e, s)."""
    g0 = p00 * x + p01 * h1
    g1 = p01 * x + p11 * h1
    s = x * g0 + h1 * g1 + r
    e = y - (b * x + a * h1)
    inv = 1.0 / s
    ks = e * inv
    rs = r * inv
    ds = d * inv
    n00 = rs * p00 + ds * h1 * h1
    n01 = rs * p01 - ds * x * h1
    n11 = rs * p11 + ds * x * x
    if n01 * n01 > n00 * n11:
        n01 = math.copysign(math.sqrt(n00 * n11), n01)
    return b + g0 * ks, a + g1 * ks, n00, n01, n11, d * rs, e, s


@compiled
def adapt_r(r: float, lam: float, e: float, s: float) -> float:
    """Residual-based R: ``lam r + (1 - lam) (post-fit residual^2 + H P+ H')``, where the
    post-fit residual is ``e R / S`` and ``H P+ H' = (S - R) R / S``."""
    rs = r * (1.0 / s)
    u = e * rs
    return lam * r + (1.0 - lam) * (u * u + (s - r) * rs)


BANK_BLOCK = 4096
"""Filters per block in :func:`bank_step`: a block takes the vectorised path or the general one."""


@compiled
def _bank_rows_general(
    state: np.ndarray,
    params: np.ndarray,
    primed: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    e_out: np.ndarray,
    s_out: np.ndarray,
    z_out: np.ndarray,
    lo: int,
    hi: int,
) -> None:
    """The general step of filters ``lo:hi``: any ``primed``, NaN allowed in y and x."""
    for i in range(lo, hi):
        b = state[0, i]
        a = state[1, i]
        p00 = state[2, i]
        p01 = state[3, i]
        p11 = state[4, i]
        d = state[5, i]
        r = state[6, i]
        if primed[i]:
            p00, p01, p11, d = pair_predict(
                p00, p01, p11, d, params[0, i], params[1, i], params[2, i], params[3, i]
            )
        yi = y[i]
        xi = x[i]
        if math.isnan(yi) or math.isnan(xi):
            state[2, i] = p00
            state[3, i] = p01
            state[4, i] = p11
            state[5, i] = d
            e_out[i] = np.nan
            s_out[i] = np.nan
            z_out[i] = np.nan
            continue
        b, a, p00, p01, p11, d, e, s = pair_correct(b, a, p00, p01, p11, d, r, params[4, i], yi, xi)
        lam = params[5, i]
        if lam > 0.0:
            r = adapt_r(r, lam, e, s)
        state[0, i] = b
        state[1, i] = a
        state[2, i] = p00
        state[3, i] = p01
        state[4, i] = p11
        state[5, i] = d
        state[6, i] = r
        primed[i] = True
        e_out[i] = e
        s_out[i] = s
        z_out[i] = e * math.sqrt(1.0 / s)


@compiled
def _pair_step_unclamped(
    b: float,
    a: float,
    p00: float,
    p01: float,
    p11: float,
    d: float,
    r: float,
    q00: float,
    q01: float,
    q11: float,
    qdet: float,
    h1: float,
    lam: float,
    y: float,
    x: float,
) -> tuple[float, float, float, float, float, float, float, float, float, float]:
    """Predict and correct of a primed pair with finite y, x, without branches: the
    operations of :func:`pair_predict`, :func:`pair_correct` and :func:`adapt_r` in the same
    order, except that the off-diagonal clamp of ``pair_correct`` is left to the caller.
    Returns (b, a, p00, p01, p11, d, r, e, s, z); p01 is unclamped."""
    grown = d + (p00 * q11 + p11 * q00 - 2.0 * p01 * q01) + qdet
    floor = d + qdet
    d = grown if grown > floor else floor
    p00 = p00 + q00
    p01 = p01 + q01
    p11 = p11 + q11
    g0 = p00 * x + p01 * h1
    g1 = p01 * x + p11 * h1
    s = x * g0 + h1 * g1 + r
    e = y - (b * x + a * h1)
    inv = 1.0 / s
    ks = e * inv
    rs = r * inv
    ds = d * inv
    n00 = rs * p00 + ds * h1 * h1
    n01 = rs * p01 - ds * x * h1
    n11 = rs * p11 + ds * x * x
    u = e * rs  # adapt_r: r * (1.0 / s) is rs, bit for bit
    adapted = lam * r + (1.0 - lam) * (u * u + (s - r) * rs)
    r_next = adapted if lam > 0.0 else r
    return b + g0 * ks, a + g1 * ks, n00, n01, n11, d * rs, r_next, e, s, e * math.sqrt(inv)


@compiled
def _bank_rows_fast(
    b: np.ndarray,
    a: np.ndarray,
    p00: np.ndarray,
    p01: np.ndarray,
    p11: np.ndarray,
    d: np.ndarray,
    r: np.ndarray,
    q00: np.ndarray,
    q01: np.ndarray,
    q11: np.ndarray,
    qdet: np.ndarray,
    h1: np.ndarray,
    lam: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    e_out: np.ndarray,
    s_out: np.ndarray,
    z_out: np.ndarray,
) -> int:
    """Branch-free step of primed filters with finite y, x over contiguous 1-D rows (indexed
    from 0, so LLVM vectorises the loop). Returns how many p01 need the clamp."""
    need = 0
    for i in range(b.shape[0]):
        bi, ai, n00, n01, n11, di, ri, e, s, z = _pair_step_unclamped(
            b[i], a[i], p00[i], p01[i], p11[i], d[i], r[i],
            q00[i], q01[i], q11[i], qdet[i], h1[i], lam[i], y[i], x[i],
        )  # fmt: skip
        need += n01 * n01 > n00 * n11
        b[i] = bi
        a[i] = ai
        p00[i] = n00
        p01[i] = n01
        p11[i] = n11
        d[i] = di
        r[i] = ri
        e_out[i] = e
        s_out[i] = s
        z_out[i] = z
    return need


@compiled
def _bank_rows_fast_shared(
    b: np.ndarray,
    a: np.ndarray,
    p00: np.ndarray,
    p01: np.ndarray,
    p11: np.ndarray,
    d: np.ndarray,
    r: np.ndarray,
    params: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    e_out: np.ndarray,
    s_out: np.ndarray,
    z_out: np.ndarray,
) -> int:
    """:func:`_bank_rows_fast` for filters that share one parameter column ``params`` (6,):
    six fewer rows to stream."""
    q00, q01, q11, qdet, h1, lam = params[0], params[1], params[2], params[3], params[4], params[5]
    need = 0
    for i in range(b.shape[0]):
        bi, ai, n00, n01, n11, di, ri, e, s, z = _pair_step_unclamped(
            b[i], a[i], p00[i], p01[i], p11[i], d[i], r[i],
            q00, q01, q11, qdet, h1, lam, y[i], x[i],
        )  # fmt: skip
        need += n01 * n01 > n00 * n11
        b[i] = bi
        a[i] = ai
        p00[i] = n00
        p01[i] = n01
        p11[i] = n11
        d[i] = di
        r[i] = ri
        e_out[i] = e
        s_out[i] = s
        z_out[i] = z
    return need


@compiled
def bank_step(
    state: np.ndarray,
    params: np.ndarray,
    primed: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    e_out: np.ndarray,
    s_out: np.ndarray,
    z_out: np.ndarray,
    shared_params: bool = False,
) -> None:
    """Advance P pair filters one step in place.

    Column layout (one contiguous row per quantity, so the loop streams and vectorises):
    state (7, P), params (6, P), primed (P,) bool, y and x (P,); outputs e, s, z (P,).
    A NaN in ``y`` or ``x`` makes that filter's step predict-only (outputs NaN).
    ``shared_params``: every column of ``params`` equals the first (the caller vouches).

    Filters go in blocks of :data:`BANK_BLOCK`. A block whose filters are all primed and
    whose y, x hold no NaN takes a branch-free loop that LLVM vectorises; any other block the
    general loop. Both perform the same floating-point operations in the same order, so the
    results are identical to the last bit; the clamp of p01 (rarely needed) is applied after
    the vectorised loop, to the values it stored.
    """
    n = state.shape[1]
    b, a, p00, p01, p11, d, r = state[0], state[1], state[2], state[3], state[4], state[5], state[6]
    q00, q01, q11, qdet, h1, lam = params[0], params[1], params[2], params[3], params[4], params[5]
    column = params[:, 0]
    for lo in range(0, n, BANK_BLOCK):
        hi = min(lo + BANK_BLOCK, n)
        irregular = False
        for i in range(lo, hi):
            irregular |= (y[i] != y[i]) | (x[i] != x[i]) | (not primed[i])
        if irregular:
            _bank_rows_general(state, params, primed, y, x, e_out, s_out, z_out, lo, hi)
            continue
        if shared_params:
            need = _bank_rows_fast_shared(
                b[lo:hi], a[lo:hi], p00[lo:hi], p01[lo:hi], p11[lo:hi], d[lo:hi], r[lo:hi],
                column, y[lo:hi], x[lo:hi], e_out[lo:hi], s_out[lo:hi], z_out[lo:hi],
            )  # fmt: skip
        else:
            need = _bank_rows_fast(
                b[lo:hi], a[lo:hi], p00[lo:hi], p01[lo:hi], p11[lo:hi], d[lo:hi], r[lo:hi],
                q00[lo:hi], q01[lo:hi], q11[lo:hi], qdet[lo:hi], h1[lo:hi], lam[lo:hi],
                y[lo:hi], x[lo:hi], e_out[lo:hi], s_out[lo:hi], z_out[lo:hi],
            )  # fmt: skip
        if need:
            for i in range(lo, hi):
                if p01[i] * p01[i] > p00[i] * p11[i]:
                    p01[i] = math.copysign(math.sqrt(p00[i] * p11[i]), p01[i])


_LOG_2PI = math.log(2.0 * math.pi)


@compiled
def pair_series(
    state: np.ndarray,
    params: np.ndarray,
    primed: bool,
    y: np.ndarray,
    x: np.ndarray,
    out: np.ndarray,
) -> bool:
    """Filter one pair over a whole series, in place on ``state`` (7,).

    Shapes: y, x (T,); ``out`` (11, T) receives one row per quantity: beta, alpha, p00, p01,
    p11, R used by the step, e, S, z, log-likelihood increment, spread after the update.
    NaN in y or x makes a predict-only step (e, S, z, log-likelihood and spread NaN).
    Returns the final ``primed`` flag.
    """
    b, a, p00, p01, p11, d, r = state[0], state[1], state[2], state[3], state[4], state[5], state[6]
    q00, q01, q11, qdet, h1, lam = params[0], params[1], params[2], params[3], params[4], params[5]
    nan = np.nan
    for t in range(y.shape[0]):
        if primed:
            p00, p01, p11, d = pair_predict(p00, p01, p11, d, q00, q01, q11, qdet)
        yt = y[t]
        xt = x[t]
        out[5, t] = r
        if math.isnan(yt) or math.isnan(xt):
            out[6, t] = nan
            out[7, t] = nan
            out[8, t] = nan
            out[9, t] = nan
            out[10, t] = nan
        else:
            b, a, p00, p01, p11, d, e, s = pair_correct(b, a, p00, p01, p11, d, r, h1, yt, xt)
            if lam > 0.0:
                r = adapt_r(r, lam, e, s)
            primed = True
            out[6, t] = e
            out[7, t] = s
            out[8, t] = e * math.sqrt(1.0 / s)
            out[9, t] = -0.5 * (_LOG_2PI + math.log(s) + e * e / s)
            out[10, t] = yt - (b * xt + a * h1)
        out[0, t] = b
        out[1, t] = a
        out[2, t] = p00
        out[3, t] = p01
        out[4, t] = p11
    state[0], state[1], state[2], state[3] = b, a, p00, p01
    state[4], state[5], state[6] = p11, d, r
    return primed


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
