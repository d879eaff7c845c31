"""Time bars closed on event time, and the synchronised observation each pair gets.

Bar ``k`` of length ``B`` covers event times ``[k B, (k+1) B)`` and closes at ``(k+1) B``. A
bar closes when the first tick of a later bar arrives (or at the end of a replay); in the
daemon's wall-clock mode (``clocked``) only on the clock, a tick of a later bar waiting. A tick
from the future never opens a bar (``future``, see :func:`tick_verdict`): one stamped more
than ``max_skew`` after it was received, and, in a replay, one far ahead of the stream that
the stream does not follow. At a close, the last price of each symbol in that bar is its bar
price; a symbol that did not tick keeps its earlier price with that price's age. Bars in which
none of a pair's legs ticked produce nothing for it (no events across a night or a weekend).
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind, tick_from_values, tick_values
from hedger.engine.kernels.jit import jitable
from hedger.engine.transforms import usable_price
from hedger.errors import ConfigError

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
_T = TypeVar("_T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|min|m|h|d)\s*$")


def parse_duration_ns(text: str, key: str = "bar") -> int:
    """``"250ms"``, ``"1s"``, ``"1min"`` (or ``"1m"``), ``"1h"``, ``"1d"`` -> integer ns > 0."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(key, f"must be a duration like 250ms, 1s, 1min, 1h, 1d; got {text!r}")
    unit = "min" if match.group(2) == "m" else match.group(2)
    value = round(float(match.group(1)) * _UNITS_NS[unit])
    if value <= 0:
        raise ConfigError(key, f"must be > 0, got {text!r}")
    return value


ACCEPTED, BAD_PRICE, BAD_TIMESTAMP, DUPLICATE, BACKWARDS, LATE, FUTURE = range(7)
VERDICTS = ("accepted", "bad_price", "bad_timestamp", "duplicate", "backwards", "late", "future")
"""What :func:`tick_verdict` says of a tick, by code: the reject reasons are these names."""

DEFAULT_MAX_SKEW_NS = 5_000_000_000
"""``[bars] max_skew``'s default: a live tick stamped more than 5 s after its receive time is
``future``."""
JUMP_BARS = 2
"""A recorded tick more than this many bars ahead of the current bar is a jump, which the next
ticks of the stream confirm or refute (:func:`tick_verdict`)."""
LOOKAHEAD_TIMES = 2
"""How many later times of the stream a recorded tick is judged against: a run of up to this
many bad rows in a row, each later than the one before, is refuted by the row after them."""
TAIL_STEPS = 20
"""At the end of a recorded stream (nothing after a tick to refute it), a jump is judged
against the stream's own past only once the stream has opened this many bars after its first."""
TAIL_FACTOR = 10
"""... and it is ``future`` when it is more than this many times the widest step the stream
has taken between two bars (and more than :data:`JUMP_BARS`)."""


@jitable
def is_repeat(
    last_ts: int,
    last_price: float,
    last_has_size: bool,
    last_size: float,
    ts: int,
    price: float,
    has_size: bool,
    size: float,
) -> bool:
    """Is the tick an exact repeat of the symbol's previous one (time, price and size; a NaN
    size never repeats)?"""
    if last_ts != ts or last_price != price or last_has_size != has_size:
        return False
    return not has_size or last_size == size


@jitable
def tick_verdict(
    price: float,
    ts: int,
    positive: bool,
    seen: bool,
    last_ts: int,
    repeat: bool,
    has_bar: bool,
    bar: int,
    bar_ns: int,
    ts_recv: int,
    max_skew: int,
    has_next: bool,
    next_ts: int,
    at_end: bool,
    widest: int,
    steps: int,
) -> int:
    """The one bar rule, for a tick of a known symbol: :data:`ACCEPTED` or why not, judged in
    this order.

    - ``BAD_PRICE``: :func:`~hedger.engine.transforms.usable_price` refuses it (``positive``:
      the symbol is a leg of a log-mode pair, so it needs prices > 0);
    - ``BAD_TIMESTAMP``: ``ts`` (ns since the epoch) <= 0;
    - ``FUTURE``: from the future, either
      - stamped more than ``max_skew`` ns after ``ts_recv``, its receive time (live feeds;
        recorded files have ``ts_recv == ts``, so this never fires on them), or
      - a jump the stream does not follow (recorded streams, which know ``next_ts``, the
        earliest of the next :data:`LOOKAHEAD_TIMES` times of the stream, when ``has_next``):
        more than :data:`JUMP_BARS` bars ahead of the current bar, and followed within those
        times by a tick nearer the current bar than to it (at most half as many bars ahead);
        before the first bar, a tick more than :data:`JUMP_BARS` bars after one of them.
        Time-sorted data never goes back, so this never fires on it whatever its gaps
        (nights, weekends, holidays, halts); a row stamped ahead (a clock jump, a typo in the
        year), or two such rows in a row, are followed by the stream they jumped out of;
      - at the end of a recorded stream (``at_end``: fewer than :data:`LOOKAHEAD_TIMES` times
        follow, so nothing may come to refute the jump), a jump more than :data:`TAIL_FACTOR`
        times ``widest``, the widest step between two bars the stream has taken, once it
        has taken ``steps`` >= :data:`TAIL_STEPS` of them: a last row far beyond any gap of
        the stream before it. Sorted data meets this only when its last gap is more than
        ten times every one of at least 20 gaps before it;
    - ``DUPLICATE``: an exact repeat of the symbol's previous tick (``seen``: it has one, at
      ``last_ts``; ``repeat``: :func:`is_repeat` of the two), ignored and counted apart;
    - ``BACKWARDS``: older than the symbol's previous tick;
    - ``LATE``: older than the current bar (``has_bar``: there is one, number ``bar`` of
      length ``bar_ns``): its bar has closed.

    The bar builder, its compiled twin and the price-table loader all call this function."""
    if not usable_price(price, positive):
        return BAD_PRICE
    if ts <= 0:
        return BAD_TIMESTAMP
    if ts - ts_recv > max_skew:
        return FUTURE
    if has_bar:
        jump = ts // bar_ns - bar
        if jump > JUMP_BARS:
            if has_next and next_ts // bar_ns - bar <= jump // 2:
                return FUTURE
            if at_end and steps >= TAIL_STEPS and jump > TAIL_FACTOR * widest:
                return FUTURE
    elif has_next and ts // bar_ns - next_ts // bar_ns > JUMP_BARS:  # no bar to jump from yet
        return FUTURE
    if seen:
        if repeat:
            return DUPLICATE
        if ts < last_ts:
            return BACKWARDS
    if has_bar and ts // bar_ns < bar:
        return LATE
    return ACCEPTED


def without_future_rows(
    ticks: Iterable[Tick], bar_ns: int, rejects: Rejects, source: str
) -> Iterator[Tick]:
    """``ticks`` of one recorded stream (a file) without those :func:`tick_verdict`'s jump
    tests call ``future`` (counted in ``rejects`` under ``source``), judged as
    :func:`without_future` does; every other test is left to the bars. For the streams that no
    replay's own bar builder cuts into bars: each file before a merge, a file fed to the
    daemon."""

    def refuse(tick: Tick) -> None:
        rejects.add("future", source, symbol=tick.symbol, ts=tick.ts_event)

    return without_future(ticks, _ts_event, bar_ns, refuse)


def _ts_event(tick: Tick) -> int:
    return tick.ts_event


def without_future(
    items: Iterable[_T], time_of: Callable[[_T], int], bar_ns: int, refuse: Callable[[_T], None]
) -> Iterator[_T]:
    """``items`` of one recorded stream (ticks, the rows of a wide file), in their order,
    without those from the future by :func:`tick_verdict`'s jump tests (each handed to
    ``refuse``), with the same lookahead as :class:`BarBuilder`'s, against the bar (length
    ``bar_ns``) of the latest item let through. An item's time, ns since the epoch, is
    ``time_of(item)``; one with a time <= 0 is let through for the bars to refuse."""
    bar: int | None = None
    widest = steps = 0
    waiting: deque[list[_T]] = deque()

    def judged(run: list[_T], has_next: bool, next_ts: int, at_end: bool) -> Iterator[_T]:
        nonlocal bar, widest, steps
        for item in run:
            ts = time_of(item)
            verdict = tick_verdict(
                1.0, ts, False, False, 0, False, bar is not None, bar or 0, bar_ns,
                ts, 0, has_next, next_ts, at_end, widest, steps,
            )  # fmt: skip
            if verdict == FUTURE:
                refuse(item)
                continue
            if bar is None:
                bar = ts // bar_ns
            elif ts // bar_ns > bar:
                widest, steps = max(widest, ts // bar_ns - bar), steps + 1
                bar = ts // bar_ns
            yield item

    for item in items:
        ts = time_of(item)
        if ts <= 0:
            yield item
        elif waiting and time_of(waiting[-1][0]) == ts:
            waiting[-1].append(item)
        else:
            waiting.append([item])
            if len(waiting) > LOOKAHEAD_TIMES:
                run = waiting.popleft()
                yield from judged(run, True, min(time_of(r[0]) for r in waiting), False)
    while waiting:
        run = waiting.popleft()
        next_ts = min((time_of(r[0]) for r in waiting), default=0)
        yield from judged(run, bool(waiting), next_ts, True)


def _repeats(last: Tick, tick: Tick) -> bool:
    """:func:`is_repeat` of two ticks (a size of ``None``: the tick has none)."""
    return is_repeat(
        last.ts_event,
        last.price,
        last.size is not None,
        math.nan if last.size is None else last.size,
        tick.ts_event,
        tick.price,
        tick.size is not None,
        math.nan if tick.size is None else tick.size,
    )


@dataclass(frozen=True, slots=True)
class LegPrice:
    """A symbol's price at a bar close: the price, when it was set (ns), and whether it was
    set during the bar that just closed."""

    price: float
    ts: int
    in_bar: bool


BarHandler = Callable[[int, dict[str, LegPrice], frozenset[str]], None]
"""Called at each bar close with (close ts ns, prices of every symbol seen so far, symbols
that ticked in the bar)."""


class BarBuilder:
    """Turns ticks (any order of symbols, event time non-decreasing per bar) into bar closes.

    ``symbols``: the symbols bars carry (``None``: every symbol that ticks).

    Rejects (counted in ``rejects``): ``unknown_symbol``, then :func:`tick_verdict`'s
    ``bad_price`` (NaN, inf, out of range, or <= 0 for a symbol in ``positive_symbols``),
    ``bad_timestamp``, ``future``, ``backwards`` and ``late``. Exact repeats of a symbol's
    previous tick are ignored and counted in ``duplicates``; quotes are skipped when bars use
    trades and vice versa.

    ``max_skew_ns``: how far a tick's ``ts_event`` may be ahead of its ``ts_recv``.
    ``lookahead``: for recorded streams (replays): each tick is judged once ticks of
    :data:`LOOKAHEAD_TIMES` other times (of symbols the bars carry, with times > 0) have
    followed it, or at :meth:`flush`, so that a jump ahead that the stream does not follow is
    ``future``. Ticks of one time wait together; live streams leave it off (no tick waits).

    ``clocked`` (the daemon's wall-clock mode; set it before the first tick): a clock closes
    bars through :meth:`close_until`, so a tick of a later bar does not close the current
    one: it is held, and enters its bar once the clock has closed the bars before it. A
    lagging feed's tick of the current bar is then still taken until the clock closes it
    (bar end + grace). Off (replays), the first tick of a later bar closes the current one.
    """

    def __init__(
        self,
        bar_ns: int,
        symbols: Iterable[str] | None,
        on_bar: BarHandler,
        rejects: Rejects,
        *,
        price_source: TickKind = TickKind.TRADE,
        positive_symbols: Iterable[str] = (),
        max_skew_ns: int = DEFAULT_MAX_SKEW_NS,
        lookahead: bool = False,
    ) -> None:
        if bar_ns <= 0:
            raise ConfigError("bar", "must be > 0")
        self.max_skew_ns = max_skew_ns
        self.lookahead = lookahead
        self._waiting: deque[list[Tick]] = deque()
        """Lookahead: the ticks waiting for later times, one list per run of one time."""
        self._widest = 0
        """The widest step between two bars so far (bars), and how many steps (bars opened
        after the first): what a jump at the end of a recorded stream is judged against."""
        self._steps = 0
        self.clocked = False
        self._held: list[Tick] = []
        """Clocked: accepted ticks of bars after the current one, in arrival order."""
        self.bar_ns = bar_ns
        self._symbols = None if symbols is None else frozenset(symbols)
        self._on_bar = on_bar
        self._rejects = rejects
        self._source = price_source
        self._positive = frozenset(positive_symbols)
        self._bar: int | None = None
        self._prices: dict[str, LegPrice] = {}
        self._ticked: set[str] = set()
        self._last: dict[str, Tick] = {}
        """Each symbol's last accepted tick."""
        self.duplicates = 0
        self.skipped_kind = 0
        self.bars_closed = 0
        self.ticks_accepted = 0

    def add_symbols(self, symbols: Iterable[str], positive_symbols: Iterable[str]) -> None:
        """Carry ``symbols`` from now on (besides those already carried; a builder that takes
        every symbol is left as it is), and make ``positive_symbols`` the whole set of
        symbols whose prices must be > 0 (a pair added or removed at run time). Ticks
        already judged stay judged: an earlier tick of a new symbol stays unknown."""
        if self._symbols is not None:
            self._symbols = self._symbols | frozenset(symbols)
        self._positive = frozenset(positive_symbols)

    def on_tick(self, tick: Tick) -> None:
        """Take one tick; may close the current bar first."""
        symbol = tick.symbol
        if self._symbols is not None and symbol not in self._symbols:
            self._rejects.add("unknown_symbol", tick.venue, symbol=symbol)
            return
        if tick.kind is not self._source:
            self.skipped_kind += 1
            return
        if not self.lookahead or tick.ts_event <= 0:  # a time <= 0 is refused whatever follows
            self._judge(tick, False, 0)
            return
        waiting = self._waiting
        if waiting and waiting[-1][0].ts_event == tick.ts_event:
            waiting[-1].append(tick)
            return
        waiting.append([tick])
        if len(waiting) > LOOKAHEAD_TIMES:
            earliest = waiting.popleft()
            next_ts = min(run[0].ts_event for run in waiting)
            for earlier in earliest:
                self._judge(earlier, True, next_ts)

    def _judge(self, tick: Tick, has_next: bool, next_ts: int, at_end: bool = False) -> None:
        symbol = tick.symbol
        price, ts = tick.price, tick.ts_event
        last = self._last.get(symbol)
        current = self._bar
        verdict = tick_verdict(
            price,
            ts,
            symbol in self._positive,
            last is not None,
            0 if last is None else last.ts_event,
            # is_repeat needs equal times: asking only then keeps the common tick to one call
            last is not None and last.ts_event == ts and _repeats(last, tick),
            current is not None,
            0 if current is None else current,
            self.bar_ns,
            tick.ts_recv,
            self.max_skew_ns,
            has_next,
            next_ts,
            at_end,
            self._widest,
            self._steps,
        )
        if verdict != ACCEPTED:
            self._refuse(verdict, tick, last)
            return
        bar = ts // self.bar_ns
        self._last[symbol] = tick
        self.ticks_accepted += 1
        if current is None:
            self._bar = bar
        elif bar > current:
            self._widest = max(self._widest, bar - current)
            self._steps += 1
            if self.clocked:
                self._held.append(tick)
                return
            self._close()
            self._bar = bar
        self._prices[symbol] = LegPrice(price, ts, True)
        self._ticked.add(symbol)

    def _refuse(self, verdict: int, tick: Tick, previous: Tick | None) -> None:
        if verdict == DUPLICATE:
            self.duplicates += 1
            return
        detail: dict[str, object] = {"symbol": tick.symbol}
        if verdict == BAD_PRICE:
            detail["price"] = repr(tick.price)
        else:
            detail["ts"] = tick.ts_event
        if verdict == FUTURE:
            detail["ts_recv"] = tick.ts_recv
        if verdict == BACKWARDS and previous is not None:
            detail["previous"] = previous.ts_event
        self._rejects.add(VERDICTS[verdict], tick.venue, **detail)

    def close_until(self, ts: int) -> None:
        """Close every bar that ends at or before ``ts`` (a clock's now, ns); held ticks
        (``clocked``) enter their bars as those become current."""
        bar_ns = self.bar_ns
        if self._bar is None and self.clocked:
            self._bar = ts // bar_ns  # the clock's open bar: earlier ticks are late
        while self._bar is not None and ts >= (self._bar + 1) * bar_ns:
            self._close()
            self._bar = ts // bar_ns
            if self._held:
                self._bar = min(self._bar, min(t.ts_event for t in self._held) // bar_ns)
                self._take_held()

    def set_clocked(self, on: bool) -> None:
        """Switch the bars to (``on``) or from the clock while running (a restarted daemon
        closes the backlog its broker held on event time, then hands the bars to its clock).
        Switching off, the held ticks enter their bars as the first tick of a later bar
        would: each closes the current bar and opens its own."""
        if not on and self._held:
            held, self._held = self._held, []
            for tick in held:
                bar = tick.ts_event // self.bar_ns
                if self._bar is not None and bar > self._bar:
                    self._close()
                    self._bar = bar
                self._prices[tick.symbol] = LegPrice(tick.price, tick.ts_event, True)
                self._ticked.add(tick.symbol)
        self.clocked = on

    def flush(self) -> None:
        """Judge the ticks still waiting for later times (lookahead: at the end of the
        stream), then close the current bar and the bars of held ticks (``clocked``): the end
        of a replay, or of a daemon."""
        waiting = self._waiting
        while waiting:
            earliest = waiting.popleft()
            next_ts = min((run[0].ts_event for run in waiting), default=0)
            for tick in earliest:
                self._judge(tick, bool(waiting), next_ts, True)
        if self._held:
            last = max(tick.ts_event for tick in self._held)
            self.close_until(last // self.bar_ns * self.bar_ns)
        if self._bar is not None and self._ticked:
            self._close()

    def snapshot(self) -> dict[str, Any]:
        """The builder's whole state as plain values (a checkpoint, for :meth:`restore`): the
        open bar, each symbol's price and last accepted tick, the ticks held or waiting, and
        the counters."""
        return {
            "bar": self._bar,
            "prices": {s: [leg.price, leg.ts, leg.in_bar] for s, leg in self._prices.items()},
            "ticked": sorted(self._ticked),
            "last": {symbol: tick_values(tick) for symbol, tick in self._last.items()},
            "held": [tick_values(tick) for tick in self._held],
            "waiting": [[tick_values(tick) for tick in run] for run in self._waiting],
            "widest": self._widest,
            "steps": self._steps,
            "counters": [self.duplicates, self.skipped_kind, self.bars_closed, self.ticks_accepted],
            "clocked": self.clocked,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot`. Symbols this builder does not carry are left
        out (a pair of the saved run is no longer configured); raises ``ValueError`` (or
        ``KeyError``, ``TypeError``) for a state that does not parse, changing nothing."""
        carried = self._symbols

        def kept(symbol: str) -> bool:
            return carried is None or symbol in carried

        bar = state["bar"]
        prices = {
            str(s): LegPrice(float(p), int(ts), bool(in_bar))
            for s, (p, ts, in_bar) in state["prices"].items()
            if kept(s)
        }
        last = {str(s): tick_from_values(v) for s, v in state["last"].items() if kept(s)}
        held = [tick_from_values(v) for v in state["held"]]
        waiting = deque([tick_from_values(v) for v in run] for run in state["waiting"])
        counters = [int(v) for v in state["counters"]]
        self._bar = None if bar is None else int(bar)
        self._prices = prices
        self._ticked = {str(s) for s in state["ticked"] if kept(s)}
        self._last = last
        self._held = [tick for tick in held if kept(tick.symbol)]
        self._waiting = deque(run for run in waiting if run)
        self._widest, self._steps = int(state["widest"]), int(state["steps"])
        self.duplicates, self.skipped_kind, self.bars_closed, self.ticks_accepted = counters
        self.clocked = bool(state["clocked"])

    def _take_held(self) -> None:
        """Held ticks of the (new) current bar enter it; later ones stay held."""
        bar, bar_ns, kept = self._bar, self.bar_ns, []
        for tick in self._held:
            if tick.ts_event // bar_ns == bar:
                self._prices[tick.symbol] = LegPrice(tick.price, tick.ts_event, True)
                self._ticked.add(tick.symbol)
            else:
                kept.append(tick)
        self._held = kept

    def _close(self) -> None:
        if not self._ticked:
            return
        assert self._bar is not None
        close_ts = (self._bar + 1) * self.bar_ns
        ticked = frozenset(self._ticked)
        self._on_bar(close_ts, dict(self._prices), ticked)
        for symbol in ticked:
            leg = self._prices[symbol]
            self._prices[symbol] = LegPrice(leg.price, leg.ts, False)
        self._ticked.clear()
        self.bars_closed += 1
