"""The per-pair filter actor: owns one pair's filter, turns bar closes into events, and keeps
what makes them tradable (the legs' marks, the hedge in shares, the position's quantities)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hedger.core.bars import LegPrice
from hedger.core.combined import CombinedPair, CombineSpec
from hedger.core.events import AlarmEvent, Event, HedgeRatioEvent, SpreadEvent
from hedger.core.failures import Failures
from hedger.core.rejects import Rejects
from hedger.core.topics import PairId
from hedger.engine import FilterParams, HedgeFilter, Position, bar_hedge, hedge_quantities
from hedger.engine.alarm import ALARM_KINDS, AlarmChange, AlarmParams, BreakDetector
from hedger.engine.linalg import MatrixLike
from hedger.errors import BadInputError


@dataclass(frozen=True, slots=True)
class PairSpec:
    """A pair to run and its filter parameters (``params.n_legs`` must match the pair).

    position: what the desk holds of Y (its events then carry ``hedge_qty``); lots: the lot
    size of each hedge X (k,), in shares (None: 1 share each); alarm: the relationship-break
    detector's parameters (None: no alarm); combine: the pair's combined hedge (pairs, k = 1,
    only)."""

    pair: PairId
    params: FilterParams
    position: Position | None = None
    lots: tuple[int, ...] | None = None
    alarm: AlarmParams | None = None
    combine: CombineSpec | None = None
    """A combined hedge (:mod:`hedger.core.combined`): the events' hedge is the combination."""

    def __post_init__(self) -> None:
        if self.lots is not None and len(self.lots) != len(self.pair.xs):
            raise ValueError(f"{self.pair}: {len(self.lots)} lot sizes for {len(self.pair.xs)}")
        if self.combine is not None and len(self.pair.xs) != 1:
            raise ValueError(f"{self.pair}: a combined hedge needs a pair (one hedge symbol)")


BarListener = Callable[["PairActor", int, list[float | None]], None]


class PairActor:
    """One pair's filter and sequence counter; never shares mutable state with other actors.

    :meth:`handle_bar` guards (is this bar about us, which legs are fresh) and contains
    failures; :meth:`on_bar` holds the logic. Every bar the pair takes part in yields a
    ``hedge_ratio`` and a ``spread`` event with the same ``seq``. A step that raises is
    counted in ``failures`` under the pair's id and logged; the bar then publishes nothing and
    ``seq``, ``last_ts`` and ``stale_bars`` stay as they were. (The filter itself is left as
    the exception left it: bad prices, the one failure the engine expects, leave it unchanged.)

    Marks: each leg's latest fresh price, moved by every bar except one whose observation the
    filter refused (an outlier or a bad price), so a bad print never reaches the hedge in
    shares, the quantities or the hedged P&L. ``clock`` gives the events' ``ts_init`` (ns);
    without one (a replay) it is the bar's close.

    Alarms (with ``spec.alarm``): every warm bar that judged an observation (taken, or refused
    as an outlier) feeds its z to the pair's :class:`~hedger.engine.alarm.BreakDetector`; a
    kind raised or cleared is an ``alarm`` event after the bar's two events.
    """

    def __init__(
        self,
        spec: PairSpec,
        max_age_ns: int,
        publish: Callable[[Event], None],
        rejects: Rejects,
        failures: Failures | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.pair = spec.pair
        self.pair_id = str(spec.pair)
        self.spec = spec
        self._filter = HedgeFilter(spec.params)
        self._mode = spec.params.mode
        self._mode_name = self._mode.value
        self._logarithmic = self._mode.logarithmic
        self._clock = clock
        self._lots = spec.lots if spec.lots is not None else (1,) * len(spec.pair.xs)
        self._marks: list[float | None] = [None] * len(spec.pair.legs)
        self._hedge_held: tuple[float, ...] | None = None
        self._max_age = max_age_ns
        self._publish = publish
        self._rejects = rejects
        self._failures = failures if failures is not None else Failures()
        self._seq = 0
        self._last_ts = 0
        self._stale_bars = 0
        self._slot: tuple[Any, int] | None = None
        """(bank, index) while a :class:`~hedger.core.bar_bank.BarBank` holds the pair's
        state: reading the actor's state first brings it over from the bank."""
        self.detector = None if spec.alarm is None else BreakDetector(spec.alarm)
        self._raised: dict[str, tuple[int, int]] = {}
        """(ts, seq) of the bar each active alarm kind was raised on."""
        self._bar_listener: BarListener | None = None
        self.combined: CombinedPair | None = None
        """The pair's combined hedge, if it has one (the pipeline steps it after the bar)."""
        self.members: list[PairActor] = []
        """The combination's other Kalman members: actors of their own, never published."""
        self.on_watch: Callable[[], None] | None = None
        """Called when :attr:`bar_listener` is set or the noise is swapped (the pipeline
        moves the pair off its bank, which steps pairs without calling anyone back and holds
        their noise)."""

    # While a bank runs the pair, it holds the state; these read it through.

    def attach(self, bank: Any, index: int) -> None:
        """A bank now holds the pair's state, at ``index`` (``bank.store_pair(index)`` writes
        it back)."""
        self._slot = (bank, index)

    def detach(self) -> None:
        """The actor holds its own state again (the bank wrote it back)."""
        self._slot = None

    def _pull(self) -> None:
        slot = self._slot
        if slot is not None:
            slot[0].store_pair(slot[1])

    @property
    def seq(self) -> int:
        """The seq of the pair's last bar (0 before the first)."""
        self._pull()
        return self._seq

    @seq.setter
    def seq(self, value: int) -> None:
        self._seq = value

    @property
    def last_ts(self) -> int:
        """The close (ns) of the pair's last bar."""
        self._pull()
        return self._last_ts

    @last_ts.setter
    def last_ts(self, value: int) -> None:
        self._last_ts = value

    @property
    def stale_bars(self) -> int:
        """Bars a leg had no fresh price in."""
        self._pull()
        return self._stale_bars

    @stale_bars.setter
    def stale_bars(self, value: int) -> None:
        self._stale_bars = value

    @property
    def marks(self) -> list[float | None]:
        """Each leg's mark (Y first), None before its first price."""
        self._pull()
        return self._marks

    @marks.setter
    def marks(self, value: list[float | None]) -> None:
        self._marks = value

    @property
    def hedge(self) -> tuple[float, ...] | None:
        """The hedge in shares of the last bar (k,), None while a mark is missing."""
        self._pull()
        return self._hedge_held

    @hedge.setter
    def hedge(self, value: tuple[float, ...] | None) -> None:
        self._hedge_held = value

    @property
    def bar_listener(self) -> BarListener | None:
        """Called after every step with the actor, the bar's ts and the prices the filter
        took (Y first; None for a leg it did not take): how a refitter keeps its history."""
        return self._bar_listener

    @bar_listener.setter
    def bar_listener(self, listener: BarListener | None) -> None:
        self._bar_listener = listener
        if self.on_watch is not None:
            self.on_watch()

    def handle_bar(self, ts: int, prices: dict[str, LegPrice], ticked: frozenset[str]) -> None:
        """A bar closed at ``ts`` (ns): take it (:meth:`take_bar`) and publish its events."""
        taken = self.take_bar(ts, prices, ticked)
        if taken is None:
            return
        events, prices_taken = taken
        # Publishing is outside the guard: the bus contains its subscribers, and a sink that
        # fails (a replay's output file) must stop the run, not be counted.
        for event in events:
            self._publish(event)
        if self.bar_listener is not None:
            try:
                self.bar_listener(self, ts, prices_taken)
            except Exception as exc:
                self._failures.record("bar listener", self.pair_id, exc, ts=ts)

    def take_bar(
        self, ts: int, prices: dict[str, LegPrice], ticked: frozenset[str]
    ) -> tuple[tuple[Event, ...], list[float | None]] | None:
        """Step on the bar closed at ``ts`` (ns) if one of the pair's legs ticked in it: the
        bar's events (ratio, spread, then any alarms) and the prices the filter took; None
        when the pair is not in the bar or the step failed (counted, nothing changed)."""
        legs = self.pair.legs
        if not any(symbol in ticked for symbol in legs):
            return None
        fresh: list[float | None] = []
        for symbol in legs:
            leg = prices.get(symbol)
            fresh.append(leg.price if leg is not None and ts - leg.ts <= self._max_age else None)
        try:
            ratio, spread, taken, alarms = self.on_bar(ts, fresh)
        except Exception as exc:
            self._failures.record("actor", self.pair_id, exc, ts=ts)
            return None
        self.seq = ratio.seq
        self.last_ts = ts
        if any(price is None for price in fresh):
            self.stale_bars += 1
        return (ratio, spread, *alarms), taken

    def on_bar(
        self, ts: int, fresh: list[float | None]
    ) -> tuple[HedgeRatioEvent, SpreadEvent, list[float | None], tuple[AlarmEvent, ...]]:
        """Step the filter on a bar closed at ``ts`` (ns) with the legs' fresh prices (Y
        first; None for a stale leg): the bar's two events, the prices the filter took and
        the alarms the bar raised or cleared (usually none)."""
        y, xs = fresh[0], fresh[1:]
        stale = any(price is None for price in fresh)
        try:
            step = self._filter.step(y, xs)
        except BadInputError as exc:
            self._rejects.add(exc.reason, self.pair_id, value=repr(exc.value))
            step = self._filter.step(None, [None] * len(xs))
            stale = True
            fresh = [None] * len(fresh)
        if step.outlier:
            self._rejects.add("outlier", self.pair_id, zscore=round(step.zscore, 1))
            fresh = [None] * len(fresh)  # the filter did not take them
        elif step.restarted:
            run = self._filter.params.outlier_run
            self._rejects.add("outlier_restart", self.pair_id, bars=run)
        before, held = self.marks, self.hedge
        marks = [m if p is None else p for p, m in zip(fresh, before, strict=True)]
        hedge = self._hedge(step.betas, marks)
        seq = self.seq + 1
        ts_init = ts if self._clock is None else self._clock()
        ratio = HedgeRatioEvent(
            self.pair_id, seq, ts, step.betas, step.alpha, step.cov, step.beta_std, step.warm,
            stale, step.outlier, self._mode_name, hedge,
            dict(zip(self.pair.legs, marks, strict=True)), ts_init,
        )  # fmt: skip
        if self.spec.position is not None:
            ratio = self._with_quantities(ratio, self.spec.position, marks, hedge)
        spread = SpreadEvent(
            self.pair_id, seq, ts, step.spread, step.innovation,
            math.sqrt(step.innovation_var), step.zscore, step.outlier,
            _hedged_pnl(before, marks, held), ts_init,
        )  # fmt: skip
        self.marks, self.hedge = marks, hedge
        alarms: tuple[AlarmEvent, ...] = ()
        detector = self.detector
        if detector is not None and step.warm and (step.outlier or not step.predicted_only):
            changes = detector.update(step.zscore)
            if changes:
                alarms = self.alarm_events(changes, seq, ts, ts_init)
        return ratio, spread, fresh, alarms

    def alarm_events(
        self, changes: tuple[AlarmChange, ...], seq: int, ts: int, ts_init: int
    ) -> tuple[AlarmEvent, ...]:
        """The events of the alarm kinds a bar raised or cleared; each carries the kinds
        active once the whole bar is judged (the last one sent is what stays retained)."""
        assert self.detector is not None
        params = self.detector.params
        started = {}
        for change in changes:
            if change.raised:
                self._raised[change.kind] = started[change.kind] = (ts, seq)
            else:
                started[change.kind] = self._raised.pop(change.kind)
        active = self.active_alarms
        events = []
        for change in changes:
            threshold = params.scale_threshold if change.kind == "scale" else params.threshold
            state = "raised" if change.raised else "cleared"
            started_ts, started_seq = started[change.kind]
            event = AlarmEvent(
                self.pair_id, seq, ts, change.kind, state, change.statistic, float(threshold),
                started_ts, started_seq, active, ts_init,
            )  # fmt: skip
            events.append(event)
        return tuple(events)

    def clear_alarms(self, *, silently: bool = False) -> tuple[AlarmEvent, ...]:
        """End the pair's active alarms without evidence (its filter is being replaced, or it
        warmed from held bars whose events nobody saw): a ``cleared`` event for each, at the
        last published bar, with the statistic as it stands (none with ``silently``). The
        detector keeps its scale and its statistics, so a break that goes on is raised
        again, live."""
        detector = self.detector
        if detector is None:
            return ()
        if self._slot is not None and self.on_watch is not None:
            self.on_watch()  # off the bank first: it holds the detector's state
        self._pull()
        values = dict(zip(ALARM_KINDS, detector.statistics, strict=True))
        ended = tuple(AlarmChange(kind, False, values[kind], 0) for kind in self.active_alarms)
        ts_init = self.last_ts if self._clock is None else self._clock()
        events = self.alarm_events(ended, self.seq, self.last_ts, ts_init)
        detector.forget_alarms()
        return () if silently else events

    @property
    def active_alarms(self) -> tuple[str, ...]:
        """The pair's active alarm kinds, in :data:`~hedger.engine.alarm.ALARM_KINDS` order."""
        return tuple(kind for kind in ALARM_KINDS if kind in self._raised)

    def _hedge(
        self, betas: tuple[float, ...], marks: list[float | None]
    ) -> tuple[float, ...] | None:
        """Shares of each X per share of Y at ``marks``; in the log modes None while a mark
        is missing."""
        if not self._logarithmic:
            return betas
        y, *xs = marks
        if y is None or None in xs:
            return None
        return bar_hedge(betas, self._mode, y, xs)  # type: ignore[arg-type]  # no None left

    @property
    def lots(self) -> tuple[int, ...]:
        """The lot size of each hedge symbol, in shares."""
        return self._lots

    @property
    def rejects(self) -> Rejects:
        """Where the pair's bad input is counted."""
        return self._rejects

    def quantities(
        self, ratio: HedgeRatioEvent, hedge: tuple[float, ...] | None
    ) -> HedgeRatioEvent:
        """``ratio`` with the position's quantities for ``hedge`` at the ratio's marks (the
        rule of the pair's own events); unchanged without a position."""
        position = self.spec.position
        if position is None:
            return ratio
        prices = ratio.prices
        marks: list[float | None] = (
            list(prices.values()) if prices is not None else [None] * len(self.pair.legs)
        )
        return self._with_quantities(ratio, position, marks, hedge)

    def _with_quantities(
        self,
        ratio: HedgeRatioEvent,
        position: Position,
        marks: list[float | None],
        hedge: tuple[float, ...] | None,
    ) -> HedgeRatioEvent:
        """``ratio`` with the position's shares of Y, the hedge's integer quantities and
        their notionals (None where a mark or the hedge is missing)."""
        y, *xs = marks
        if position.shares is None and y is None:
            return ratio._replace(position=math.nan)
        shares = position.shares_at(y) if y is not None else position.shares
        assert shares is not None
        if hedge is None:
            return ratio._replace(position=shares)
        qty = hedge_quantities(hedge, shares, self._lots)
        notional = tuple(math.nan if x is None else q * x for q, x in zip(qty, xs, strict=True))
        return ratio._replace(position=shares, hedge_qty=qty, hedge_notional=notional)

    @property
    def hedge_filter(self) -> HedgeFilter:
        """The pair's filter (the bank loads its state from it and writes it back; while a
        bank holds the pair, as the bank last wrote it)."""
        return self._filter

    @property
    def raised(self) -> dict[str, tuple[int, int]]:
        """The bar (ts, seq) each active alarm kind was raised on."""
        return self._raised

    @property
    def logarithmic(self) -> bool:
        """Whether the pair's mode takes logs (its hedge in shares needs both marks)."""
        return self._logarithmic

    @property
    def params(self) -> FilterParams:
        """The filter's current parameters (its noise changes with :meth:`set_noise`)."""
        return self._filter.params

    @property
    def obs_cov(self) -> float:
        """The R the filter uses for its next step (an adaptive R's current estimate)."""
        self._pull()
        return self._filter.current_obs_cov

    @property
    def observations(self) -> int:
        """Observations the filter has absorbed (it never resets, so this only grows)."""
        self._pull()
        return self._filter.observations

    def set_noise(self, trans_cov: MatrixLike, obs_cov: float) -> None:
        """Swap the filter's noise, Q (n, n) and R, keeping its state
        (:meth:`HedgeFilter.set_noise`). The new noise changes what a z of 1 means, so the
        break detector starts again (a new burn-in), its active alarms ended with published
        ``cleared`` events."""
        if self._slot is not None and self.on_watch is not None:
            self.on_watch()  # off the bank first: it holds the noise as it was
        self._pull()
        self._filter.set_noise(trans_cov, obs_cov)
        if self.detector is not None:
            for event in self.clear_alarms():
                self._publish(event)
            self.detector.restart()

    def _alarm_snapshot(self) -> dict[str, Any]:
        """The detector's state and the bar (ts, seq) each active alarm was raised on."""
        assert self.detector is not None
        raised = {kind: list(started) for kind, started in self._raised.items()}
        return {**self.detector.snapshot(), "raised": raised}

    def snapshot(self) -> dict[str, Any]:
        """The actor's whole state as one plain value (what a checkpoint saves)."""
        self._pull()
        return actor_state(
            self.pair_id,
            self.seq,
            self.last_ts,
            self.stale_bars,
            list(self.marks),
            None if self.hedge is None else list(self.hedge),
            self._filter.checkpoint(),
            None if self.detector is None else self._alarm_snapshot(),
            self.combination_snapshot(),
        )

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot` of this pair (the same legs, filter shape, alarm
        and combination): the following bars give the events the saved actor would have
        given. Raises ``ValueError`` (or ``KeyError``, ``TypeError``) for a state that does
        not fit; call it while no bank holds the pair."""
        if self._slot is not None:
            raise RuntimeError("a bank holds this pair's state: release it first")
        if state["pair"] != self.pair_id:
            raise ValueError(f"the state is of {state['pair']}, not {self.pair_id}")
        n_legs = len(self.pair.legs)
        marks = [None if m is None else float(m) for m in state["marks"]]
        hedge = state["hedge"]
        if len(marks) != n_legs or (hedge is not None and len(hedge) != n_legs - 1):
            raise ValueError(f"the state's marks are not those of {n_legs} legs")
        alarm, combination = state["alarm"], state["combination"]
        if (alarm is None) != (self.detector is None):
            raise ValueError("the state and the pair differ in having an alarm")
        if (combination is None) != (self.combined is None):
            raise ValueError("the state and the pair differ in having a combined hedge")
        if combination is not None and len(combination["member_states"]) != len(self.members):
            raise ValueError("the state's combination has other members")
        self._filter.resume(state["filter"])
        if self.detector is not None:
            self.detector.restore(alarm)
            raised = alarm["raised"].items()
            self._raised = {kind: (int(ts), int(seq)) for kind, (ts, seq) in raised}
        if self.combined is not None:
            self.combined.restore(combination)
            for member, member_state in zip(
                self.members, combination["member_states"], strict=True
            ):
                member.restore(member_state)
        self._seq, self._last_ts = int(state["seq"]), int(state["last_ts"])
        self._stale_bars = int(state["stale_bars"])
        self._marks = marks
        self._hedge_held = None if hedge is None else tuple(float(h) for h in hedge)

    def combination_snapshot(self) -> dict[str, Any] | None:
        """The combination's weights and window, and each Kalman member's own state (None:
        no combined hedge)."""
        if self.combined is None:
            return None
        return {
            **self.combined.snapshot(),
            "member_states": [member.snapshot() for member in self.members],
        }


def actor_state(
    pair: str,
    seq: int,
    last_ts: int,
    stale_bars: int,
    marks: list[float | None],
    hedge: list[float] | None,
    filter_state: dict[str, Any],
    alarm: dict[str, Any] | None,
    combination: dict[str, Any] | None,
) -> dict[str, Any]:
    """The layout of :meth:`PairActor.snapshot` (the one place it is written: a bank writes
    its pairs' states with it too)."""
    return {
        "pair": pair,
        "seq": seq,
        "last_ts": last_ts,
        "stale_bars": stale_bars,
        "marks": marks,
        "hedge": hedge,
        "filter": filter_state,
        "alarm": alarm,
        "combination": combination,
    }


def _hedged_pnl(
    before: list[float | None], after: list[float | None], hedge: tuple[float, ...] | None
) -> float:
    """``dY - sum_i h_i dX_i`` from the marks ``before`` to ``after`` (Y first) with the hedge
    held over the bar (k,), in Y's price units; NaN if a mark or the hedge is missing."""
    if hedge is None:
        return math.nan
    y0, y1 = before[0], after[0]
    if y0 is None or y1 is None:
        return math.nan
    pnl = y1 - y0
    for i, h in enumerate(hedge, 1):
        x0, x1 = before[i], after[i]
        if x0 is None or x1 is None:
            return math.nan
        pnl -= h * (x1 - x0)
    return pnl
