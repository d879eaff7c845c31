"""One bar rule and one price rule: the bar builder, its compiled twin, the price-table loader
and the engine judge every tick and price alike, on ticks that are late, backwards, repeated,
from the future, non-positive, out of range or not numbers at all."""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hedger.core.bar_kernel import CompiledBars
from hedger.core.bars import (
    JUMP_BARS,
    LOOKAHEAD_TIMES,
    TAIL_FACTOR,
    TAIL_STEPS,
    BarBuilder,
    LegPrice,
)
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickColumns
from hedger.engine import InputMode
from hedger.engine.matrix import clean_prices
from hedger.engine.transforms import MAX_ABS_PRICE, check_price, usable_price
from hedger.errors import BadInputError
from hedger.research.prices import load_prices

BAR_NS = 1_000_000_000
PRICES = [10.0, 10.5, 11.25, 0.0, -2.0, math.nan, math.inf, -math.inf, 2 * MAX_ABS_PRICE]
TABLE = ("A", "B")  # the bar builders' symbols; C is unknown to them

Bar = tuple[int, dict[str, LegPrice], frozenset[str]]

YEAR_2100 = 4_102_444_800 * BAR_NS
times = st.one_of(
    st.integers(-1, 60).map(lambda k: k * BAR_NS // 4),  # four ticks a bar; some <= 0
    st.sampled_from([YEAR_2100, 60 * BAR_NS]),  # from the future
)
ticks_strategy = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.sampled_from(PRICES),
        times,
        st.sampled_from([None, 1.0, 2.0]),
    ),
    max_size=60,
)


def _ticks(rows: Sequence[tuple[str, float, int, float | None]]) -> list[Tick]:
    return [Tick(sym, price, ts, ts, size, "test") for sym, price, ts, size in rows]


def _streaming(
    ticks: list[Tick],
    positive: frozenset[str],
    symbols: tuple[str, ...] | None,
    lookahead: bool = False,
) -> tuple[list[Bar], dict[str, int], int]:
    bars: list[Bar] = []
    rejects = Rejects()
    builder = BarBuilder(
        BAR_NS,
        symbols,
        lambda *bar: bars.append(bar),
        rejects,
        positive_symbols=positive,
        lookahead=lookahead,
    )
    for tick in ticks:
        builder.on_tick(tick)
    builder.flush()
    return bars, rejects.summary(), builder.duplicates


def _columns(ticks: list[Tick], ok: list[bool] | None = None) -> TickColumns:
    index = {symbol: i for i, symbol in enumerate(TABLE)}
    return TickColumns(
        np.array([t.ts_event for t in ticks], dtype=np.int64),
        np.array([index.get(t.symbol, -1) for t in ticks], dtype=np.int64),
        np.array([t.price for t in ticks], dtype=np.float64),
        np.array([math.nan if t.size is None else t.size for t in ticks], dtype=np.float64),
        np.array([t.size is not None for t in ticks], dtype=np.bool_),
        np.ones(len(ticks), dtype=np.bool_) if ok is None else np.array(ok, dtype=np.bool_),
    )


@settings(max_examples=300, deadline=None)
@given(
    rows=ticks_strategy,
    positive=st.sampled_from([frozenset(), frozenset({"B"})]),
    lookahead=st.booleans(),
    cuts=st.lists(st.integers(0, 60), max_size=3),
)
def test_the_compiled_bars_judge_every_tick_as_the_bar_builder(
    rows: list[tuple[str, float, int, float | None]],
    positive: frozenset[str],
    lookahead: bool,
    cuts: list[int],
) -> None:
    """Also with lookahead (replays), over blocks cut anywhere: a tick waiting for the next
    time at the end of a block is judged with the next block."""
    ticks = _ticks(rows)
    expected, expected_rejects, expected_duplicates = _streaming(ticks, positive, TABLE, lookahead)
    got: list[Bar] = []
    compiled = CompiledBars(
        TABLE, BAR_NS, lambda *bar: got.append(bar), positive, lookahead=lookahead
    )
    bounds = [0, *sorted(min(cut, len(ticks)) for cut in cuts), len(ticks)]
    for start, stop in itertools.pairwise(bounds):
        compiled.feed(_columns(ticks[start:stop]))
    compiled.flush()
    assert got == expected
    assert compiled.rejects() == expected_rejects
    assert compiled.duplicates == expected_duplicates


def test_rows_the_reader_refused_neither_wait_nor_serve_as_the_next_time() -> None:
    ticks = _ticks([("A", 10.0, BAR_NS, None), ("A", 11.0, YEAR_2100, None)])
    ticks += _ticks([("A", 12.0, 2 * BAR_NS, None), ("A", 13.0, 3 * BAR_NS, None)])
    got: list[Bar] = []
    compiled = CompiledBars(TABLE, BAR_NS, lambda *bar: got.append(bar), lookahead=True)
    compiled.feed(_columns(ticks, ok=[True, True, False, True]))
    compiled.flush()
    assert compiled.rejects() == {"future": 1}  # refuted by the tick at 3 s, not the refused row
    assert [ts for ts, _, _ in got] == [2 * BAR_NS, 4 * BAR_NS]


sorted_gaps = st.lists(
    st.one_of(st.integers(0, 3), st.integers(0, 10_000), st.just(3 * 86_400)).map(
        lambda k: k * BAR_NS // 4
    ),
    max_size=60,
)


def _tail_exceptional(bars: Sequence[int], jump_bar: int) -> bool:
    """Would a stream whose accepted ticks opened ``bars`` (bar numbers, in order) refuse a
    tick of bar ``jump_bar`` at its end: the tail test of ``tick_verdict``, written out."""
    steps = [b - a for a, b in itertools.pairwise(bars) if b > a]
    jump = jump_bar - bars[-1]
    return jump > JUMP_BARS and len(steps) >= TAIL_STEPS and jump > TAIL_FACTOR * max(steps)


def _opened(ts: Sequence[int]) -> list[int]:
    """The bars a time-sorted stream opens, in order."""
    return sorted({t // BAR_NS for t in ts})


@settings(max_examples=200, deadline=None)
@given(gaps=sorted_gaps, symbols=st.lists(st.sampled_from(["A", "B"]), min_size=60))
def test_a_stream_in_time_order_has_no_future_tick_whatever_its_gaps(
    gaps: list[int], symbols: list[str]
) -> None:
    """The only exception, at the end: a last gap more than ``TAIL_FACTOR`` times every one of
    at least ``TAIL_STEPS`` gaps before it (the tail test); none of these streams has one
    unless it is made so (below)."""
    ts = np.cumsum([BAR_NS, *gaps]).tolist()
    rows = [(symbols[i], 10.0 + i, int(t), None) for i, t in enumerate(ts)]
    opened = _opened(ts)
    tail = len(opened) > 1 and _tail_exceptional(opened[:-1], opened[-1])
    bars, rejects, _ = _streaming(_ticks(rows), frozenset(), TABLE, lookahead=True)
    if not tail:
        assert "future" not in rejects
        assert bars == _streaming(_ticks(rows), frozenset(), TABLE)[0]
    # bounded steps and a last gap within ten times the widest: never a future tick
    bounded = [min(g, 3 * BAR_NS // 4) for g in gaps]
    ts = np.cumsum([BAR_NS, *bounded]).tolist()
    rows = [(symbols[i], 10.0 + i, int(t), None) for i, t in enumerate(ts)]
    assert "future" not in _streaming(_ticks(rows), frozenset(), TABLE, lookahead=True)[1]


def _plant(
    rows: list[tuple[str, float, int, None]], at: int, times: Sequence[int]
) -> list[tuple[str, float, int, None]]:
    return [
        *rows[: at + 1],
        *(("A", 99.0 + k, t, None) for k, t in enumerate(times)),
        *rows[at + 1 :],
    ]


bogus_ahead = st.one_of(st.integers(JUMP_BARS + 1, 10**6).map(lambda k: k * BAR_NS), st.just(0))


@settings(max_examples=200, deadline=None)
@given(gaps=sorted_gaps, at=st.integers(0, 59), ahead=bogus_ahead)
def test_one_row_far_ahead_of_a_stream_in_time_order_is_future_and_nothing_else_changes(
    gaps: list[int], at: int, ahead: int
) -> None:
    """A row more than two bars ahead of the stream, stamped ``ahead`` on or in 2100 (``ahead``
    0): future when one of the next ``LOOKAHEAD_TIMES`` times of the stream comes back within
    half its jump, or, at the end, when the tail test refuses it; else taken."""
    ts = np.cumsum([BAR_NS, *gaps]).tolist()
    rows = [("AB"[i % 2], 10.0 + i, int(t), None) for i, t in enumerate(ts)]
    at = min(at, len(rows) - 1)
    bogus_ts = YEAR_2100 if ahead == 0 else rows[at][2] // BAR_NS * BAR_NS + ahead + BAR_NS
    bar = rows[at][2] // BAR_NS  # the current bar when the bogus row comes
    jump = bogus_ts // BAR_NS - bar
    later = sorted({t for _, _, t, _ in rows[at + 1 :]})[:LOOKAHEAD_TIMES]
    followed = any(t // BAR_NS - bar <= jump // 2 for t in later)
    at_end = len(later) < LOOKAHEAD_TIMES
    refused = followed or (at_end and _tail_exceptional(_opened(ts[: at + 1]), bar + jump))
    clean_bars, _, _ = _streaming(_ticks(rows), frozenset(), TABLE, lookahead=True)
    bars, rejects, _ = _streaming(_ticks(_plant(rows, at, [bogus_ts])), frozenset(), TABLE, True)
    assert jump > JUMP_BARS
    if refused:  # the row is future, and only it
        assert rejects == {"future": 1}
        assert bars == clean_bars
    else:  # the stream follows it: it is taken, and rows before it may be late
        assert "future" not in rejects


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 8).map(lambda k: k * BAR_NS // 4), min_size=120, max_size=160),
    at=st.integers(0, 200),
    first=bogus_ahead,
    further=st.integers(1, 10**4).map(lambda k: k * BAR_NS),
    compiled_cut=st.integers(0, 200),
)
def test_two_bad_rows_in_a_row_the_second_later_and_bad_last_rows_are_future(
    gaps: list[int], at: int, first: int, further: int, compiled_cut: int
) -> None:
    """Two rows far ahead in a row, the second later than the first, anywhere in a stream
    with steps of at most two bars, or as its last rows (nothing after them): both future,
    the bars unchanged, on both bar paths (cut into two blocks anywhere)."""
    ts = np.cumsum([BAR_NS, *gaps]).tolist()
    rows = [("AB"[i % 2], 10.0 + i, int(t), None) for i, t in enumerate(ts)]
    at = min(at, len(rows) - 1)
    base = rows[at][2] // BAR_NS * BAR_NS + BAR_NS
    one = YEAR_2100 if first == 0 else base + 50 * BAR_NS + first
    two = one + further
    planted = _plant(rows, at, [one, two])
    clean_bars, _, _ = _streaming(_ticks(rows), frozenset(), TABLE, lookahead=True)
    bars, rejects, _ = _streaming(_ticks(planted), frozenset(), TABLE, lookahead=True)
    if at < len(rows) - 1 or len(_opened(ts)) > TAIL_STEPS:
        assert rejects == {"future": 2}
        assert bars == clean_bars
    got: list[Bar] = []
    compiled = CompiledBars(TABLE, BAR_NS, lambda *bar: got.append(bar), lookahead=True)
    cut = min(compiled_cut, len(planted))
    ticks = _ticks(planted)
    compiled.feed(_columns(ticks[:cut]))
    compiled.feed(_columns(ticks[cut:]))
    compiled.flush()
    assert got == bars
    assert compiled.rejects() == rejects


def test_a_last_row_from_the_future_is_future_but_a_last_row_after_a_usual_gap_is_taken() -> None:
    rows = [("AB"[i % 2], 10.0 + i, (i + 1) * BAR_NS, None) for i in range(40)]
    clean_bars, _, _ = _streaming(_ticks(rows), frozenset(), TABLE, lookahead=True)
    for bogus in (YEAR_2100, rows[-1][2] + 60 * BAR_NS):
        bars, rejects, _ = _streaming(
            _ticks([*rows, ("A", 99.0, bogus, None)]), frozenset(), TABLE, lookahead=True
        )
        assert rejects == {"future": 1}
        assert bars == clean_bars
    # a last gap of ten bars, after steps of one: not more than TAIL_FACTOR times the widest
    last = ("A", 99.0, rows[-1][2] + TAIL_FACTOR * BAR_NS, None)
    bars, rejects, _ = _streaming(_ticks([*rows, last]), frozenset(), TABLE, lookahead=True)
    assert "future" not in rejects
    assert len(bars) == len(clean_bars) + 1
    # too short a stream to judge its end by: taken
    short = rows[: TAIL_STEPS - 1]
    bars, rejects, _ = _streaming(
        _ticks([*short, ("A", 99.0, YEAR_2100, None)]), frozenset(), TABLE, lookahead=True
    )
    assert "future" not in rejects


@settings(max_examples=100, deadline=None)
@given(rows=ticks_strategy)
def test_the_price_table_cuts_ticks_into_the_bar_builders_bars(
    rows: list[tuple[str, float, int, float | None]],
) -> None:
    ticks = _ticks(rows)
    bars, rejects, _ = _streaming(ticks, frozenset(), None, lookahead=True)  # as a replay
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ticks.csv"
        lines = ["ts,symbol,price,size"]
        lines += [f"{t.ts_event},{t.symbol},{t.price!r},{t.size or ''}" for t in ticks]
        path.write_text("\n".join(lines) + "\n")
        table = load_prices(path, bar="1s", ts_unit="ns")
    assert table.ts.tolist() == [ts for ts, _, _ in bars]
    for row, (_, prices, ticked) in enumerate(bars):
        for col, symbol in enumerate(table.symbols):
            want = prices[symbol].price if symbol in ticked else math.nan
            np.testing.assert_equal(table.prices[row, col], want)
    table_rejects = dict(table.rejects.counts)
    table_rejects.pop("bad_timestamp", None)  # the file reader refuses ts <= 0 itself, or not
    bar_rejects = {k: v for k, v in rejects.items() if k != "bad_timestamp"}
    assert {k: v for k, v in table_rejects.items() if v} == bar_rejects


@given(
    price=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(PRICES)),
    mode=st.sampled_from(list(InputMode)),
)
def test_the_filters_and_the_matrix_judge_prices_by_the_one_rule(
    price: float, mode: InputMode
) -> None:
    usable = usable_price(price, mode.logarithmic)
    try:
        check_price(price, positive=mode.logarithmic)
        accepted = True
    except BadInputError:
        accepted = False
    assert accepted == usable
    assert bool(np.isfinite(clean_prices(np.array([price]), mode))[0]) == usable
