"""A pair hedged by a combination of hedges, live.

The pair's own filter (the member ``self``, usually the calibrated one) publishes as any pair
does; its other Kalman members are pair actors of their own on the same legs, stepped on the
same bars (in the bank with everyone else) and never published; a rolling OLS on price
changes can be one more member. After each bar, :meth:`CombinedPair.advance` takes the
members' new hedges and learns the weights from their hedged P&L
(:class:`~hedger.engine.combine.HedgeCombiner`), and the pipeline rewrites the pair's output
with the result (the bank's columns in place, or its events through :meth:`CombinedPair.step`):
``hedge`` (and ``hedge_qty``, ``hedge_notional``) is the combination, ``combination`` lists
the members with their weights and hedges, and the ``spread`` event's ``hedged_pnl`` is that
of the combined hedge. Beta, the spread, the z-score and the alarms stay those of the pair's
own filter.

Every member's P&L is measured over the pair's own marks (``dY - h_i dX`` with the hedge it
set at the previous bar), and only between two bars whose prices the pair's own filter took
(fresh, not refused by its gate): the P&L :func:`hedger.engine.combine.combine_path` measures
on bar prices. So a replay of a daily file on which no gate fires reproduces ``hedger
evaluate``'s ``combined`` hedge (to 1e-12, tested); where the gates fire (the daemon's
members share the pair's ``outlier_z``, evaluate runs them without a gate) or legs go stale,
the two differ by those bars. The ``hedged_pnl`` a combined pair publishes is null on a bar
after one its filter did not take.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hedger.core.events import HedgeRatioEvent, SpreadEvent
from hedger.engine.combine import CombineParams, HedgeCombiner, RollingHedge
from hedger.engine.params import FilterParams

SELF = "self"
ROLLING = "rolling"


@dataclass(frozen=True, slots=True)
class CombineSpec:
    """A pair's combined hedge; the pair's own filter is always the first member (``self``).

    members: the other Kalman members as (name, params), run on the pair's legs and bars.
    rolling_window: bars of the rolling-OLS-on-changes member (None: no such member).
    params: how the members are weighted.
    """

    members: tuple[tuple[str, FilterParams], ...] = ()
    rolling_window: int | None = None
    params: CombineParams = field(default_factory=CombineParams)

    def __post_init__(self) -> None:
        names = self.names
        if len(set(names)) != len(names):
            raise ValueError(f"member names must be distinct, got {names}")

    @property
    def names(self) -> tuple[str, ...]:
        """Every member's name, in weight order: ``self``, the Kalman members, ``rolling``."""
        rolling = (ROLLING,) if self.rolling_window is not None else ()
        return (SELF, *(name for name, _ in self.members), *rolling)


def _mark(value: float | None) -> float:
    return math.nan if value is None else float(value)


class CombinedPair:
    """The combination state of one pair (k = 1): the weights, the rolling member's window,
    the hedges of the last bar and the marks they were set at."""

    def __init__(self, spec: CombineSpec) -> None:
        self.spec = spec
        self.names = spec.names
        self.combiner = HedgeCombiner(len(self.names), spec.params)
        self.rolling = None if spec.rolling_window is None else RollingHedge(spec.rolling_window)
        self._hedges = [math.nan] * len(self.names)
        self._combined = math.nan
        self._marks = (math.nan, math.nan)
        self._took_last = False
        """Whether the previous bar's observation was taken (fresh, not refused)."""
        self._pending: tuple[list[float], float, tuple[float, float], bool] | None = None
        """What :meth:`begin` left for :meth:`end`: the bar's hedges, P&L, marks, taken."""

    def advance(
        self, own: float, members: Sequence[float], mark_y: float, mark_x: float, took: bool
    ) -> tuple[float, float, list[float]]:
        """One bar: the pair's own filter's hedge ``own`` and the other Kalman members' hedges
        (NaN: a member without one, or that did not step), the pair's marks (NaN: none yet)
        and whether its filter took the bar's prices (fresh, not refused). Returns the
        combined hedge (NaN while no member has one), its hedged P&L over the bar (NaN after
        a bar not taken) and every member's hedge, in :attr:`names` order. (:meth:`begin`,
        the weights, then :meth:`end`: a bank of pairs splits it to solve all the weights
        of a bar at once, :func:`~hedger.engine.combine.reweigh_many`.)"""
        if self.begin(own, members, mark_y, mark_x, took):
            self.combiner.reweigh()
        return self.end()

    def begin(
        self, own: float, members: Sequence[float], mark_y: float, mark_x: float, took: bool
    ) -> bool:
        """The first half of :meth:`advance`: the members' P&L of the bar into the moment;
        whether the weights are then due to move."""
        dy, dx = mark_y - self._marks[0], mark_x - self._marks[1]
        # A bar's move is measured only between two bars whose prices the pair's own filter
        # took: after a refused or stale bar the marks span two bars, and a member whose own
        # gate took the refused bar set its hedge on part of that move already.
        both = took and self._took_last
        hedges = [own, *members]
        if self.rolling is not None:
            hedges.append(self.rolling.update(dy, dx) if both else self.rolling.update(*_NAN2))
        observed = both and self.combiner.accumulate([dy - h * dx for h in self._hedges])
        pnl = dy - self._combined * dx if both else math.nan
        self._pending = (hedges, pnl, (mark_y, mark_x), took)
        return observed and self.combiner.reweigh_due

    def end(self) -> tuple[float, float, list[float]]:
        """The second half of :meth:`advance`, once the weights have moved."""
        if self._pending is None:
            raise RuntimeError("end() without begin()")
        hedges, pnl, marks, took = self._pending
        self._pending = None
        combined = self.combiner.combine(hedges)
        self._hedges, self._combined = hedges, combined
        self._marks, self._took_last = marks, took
        return combined, pnl, hedges

    def abandon(self) -> None:
        """Drop what a failed :meth:`begin` left (the next bar begins afresh)."""
        self._pending = None

    def field(self, hedges: Sequence[float]) -> dict[str, Any]:
        """The events' ``combination`` field after a bar whose members' hedges were
        ``hedges``."""
        return {
            "members": list(self.names),
            "weights": self.combiner.weight_list,
            "hedges": [None if math.isnan(h) else h for h in hedges],
        }

    def step(
        self,
        ratio: HedgeRatioEvent,
        spread: SpreadEvent,
        members: Sequence[float],
        quantities: Any,
    ) -> tuple[HedgeRatioEvent, SpreadEvent]:
        """The pair's two events of a bar rewritten with the combined hedge (:meth:`advance`
        on the events' numbers). ``quantities(ratio, hedge)`` gives ``ratio`` with the
        position's quantities for a hedge (the pair actor's rule)."""
        prices = list(ratio.prices.values()) if ratio.prices is not None else [None, None]
        own = math.nan if ratio.hedge is None else float(ratio.hedge[0])
        took = not (ratio.stale or ratio.outlier)
        combined, pnl, hedges = self.advance(own, members, _mark(prices[0]), _mark(prices[1]), took)
        hedge = (combined,) if math.isfinite(combined) else None
        rewritten = ratio._replace(
            hedge=hedge, hedge_qty=None, hedge_notional=None, combination=self.field(hedges)
        )
        if ratio.position is not None:
            rewritten = quantities(rewritten, hedge)
        return rewritten, spread._replace(hedged_pnl=pnl)

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain values (a checkpoint; :meth:`restore` takes it back)."""
        return {
            "members": list(self.names),
            "combiner": self.combiner.snapshot(),
            "rolling": None if self.rolling is None else self.rolling.snapshot(),
            "hedges": [None if math.isnan(h) else h for h in self._hedges],
            "combined": None if math.isnan(self._combined) else self._combined,
            "marks": [None if math.isnan(m) else m for m in self._marks],
            "took_last": self._took_last,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` of a combination of the same members."""
        if tuple(state["members"]) != self.names:
            raise ValueError(f"the snapshot is of members {state['members']}, not {self.names}")
        self.combiner.restore(state["combiner"])
        if self.rolling is not None:
            self.rolling.restore(state["rolling"])
        self._hedges = [_mark(h) for h in state["hedges"]]
        self._combined = _mark(state["combined"])
        y, x = state["marks"]
        self._marks = (_mark(y), _mark(x))
        self._took_last = bool(state["took_last"])


_NAN2 = (math.nan, math.nan)
