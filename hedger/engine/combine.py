"""The combined hedge: several candidate hedges of one pair, weighted by how they hedged.

Members are hedges of Y with X in shares of X per share of Y (Kalman filters in different
modes and noises, rolling OLS on price changes, ...). Bar t's P&L of member i is
``e_it = dY_t - h_i,t-1 dX_t``; the combination ``h_t = sum_i w_it h_it`` with weights summing
to 1 earns ``dY - h_t-1 dX = sum_i w_i,t-1 e_it``, so its hedged variance is ``w' S w`` with
``S`` the second moment of the members' P&L. Because that is convex in ``w``, a combination
is never worse than the average of its members and usually better than the best of them.

Weighting (:class:`CombineParams`):

- ``equal``: ``w = 1 / N``, the baseline;
- ``minvar``: the minimum of ``w' S_t w`` subject to ``sum w = 1``, where ``S_t`` is the
  exponentially forgotten second moment of the members' P&L up to bar t (half-life
  ``half_life`` bars), shrunk towards equal weights by adding ``shrink * c * I``. ``c`` is the
  scale of the members' *differences* (``S`` projected off the common direction: trace over
  ``N - 1``), which makes ``shrink`` free of units: 0 is plain minimum variance, large values
  tend to equal weights. Members' P&Ls are nearly collinear, so unconstrained weights go long
  one member and short another; ``long_only`` clips negative weights to 0 and renormalises.
  Until ``min_obs`` bars have every member's P&L the weights are equal.

Weights after bar t use P&L of bars up to and including t only, and are applied to bar
t + 1's move: nothing looks ahead (:func:`combine_path`).

:class:`RollingHedge` is the rolling-OLS-on-changes member run live: OLS with an intercept of
``dY`` on ``dX`` over the last ``window`` bars, as :func:`hedger.research.baselines.rolling_fits`
computes it over a whole history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from hedger.engine.linalg import FloatArray
from hedger.engine.units import hedged_pnl
from hedger.errors import ConfigError

Weighting = Literal["equal", "minvar"]


@dataclass(frozen=True, slots=True)
class CombineParams:
    """How members' hedges are weighted (see the module docstring).

    weighting: ``minvar`` (learnt online) or ``equal``. half_life: bars after which a P&L's
    weight in ``S`` has halved (> 0). shrink: towards equal weights, in units of the members'
    difference scale (>= 0). long_only: no negative weight. min_obs: bars with every member's
    P&L before the weights move from equal (>= 2).

    The defaults were chosen on the 32 study pairs of ``docs/evaluation.md`` only.
    """

    weighting: Weighting = "minvar"
    half_life: float = 500.0
    shrink: float = 1.0
    long_only: bool = True
    min_obs: int = 20

    def __post_init__(self) -> None:
        if self.weighting not in ("equal", "minvar"):
            raise ConfigError("weighting", f"must be 'equal' or 'minvar', got {self.weighting!r}")
        if not (math.isfinite(self.half_life) and self.half_life > 0.0):
            raise ConfigError("half_life", f"must be a number of bars > 0, got {self.half_life}")
        if not (math.isfinite(self.shrink) and self.shrink >= 0.0):
            raise ConfigError("shrink", f"must be a number >= 0, got {self.shrink}")
        if self.min_obs < 2:
            raise ConfigError("min_obs", f"must be at least 2, got {self.min_obs}")

    @property
    def forgetting(self) -> float:
        """The per-bar factor ``0.5 ** (1 / half_life)`` applied to ``S``."""
        return float(0.5 ** (1.0 / self.half_life))


def min_variance_weights(moment: FloatArray, shrink: float, long_only: bool) -> FloatArray | None:
    """The weights (N,) minimising ``w' (moment + shrink c I) w`` with ``sum w = 1`` (``c``
    the members' difference scale), clipped at 0 and renormalised when ``long_only``; None
    when ``moment`` (N, N) carries no difference between members, or there is one member
    (then equal weights hold)."""
    n = moment.shape[0]
    if n < 2:
        return None
    scale = (float(np.trace(moment)) - float(moment.sum()) / n) / (n - 1)
    if not (math.isfinite(scale) and scale > 0.0):
        return None
    try:
        x = np.linalg.solve(moment + (shrink * scale) * np.eye(n), np.ones(n))
    except np.linalg.LinAlgError:
        return None
    total = float(x.sum())
    if not (math.isfinite(total) and total != 0.0):
        return None
    w: FloatArray = x / total
    if long_only:
        w = np.maximum(w, 0.0)
        w /= w.sum()
    return w


class HedgeCombiner:
    """The online weights of ``n_members`` hedges (n >= 1).

    Each bar, :meth:`observe` takes the members' P&L of that bar (in Y's price units per share
    of Y; a bar where one is missing is skipped) and :meth:`combine` the members' new hedges.
    """

    def __init__(self, n_members: int, params: CombineParams | None = None) -> None:
        if n_members < 1:
            raise ValueError("a combination needs at least one member")
        self.params = params or CombineParams()
        self.n_members = n_members
        self._forget = self.params.forgetting
        self.moment = np.zeros((n_members, n_members))
        """The forgotten sum of ``e e'`` (N, N); divided by :attr:`weight_sum` it is ``S``."""
        self.weight_sum = 0.0
        self.observations = 0
        """Bars observed with every member's P&L."""
        self.weights: FloatArray = np.full(n_members, 1.0 / n_members)
        """The current weights (N,), summing to 1."""

    def observe(self, pnl: Sequence[float] | FloatArray) -> bool:
        """Take one bar's member P&L (N,); False (nothing changes) if any is not finite."""
        e = np.asarray(pnl, dtype=np.float64)
        if e.shape != (self.n_members,):
            raise ValueError(f"expected {self.n_members} member P&Ls, got shape {e.shape}")
        if not np.all(np.isfinite(e)):
            return False
        self.moment *= self._forget
        self.moment += np.outer(e, e)
        self.weight_sum = self._forget * self.weight_sum + 1.0
        self.observations += 1
        params = self.params
        if params.weighting == "minvar" and self.observations >= params.min_obs:
            w = min_variance_weights(self.moment / self.weight_sum, params.shrink, params.long_only)
            if w is not None:
                self.weights = w
        return True

    def combine(self, hedges: Sequence[float] | FloatArray) -> float:
        """``sum_i w_i h_i`` over the members with a hedge (N,), the weights renormalised over
        them; NaN when none has one."""
        h = np.asarray(hedges, dtype=np.float64)
        have = np.isfinite(h)
        total = float(self.weights[have].sum())
        if not have.any() or total <= 0.0:
            return math.nan
        return float(self.weights[have] @ h[have]) / total

    @property
    def combined_std(self) -> float:
        """sqrt(w' S w): the combined hedge's P&L standard deviation the weights expect (NaN
        before the first observation)."""
        if self.weight_sum <= 0.0:
            return math.nan
        s = self.moment / self.weight_sum
        return math.sqrt(max(float(self.weights @ s @ self.weights), 0.0))

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain values (a checkpoint; :meth:`restore` takes it back)."""
        return {
            "moment": self.moment.tolist(),
            "weight_sum": self.weight_sum,
            "observations": self.observations,
            "weights": self.weights.tolist(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` of a combiner with as many members."""
        moment = np.asarray(state["moment"], dtype=np.float64)
        weights = np.asarray(state["weights"], dtype=np.float64)
        if moment.shape != (self.n_members,) * 2 or weights.shape != (self.n_members,):
            raise ValueError(f"the snapshot is not of a combination of {self.n_members} members")
        self.moment = moment
        self.weights = weights
        self.weight_sum = float(state["weight_sum"])
        self.observations = int(state["observations"])


class CombinedPath(NamedTuple):
    """A combination over T bars of N members: row t is known at bar t's close.

    hedge (T,): shares of X per share of Y; weights (T, N): the weights after bar t (those of
    ``hedge[t]``); expected_std (T,): sqrt(w' S w) after bar t.
    """

    hedge: FloatArray
    weights: FloatArray
    expected_std: FloatArray


def combine_path(
    hedges: FloatArray, y: FloatArray, x: FloatArray, params: CombineParams | None = None
) -> CombinedPath:
    """Run a :class:`HedgeCombiner` over members' hedge paths ``hedges`` (T, N), shares of X
    per share of Y set at each bar's close, with raw prices ``y``, ``x`` (T,)."""
    n_bars, n_members = hedges.shape
    pnl = np.column_stack([hedged_pnl(y, x, hedges[:, i]) for i in range(n_members)])
    combiner = HedgeCombiner(n_members, params)
    out = np.full(n_bars, math.nan)
    weights = np.empty((n_bars, n_members))
    expected = np.full(n_bars, math.nan)
    for t in range(n_bars):
        combiner.observe(pnl[t])
        out[t] = combiner.combine(hedges[t])
        weights[t] = combiner.weights
        expected[t] = combiner.combined_std
    return CombinedPath(out, weights, expected)


class RollingHedge:
    """Rolling OLS with an intercept of ``dY`` on ``dX`` over the last ``window`` bars, one
    bar at a time: :attr:`hedge` is its slope (shares of X per share of Y), NaN until the
    window has seen ``window`` bars and holds ``max(3, window // 2)`` finite changes (or while X
    did not move in it)."""

    def __init__(self, window: int) -> None:
        if window < 3:
            raise ConfigError("window", f"must be at least 3 bars, got {window}")
        self.window = window
        self._dy = np.full(window, math.nan)
        self._dx = np.full(window, math.nan)
        self._next = 0
        self._bars = 0
        self.hedge = math.nan

    def update(self, dy: float, dx: float) -> float:
        """Take one bar's changes (NaN: no change this bar, a missing row of the window) and
        return the new hedge."""
        k = self._next
        self._dy[k], self._dx[k] = dy, dx
        self._next = (k + 1) % self.window
        self._bars += 1
        self.hedge = self._fit()
        return self.hedge

    def _fit(self) -> float:
        if self._bars < self.window:  # a full window of bars, as the offline fit
            return math.nan
        keep = np.isfinite(self._dy) & np.isfinite(self._dx)
        if int(keep.sum()) < max(3, self.window // 2):
            return math.nan
        ys, xs = self._dy[keep], self._dx[keep]
        cx = xs - xs.mean()
        sxx = float(cx @ cx)
        return float(cx @ (ys - ys.mean())) / sxx if sxx > 0.0 else math.nan

    def snapshot(self) -> dict[str, Any]:
        """The window as plain values (NaN as None), in its ring order with the next slot to
        write, so that a restored member sums in the same order (and gives the same bits)."""
        return {
            "window": self.window,
            "bars": self._bars,
            "next": self._next,
            "dy": [None if math.isnan(v) else v for v in self._dy.tolist()],
            "dx": [None if math.isnan(v) else v for v in self._dx.tolist()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` of a window of the same length."""
        if int(state["window"]) != self.window:
            raise ValueError(f"the snapshot is of a window of {state['window']} bars")
        self._dy = np.array([math.nan if v is None else v for v in state["dy"]], dtype=np.float64)
        self._dx = np.array([math.nan if v is None else v for v in state["dx"]], dtype=np.float64)
        self._next = int(state["next"])
        self._bars = int(state["bars"])
        self.hedge = self._fit()
