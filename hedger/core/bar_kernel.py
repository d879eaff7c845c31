"""The bar builder compiled, for replays of long tick files: over arrays of parsed ticks it
judges every tick by the same function as :class:`hedger.core.bars.BarBuilder`
(:func:`~hedger.core.bars.tick_verdict`, compiled inline), after the same unknown-symbol check,
and produces the same bar closes. Tests hold the two to identical events. With ``lookahead``
(replays), each tick is judged knowing the earliest of the next
:data:`~hedger.core.bars.LOOKAHEAD_TIMES` times, as the bar builder does: the ticks of a
block's last times wait for the next block (or :meth:`CompiledBars.flush`, the end)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hedger.core.bars import (
    ACCEPTED,
    DEFAULT_MAX_SKEW_NS,
    DUPLICATE,
    LOOKAHEAD_TIMES,
    VERDICTS,
    BarHandler,
    LegPrice,
    is_repeat,
    tick_verdict,
)
from hedger.core.ticks import TickColumns
from hedger.engine.kernels.jit import compiled

BarArraysHandler = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], bool]
"""A bar close as arrays (S,) over the symbol table: close ts (ns), prices, their times (ns),
whether each ticked in the bar, whether each has a price; True if it was taken."""

UNKNOWN_SYMBOL = len(VERDICTS)
"""The counter after the verdicts' own: ticks of a symbol outside the table."""
COUNTER_NAMES = (*VERDICTS, "unknown_symbol")


@compiled
def _lookahead(
    ts: np.ndarray, sym: np.ndarray, ok: np.ndarray, next_ts: np.ndarray, has_next: np.ndarray
) -> int:
    """Fill ``next_ts``/``has_next`` with, for each row the bars carry (``ok``, a known symbol,
    a time > 0), the earliest time of the next :data:`LOOKAHEAD_TIMES` runs of one time after
    its own run (as many as there are). Returns the index of the first such row with fewer
    runs after it (the rows from there wait for more input), or the length."""
    n: int = ts.shape[0]
    after = np.zeros(LOOKAHEAD_TIMES, dtype=np.int64)  # the times of the runs after, nearest first
    n_after = 0
    cur = 0
    have_cur = False
    first_waiting = n
    for i in range(n - 1, -1, -1):
        t = ts[i]
        if not ok[i] or sym[i] < 0 or t <= 0:
            continue
        if not have_cur or t != cur:
            if have_cur:  # the run of ``cur`` is now the nearest after
                for k in range(LOOKAHEAD_TIMES - 1, 0, -1):
                    after[k] = after[k - 1]
                after[0] = cur
                n_after = min(n_after + 1, LOOKAHEAD_TIMES)
            cur = t
            have_cur = True
        earliest = 0
        for k in range(n_after):
            if k == 0 or after[k] < earliest:
                earliest = after[k]
        next_ts[i] = earliest
        has_next[i] = n_after > 0
        if n_after < LOOKAHEAD_TIMES:
            first_waiting = i
    return first_waiting


@compiled
def _bar_pass(
    ts: np.ndarray,
    sym: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
    has_size: np.ndarray,
    ok: np.ndarray,
    next_ts: np.ndarray,
    has_next: np.ndarray,
    at_end: bool,
    bar_ns: int,
    max_skew: int,
    positive: np.ndarray,
    clock: np.ndarray,
    seen: np.ndarray,
    last_ts: np.ndarray,
    last_price: np.ndarray,
    last_size: np.ndarray,
    last_has_size: np.ndarray,
    px: np.ndarray,
    px_ts: np.ndarray,
    in_bar: np.ndarray,
    counts: np.ndarray,
    out_ts: np.ndarray,
    out_px: np.ndarray,
    out_px_ts: np.ndarray,
    out_in_bar: np.ndarray,
    out_seen: np.ndarray,
) -> int:
    """One block of ticks through the bar rules; state arrays (per symbol, and ``clock`` =
    [has a bar, current bar index, symbols ticked in it, widest step between bars, steps])
    carry over between blocks. ``at_end``: the rows are the last of the input. Returns the
    number of bar closes written to the outputs."""
    n_closes = 0
    for i in range(ts.shape[0]):
        if not ok[i]:
            continue
        s = sym[i]
        if s < 0:
            counts[UNKNOWN_SYMBOL] += 1
            continue
        p = price[i]
        t = ts[i]
        verdict = tick_verdict(
            p,
            t,
            positive[s],
            seen[s],
            last_ts[s],
            seen[s]
            and is_repeat(
                last_ts[s], last_price[s], last_has_size[s], last_size[s],
                t, p, has_size[i], size[i],
            ),
            clock[0] != 0,
            clock[1],
            bar_ns,
            t,  # recorded ticks: received when stamped
            max_skew,
            has_next[i],
            next_ts[i],
            at_end,
            clock[3],
            clock[4],
        )  # fmt: skip
        if verdict != ACCEPTED:
            counts[verdict] += 1
            continue
        bar = t // bar_ns
        if clock[0] == 0:
            clock[0] = 1
            clock[1] = bar
        elif bar > clock[1]:
            clock[3] = max(clock[3], bar - clock[1])
            clock[4] += 1
            if clock[2] > 0:
                out_ts[n_closes] = (clock[1] + 1) * bar_ns
                for k in range(px.shape[0]):
                    out_px[n_closes, k] = px[k]
                    out_px_ts[n_closes, k] = px_ts[k]
                    out_in_bar[n_closes, k] = in_bar[k]
                    out_seen[n_closes, k] = seen[k]
                    in_bar[k] = False
                n_closes += 1
                clock[2] = 0
            clock[1] = bar
        seen[s] = True
        last_ts[s] = t
        last_price[s] = p
        last_size[s] = size[i]
        last_has_size[s] = has_size[i]
        px[s] = p
        px_ts[s] = t
        if not in_bar[s]:
            in_bar[s] = True
            clock[2] += 1
        counts[ACCEPTED] += 1
    return n_closes


@dataclass
class CompiledBars:
    """Bar state for the compiled path, over a fixed symbol table."""

    symbols: tuple[str, ...]
    bar_ns: int
    on_bar_close: BarHandler
    positive_symbols: frozenset[str] = frozenset()
    max_skew_ns: int = DEFAULT_MAX_SKEW_NS
    lookahead: bool = False
    on_bar_arrays: BarArraysHandler | None = None
    """Offered each close first as arrays over :attr:`symbols` (close ts, prices, their
    times, ticked in the bar, has a price); when it returns False the close goes to
    ``on_bar_close`` as the bar handler's usual arguments."""

    def __post_init__(self) -> None:
        n = len(self.symbols)
        self._waiting: TickColumns | None = None
        """Lookahead: the rows of the last block from its first row without a next time."""
        self._clock = np.zeros(5, dtype=np.int64)
        self._seen = np.zeros(n, dtype=np.bool_)
        self._last_ts = np.zeros(n, dtype=np.int64)
        self._last_price = np.zeros(n)
        self._last_size = np.zeros(n)
        self._last_has_size = np.zeros(n, dtype=np.bool_)
        self._px = np.zeros(n)
        self._px_ts = np.zeros(n, dtype=np.int64)
        self._in_bar = np.zeros(n, dtype=np.bool_)
        self._positive = np.array([s in self.positive_symbols for s in self.symbols], np.bool_)
        self.counts = np.zeros(len(COUNTER_NAMES), dtype=np.int64)
        self.bars_closed = 0

    def feed(self, ticks: TickColumns) -> None:
        """Run one block of parsed trades (``ticks.sym`` indexes :attr:`symbols`) through the
        bar rules."""
        if not self.lookahead:
            self._pass(ticks, np.zeros(ticks.ts.shape[0], dtype=np.bool_))
            return
        if self._waiting is not None:
            pairs = zip(_fields(self._waiting), _fields(ticks), strict=True)
            ticks = TickColumns(*(np.concatenate(pair) for pair in pairs))
        n = int(ticks.ts.shape[0])
        next_ts = np.zeros(n, dtype=np.int64)
        has_next = np.zeros(n, dtype=np.bool_)
        ready = _lookahead(ticks.ts, ticks.sym, ticks.ok, next_ts, has_next)
        self._waiting = TickColumns(*(column[ready:] for column in _fields(ticks)))
        now = TickColumns(*(column[:ready] for column in _fields(ticks)))
        self._pass(now, has_next[:ready], next_ts[:ready])

    def _pass(
        self,
        ticks: TickColumns,
        has_next: np.ndarray,
        next_ts: np.ndarray | None = None,
        at_end: bool = False,
    ) -> None:
        ts, sym, price, size, has_size, ok = _fields(ticks)
        if next_ts is None:
            next_ts = np.zeros(ts.shape[0], dtype=np.int64)
        cap = int(ts.shape[0]) + 1
        n = len(self.symbols)
        out_ts = np.empty(cap, dtype=np.int64)
        out_px = np.empty((cap, n))
        out_px_ts = np.empty((cap, n), dtype=np.int64)
        out_in_bar = np.empty((cap, n), dtype=np.bool_)
        out_seen = np.empty((cap, n), dtype=np.bool_)
        closes = _bar_pass(
            ts, sym, price, size, has_size, ok, next_ts, has_next, at_end, self.bar_ns,
            self.max_skew_ns, self._positive, self._clock,
            self._seen, self._last_ts, self._last_price, self._last_size, self._last_has_size,
            self._px, self._px_ts, self._in_bar, self.counts, out_ts, out_px, out_px_ts,
            out_in_bar, out_seen,
        )  # fmt: skip
        for j in range(closes):
            self._emit(int(out_ts[j]), out_px[j], out_px_ts[j], out_in_bar[j], out_seen[j])

    def flush(self) -> None:
        """Judge the rows still waiting for later times (with those there are: the end of the
        input), then close the current bar if anything ticked in it."""
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            n = int(waiting.ts.shape[0])
            next_ts = np.zeros(n, dtype=np.int64)
            has_next = np.zeros(n, dtype=np.bool_)
            _lookahead(waiting.ts, waiting.sym, waiting.ok, next_ts, has_next)
            self._pass(waiting, has_next, next_ts, at_end=True)
        if self._clock[0] and self._clock[2] > 0:
            close_ts = int((self._clock[1] + 1) * self.bar_ns)
            self._emit(close_ts, self._px, self._px_ts, self._in_bar, self._seen)
            self._in_bar[:] = False
            self._clock[2] = 0

    def _emit(
        self,
        close_ts: int,
        px: np.ndarray,
        px_ts: np.ndarray,
        in_bar: np.ndarray,
        seen: np.ndarray,
    ) -> None:
        self.bars_closed += 1
        if self.on_bar_arrays is not None and self.on_bar_arrays(close_ts, px, px_ts, in_bar, seen):
            return
        symbols = self.symbols
        prices = {
            symbols[k]: LegPrice(float(px[k]), int(px_ts[k]), bool(in_bar[k]))
            for k in range(len(symbols))
            if seen[k]
        }
        ticked = frozenset(symbols[k] for k in range(len(symbols)) if in_bar[k])
        self.on_bar_close(close_ts, prices, ticked)

    def rejects(self) -> dict[str, int]:
        """Counts by reason of the ticks the bar rules refused."""
        return {
            name: int(self.counts[i])
            for i, name in enumerate(COUNTER_NAMES)
            if self.counts[i] and i not in (ACCEPTED, DUPLICATE)
        }

    @property
    def duplicates(self) -> int:
        """Exact repeats ignored."""
        return int(self.counts[DUPLICATE])


def _fields(
    ticks: TickColumns,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return ticks.ts, ticks.sym, ticks.price, ticks.size, ticks.has_size, ticks.ok
