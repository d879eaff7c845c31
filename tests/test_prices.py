"""The offline price table (hedger/research/prices.py) and the hedge arithmetic
(engine/units.py)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from hedger.engine import FilterParams, HedgeFilter, InputMode
from hedger.engine.units import filter_prices, hedged_pnl, shares_hedge
from hedger.errors import ConfigError, DataFileError
from hedger.research.prices import load_prices

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DAY_NS = 86_400 * 10**9


def test_wide_file_is_read_as_it_is() -> None:
    table = load_prices(EXAMPLES / "ishares_factors_daily.csv")
    assert table.symbols == ("MTUM", "QUAL", "SIZE", "USMV", "VLUE")
    assert table.prices.shape == (2264, 5)
    assert table.labels[0] == "2014-01-02"
    assert table.column("QUAL")[0] == 48.351
    assert np.all(np.diff(table.ts) > 0)
    assert table.index_of("2014-01-03") == 1
    assert table.index_of("2030-01-01") == 2264


def test_gzip_wide_file_and_selection() -> None:
    table = load_prices(EXAMPLES / "sp500_stocks_daily.csv.gz")
    assert table.prices.shape == (8313, 20)
    picked = table.select(["XOM", "CVX"])
    assert picked.symbols == ("XOM", "CVX")
    np.testing.assert_array_equal(picked.prices[:, 1], table.column("CVX"))


def test_empty_and_bad_cells_are_nan_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("date,A,B\n2024-01-02,1.5,\n2024-01-03,x,2.5\n2024-01-04,1.7,2.7\n")
    table = load_prices(path)
    assert math.isnan(table.prices[0, 1])
    assert math.isnan(table.prices[1, 0])
    assert table.prices[2].tolist() == [1.7, 2.7]
    assert table.rejects.counts["bad_price"] == 2
    assert table.rejects_note() == "skipped while reading: bad_price 2"
    assert load_prices(EXAMPLES / "sp500_nasdaq_daily.csv").rejects_note() is None


def test_wide_rows_out_of_order_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("date,A,B\n2024-01-03,1,2\n2024-01-02,1,2\n")
    with pytest.raises(DataFileError, match="not after"):
        load_prices(path)


def test_unknown_symbol_names_the_known_ones() -> None:
    table = load_prices(EXAMPLES / "sp500_nasdaq_daily.csv")
    with pytest.raises(ConfigError, match="SP500, NASDAQ"):
        table.column("DOW")
    with pytest.raises(ConfigError, match="twice"):
        table.select(["SP500", "SP500"])
    with pytest.raises(ConfigError, match="ISO-8601"):
        table.index_of("yesterday")


def test_ticks_become_last_trade_bars(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv.gz"
    rows = [
        "ts,symbol,price,size",
        f"{0 * DAY_NS + 5},A,10.0,1",
        f"{0 * DAY_NS + 9},A,10.5,1",  # the last trade of day 0 wins
        f"{0 * DAY_NS + 7},B,20.0,1",
        f"{1 * DAY_NS},A,11.0,1",  # exactly on the boundary: day 1's bar, as bars.py cuts it
        f"{0 * DAY_NS + 8},B,99.0,1",  # day 0 has closed: late, as the daemon would say
        f"{3 * DAY_NS + 1},B,21.0,1",  # day 2 has no ticks: no bar
        f"{3 * DAY_NS + 2},B,nan,1",  # not a usable price
        f"{3 * DAY_NS},B,22.0,1",  # older than B's previous tick: backwards
    ]
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(rows) + "\n")
    table = load_prices(path, bar="1d", ts_unit="ns")
    assert table.symbols == ("A", "B")
    assert table.ts.tolist() == [1 * DAY_NS, 2 * DAY_NS, 4 * DAY_NS]
    np.testing.assert_array_equal(
        table.prices, np.array([[10.5, 20.0], [11.0, np.nan], [np.nan, 21.0]])
    )
    assert table.labels[0] == "1970-01-02T00:00:00.000000000Z"
    assert table.rejects.counts == {"bad_price": 1, "late": 1, "backwards": 1}


def test_prices_at_or_below_zero_are_kept_for_the_modes_that_allow_them(tmp_path: Path) -> None:
    wide = tmp_path / "spread.csv"
    wide.write_text("date,SPREAD,BIG\n2020-04-20,-37.6,1e16\n2020-04-21,0,5\n")
    table = load_prices(wide)
    np.testing.assert_array_equal(table.prices, np.array([[-37.6, np.nan], [0.0, 5.0]]))
    assert table.rejects.counts == {"bad_price": 1}  # 1e16 is past MAX_ABS_PRICE


def test_filter_prices_is_the_online_filter_with_gaps() -> None:
    table = load_prices(EXAMPLES / "ishares_factors_daily.csv")
    y, x = table.column("QUAL")[:300].copy(), table.column("MTUM")[:300].copy()
    y[50] = np.nan
    x[120] = np.nan
    for mode in InputMode:
        params = FilterParams(mode=mode)
        path = filter_prices(params, y, x)
        online = HedgeFilter(params)
        for t in range(300):
            step = online.step(
                None if math.isnan(y[t]) else y[t], None if math.isnan(x[t]) else x[t]
            )
            assert path.beta[t] == step.beta
            assert path.warm[t] == step.warm
            assert math.isnan(path.zscore[t]) == step.predicted_only
        assert math.isnan(path.innovation[50]) and math.isnan(path.innovation[120])


def test_shares_hedge_and_hedged_pnl_by_hand() -> None:
    y = np.array([100.0, 101.0, 99.0, 102.0])
    x = np.array([50.0, 50.5, 49.0, 51.0])
    beta = np.array([2.0, 1.5, 1.0, 0.5])
    np.testing.assert_array_equal(shares_hedge(beta, y, x, InputMode.CHANGES), beta)
    # an elasticity of 1.5 at Y = 101, X = 50.5 is 1.5 * 101 / 50.5 = 3 shares of X
    assert shares_hedge(beta, y, x, InputMode.RETURNS)[1] == pytest.approx(3.0)
    pnl = hedged_pnl(y, x, beta)
    assert math.isnan(pnl[0])
    # dY - h_{t-1} dX: 1 - 2 * 0.5, -2 - 1.5 * -1.5, 3 - 1 * 2
    np.testing.assert_allclose(pnl[1:], [0.0, 0.25, 1.0])


def test_a_duplicate_date_is_skipped_and_counted_by_every_reader(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("date,A,B\n2024-01-02,1,2\n2024-01-02,9,9\n2024-01-03,1.5,2.5\n")
    table = load_prices(path)
    assert table.prices.tolist() == [[1.0, 2.0], [1.5, 2.5]]
    assert table.rejects.counts == {"duplicate_date": 1}


def test_repeated_rows_are_reported_and_dropped_on_request(tmp_path: Path) -> None:
    path = tmp_path / "holidays.csv"
    path.write_text("date,A,B\n2024-12-24,1,2\n2024-12-25,1,2\n2024-12-26,1,2\n2024-12-27,3,4\n")
    kept = load_prices(path)
    assert len(kept.ts) == 4 and kept.repeats == 2
    assert "2 row(s) repeat the row before exactly" in (kept.rejects_note() or "")
    dropped = load_prices(path, drop_repeats=True)
    assert dropped.labels == ("2024-12-24", "2024-12-27")
    assert dropped.rejects.counts == {"repeated_row": 2}
