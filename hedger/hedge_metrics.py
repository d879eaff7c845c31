"""Numbers that say how good a hedge was: pure functions of arrays, no I/O.

Every function takes the bars to measure as given (the caller cuts the test window) and skips
NaN entries. Units: the hedged P&L and its variance are in Y's price units (per share of Y) and
their square; half-lives in bars; returns and drawdowns as fractions (0.05 = 5%).
"""

from __future__ import annotations

import math

import numpy as np

from hedger.engine.linalg import FloatArray

DAY_NS = 86_400 * 10**9
TRADING_DAYS = 252


def hedged_variance(pnl: FloatArray) -> float:
    """Sample variance (ddof 1) of the finite entries of a hedged P&L series (T,); NaN when
    fewer than two."""
    finite = pnl[np.isfinite(pnl)]
    if finite.size < 2:
        return math.nan
    return float(np.var(finite, ddof=1))


def reduction(variance: float, reference: float) -> float:
    """The fraction by which ``variance`` is below ``reference``: ``1 - variance / reference``
    (0.25 = 25% less variance; negative when it is larger). NaN if ``reference`` is not > 0."""
    if not (math.isfinite(reference) and reference > 0.0):
        return math.nan
    return 1.0 - variance / reference


def half_life(series: FloatArray) -> float:
    """Mean-reversion half-life in bars of ``series`` (T,) from an AR(1) fit: OLS of
    ``s_t - s_{t-1}`` on ``s_{t-1}`` with an intercept gives slope ``b``, ``phi = 1 + b``, and
    the half-life is ``ln(1/2) / ln(phi)``. ``inf`` when ``phi >= 1`` (no mean reversion) or
    ``phi <= 0`` (no persistence to speak of: 0 is returned), NaN with fewer than 3 pairs.
    """
    prev, curr = series[:-1], series[1:]
    keep = np.isfinite(prev) & np.isfinite(curr)
    if keep.sum() < 3:
        return math.nan
    lag, step = prev[keep], curr[keep] - prev[keep]
    centred = lag - lag.mean()
    sxx = float(centred @ centred)
    if sxx <= 0.0:
        return math.nan
    phi = 1.0 + float(centred @ (step - step.mean())) / sxx
    if phi >= 1.0:
        return math.inf
    if phi <= 0.0:
        return 0.0
    return math.log(0.5) / math.log(phi)


def share_beyond(z: FloatArray, threshold: float = 2.0) -> float:
    """The fraction of finite entries of ``z`` (T,) with ``|z| > threshold``; NaN if none."""
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return math.nan
    return float(np.mean(np.abs(finite) > threshold))


def max_drawdown(equity: FloatArray) -> float:
    """The largest fall from a running peak, as a fraction of the peak, of an equity curve
    (T,) whose start value is its first entry: ``max_t 1 - E_t / max_{s<=t} E_s``."""
    if equity.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peaks))


def sharpe(returns: FloatArray, periods_per_year: float) -> float:
    """Annualised Sharpe ratio of per-bar returns (T,): ``sqrt(periods_per_year) * mean /
    std`` (ddof 1, no risk-free rate); NaN with fewer than two bars or no variation."""
    if returns.size < 2:
        return math.nan
    sd = float(np.std(returns, ddof=1))
    if not sd > 0.0:
        return math.nan
    return math.sqrt(periods_per_year) * float(np.mean(returns)) / sd


def periods_per_year(ts: np.ndarray) -> float:
    """Bars per year for annualising, from the bar times ``ts`` (T,) in ns: 252 for daily
    bars (median spacing of 12 hours or more), else a year of continuous trading divided by
    the median spacing (intraday bars of a market that never closes)."""
    if len(ts) < 2:
        return float(TRADING_DAYS)
    spacing = float(np.median(np.diff(np.asarray(ts, dtype=np.int64))))
    if spacing >= DAY_NS / 2 or spacing <= 0.0:
        return float(TRADING_DAYS)
    return 365.25 * DAY_NS / spacing
