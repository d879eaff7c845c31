"""The hedge-ratio matrix: every entry equals the single-pair HedgeFilter on that pair (real
prices, every mode and initialisation, NaN holes), missing prices stay local, and `hedger
matrix` end to end on the example files."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedger.cli.main import main
from hedger.core.events import MatrixEvent
from hedger.core.topics import SCHEMA_VERSION
from hedger.engine import (
    DiffuseInit,
    FilterParams,
    GivenInit,
    HedgeFilter,
    InputMode,
    OlsWarmupInit,
)
from hedger.engine.matrix import MatrixFilter, filter_matrix, pair_indices
from hedger.research.prices import load_prices

ROOT = Path(__file__).resolve().parents[1]
ISHARES = ROOT / "examples" / "ishares_factors_daily.csv"
STOCKS = ROOT / "examples" / "sp500_stocks_daily.csv.gz"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _holes(prices: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A copy of ``prices`` with about ``share`` of the cells set to NaN."""
    punched = prices.copy()
    punched[np.random.default_rng(seed).random(prices.shape) < share] = np.nan
    return punched


def _pair_series(
    prices: np.ndarray, iy: int, ix: int, params: FilterParams
) -> dict[str, np.ndarray]:
    """HedgeFilter run on column iy hedged with column ix: every bar's outputs (T,)."""
    hf = HedgeFilter(params)
    rows = []
    for y, x in zip(prices[:, iy].tolist(), prices[:, ix].tolist(), strict=True):
        step = hf.step(None if math.isnan(y) else y, None if math.isnan(x) else x)
        rows.append((step.beta, step.alpha, step.beta_std[0], step.zscore, step.warm))
    table = np.array(rows, dtype=np.float64)
    return {
        "beta": table[:, 0],
        "alpha": table[:, 1],
        "beta_se": table[:, 2],
        "zscore": table[:, 3],
        "warm": table[:, 4] > 0.5,
    }


def _matrix_series(prices: np.ndarray, params: FilterParams) -> dict[str, np.ndarray]:
    """Every bar's outputs (T, N, N) of the matrix, collected over small chunks."""
    matrix = MatrixFilter(prices.shape[1], params)
    chunks = list(matrix.run_bars(prices, chunk_bars=500))
    assert [c.start for c in chunks] == list(range(0, prices.shape[0], 500))
    return {
        name: np.concatenate([getattr(c, name) for c in chunks])
        for name in ("beta", "alpha", "beta_se", "zscore", "warm")
    }


def _assert_close(matrix: np.ndarray, single: np.ndarray, what: str) -> None:
    assert np.array_equal(np.isnan(matrix), np.isnan(single)), what
    ok = ~np.isnan(single)
    scale = np.maximum(1.0, np.abs(single[ok]))
    worst = float(np.max(np.abs(matrix[ok] - single[ok]) / scale, initial=0.0))
    assert worst <= 1e-10, f"{what}: {worst:.3g}"


def _inits(mode: InputMode) -> list[GivenInit | DiffuseInit | OlsWarmupInit]:
    given_init = (
        GivenInit((0.5, 0.0), ((1.0, 0.0), (0.0, 1.0)), warmup_steps=3)
        if mode.default_intercept
        else GivenInit((0.5,), ((1.0,),), warmup_steps=3)
    )
    return [OlsWarmupInit(n_obs=20), DiffuseInit(), given_init]


CASES = [
    (mode, kind, adaptive) for mode in InputMode for kind in range(3) for adaptive in (0.99, None)
]


@pytest.fixture(scope="module")
def ishares() -> np.ndarray:
    """iShares factor ETFs MTUM QUAL SIZE USMV VLUE, 2,264 daily closes, 2% NaN holes."""
    return _holes(load_prices(ISHARES).prices, 0.02, seed=5)


@pytest.mark.parametrize(("mode", "kind", "adaptive"), CASES)
def test_every_entry_equals_hedge_filter_on_real_etfs(
    ishares: np.ndarray, mode: InputMode, kind: int, adaptive: float | None
) -> None:
    params = FilterParams(
        mode=mode, delta=1e-4, obs_cov=1e-2, adaptive_r=adaptive, init=_inits(mode)[kind]
    )
    prices = ishares[:1200]
    got = _matrix_series(prices, params)
    n = prices.shape[1]
    for iy, ix in zip(*pair_indices(n), strict=True):
        want = _pair_series(prices, int(iy), int(ix), params)
        for name in ("beta", "alpha", "beta_se", "zscore"):
            _assert_close(got[name][:, iy, ix], want[name], f"{name} {iy}/{ix}")
        assert np.array_equal(got["warm"][:, iy, ix], want["warm"])
    assert np.isnan(got["beta"][:, range(n), range(n)]).all()
    assert not got["warm"][:, range(n), range(n)].any()


@pytest.mark.parametrize("mode", [InputMode.LEVELS, InputMode.RETURNS])
def test_twenty_stocks_over_33_years_equal_single_pairs(mode: InputMode) -> None:
    """20 S&P 500 stocks, 8,313 days, with NaN holes: 380 pairs in one pass; a sample of
    pairs checked against HedgeFilter at every bar."""
    prices = _holes(load_prices(STOCKS).prices, 0.01, seed=11)
    params = FilterParams(mode=mode, delta=1e-4 if mode is InputMode.LEVELS else 1e-5)
    got = _matrix_series(prices, params)
    for iy, ix in ((0, 1), (1, 0), (7, 19), (19, 3), (12, 13), (5, 16)):
        want = _pair_series(prices, iy, ix, params)
        for name in ("beta", "alpha", "beta_se", "zscore"):
            _assert_close(got[name][:, iy, ix], want[name], f"{name} {iy}/{ix}")
        assert np.array_equal(got["warm"][:, iy, ix], want["warm"])


def test_a_missing_price_is_predict_only_for_its_pairs_and_touches_no_other() -> None:
    prices = load_prices(ISHARES).prices[:300]
    holed = prices.copy()
    holed[150, 2] = np.nan  # SIZE has no price on bar 150
    params = FilterParams(mode=InputMode.LEVELS, delta=1e-4)
    full = MatrixFilter(5, params)
    gap = MatrixFilter(5, params)
    full.run(prices[:150])
    gap.run(holed[:150])
    before_beta, before_se = np.array(gap.beta), gap.beta_se
    full.step(prices[150])
    gap.step(holed[150])
    touched = np.zeros((5, 5), dtype=bool)
    touched[2, :] = touched[:, 2] = True
    touched[range(5), range(5)] = False
    others = ~touched & ~np.eye(5, dtype=bool)
    # the pairs without SIZE are bit for bit those of the complete table
    assert np.array_equal(gap.beta[others], full.beta[others])
    assert np.array_equal(gap.zscore[others], full.zscore[others])
    # SIZE's pairs only predicted: beta kept, its uncertainty grown, no z-score
    assert np.array_equal(gap.beta[touched], before_beta[touched])
    assert (gap.beta_se[touched] > before_se[touched]).all()
    assert np.isnan(gap.zscore[touched]).all()
    # and they carry on: one bar later every z-score exists again
    gap.step(holed[151])
    assert np.isfinite(gap.zscore[~np.eye(5, dtype=bool)]).all()


def test_bad_prices_are_missing_prices() -> None:
    """inf, <= 0 in a log mode: treated as no price (predict-only), like NaN."""
    prices = load_prices(ISHARES).prices[:60]
    params = FilterParams(mode=InputMode.LOG)
    with_nan, with_bad = prices.copy(), prices.copy()
    with_nan[40, 1] = np.nan
    with_bad[40, 1] = -3.0
    with_nan[45, 3] = np.nan
    with_bad[45, 3] = np.inf
    a, b = filter_matrix(with_nan, params), filter_matrix(with_bad, params)
    assert np.array_equal(a.beta, b.beta, equal_nan=True)
    assert np.array_equal(a.beta_se, b.beta_se, equal_nan=True)


def test_step_run_and_run_bars_agree() -> None:
    prices = _holes(load_prices(ISHARES).prices[:400], 0.03, seed=2)
    params = FilterParams(mode=InputMode.CHANGES)
    one = MatrixFilter(5, params)
    for row in prices:
        one.step(row)
    whole = filter_matrix(prices, params)
    chunked = MatrixFilter(5, params)
    last = list(chunked.run_bars(prices, chunk_bars=7))[-1]
    for m in (whole, chunked):
        assert np.array_equal(one.beta, m.beta, equal_nan=True)
        assert np.array_equal(one.alpha, m.alpha, equal_nan=True)
        assert np.array_equal(one.zscore, m.zscore, equal_nan=True)
        assert np.array_equal(one.warm, m.warm)
    assert np.array_equal(last.beta[-1], one.beta, equal_nan=True)
    assert one.bars == whole.bars == chunked.bars == 400


def test_pair_order_views_and_shapes() -> None:
    matrix = MatrixFilter(4)
    iy, ix = pair_indices(4)
    assert matrix.n_pairs == 12 == len(iy)
    assert list(zip(iy.tolist(), ix.tolist(), strict=True))[:4] == [(0, 1), (0, 2), (0, 3), (1, 0)]
    for p, (y, x) in enumerate(zip(iy, ix, strict=True)):
        assert p == y * 3 + (x if x < y else x - 1)
    probe = np.arange(16.0).reshape(4, 4)
    assert matrix.flat(probe).tolist() == [probe[y, x] for y, x in zip(iy, ix, strict=True)]
    with pytest.raises(ValueError, match="read-only"):
        matrix.beta[0, 1] = 1.0
    beta_view = matrix.beta
    matrix.step([10.0, 20.0, 30.0, 40.0])
    assert beta_view is matrix.beta and beta_view[0, 1] != 0.0  # a live view


def test_bad_shapes_and_sizes_are_config_errors() -> None:
    from hedger.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError, match="at least 2"):
        MatrixFilter(1)
    with pytest.raises(ConfigError, match="n_legs"):
        MatrixFilter(3, FilterParams(n_legs=2))
    with pytest.raises(ConfigError, match="expected 3 prices"):
        MatrixFilter(3).step([1.0, 2.0])
    with pytest.raises(ConfigError, match="table"):
        MatrixFilter(3).run(np.ones((5, 2)))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 4),
    t=st.integers(1, 45),
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(list(InputMode)),
    hole=st.sampled_from([0.0, 0.1, 0.4]),
    warmup=st.integers(4, 12),
)
def test_matrix_of_a_random_table_equals_per_pair_filters(
    n: int, t: int, seed: int, mode: InputMode, hole: float, warmup: int
) -> None:
    rng = np.random.default_rng(seed)
    prices = 20.0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, (t, n)), axis=0))
    prices[rng.random((t, n)) < hole] = np.nan
    params = FilterParams(mode=mode, delta=1e-3, init=OlsWarmupInit(n_obs=warmup))
    got = _matrix_series(prices, params)
    for iy, ix in zip(*pair_indices(n), strict=True):
        want = _pair_series(prices, int(iy), int(ix), params)
        for name in ("beta", "alpha", "beta_se", "zscore"):
            _assert_close(got[name][:, iy, ix], want[name], f"{name} {iy}/{ix}")
        assert np.array_equal(got["warm"][:, iy, ix], want["warm"])


# --- hedger matrix, end to end ---------------------------------------------------------------


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_jsonl_every_bar_parses_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.jsonl"
    code, _, err = _run(["matrix", str(ISHARES), "--out", str(out)], capsys)
    assert code == 0, err
    assert err.count("\n") == 1 and "pair-updates/s" in err
    lines = out.read_bytes().splitlines()
    table = load_prices(ISHARES)
    assert len(lines) == len(table.ts)
    first, last = orjson.loads(lines[0]), orjson.loads(lines[-1])
    # the keys of the daemon's matrix event, in its order, plus the bar's label after ts
    blank = np.full((2, 2), math.nan)
    event = MatrixEvent(1, 0, ("A", "B"), blank, blank, blank, blank, blank > 0, ())
    event_keys = list(event.to_dict())
    assert list(last) == [*event_keys[:4], "label", *event_keys[4:]]
    assert (last["type"], last["version"], first["seq"], last["seq"]) == (
        "matrix",
        SCHEMA_VERSION,
        1,
        len(table.ts),
    )
    assert last["symbols"] == list(table.symbols) and last["stale"] == []
    assert last["label"] == table.labels[-1] and last["ts"] == int(table.ts[-1])
    assert first["warm"][0][1] is False and last["warm"][0][1] is True
    for key in ("beta", "alpha", "beta_std", "zscore"):
        assert all(last[key][i][i] is None for i in range(5))
    want = filter_matrix(table.prices, FilterParams())
    beta = np.array([[math.nan if v is None else v for v in row] for row in last["beta"]])
    assert np.array_equal(beta, want.beta, equal_nan=True)


def test_cli_jsonl_lists_the_symbols_without_a_price_as_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "holes.csv"
    prices.write_text(
        "date,AAA,BBB,CCC\n2024-01-02,1.5,2.0,3.0\n2024-01-03,,2.1,-1\n2024-01-04,1.6,2.2,3.1\n"
    )
    out = tmp_path / "m.jsonl"
    code, _, err = _run(["matrix", str(prices), "--mode", "log", "--out", str(out)], capsys)
    assert code == 0, err
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    # a blank cell and a price a log mode cannot take are both "no price"
    assert [row["stale"] for row in rows] == [[], ["AAA", "CCC"], []]
    assert [row["seq"] for row in rows] == [1, 2, 3]
    assert rows[1]["zscore"][1] == [None, None, None]  # BBB/AAA, BBB/CCC only predicted


def test_cli_last_csv_and_symbols(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.csv"
    argv = ["matrix", str(ISHARES), "--symbols", "VLUE,MTUM,USMV", "--format", "csv"]
    code, _, err = _run([*argv, "--last", "--out", str(out), "--mode", "log"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6
    assert [(r["y"], r["x"]) for r in rows[:2]] == [("VLUE", "MTUM"), ("VLUE", "USMV")]
    table = load_prices(ISHARES).select(["VLUE", "MTUM", "USMV"])
    want = filter_matrix(table.prices, FilterParams(mode=InputMode.LOG))
    assert {r["label"] for r in rows} == {table.labels[-1]}
    assert float(rows[0]["beta"]) == want.beta[0, 1]
    assert rows[0]["warm"] == "true"
    # every bar: T x P rows; a missing z-score is an empty cell
    code, _, err = _run([*argv, "--out", str(out), "--mode", "changes"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 * len(table.ts)
    assert rows[0]["zscore"] == "" and rows[0]["beta"] != ""


def test_cli_stdout_in_a_real_process_and_plot(tmp_path: Path) -> None:
    png = tmp_path / "matrix.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hedger.cli",
            "matrix",
            str(ISHARES),
            "--last",
            "--plot",
            str(png),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert len(result.stdout.splitlines()) == 1
    assert orjson.loads(result.stdout)["symbols"] == ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"]
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert len(result.stderr.decode().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--symbols", "MTUM,NOPE"], "'NOPE' is not in the file"),
        (["--symbols", "MTUM"], "at least 2 symbols"),
        (["--symbols", "MTUM,MTUM"], "twice"),
        (["--delta", "2"], "delta"),
        (["--warmup", "1"], "n_obs"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(
    extra: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["matrix", str(ISHARES), *extra], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and needle in err and err.startswith("hedger matrix: ")


def test_cli_bad_files_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_prices = tmp_path / "notes.csv"
    not_prices.write_text("just some words\n")
    one_column = tmp_path / "one.csv"
    one_column.write_text("date,AAA\n2024-01-02,1.5\n2024-01-03,1.6\n")
    for path, needle in (
        (tmp_path / "missing.csv", "no such file"),
        (not_prices, "notes.csv"),
        (one_column, "at least 2 symbols"),
    ):
        code, _, err = _run(["matrix", str(path)], capsys)
        assert code == 2, err
        assert err.count("\n") == 1 and needle in err


def test_cli_plot_without_matplotlib_says_how_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    png = tmp_path / "m.png"
    code, _, err = _run(["matrix", str(ISHARES), "--last", "--plot", str(png)], capsys)
    assert code == 2
    assert "pip install 'hedger[plot]'" in err and err.count("\n") == 1
    assert not png.exists()
