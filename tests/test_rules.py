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
from hedger.core.bars import JUMP_BARS, BarBuilder, LegPrice
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


@settings(max_examples=200, deadline=None)
@given(gaps=sorted_gaps, symbols=st.lists(st.sampled_from(["A", "B"]), min_size=60))
def test_a_stream_in_time_order_has_no_future_tick_whatever_its_gaps(
    gaps: list[int], symbols: list[str]
) -> None:
    ts = np.cumsum([BAR_NS, *gaps]).tolist()
    rows = [(symbols[i], 10.0 + i, int(t), None) for i, t in enumerate(ts)]
    bars, rejects, _ = _streaming(_ticks(rows), frozenset(), TABLE, lookahead=True)
    assert "future" not in rejects
    assert bars == _streaming(_ticks(rows), frozenset(), TABLE)[0]


@settings(max_examples=200, deadline=None)
@given(
    gaps=sorted_gaps,
    at=st.integers(0, 59),
    ahead=st.one_of(st.integers(JUMP_BARS + 1, 10**6).map(lambda k: k * BAR_NS), st.just(0)),
)
def test_one_row_far_ahead_of_a_stream_in_time_order_is_future_and_nothing_else_changes(
    gaps: list[int], at: int, ahead: int
) -> None:
    """A row more than two bars ahead of the stream, stamped 60 s on or in 2100 (``ahead`` 0),
    followed by the stream it jumped out of, which goes on within half its jump."""
    ts = np.cumsum([BAR_NS, *gaps]).tolist()
    rows = [("AB"[i % 2], 10.0 + i, int(t), None) for i, t in enumerate(ts)]
    at = min(at, len(rows) - 1)
    bogus_ts = YEAR_2100 if ahead == 0 else rows[at][2] // BAR_NS * BAR_NS + ahead + BAR_NS
    bogus = ("A", 99.0, bogus_ts, None)
    bar = rows[at][2] // BAR_NS  # the current bar when the bogus row comes
    jump = bogus_ts // BAR_NS - bar
    followed = at + 1 < len(rows) and rows[at + 1][2] // BAR_NS - bar <= jump // 2
    planted = [*rows[: at + 1], bogus, *rows[at + 1 :]]
    clean_bars, _, _ = _streaming(_ticks(rows), frozenset(), TABLE, lookahead=True)
    bars, rejects, _ = _streaming(_ticks(planted), frozenset(), TABLE, lookahead=True)
    assert jump > JUMP_BARS
    if followed:  # the stream goes on within half the jump: the row is future, and only it
        assert rejects == {"future": 1}
        assert bars == clean_bars
    else:  # the stream follows it (or ends): it is taken, and rows before it may be late
        assert "future" not in rejects


@settings(max_examples=100, deadline=None)
@given(rows=ticks_strategy)
def test_the_price_table_cuts_ticks_into_the_bar_builders_bars(
    rows: list[tuple[str, float, int, float | None]],
) -> None:
    ticks = _ticks(rows)
    bars, rejects, _ = _streaming(ticks, frozenset(), None)
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
