"""The synchronous core: ticks -> bars -> pair actors -> events, through one entry point.

Ticks enter by :meth:`Pipeline.on_tick` (one :class:`~hedger.core.ticks.Tick`: feeds, the
daemon, replays of any file), or, for a compiled reader of a long tick file, by
:meth:`Pipeline.on_tick_columns` (a block of ticks as arrays, judged by the same bar rule
compiled). Everything after runs in one order on one thread, which is what makes a replay equal
a live run on the same ticks.

A live pipeline's pairs can change between two ticks (:meth:`Pipeline.add_pair`,
:meth:`Pipeline.update_pair`, :meth:`Pipeline.remove_pair`, the daemon's control channel); a
new pair warms from the bar closes the pipeline holds (:meth:`Pipeline.keep_history`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from hedger.core.actors import PairActor, PairSpec
from hedger.core.bar_bank import BankBar, BarBank, bankable
from hedger.core.bar_events import BankLayout, BarOutput
from hedger.core.bar_kernel import CompiledBars
from hedger.core.bars import DEFAULT_MAX_SKEW_NS, BarBuilder, BarHandler, LegPrice
from hedger.core.combined import CombinedPair
from hedger.core.events import AlarmEvent, Event, HedgeRatioEvent, SpreadEvent
from hedger.core.failures import Failures
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickColumns, TickKind
from hedger.engine import FilterParams
from hedger.engine.combine import reweigh_many
from hedger.engine.kernels.bar import (
    HAS_QTY,
    HEDGE,
    MARK_X,
    MARK_Y,
    NOTIONAL,
    OUTLIER,
    PNL,
    POSITION,
    STALE,
)
from hedger.engine.units import round_to_lot
from hedger.errors import ConfigError

BANK_MIN_PAIRS = 2
"""A bank runs at least this many pairs. A bank's bar has a fixed cost (one compiled call of
twenty arrays, the columns of its output: about 18 us on the benchmark machine) against about
23 us per pair on an actor, so a lone pair is cheaper on its actor (a one-pair replay of 1 s
bars: ``bench/README.md``); the two paths give the same events."""


@dataclass
class PipelineStats:
    """Counters of a pipeline run."""

    ticks_in: int = 0
    events: int = 0
    alarms_raised: int = 0
    """Alarms published as raised, of every pair and kind."""
    stale_bars: dict[str, int] = field(default_factory=dict)
    actor_errors: dict[str, int] = field(default_factory=dict)
    """Contained failures by pair id (or bar listener name); live, shared with the
    pipeline's :class:`Failures`."""


class Pipeline:
    """Runs every pair over one tick stream.

    Args:
        pairs: the pairs and their parameters (pair ids must be distinct).
        bar_ns: bar length in ns.
        max_age_ns: a leg whose last price is older than this at a bar close is stale (the
            pair's step is predict-only and its events say ``stale``).
        emit: receives every event, in order.
        rejects: counts and logs bad input.
        price_source: bars from trades or from quote mids.
        symbols: symbols the bars must carry besides the pairs' legs (for bar listeners such
            as the hedge-ratio matrix); with some, ``pairs`` may be empty.
        positive_symbols: symbols whose prices must be > 0 besides the legs of log-mode pairs
            (those of a log-mode matrix).
        failures: where contained failures of actors and bar listeners are counted.
        max_skew_ns: a tick stamped more than this after its receive time is ``future``.
        lookahead: the ticks are recorded (a replay): a jump ahead that the stream does not
            follow is ``future`` (see :func:`~hedger.core.bars.tick_verdict`); each tick waits
            for the next tick of another time. Live pipelines leave it off.
        clock: the events' ``ts_init`` (ns), e.g. the daemon clock's ``time_ns``; None (a
            replay): the bar's close, so that replays stay byte-identical.
        emit_bar: receives each bar's whole output (:class:`~hedger.core.bar_events.BarOutput`)
            instead of ``emit`` receiving its events one by one (the daemon's bus and the
            replay writer encode it in bulk); events outside bars (alarms ended by a control
            request) still go to ``emit``.
        bank: run the pairs (one hedge, no bar listener) in a :class:`BarBank`, all of a bar's
            steps in one compiled call, once there are :data:`BANK_MIN_PAIRS` of them; False:
            every pair on its own actor (the reference path the bank is tested against).

    The actors are the pairs' record; while a bank runs them their state lives in the bank
    and :meth:`sync` writes it back (control requests and :meth:`flush` do so themselves).
    """

    def __init__(
        self,
        pairs: Sequence[PairSpec],
        bar_ns: int,
        max_age_ns: int,
        emit: Callable[[Event], None],
        rejects: Rejects,
        *,
        price_source: TickKind = TickKind.TRADE,
        symbols: Sequence[str] = (),
        positive_symbols: Sequence[str] = (),
        failures: Failures | None = None,
        max_skew_ns: int = DEFAULT_MAX_SKEW_NS,
        lookahead: bool = False,
        clock: Callable[[], int] | None = None,
        emit_bar: Callable[[BarOutput], None] | None = None,
        bank: bool = True,
    ) -> None:
        if not pairs and not symbols:
            raise ConfigError("pairs", "at least one pair is needed")
        ids = [str(spec.pair) for spec in pairs]
        if len(set(ids)) != len(ids):
            raise ConfigError("pairs", f"a pair appears twice: {ids}")
        for spec in pairs:
            _check_legs(spec)
        self.failures = failures if failures is not None else Failures()
        self.stats = PipelineStats(actor_errors=self.failures.counts)
        self.rejects = rejects
        self._emit = emit
        self._max_age_ns = max_age_ns
        self._clock = clock
        self._emit_bar = emit_bar
        self._use_bank = bank
        self._bank: BarBank | None = None
        self._layout: BankLayout | None = None
        self._unbanked: list[tuple[int, PairActor]] = []
        self._bank_current = False
        """Whether the bank (or its absence) matches the running pairs and their listeners."""
        self._has_combined = False
        """Whether a running pair has a combined hedge (set with the bank, at each change)."""
        self._member_places: dict[int, range] = {}
        """A combined pair's place -> its members' places (set with the bank)."""
        self.actors = [self._new_actor(spec) for spec in pairs]
        legs = {symbol for spec in pairs for symbol in spec.pair.legs} | set(symbols)
        self.symbols = tuple(sorted(legs))
        self._given_positive = frozenset(positive_symbols)
        self.positive_symbols = _log_legs(pairs) | self._given_positive
        """Legs of a log-mode pair, and the given ``positive_symbols`` (a log-mode matrix's):
        their prices must be > 0 (the bar rule refuses others)."""
        self.bar_listeners: list[tuple[str, BarHandler]] = []
        """(name, handler): called at each bar close after the actors, with the bar
        handler's arguments; a handler that raises is counted under its name."""
        self.bars = BarBuilder(
            bar_ns,
            self.symbols,
            self.on_bar_close,
            rejects,
            price_source=price_source,
            positive_symbols=self.positive_symbols,
            max_skew_ns=max_skew_ns,
            lookahead=lookahead,
        )
        self._compiled: CompiledBars | None = None
        self.history: BarHistory | None = None
        """The latest bar closes, which a pair added at run time warms from (see
        :meth:`keep_history`)."""

    def _new_actor(self, spec: PairSpec) -> PairActor:
        """The actor of one pair, wired to this pipeline's output, rejects and failures; with
        a combined hedge, its members' actors too (their events and bad input go nowhere:
        the pair's own filter counts the bad input of their shared bars)."""
        actor = PairActor(
            spec, self._max_age_ns, self._count_and_emit, self.rejects, self.failures, self._clock
        )
        actor.on_watch = self._release_bank
        if spec.combine is not None:
            actor.combined = CombinedPair(spec.combine)
            actor.members = [
                PairActor(
                    PairSpec(spec.pair, params),
                    self._max_age_ns,
                    _discard,
                    Rejects(),
                    self.failures,
                    self._clock,
                )
                for _, params in spec.combine.members
            ]
        return actor

    def _everyone(self) -> list[tuple[int, PairActor]]:
        """Every actor with its place: the pairs (0..n-1), then the combinations' members
        (n.., never published)."""
        n = len(self.actors)
        members = [m for actor in self.actors for m in actor.members]
        return [*enumerate(self.actors), *enumerate(members, n)]

    def on_tick(self, tick: Tick) -> None:
        """The entry point of ticks into the core."""
        if self._compiled is not None:
            raise RuntimeError("this pipeline takes ticks as columns")
        self.stats.ticks_in += 1
        self.bars.on_tick(tick)

    def on_tick_columns(self, columns: TickColumns, source: str = "") -> None:
        """The entry point of a block of trades parsed as columns (``columns.sym`` indexes
        :attr:`symbols`): the same bar rule, compiled. A pipeline takes ticks one way or the
        other, never both."""
        if self._compiled is None:
            if self.stats.ticks_in:
                raise RuntimeError("this pipeline already takes ticks one by one")
            bars = self.bars
            self._compiled = CompiledBars(
                self.symbols,
                bars.bar_ns,
                self.on_bar_close,
                self.positive_symbols,
                bars.max_skew_ns,
                bars.lookahead,
                on_bar_arrays=self._on_bar_arrays,
            )
            self._source = source
        self.stats.ticks_in += int(np.count_nonzero(columns.ok))
        self._compiled.feed(columns)

    @property
    def bars_closed(self) -> int:
        """Bars closed so far."""
        return self.bars.bars_closed if self._compiled is None else self._compiled.bars_closed

    @property
    def duplicates(self) -> int:
        """Exact repeats of a symbol's previous tick, ignored."""
        return self.bars.duplicates if self._compiled is None else self._compiled.duplicates

    def flush(self) -> None:
        """Close the last bar (end of input)."""
        if self._compiled is None:
            self.bars.flush()
        else:
            self._compiled.flush()
            for reason, count in self._compiled.rejects().items():
                self.rejects.add_many(reason, count, self._source)
        self.sync()
        self.stats.stale_bars = {a.pair_id: a.stale_bars for a in self.actors if a.stale_bars}

    def sync(self) -> None:
        """Bring every actor up to date with the bank (its filter, marks, seq, detector)."""
        if self._bank is not None:
            self._bank.store()

    # Checkpoints: the state a restarted daemon resumes from (hedger.runtime.state saves it).

    def snapshot(self) -> dict[str, Any]:
        """The pipeline's whole state as plain values: the bar builder's, every running
        pair's (:meth:`PairActor.snapshot`, by pair id) and the counters. Taken between two
        ticks; a pipeline of the same pairs resumes from it with :meth:`restore_bars` and
        :meth:`restore_pair`."""
        if self._compiled is not None:
            raise RuntimeError("a pipeline fed columns has no checkpoint")
        banked: dict[int, dict[str, Any]] = {}
        if self._bank is not None and self._layout is not None:
            # read from the bank's arrays, not written back to each actor first
            for position, state in zip(self._layout.positions, self._bank.snapshots(), strict=True):
                banked[int(position)] = state
        stats = self.stats
        pairs = {
            actor.pair_id: banked[i] if i in banked else actor.snapshot()
            for i, actor in enumerate(self.actors)
        }
        return {
            "bars": self.bars.snapshot(),
            "pairs": pairs,
            "counters": [stats.ticks_in, stats.events, stats.alarms_raised],
        }

    def restore_bars(self, state: dict[str, Any]) -> None:
        """Resume the bar builder and the counters from a :meth:`snapshot` (before the first
        tick). Raises ``ValueError`` (``KeyError``, ``TypeError``) for one that does not
        parse, changing nothing."""
        ticks_in, events, alarms = (int(v) for v in state["counters"])
        self.bars.restore(state["bars"])
        self.stats.ticks_in, self.stats.events, self.stats.alarms_raised = ticks_in, events, alarms

    def restore_pairs(self, states: Sequence[dict[str, Any]]) -> dict[str, Exception]:
        """Resume running pairs from their parts of a :meth:`snapshot` (each names its pair):
        the pairs whose state does not fit (another shape of filter, alarm or combination,
        or a pair not running), with the error (``ValueError``, ``KeyError``,
        ``TypeError``); each of those is left as it was built: cold."""
        self._release_bank()
        index = {actor.pair_id: i for i, actor in enumerate(self.actors)}
        failed: dict[str, Exception] = {}
        for state in states:
            pair_id = str(state.get("pair"))
            i = index.get(pair_id)
            if i is None:
                failed[pair_id] = ValueError(f"{pair_id} is not running")
                continue
            actor = self.actors[i]
            try:
                actor.restore(state)
            except (KeyError, TypeError, ValueError) as exc:
                self.actors[i] = self._new_actor(actor.spec)  # nothing half-restored
                failed[pair_id] = exc
        return failed

    @property
    def updates(self) -> int:
        """Bars taken, summed over the running pairs (their seq)."""
        if not self._bank_current:  # the running pairs changed: the actors hold their state
            return sum(actor.seq for actor in self.actors)
        n = len(self.actors)
        banked = 0
        if self._bank is not None and self._layout is not None:
            banked = int(self._bank.seq[self._layout.positions < n].sum())
        return banked + sum(actor.seq for i, actor in self._unbanked if i < n)

    def _current_bank(self) -> BarBank | None:
        """The bank of the running pairs, rebuilt after they or their listeners changed."""
        if self._bank_current:
            return self._bank
        if self._bank is not None:
            self._bank.release()
        everyone = self._everyone()
        self._has_combined = any(actor.combined is not None for actor in self.actors)
        self._member_places = {}
        at = len(self.actors)
        for i, actor in enumerate(self.actors):
            if actor.combined is not None:
                self._member_places[i] = range(at, at + len(actor.members))
                at += len(actor.members)
        chosen = [(i, actor) for i, actor in everyone if self._use_bank and bankable(actor)]
        if len(chosen) < BANK_MIN_PAIRS:
            chosen = []
        banked = {i for i, _ in chosen}
        self._unbanked = [(i, a) for i, a in everyone if i not in banked]
        self._bank = self._layout = None
        if chosen:
            actors = [actor for _, actor in chosen]
            self._bank = BarBank(actors, self._max_age_ns, self._clock, self.failures)
            self._layout = BankLayout(actors, [i for i, _ in chosen])
        self._bank_current = True
        return self._bank

    def _release_bank(self) -> None:
        """Before the running pairs change: the actors take their state back."""
        if self._bank is not None:
            self._bank.release()
        self._bank = self._layout = None
        self._unbanked = self._everyone()
        self._bank_current = False

    def on_bar_close(self, ts: int, prices: dict[str, LegPrice], ticked: frozenset[str]) -> None:
        """A bar closed at ``ts``: every pair takes it (the bank's in one call), then the bar
        listeners."""
        bank = self._current_bank()
        if bank is None:  # the actors read the clock themselves
            self._output(ts, None, None, prices, ticked)
        else:
            ts_init, taken = bank.on_bar(ts, prices, ticked)
            self._output(ts, ts_init, taken, prices, ticked)
        for name, listener in self.bar_listeners:
            try:
                listener(ts, prices, ticked)
            except Exception as exc:
                self.failures.record("bar listener", name, exc, ts=ts)

    def _on_bar_arrays(
        self, ts: int, px: np.ndarray, px_ts: np.ndarray, in_bar: np.ndarray, seen: np.ndarray
    ) -> bool:
        """A compiled bar close as arrays over :attr:`symbols`: taken straight by the bank
        when it runs every pair over the same symbols and nobody listens to bars; False
        (the caller builds the usual arguments) otherwise."""
        bank = self._current_bank()
        if bank is None or self._unbanked or self.bar_listeners or bank.symbols != self.symbols:
            return False
        ts_init, taken = bank.on_bar_arrays(ts, px, px_ts, in_bar, seen)
        self._output(ts, ts_init, taken, {}, frozenset())
        return True

    def _output(
        self,
        ts: int,
        ts_init: int | None,
        taken: BankBar | None,
        prices: dict[str, LegPrice],
        ticked: frozenset[str],
    ) -> None:
        """The pairs outside the bank take the bar; the bar's output goes out."""
        others: list[tuple[int, tuple[Event, ...]]] = []
        stats = self.stats
        n = len(self.actors)
        for position, actor in self._unbanked:
            stepped = actor.take_bar(ts, prices, ticked)
            if stepped is None:
                continue
            events = stepped[0]
            others.append((position, events))
            if position < n and self.actors[position].combined is None:
                self._count(events)  # a combined pair's are counted once combined
            if actor.bar_listener is not None:
                try:
                    actor.bar_listener(actor, ts, stepped[1])
                except Exception as exc:
                    self.failures.record("bar listener", actor.pair_id, exc, ts=ts)
        if self._has_combined:
            taken, others = self._combine(ts, taken, others)
        if taken is not None:
            stats.events += 2 * len(taken.members) + len(taken.alarms)
            stats.alarms_raised += sum(e.state == "raised" for _, e in taken.alarms)
        elif not others:
            return
        if ts_init is None:  # no bank: the bar's time of building is its events'
            first = others[0][1][0].ts_init if others else None
            ts_init = ts if first is None else first
        output = BarOutput(ts, ts_init, self._layout if taken is not None else None, taken, others)
        if self._emit_bar is not None:
            if output.n_pairs:
                self._emit_bar(output)
        else:
            for event in output.events():
                self._emit(event)

    def _count(self, events: Sequence[Event]) -> None:
        """One pair's events of a bar in the counters: its ratio and spread, then alarms."""
        stats = self.stats
        stats.events += len(events)
        if len(events) > 2:
            stats.alarms_raised += sum(
                isinstance(e, AlarmEvent) and e.state == "raised" for e in events[2:]
            )

    def _combine(
        self,
        ts: int,
        taken: BankBar | None,
        others: list[tuple[int, tuple[Event, ...]]],
    ) -> tuple[BankBar | None, list[tuple[int, tuple[Event, ...]]]]:
        """The bar's output with each combined pair's hedge, quantities and hedged P&L made
        the combination's, and its members' output dropped: in the bank's columns for a
        banked pair, in its events otherwise. A failing combination step is counted and the
        pair's bar goes out without a hedge (``hedge`` null)."""
        n = len(self.actors)
        hedges: dict[int, float] = {p: _hedge_of(events) for p, events in others if p >= n}
        layout = self._layout
        if taken is not None and layout is not None and len(taken.members):
            positions = layout.positions[taken.members]
            members = positions >= n
            if members.any():  # only their hedges are needed
                hedge_row = taken.out[HEDGE]
                for c in np.flatnonzero(members).tolist():
                    hedges[int(positions[c])] = float(hedge_row[c])
                taken = _columns(taken, np.flatnonzero(~members))
                positions = positions[~members]
            leads = [
                (c, p)
                for c, p in enumerate(positions.tolist())
                if self.actors[p].combined is not None
            ]
            if leads:
                taken = self._combine_columns(ts, taken, layout, leads, hedges)
        kept: list[tuple[int, tuple[Event, ...]]] = []
        for p, events in others:
            if p >= n:
                continue
            if self.actors[p].combined is None:
                kept.append((p, events))
                continue
            rewritten = self._combine_events(ts, p, events, hedges)
            self._count(rewritten)
            kept.append((p, rewritten))
        return taken, kept

    def _combination_failed(self, position: int, exc: Exception, ts: int) -> None:
        """Count a combined pair's failed step; its combination starts its bar afresh."""
        actor = self.actors[position]
        self.failures.record("combination", actor.pair_id, exc, ts=ts)
        if actor.combined is not None:
            actor.combined.abandon()

    def _member_hedges(self, position: int, hedges: dict[int, float]) -> list[float]:
        """The bar's hedges of the members of the pair at ``position`` (NaN: none)."""
        return [hedges.get(p, math.nan) for p in self._member_places[position]]

    def _combine_columns(
        self,
        ts: int,
        taken: BankBar,
        layout: BankLayout,
        leads: list[tuple[int, int]],
        hedges: dict[int, float],
    ) -> BankBar:
        """The combined pairs' columns ``leads`` ((column, pipeline position) each) of the
        bank's bar rewritten in place with their combinations."""
        out, flags, qty = taken.out, taken.flags, taken.qty
        fields: dict[int, dict[str, Any]] = {}
        nan = math.nan
        begun: list[tuple[int, int]] = []
        due = []
        for c, p in leads:  # the moments first, then every due weight in one solve
            combined = self.actors[p].combined
            assert combined is not None
            try:
                if combined.begin(
                    float(out[HEDGE, c]),
                    self._member_hedges(p, hedges),
                    float(out[MARK_Y, c]),
                    float(out[MARK_X, c]),
                    not int(flags[c]) & (STALE | OUTLIER),
                ):
                    due.append(combined.combiner)
                begun.append((c, p))
            except Exception as exc:  # as in _combine_events
                self._combination_failed(p, exc, ts)
                out[HEDGE, c] = out[PNL, c] = nan
                flags[c] &= ~HAS_QTY
        try:
            reweigh_many(due)
        except Exception as exc:  # numbers no solve expects: each pair's weights stay
            self.failures.record("combination", "weights", exc, ts=ts)
        for c, p in begun:
            actor = self.actors[p]
            combined = actor.combined
            assert combined is not None
            hedge, pnl, values = combined.end()
            try:
                quantity = None
                shares = float(out[POSITION, c])
                has_position = bool(layout.has_position[taken.members[c]])
                if has_position and math.isfinite(hedge) and math.isfinite(shares):
                    quantity = round_to_lot(-hedge * shares, actor.lots[0])
                    qty[c] = quantity  # an int64: a quantity past 2^63 shares raises here
            except Exception as exc:
                self.failures.record("combination", actor.pair_id, exc, ts=ts)
                hedge = pnl = nan
                quantity = None
            else:
                fields[c] = combined.field(values)
            out[HEDGE, c], out[PNL, c] = hedge, pnl
            if quantity is None:
                flags[c] &= ~HAS_QTY
            else:
                out[NOTIONAL, c] = quantity * float(out[MARK_X, c])
                flags[c] |= HAS_QTY
        return taken._replace(combination=fields)

    def _combine_events(
        self, ts: int, position: int, events: Sequence[Event], hedges: dict[int, float]
    ) -> tuple[Event, ...]:
        """The events of the combined pair at ``position`` (stepped on its actor) rewritten."""
        actor = self.actors[position]
        combined = actor.combined
        assert combined is not None
        ratio, spread, *rest = events
        assert isinstance(ratio, HedgeRatioEvent) and isinstance(spread, SpreadEvent)
        try:
            ratio, spread = combined.step(
                ratio, spread, self._member_hedges(position, hedges), actor.quantities
            )
        except Exception as exc:
            # counted and logged; the bar still goes out (its seq and any alarm of the
            # pair's filter), with no hedge: order logic must not trade on the pair's own
            self._combination_failed(position, exc, ts)
            ratio = ratio._replace(hedge=None, hedge_qty=None, hedge_notional=None)
            spread = spread._replace(hedged_pnl=math.nan)
        return (ratio, spread, *rest)

    def _count_and_emit(self, event: Event) -> None:
        self.stats.events += 1
        if isinstance(event, AlarmEvent) and event.state == "raised":
            self.stats.alarms_raised += 1
        self._emit(event)

    # Pairs added, changed and removed while running (the daemon's control channel). Each
    # runs between two ticks, on the core's thread, so it lands between two bar closes.

    def keep_history(self, bars: int) -> None:
        """Hold the latest ``bars`` bar closes (0: none), for :meth:`add_pair` to warm a new
        pair from. Call it before the first tick."""
        if bars < 0:
            raise ConfigError("control.history", f"must be >= 0, got {bars}")
        self.history = BarHistory(bars)
        self.bar_listeners.append(("history", self.history.record))

    def add_pair(self, spec: PairSpec) -> AddedPair:
        """Run one more pair from the next bar close on.

        If the bars already carry every leg of the pair and :attr:`history` holds bars, the
        new actor's filter first steps through the held bars as if it had run since the
        oldest of them (these catch-up steps publish nothing, count no stale bars and do
        not move ``seq``: its first live event has ``seq`` 1); otherwise it starts cold.
        Raises :class:`~hedger.errors.ConfigError`, changing nothing, for a pair already
        running, a wrong ``n_legs``, or a pipeline fed columns."""
        pair_id = str(spec.pair)
        self._check_changeable(pair_id)
        _check_fixed_combination(spec)
        if self._index(pair_id) is not None:
            raise ConfigError(f"pairs.{pair_id}", "is already running")
        _check_legs(spec)
        self._release_bank()
        warm = all(symbol in self.symbols for symbol in spec.pair.legs)
        actor = self._new_actor(spec)
        steps = self._catch_up(actor) if warm else 0
        self.actors.append(actor)
        self._carry()
        return AddedPair(actor, steps)

    def remove_pair(self, pair_id: str) -> PairActor:
        """Stop running ``pair_id`` (it publishes nothing from the next bar close on); the
        removed actor is returned, its active alarms ended with ``cleared`` events. The bars
        keep carrying its symbols (so that a pair added later warms from them). An unknown
        pair is a :class:`ConfigError`."""
        self._check_changeable(pair_id)
        index = self._index(pair_id)
        if index is None:
            raise ConfigError(f"pairs.{pair_id}", "is not running")
        self._release_bank()
        actor = self.actors.pop(index)
        for event in actor.clear_alarms():  # subscribers see the pair's alarms end
            self._count_and_emit(event)
        self.stats.stale_bars.pop(actor.pair_id, None)
        self._carry()
        return actor

    def update_pair(self, spec: PairSpec) -> UpdatedPair:
        """New parameters for a running pair.

        When only the noise differs (``delta``/``trans_cov``, ``obs_cov``), or the position,
        the actor keeps its state and takes the new noise (:meth:`PairActor.set_noise`, as a
        refit does) and position.
        Otherwise a new actor replaces it, warmed from the held bars as in :meth:`add_pair`,
        and its ``seq`` carries on from the old one's (subscribers see no restart of the
        sequence); the old actor's active alarms are ended with ``cleared`` events first.
        Raises :class:`ConfigError`, changing nothing, for a pair not running or a wrong
        ``n_legs``."""
        pair_id = str(spec.pair)
        self._check_changeable(pair_id)
        _check_fixed_combination(spec)
        index = self._index(pair_id)
        if index is None:
            raise ConfigError(f"pairs.{pair_id}", "is not running")
        _check_legs(spec)
        self._release_bank()
        old = self.actors[index]
        current = old.params
        noise_only = (
            replace(
                spec.params,
                delta=current.delta,
                trans_cov=current.trans_cov,
                obs_cov=current.obs_cov,
            )
            == current
        )
        if noise_only and spec.lots == old.spec.lots:
            old.set_noise(spec.params.state_noise(), spec.params.obs_cov)
            old.spec = replace(old.spec, position=spec.position)  # read at each bar
            return UpdatedPair(old, old, True, 0)
        if old.combined is not None:  # its own filter's noise may change (as a refit's)
            _check_fixed_combination(old.spec)
        for event in old.clear_alarms():  # the new filter has its own view of the pair
            self._count_and_emit(event)
        actor = self._new_actor(spec)
        steps = self._catch_up(actor)
        actor.seq, actor.last_ts = old.seq, old.last_ts
        self.actors[index] = actor
        self._carry()
        return UpdatedPair(old, actor, False, steps)

    def _check_changeable(self, pair_id: str) -> None:
        if self._compiled is not None:
            raise ConfigError(
                f"pairs.{pair_id}", "this pipeline takes ticks as columns: its pairs are fixed"
            )

    def _index(self, pair_id: str) -> int | None:
        for i, actor in enumerate(self.actors):
            if actor.pair_id == pair_id:
                return i
        return None

    def _carry(self) -> None:
        """The bars carry every running pair's legs (and whatever they carried before), and
        refuse prices <= 0 exactly for the legs of log-mode pairs and the given symbols."""
        legs = {symbol for actor in self.actors for symbol in actor.pair.legs}
        self.symbols = tuple(sorted(set(self.symbols) | legs))
        log_legs = {
            symbol
            for _, actor in self._everyone()
            if actor.params.mode.logarithmic
            for symbol in actor.pair.legs
        }
        self.positive_symbols = frozenset(log_legs) | self._given_positive
        self.bars.add_symbols(self.symbols, self.positive_symbols)

    def _catch_up(self, actor: PairActor) -> int:
        """Step ``actor``'s filter through the held bars, discarding their events; the steps
        taken. The freshness rule is :meth:`PairActor.handle_bar`'s (a leg is fresh if its
        price is at most ``max_age`` old at the close); it is repeated here because the
        actor's own guard publishes, and catch-up steps must not."""
        if self.history is None:
            return 0
        legs = actor.pair.legs
        max_age = self._max_age_ns
        steps = 0
        for bar in self.history.bars:
            if not any(symbol in bar.ticked for symbol in legs):
                continue
            fresh: list[float | None] = []
            for symbol in legs:
                leg = bar.prices.get(symbol)
                ok = leg is not None and bar.ts - leg.ts <= max_age
                fresh.append(leg.price if leg is not None and ok else None)
            try:
                actor.on_bar(bar.ts, fresh)
            except Exception as exc:
                self.failures.record("actor", actor.pair_id, exc, ts=bar.ts)
                break
            steps += 1
        # alarms raised on held bars were never published: the live bars raise them again
        # if the evidence goes on
        actor.clear_alarms(silently=True)
        return steps


class AddedPair(NamedTuple):
    """What :meth:`Pipeline.add_pair` did: the new actor and the held bars it stepped
    through before going live (0: a cold start)."""

    actor: PairActor
    warm_bars: int


class UpdatedPair(NamedTuple):
    """What :meth:`Pipeline.update_pair` did: the actor before and after (the same one when
    ``kept_state``: only the noise changed), and the held bars a new actor stepped through."""

    old: PairActor
    actor: PairActor
    kept_state: bool
    warm_bars: int


@dataclass(frozen=True, slots=True)
class HeldBar:
    """One bar close as the actors saw it: close ts (ns), every carried symbol's price, the
    symbols that ticked in the bar."""

    ts: int
    prices: dict[str, LegPrice]
    ticked: frozenset[str]


class BarHistory:
    """The latest ``capacity`` bar closes, oldest first (a bar listener). Memory: one dict of
    the carried symbols' prices per bar, shared with the actors (never copied)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.bars: deque[HeldBar] = deque(maxlen=capacity)

    def record(self, ts: int, prices: dict[str, LegPrice], ticked: frozenset[str]) -> None:
        """A bar closed (the bar handler's arguments)."""
        if self.capacity:
            self.bars.append(HeldBar(ts, prices, ticked))


def _log_legs(specs: Sequence[PairSpec]) -> frozenset[str]:
    """The legs of the log-mode pairs among ``specs`` (or of a log-mode member of their
    combination): their prices must be > 0."""
    return frozenset(
        symbol
        for spec in specs
        if any(params.mode.logarithmic for params in _filters_of(spec))
        for symbol in spec.pair.legs
    )


def _filters_of(spec: PairSpec) -> list[FilterParams]:
    """The pair's own filter and its combination's Kalman members."""
    members = [] if spec.combine is None else [params for _, params in spec.combine.members]
    return [spec.params, *members]


def _check_fixed_combination(spec: PairSpec) -> None:
    if spec.combine is not None:
        raise ConfigError(
            f"pairs.{spec.pair}.combine",
            "a combined pair is set in the config file; the control channel cannot add one "
            "or change more than its own filter's noise yet (remove works)",
        )


def _hedge_of(events: Sequence[Event]) -> float:
    """A member's hedge of the bar from its events (NaN while it has none)."""
    ratio = events[0] if events else None
    if not isinstance(ratio, HedgeRatioEvent) or ratio.hedge is None:
        return math.nan
    return float(ratio.hedge[0])


def _discard(event: Event) -> None:
    """A member's events: the combination reads them from the bar's output instead."""


def _columns(taken: BankBar, index: np.ndarray) -> BankBar:
    """The bank bar's columns ``index`` (and the alarms of their pairs)."""
    slots = set(taken.members[index].tolist())
    return BankBar(
        taken.members[index],
        taken.out.take(index, axis=1),
        taken.flags[index],
        taken.qty[index],
        taken.seq[index],
        [(j, e) for j, e in taken.alarms if j in slots],
    )


def _check_legs(spec: PairSpec) -> None:
    if spec.params.n_legs != len(spec.pair.xs):
        raise ConfigError(
            f"pairs.{spec.pair}.n_legs",
            f"the pair has {len(spec.pair.xs)} hedge(s), params say {spec.params.n_legs}",
        )
