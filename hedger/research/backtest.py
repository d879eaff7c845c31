"""A z-score entry/exit backtest of one hedged spread, with a cost per trade.

The traded unit is the hedged position: long (or short) one share of Y and short (or long)
``h_t`` shares of X, ``h_t`` being the method's hedge at bar t's close. Signals are Chan's rule
applied to the method's own forecast error ``e_t`` and its predicted scale ``s_t`` (for a
Kalman filter the innovation and ``sqrt(S)``), both known at bar t's close:

- flat: enter short one unit when ``e_t > s_t`` (Y rich), long when ``e_t < -s_t``;
- holding: exit when ``e_t`` has crossed zero (its sign is no longer the entry's, or it is 0);
  a bar that exits may enter the other way at once;
- a bar without a signal (NaN) keeps the position.

Accounting, bar t (from ``start``; flat before):

- P&L of the unit held since bar t-1: ``pos_{t-1} (dY_t - h_{t-1} dX_t)``;
- cost of the trades at bar t's close, ``cost_bps / 1e4`` times the notional traded on both
  legs: ``|pos_t - pos_{t-1}| Y_t + |pos_t h_t - pos_{t-1} h_{t-1}| X_t`` (so re-hedging an
  open position costs too);
- return ``r_t = (P&L - cost) / G_{t-1}``, on the gross notional of one unit at the previous
  close, ``G_{t-1} = |Y_{t-1}| + |h_{t-1}| |X_{t-1}|``;
- equity compounds: ``E_t = prod(1 + r)``, starting at 1; the last position is marked to
  market, not closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hedger.engine.linalg import FloatArray
from hedger.research.metrics import max_drawdown, sharpe


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """What the backtest earned over its bars.

    total_return: ``E_T - 1`` (fraction). sharpe: annualised, NaN when undefined.
    max_drawdown: fraction of the running peak. trades: entries. exposure: fraction of bars
    that ended holding a position.
    """

    total_return: float
    sharpe: float
    max_drawdown: float
    trades: int
    exposure: float


def positions(error: FloatArray, scale: FloatArray, start: int) -> FloatArray:
    """The position (T,) in units, -1, 0 or +1, held after each bar's close by the rule in the
    module docstring; 0 before ``start``."""
    n = len(error)
    pos = np.zeros(n)
    current = 0.0
    for t in range(start, n):
        e, s = float(error[t]), float(scale[t])
        if not (math.isfinite(e) and math.isfinite(s)):
            pos[t] = current
            continue
        if current != 0.0 and e * -current <= 0.0:
            current = 0.0  # the error crossed (or touched) zero: exit
        if current == 0.0:
            if e > s:
                current = -1.0
            elif e < -s:
                current = 1.0
        pos[t] = current
    return pos


def run_backtest(
    y: FloatArray,
    x: FloatArray,
    hedge: FloatArray,
    error: FloatArray,
    scale: FloatArray,
    *,
    start: int,
    cost_bps: float,
    periods_per_year: float,
) -> tuple[BacktestResult, FloatArray]:
    """Backtest bars ``[start, T)`` of prices ``y``, ``x`` (T,) with the method's ``hedge``,
    ``error`` and ``scale`` (T,). Returns the result and the per-bar returns (T - start,)."""
    if start < 1:
        raise ValueError("start must be >= 1: the first bar's return needs a previous close")
    pos = positions(error, scale, start)
    n = len(y)
    returns = np.zeros(n - start)
    held = 0.0
    prev_h = float(hedge[start - 1])
    for i, t in enumerate(range(start, n)):
        h = float(hedge[t])
        if not math.isfinite(h):
            h = prev_h
        pnl = held * ((y[t] - y[t - 1]) - prev_h * (x[t] - x[t - 1])) if held else 0.0
        now = float(pos[t])
        traded = abs(now - held) * abs(y[t]) + abs(now * h - held * prev_h) * abs(x[t])
        gross = abs(y[t - 1]) + abs(prev_h) * abs(x[t - 1]) if math.isfinite(prev_h) else 0.0
        cost = cost_bps / 1e4 * traded if traded else 0.0
        value = (pnl - cost) / gross if gross > 0.0 else 0.0
        # a bar with a missing price (NaN P&L or cost) counts as flat rather than poisoning the
        # equity curve; the hedged-variance headline skips such bars instead
        returns[i] = value if math.isfinite(value) else 0.0
        held, prev_h = now, h
    equity = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    window = pos[start:]
    entries = int(np.sum((window != 0.0) & (np.concatenate([[0.0], window[:-1]]) != window)))
    result = BacktestResult(
        total_return=float(equity[-1] - 1.0),
        sharpe=sharpe(returns, periods_per_year),
        max_drawdown=max_drawdown(equity),
        trades=entries,
        exposure=float(np.mean(window != 0.0)) if window.size else 0.0,
    )
    return result, returns
