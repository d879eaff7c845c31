"""Time bars closed on event time, and the synchronised observation each pair gets.

Bar ``k`` of length ``B`` covers event times ``[k B, (k+1) B)`` and closes at ``(k+1) B``. A
bar closes when the first tick of a later bar arrives (or at the end of a replay, or on the
daemon's clock). At a close, the last price of each symbol in that bar is its bar price; a
symbol that did not tick keeps its earlier price with that price's age. Bars in which none of a
pair's legs ticked produce nothing for it (no events across a night or a weekend).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind
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

    Rejects (counted in ``rejects``): ``unknown_symbol``, ``bad_price`` (NaN, inf, <= 0),
    ``bad_timestamp`` (<= 0), ``late`` (older than the current bar), ``backwards`` (older than
    the symbol's previous tick). Exact repeats of a symbol's previous tick are ignored and
    counted in ``duplicates``; quotes are skipped when bars use trades and vice versa.
    """

    def __init__(
        self,
        bar_ns: int,
        symbols: Iterable[str],
        on_bar: BarHandler,
        rejects: Rejects,
        *,
        price_source: TickKind = TickKind.TRADE,
    ) -> None:
        if bar_ns <= 0:
            raise ConfigError("bar", "must be > 0")
        self.bar_ns = bar_ns
        self._symbols = frozenset(symbols)
        self._on_bar = on_bar
        self._rejects = rejects
        self._source = price_source
        self._bar: int | None = None
        self._prices: dict[str, LegPrice] = {}
        self._ticked: set[str] = set()
        self._last: dict[str, tuple[int, float, float | None]] = {}
        self.duplicates = 0
        self.skipped_kind = 0
        self.bars_closed = 0
        self.ticks_accepted = 0

    def on_tick(self, tick: Tick) -> None:
        """Take one tick; may close the current bar first."""
        symbol = tick.symbol
        if symbol not in self._symbols:
            self._rejects.add("unknown_symbol", tick.venue, symbol=symbol)
            return
        if tick.kind is not self._source:
            self.skipped_kind += 1
            return
        price = tick.price
        if not (price > 0.0 and price != math.inf):
            self._rejects.add("bad_price", tick.venue, symbol=symbol, price=repr(price))
            return
        ts = tick.ts_event
        if ts <= 0:
            self._rejects.add("bad_timestamp", tick.venue, symbol=symbol, ts=ts)
            return
        previous = self._last.get(symbol)
        if previous is not None:
            if previous == (ts, price, tick.size):
                self.duplicates += 1
                return
            if ts < previous[0]:
                self._rejects.add(
                    "backwards", tick.venue, symbol=symbol, ts=ts, previous=previous[0]
                )
                return
        bar = ts // self.bar_ns
        current = self._bar
        if current is None:
            self._bar = bar
        elif bar > current:
            self._close()
            self._bar = bar
        elif bar < current:
            self._rejects.add("late", tick.venue, symbol=symbol, ts=ts)
            return
        self._last[symbol] = (ts, price, tick.size)
        self._prices[symbol] = LegPrice(price, ts, True)
        self._ticked.add(symbol)
        self.ticks_accepted += 1

    def close_until(self, ts: int) -> None:
        """Close the current bar if ``ts`` (a clock's now, ns) is at or past its end."""
        if self._bar is not None and ts >= (self._bar + 1) * self.bar_ns:
            self._close()
            self._bar = ts // self.bar_ns

    def flush(self) -> None:
        """Close the current bar (end of a replay)."""
        if self._bar is not None and self._ticked:
            self._close()

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
