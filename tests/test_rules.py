"""One bar rule and one price rule: the bar builder, its compiled twin, the price-table loader
and the engine judge every tick and price alike, on ticks that are late, backwards, repeated,
non-positive, out of range or not numbers at all."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hedger.core.bar_kernel import CompiledBars
from hedger.core.bars import BarBuilder, LegPrice
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

ticks_strategy = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.sampled_from(PRICES),
        st.integers(-1, 60).map(lambda k: k * BAR_NS // 4),  # four ticks a bar; some <= 0
        st.sampled_from([None, 1.0, 2.0]),
    ),
    max_size=60,
)


def _ticks(rows: list[tuple[str, float, int, float | None]]) -> list[Tick]:
    return [Tick(sym, price, ts, ts, size, "test") for sym, price, ts, size in rows]


def _streaming(
    ticks: list[Tick], positive: frozenset[str], symbols: tuple[str, ...] | None
) -> tuple[list[Bar], dict[str, int], int]:
    bars: list[Bar] = []
    rejects = Rejects()
    builder = BarBuilder(
        BAR_NS, symbols, lambda *bar: bars.append(bar), rejects, positive_symbols=positive
    )
    for tick in ticks:
        builder.on_tick(tick)
    builder.flush()
    return bars, rejects.summary(), builder.duplicates


@settings(max_examples=300, deadline=None)
@given(rows=ticks_strategy, positive=st.sampled_from([frozenset(), frozenset({"B"})]))
def test_the_compiled_bars_judge_every_tick_as_the_bar_builder(
    rows: list[tuple[str, float, int, float | None]], positive: frozenset[str]
) -> None:
    ticks = _ticks(rows)
    expected, expected_rejects, expected_duplicates = _streaming(ticks, positive, TABLE)
    got: list[Bar] = []
    compiled = CompiledBars(TABLE, BAR_NS, lambda *bar: got.append(bar), positive)
    index = {symbol: i for i, symbol in enumerate(TABLE)}
    compiled.feed(
        TickColumns(
            np.array([t.ts_event for t in ticks], dtype=np.int64),
            np.array([index.get(t.symbol, -1) for t in ticks], dtype=np.int64),
            np.array([t.price for t in ticks], dtype=np.float64),
            np.array([math.nan if t.size is None else t.size for t in ticks], dtype=np.float64),
            np.array([t.size is not None for t in ticks], dtype=np.bool_),
            np.ones(len(ticks), dtype=np.bool_),
        )
    )
    compiled.flush()
    assert got == expected
    assert compiled.rejects() == expected_rejects
    assert compiled.duplicates == expected_duplicates


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
