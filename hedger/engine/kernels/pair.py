"""Compiled kernels of one pair filter: the predict and correct steps, the adaptive R and a whole
series in one pass (the bank and the batch paths build on these).

The pair kernel performs exactly the operations of :class:`hedger.engine.pair.PairFilter`, in
the same order, so the compiled and the plain-float paths agree to the last bit in practice
(tests hold them to 1e-12). See ``engine/pair.py`` for the derivation of the covariance update.

A pair's state (float64[7]):  beta, alpha, p00, p01, p11, det, r
A pair's params (float64[6]): q00, q01, q11, qdet, h1, lam   (h1 = 1 with intercept, else 0;
                                                             lam = 0 for a fixed R)
"""

from __future__ import annotations

import math

import numpy as np

from hedger.engine.kernels.jit import compiled

STATE_WIDTH = 7
PARAM_WIDTH = 6


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
