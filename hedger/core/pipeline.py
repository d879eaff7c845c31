"""The synchronous core: ticks -> bars -> pair actors -> events, through one entry point.

Ticks enter by :meth:`Pipeline.on_tick` (one :class:`~hedger.core.ticks.Tick`: feeds, the
daemon, replays of any file), or, for a compiled reader of a long tick file, by
:meth:`Pipeline.on_tick_columns` (a block of ticks as arrays, judged by the same bar rule
compiled). Everything after runs in one order on one thread, which is what makes a replay equal
a live run on the same ticks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hedger.core.actors import PairActor, PairSpec
from hedger.core.bar_kernel import CompiledBars
from hedger.core.bars import DEFAULT_MAX_SKEW_NS, BarBuilder, BarHandler, LegPrice
from hedger.core.events import Event
from hedger.core.failures import Failures
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickColumns, TickKind
from hedger.errors import ConfigError


@dataclass
class PipelineStats:
    """Counters of a pipeline run."""

    ticks_in: int = 0
    events: int = 0
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
    ) -> None:
        if not pairs and not symbols:
            raise ConfigError("pairs", "at least one pair is needed")
        ids = [str(spec.pair) for spec in pairs]
        if len(set(ids)) != len(ids):
            raise ConfigError("pairs", f"a pair appears twice: {ids}")
        for spec in pairs:
            if spec.params.n_legs != len(spec.pair.xs):
                raise ConfigError(
                    f"pairs.{spec.pair}.n_legs",
                    f"the pair has {len(spec.pair.xs)} hedge(s), params say {spec.params.n_legs}",
                )
        self.failures = failures if failures is not None else Failures()
        self.stats = PipelineStats(actor_errors=self.failures.counts)
        self.rejects = rejects
        self._emit = emit
        self._max_age_ns = max_age_ns
        self._clock = clock
        self.actors = [self._new_actor(spec) for spec in pairs]
        legs = {symbol for spec in pairs for symbol in spec.pair.legs} | set(symbols)
        self.symbols = tuple(sorted(legs))
        self.positive_symbols = frozenset(
            symbol for spec in pairs if spec.params.mode.logarithmic for symbol in spec.pair.legs
        ) | frozenset(positive_symbols)
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

    def _new_actor(self, spec: PairSpec) -> PairActor:
        """The actor of one pair, wired to this pipeline's output, rejects and failures."""
        return PairActor(
            spec, self._max_age_ns, self._count_and_emit, self.rejects, self.failures, self._clock
        )

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
        self.stats.stale_bars = {a.pair_id: a.stale_bars for a in self.actors if a.stale_bars}

    def on_bar_close(self, ts: int, prices: dict[str, LegPrice], ticked: frozenset[str]) -> None:
        """A bar closed at ``ts``: every actor takes it, then the bar listeners."""
        for actor in self.actors:
            actor.handle_bar(ts, prices, ticked)
        for name, listener in self.bar_listeners:
            try:
                listener(ts, prices, ticked)
            except Exception as exc:
                self.failures.record("bar listener", name, exc, ts=ts)

    def _count_and_emit(self, event: Event) -> None:
        self.stats.events += 1
        self._emit(event)
