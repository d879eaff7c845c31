"""Every hedge the evaluation compares, as one path over the whole history.

A :class:`MethodPath` says, for each bar t of T, the hedge a desk holds after bar t's close (in
shares of X per share of Y) and the method's own forecast error of bar t with its scale, both
known at that close. Three families build one:

- :func:`kalman_path`: a hedge filter (:mod:`hedger.engine`) run over the raw prices;
- :func:`static_ols_path`: one OLS fit on the training bars, held unchanged ever after;
- :func:`rolling_ols_path`: OLS refitted at every bar on the last ``window`` bars only, with
  :func:`choose_window` picking the window on the training bars.

Nothing here looks ahead: row t of every array depends on prices of bars <= t only (a static
fit depends on the training bars, and is only ever used after them).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from hedger.engine.linalg import FloatArray
from hedger.engine.params import FilterParams
from hedger.engine.presets import chan_params, seed_params
from hedger.engine.units import filter_prices, hedged_pnl, shares_hedge

__all__ = [
    "MethodPath",
    "chan_params",
    "choose_window",
    "forward_fill",
    "kalman_path",
    "observations",
    "rolling_fits",
    "rolling_ols_path",
    "seed_params",
    "static_ols_path",
]

ROLLING_WINDOWS: tuple[int, ...] = (20, 40, 60, 90, 125, 250, 500)
"""The rolling-OLS windows (bars) :func:`choose_window` tries, those that fit the training."""

_CHUNK = 2048  # windows per block in the rolling fit: bounds memory at _CHUNK * window floats


class MethodPath(NamedTuple):
    """One hedging method over T bars; every array is (T,), row t known at bar t's close.

    hedge: shares of X held per share of Y from bar t's close to the next (carried forward
        over bars where the method has no new value; NaN before its first).
    hedge_sd: the standard deviation of ``hedge`` (Kalman filters only; NaN otherwise).
    error: the method's forecast error of bar t's observation, made with what it knew at
        t - 1 (Kalman: the innovation e; OLS: the observation minus the previous fit's
        prediction), in the method's observation units; NaN where there is none.
    scale: the standard deviation that error was predicted to have (Kalman: sqrt(S)).
    """

    hedge: FloatArray
    hedge_sd: FloatArray
    error: FloatArray
    scale: FloatArray
    warm: np.ndarray | None = None
    """Kalman filters: (T,) bool, the warm-up was complete at bar t (None otherwise)."""

    @property
    def zscore(self) -> FloatArray:
        """``error / scale`` (T,)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            z: FloatArray = self.error / self.scale
        return z


def forward_fill(values: FloatArray) -> FloatArray:
    """``values`` (T,) with each NaN replaced by the last finite value before it (leading NaNs
    stay): a desk keeps its hedge until it has a new one."""
    finite = np.isfinite(values)
    index = np.where(finite, np.arange(len(values)), -1)
    np.maximum.accumulate(index, out=index)
    filled: FloatArray = np.where(index >= 0, values[np.maximum(index, 0)], math.nan)
    return filled


def observations(y: FloatArray, x: FloatArray, differenced: bool) -> tuple[FloatArray, FloatArray]:
    """The OLS baselines' observations (T,): prices as they are, or their changes since the
    previous bar (entry 0 and any change across a missing price are NaN)."""
    if not differenced:
        return y.astype(np.float64), x.astype(np.float64)
    dy = np.full(len(y), math.nan)
    dx = np.full(len(x), math.nan)
    dy[1:] = np.diff(y)
    dx[1:] = np.diff(x)
    return dy, dx


def kalman_path(params: FilterParams, y: FloatArray, x: FloatArray) -> MethodPath:
    """Run the hedge filter ``params`` over raw prices ``y``, ``x`` (T,) and express its beta
    as shares (``beta * Y / X`` in the log modes, at the prices of the bar it is set on). In
    the log modes a price <= 0 counts as missing (the hedge set before it carries on)."""
    if params.mode.logarithmic:
        # a price <= 0 cannot enter a log mode: that bar is a missing price for this filter
        y = np.where(y > 0.0, y, np.nan)
        x = np.where(x > 0.0, x, np.nan)
    path = filter_prices(params, y, x)
    hedge = forward_fill(shares_hedge(path.beta, y, x, params.mode))
    beta_sd = np.sqrt(np.maximum(path.beta_var, 0.0))
    hedge_sd = forward_fill(shares_hedge(beta_sd, y, x, params.mode))
    return MethodPath(
        hedge, hedge_sd, path.innovation, np.sqrt(path.innovation_var), np.asarray(path.warm)
    )


def ols_fit(oy: FloatArray, ox: FloatArray) -> tuple[float, float, float]:
    """OLS of ``oy`` on ``ox`` with an intercept over their finite rows: ``(beta, alpha, s)``
    with ``s`` the residual standard deviation (T - 2 degrees of freedom). NaN when fewer
    than 3 rows or ``ox`` is constant."""
    keep = np.isfinite(oy) & np.isfinite(ox)
    n = int(keep.sum())
    if n < 3:
        return math.nan, math.nan, math.nan
    ys, xs = oy[keep], ox[keep]
    my, mx = float(ys.mean()), float(xs.mean())
    cx, cy = xs - mx, ys - my
    sxx = float(cx @ cx)
    if sxx <= 0.0:
        return math.nan, math.nan, math.nan
    beta = float(cx @ cy) / sxx
    resid = cy - beta * cx
    return beta, my - beta * mx, math.sqrt(float(resid @ resid) / (n - 2))


def static_ols_path(y: FloatArray, x: FloatArray, split: int, differenced: bool) -> MethodPath:
    """The static hedge: OLS of Y on X (levels) or of dY on dX (changes, the minimum-variance
    hedge ``cov(dY, dX) / var(dX)``) with an intercept, on the training bars ``[0, split)``,
    then held on every bar. Its error is the observation's residual from that fit and its
    scale the training residual standard deviation."""
    oy, ox = observations(y, x, differenced)
    beta, alpha, s = ols_fit(oy[:split], ox[:split])
    n = len(y)
    return MethodPath(
        np.full(n, beta),
        np.full(n, math.nan),
        oy - (beta * ox + alpha),
        np.full(n, s),
    )


def rolling_fits(oy: FloatArray, ox: FloatArray, window: int) -> tuple[FloatArray, ...]:
    """OLS with an intercept on the ``window`` observations ending at each bar: ``(beta,
    alpha, s)``, each (T,), NaN until the window holds at least ``max(3, window // 2)`` finite
    rows (and where X is constant in it)."""
    n = len(oy)
    beta, alpha, sd = (np.full(n, math.nan) for _ in range(3))
    if n < window:
        return beta, alpha, sd
    wy = np.lib.stride_tricks.sliding_window_view(oy, window)
    wx = np.lib.stride_tricks.sliding_window_view(ox, window)
    need = max(3, window // 2)
    for lo in range(0, wy.shape[0], _CHUNK):
        by, bx = wy[lo : lo + _CHUNK], wx[lo : lo + _CHUNK]
        keep = np.isfinite(by) & np.isfinite(bx)
        count = keep.sum(axis=1)
        ys, xs = np.where(keep, by, 0.0), np.where(keep, bx, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            my = ys.sum(axis=1) / count
            mx = xs.sum(axis=1) / count
            cy = np.where(keep, ys - my[:, None], 0.0)
            cx = np.where(keep, xs - mx[:, None], 0.0)
            sxx = np.einsum("ij,ij->i", cx, cx)
            b = np.einsum("ij,ij->i", cx, cy) / sxx
            resid = cy - b[:, None] * cx
            s = np.sqrt(np.einsum("ij,ij->i", resid, resid) / (count - 2))
        good = (count >= need) & (sxx > 0.0)
        rows = slice(lo + window - 1, lo + window - 1 + len(b))
        beta[rows] = np.where(good, b, math.nan)
        alpha[rows] = np.where(good, my - b * mx, math.nan)
        sd[rows] = np.where(good, s, math.nan)
    return beta, alpha, sd


def rolling_ols_path(y: FloatArray, x: FloatArray, window: int, differenced: bool) -> MethodPath:
    """The rolling hedge: at each bar's close, OLS (with an intercept) of Y on X, or dY on dX,
    over the last ``window`` bars. Its error at bar t is the observation minus the fit of bar
    t - 1's close, its scale that fit's residual standard deviation."""
    oy, ox = observations(y, x, differenced)
    beta, alpha, sd = rolling_fits(oy, ox, window)
    error = np.full(len(y), math.nan)
    scale = np.full(len(y), math.nan)
    error[1:] = oy[1:] - (beta[:-1] * ox[1:] + alpha[:-1])
    scale[1:] = sd[:-1]
    return MethodPath(forward_fill(beta), np.full(len(y), math.nan), error, scale)


def choose_window(
    y: FloatArray,
    x: FloatArray,
    split: int,
    differenced: bool,
    windows: tuple[int, ...] = ROLLING_WINDOWS,
) -> int:
    """The rolling window (bars) with the lowest hedged P&L variance on the training bars.

    Candidates are the ``windows`` no longer than a third of the training bars (at least the
    shortest); every candidate is scored on the same bars: those of the training window where
    all of them already hold a hedge. Ties go to the shorter window.
    """
    fitting = [w for w in windows if w <= split // 3] or [min(windows)]
    oy, ox = observations(y[:split], x[:split], differenced)
    pnls = []
    for window in fitting:
        hedge = forward_fill(rolling_fits(oy, ox, window)[0])
        pnls.append(hedged_pnl(y[:split], x[:split], hedge))
    stacked = np.vstack(pnls)
    common = np.all(np.isfinite(stacked), axis=0)
    if common.sum() < 2:
        return fitting[0]
    variances = [float(np.var(row[common], ddof=1)) for row in stacked]
    return fitting[int(np.argmin(variances))]
