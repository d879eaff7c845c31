"""From filter output to a hedge a desk can hold, and what holding it earned.

The filter's beta is in the units of its input mode: shares of X per share of Y on levels and
changes, an elasticity on log prices and log returns. A desk holds shares, so
:func:`shares_hedge` converts: ``h = beta`` or ``h = beta * Y / X`` at the prices of the bar the
hedge is set on. :func:`hedged_pnl` is the P&L of one share of Y hedged with ``h`` shares of X
set a bar earlier, the measure every comparison of hedges in hedger uses.

For one bar of a live pair, :func:`bar_hedge` is the same conversion on plain floats (a basket
too), and :class:`Position` with :func:`hedge_quantities` turns the hedge into the integer
shares of each X a desk holds against its position in Y, rounded to each X's lot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from hedger.engine.filter import HedgeFilter
from hedger.engine.linalg import FloatArray
from hedger.engine.params import FilterParams, InputMode
from hedger.errors import ConfigError


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


def bar_hedge(
    betas: Sequence[float], mode: InputMode, price_y: float, prices_x: Sequence[float]
) -> tuple[float, ...]:
    """Shares of each X per share of Y (k,) for one bar: ``betas`` (k,) in ``mode``'s units
    at the bar's prices of Y and of the k hedges (the formula of :func:`shares_hedge`)."""
    if mode.logarithmic:
        return tuple(b * price_y / px for b, px in zip(betas, prices_x, strict=True))
    return tuple(float(b) for b in betas)


def round_to_lot(quantity: float, lot: int = 1) -> int:
    """``quantity`` (shares, signed) rounded to the nearest whole multiple of ``lot`` shares,
    halves away from zero. The result never has the opposite sign of ``quantity`` (it is 0
    when less than half a lot), so rounding never turns a short hedge into a long one."""
    if lot < 1:
        raise ValueError(f"a lot is a whole number of shares >= 1, got {lot}")
    if not math.isfinite(quantity):
        raise ValueError(f"cannot round {quantity} shares")
    lots = math.floor(abs(quantity) / lot + 0.5)
    return int(math.copysign(lots * lot, quantity)) if lots else 0


@dataclass(frozen=True, slots=True)
class Position:
    """What a desk holds of a pair's Y: ``shares`` (signed, short < 0), or a ``notional`` in
    Y's currency (signed) that is ``notional / price`` shares at each bar's price of Y.
    Exactly one of the two is given."""

    shares: float | None = None
    notional: float | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.shares, self.notional) if v is not None]
        if len(given) != 1:
            raise ConfigError("position", "give shares or a notional, exactly one of them")
        if not math.isfinite(given[0]):
            raise ConfigError("position", f"must be a finite number, got {given[0]}")

    def shares_at(self, price_y: float) -> float:
        """Shares of Y held at ``price_y`` (Y's price, > 0, for a notional)."""
        if self.shares is not None:
            return self.shares
        assert self.notional is not None
        return self.notional / price_y


def hedge_quantities(
    hedge: Sequence[float], shares_y: float, lots: Sequence[int]
) -> tuple[int, ...]:
    """Integer shares of each X (k,) to hold against ``shares_y`` shares of Y: the hedge
    ``-h_i * shares_y`` (short X against long Y when ``h_i > 0``), each rounded to its lot
    ``lots[i]`` by :func:`round_to_lot`."""
    return tuple(round_to_lot(-h * shares_y, lot) for h, lot in zip(hedge, lots, strict=True))
