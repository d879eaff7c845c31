"""Compiled kernel of a bank: P pair filters (float64[P, 7] states, float64[P, 6] params, see
``kernels/pair.py``) advanced by one bar in one call."""

from __future__ import annotations

import math

import numpy as np

from hedger.engine.kernels.jit import compiled
from hedger.engine.kernels.pair import adapt_r, pair_correct, pair_predict

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
