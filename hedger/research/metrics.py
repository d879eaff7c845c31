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
MIN_SPAN_DAYS = 90
"""The shortest history whose own bars per year :func:`periods_per_year` trusts."""


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


ADF_CRITICAL_5PCT = -2.86
"""Dickey-Fuller test with a constant: the 5% critical value of the t-statistic (MacKinnon's
asymptotic value). A cumulative P&L is close to a random walk, and an AR(1) fit to a random
walk still gives a finite "half-life" most of the time (its slope is biased below zero), so a
half-life is only reported where the test rejects a unit root."""


def half_life(series: FloatArray) -> float:
    """Mean-reversion half-life in bars of ``series`` (T,) from an AR(1) fit: OLS of
    ``s_t - s_{t-1}`` on ``s_{t-1}`` with an intercept gives slope ``b``, ``phi = 1 + b``, and
    the half-life is ``ln(1/2) / ln(phi)``.

    ``inf`` (no mean reversion shown) unless the slope's t-statistic is below
    :data:`ADF_CRITICAL_5PCT`; 0 when ``phi <= 0`` (no persistence at all); NaN with fewer
    than 3 pairs of bars or a constant series.
    """
    prev, curr = series[:-1], series[1:]
    keep = np.isfinite(prev) & np.isfinite(curr)
    n = int(keep.sum())
    if n < 3:
        return math.nan
    lag, step = prev[keep], curr[keep] - prev[keep]
    centred = lag - lag.mean()
    sxx = float(centred @ centred)
    if sxx <= 0.0:
        return math.nan
    step_c = step - step.mean()
    slope = float(centred @ step_c) / sxx
    resid = step_c - slope * centred
    s2 = float(resid @ resid) / (n - 2) if n > 2 else math.nan
    t_stat = slope / math.sqrt(s2 / sxx) if s2 > 0.0 else -math.inf
    phi = 1.0 + slope
    if phi >= 1.0 or not t_stat < ADF_CRITICAL_5PCT:
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
    """Bars per year for annualising, from the bar times ``ts`` (T,) in ns.

    A history of at least :data:`MIN_SPAN_DAYS` calendar days counts the bars it actually has
    per year of 365.25 days: about 252 for daily equity closes, 365 for a market that never
    closes, 52 for weekly bars, and the sessions' bars for intraday data. A shorter history
    falls back on its median spacing: 252 for daily bars (12 hours or more apart), else a year
    of continuous trading divided by the spacing."""
    if len(ts) < 2:
        return float(TRADING_DAYS)
    times = np.asarray(ts, dtype=np.int64)
    span = float(times[-1] - times[0])
    if span >= MIN_SPAN_DAYS * DAY_NS:
        return (len(times) - 1) / (span / (365.25 * DAY_NS))
    spacing = float(np.median(np.diff(times)))
    if spacing >= DAY_NS / 2 or spacing <= 0.0:
        return float(TRADING_DAYS)
    return 365.25 * DAY_NS / spacing
