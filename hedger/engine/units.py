"""From filter output to a hedge a desk can hold, and what holding it earned.

The filter's beta is in the units of its input mode: shares of X per share of Y on levels and
changes, an elasticity on log prices and log returns. A desk holds shares, so
:func:`shares_hedge` converts: ``h = beta`` or ``h = beta * Y / X`` at the prices of the bar the
hedge is set on. :func:`hedged_pnl` is the P&L of one share of Y hedged with ``h`` shares of X
set a bar earlier, the measure every comparison of hedges in hedger uses.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from hedger.engine.filter import HedgeFilter
from hedger.engine.linalg import FloatArray
from hedger.engine.params import FilterParams, InputMode


class HedgePath(NamedTuple):
    """A filter run over T bars of raw prices; every array is (T,), row t is the state after
    bar t's observation, known at that bar's close.

    beta, alpha: the filtered state (beta in the mode's units, alpha 0 without an intercept).
    beta_var: the variance of beta (the state covariance's first diagonal entry).
    innovation: e, the one-step forecast error of the mode's y; innovation_var: its S;
    zscore: e / sqrt(S); spread: y - beta x - alpha after the update (mode's units).
    warm: the initialisation's warm-up was complete. NaN observation fields on bars that
    only predicted (a price missing, or the first bar of a differenced mode).
    """

    beta: FloatArray
    alpha: FloatArray
    beta_var: FloatArray
    innovation: FloatArray
    innovation_var: FloatArray
    zscore: FloatArray
    spread: FloatArray
    warm: np.ndarray


def filter_prices(params: FilterParams, y: FloatArray, x: FloatArray) -> HedgePath:
    """Run a pair :class:`HedgeFilter` with ``params`` over raw prices ``y`` and ``x`` (T,);
    NaN means no price on that bar. Raises :class:`~hedger.errors.BadInputError` on a price the
    mode cannot take (e.g. <= 0 in a log mode)."""
    if params.n_legs != 1:
        raise ValueError("filter_prices runs pairs (n_legs = 1)")
    n = len(y)
    if len(x) != n:
        raise ValueError(f"y and x must have equal length, got {n} and {len(x)}")
    out = np.full((7, n), math.nan)
    warm = np.zeros(n, dtype=bool)
    hf = HedgeFilter(params)
    for t, (yt, xt) in enumerate(zip(y.tolist(), x.tolist(), strict=True)):
        step = hf.step(None if math.isnan(yt) else yt, None if math.isnan(xt) else xt)
        out[0, t] = step.betas[0]
        out[1, t] = step.alpha
        out[2, t] = step.cov[0][0]
        out[3, t] = step.innovation
        out[4, t] = step.innovation_var
        out[5, t] = step.zscore
        out[6, t] = step.spread
        warm[t] = step.warm
    return HedgePath(out[0], out[1], out[2], out[3], out[4], out[5], out[6], warm)


def shares_hedge(beta: FloatArray, y: FloatArray, x: FloatArray, mode: InputMode) -> FloatArray:
    """Shares of X per share of Y (T,) for a beta path (T,) in ``mode``'s units, at prices
    ``y`` and ``x`` (T,) of the bar each beta is set on."""
    if mode.logarithmic:
        shares: FloatArray = beta * y / x
        return shares
    return np.array(beta, dtype=np.float64)


def hedged_pnl(y: FloatArray, x: FloatArray, h: FloatArray) -> FloatArray:
    """P&L (T,) per share of Y, in Y's price units: ``dY_t - h_{t-1} dX_t``; entry 0 is NaN.

    ``h`` (T,) is the hedge set at each bar's close, so the hedge applied to bar t's move was
    known before it. NaN wherever a price or the previous hedge is missing.
    """
    pnl = np.full(len(y), math.nan)
    pnl[1:] = np.diff(y) - h[:-1] * np.diff(x)
    return pnl
