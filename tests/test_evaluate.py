"""Hedge quality, measured: metrics against hand-computed values, no look-ahead, determinism,
tracking of a known beta, and ``hedger evaluate`` end to end."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from hedger.engine import FilterParams, InputMode
from hedger.engine.units import hedged_pnl
from hedger.errors import ConfigError
from hedger.research.backtest import positions, run_backtest
from hedger.research.baselines import (
    MethodPath,
    chan_params,
    choose_window,
    forward_fill,
    kalman_path,
    rolling_ols_path,
    static_ols_path,
)
from hedger.research.evaluate import (
    COMBINED_MEMBERS,
    CalibrationLike,
    candidate_paths,
    default_calibrator,
    evaluate_pair,
    split_index,
)
from hedger.research.metrics import (
    half_life,
    hedged_variance,
    max_drawdown,
    periods_per_year,
    reduction,
    share_beyond,
    sharpe,
)
from hedger.research.prices import load_prices
from hedger.research.tracking import synthetic_bars
from tests.conftest import SP500_NASDAQ, run_hedger

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FACTORS = EXAMPLES / "ishares_factors_daily.csv"
DAY_NS = 86_400 * 10**9


# --- metrics against hand-computed values ---------------------------------------------------


def test_hedged_variance_of_a_tiny_series_by_hand() -> None:
    y = np.array([10.0, 11.0, 13.0, 12.0])
    x = np.array([20.0, 21.0, 22.0, 25.0])
    h = np.array([0.5, 0.5, 1.0, 1.0])
    pnl = hedged_pnl(y, x, h)
    # dY - h_{t-1} dX: 1 - 0.5*1, 2 - 0.5*1, -1 - 1*3
    np.testing.assert_allclose(pnl[1:], [0.5, 1.5, -4.0])
    # mean -2/3; squared deviations 49/36, 169/36, 400/36; / (3 - 1)
    assert hedged_variance(pnl) == pytest.approx(618 / 36 / 2)
    assert reduction(1.5, 2.0) == pytest.approx(0.25)
    assert math.isnan(reduction(1.0, 0.0))


def test_half_life_of_an_exact_ar1_and_a_simulated_one() -> None:
    halving = 8.0 * 0.5 ** np.arange(
        12, dtype=np.float64
    )  # s_t = 0.5 s_{t-1}: phi = 0.5, half-life 1 bar
    assert half_life(halving) == pytest.approx(1.0)
    assert math.isinf(half_life(np.arange(50.0)))  # a trend: no mean reversion
    rng = np.random.default_rng(3)
    s = np.zeros(20_000)
    for t in range(1, len(s)):
        s[t] = 0.9 * s[t - 1] + rng.normal()
    assert half_life(s) == pytest.approx(math.log(0.5) / math.log(0.9), rel=0.1)


def test_a_random_walk_has_no_half_life_most_of_the_time() -> None:
    """Without the Dickey-Fuller gate an AR(1) fit to a random walk of 1,132 bars gave a
    finite half-life 95% of the time (median 184 bars); with it, at about the test's 5% size."""
    rng = np.random.default_rng(11)
    finite = sum(math.isfinite(half_life(np.cumsum(rng.normal(size=1132)))) for _ in range(200))
    assert finite <= 20  # 5% of 200 is 10; 20 is more than 3 binomial sd above


def test_share_beyond_and_sharpe_and_drawdown_by_hand() -> None:
    assert share_beyond(np.array([0.0, 2.5, -3.0, 1.0, math.nan])) == pytest.approx(0.5)
    assert max_drawdown(np.array([1.0, 1.2, 0.9, 1.5, 1.2])) == pytest.approx(0.25)
    assert max_drawdown(np.array([1.0, 1.1, 1.2])) == 0.0
    r = np.array([0.01, -0.01, 0.02])
    sd = math.sqrt(((0.01 - 0.02 / 3) ** 2 + (-0.01 - 0.02 / 3) ** 2 + (0.02 - 0.02 / 3) ** 2) / 2)
    assert sharpe(r, 252.0) == pytest.approx(math.sqrt(252.0) * (0.02 / 3) / sd)
    assert math.isnan(sharpe(np.zeros(5), 252.0))
    daily = np.arange(10) * DAY_NS  # too short to count: the spacing decides
    assert periods_per_year(daily) == 252.0
    assert periods_per_year(np.arange(10) * 60 * 10**9) == pytest.approx(365.25 * 24 * 60)
    # long enough: the bars the history has per year
    assert periods_per_year(np.arange(400) * DAY_NS) == pytest.approx(365.25)  # never closes
    assert periods_per_year(np.arange(200) * 7 * DAY_NS) == pytest.approx(365.25 / 7)  # weekly
    factors = load_prices(FACTORS)  # 2,264 closes over 2014-01-02 .. 2022-12-28
    assert periods_per_year(factors.ts) == pytest.approx(251.85, abs=0.01)


def test_backtest_of_a_hand_made_spread_with_costs() -> None:
    y = np.array([100.0, 101.0, 103.0, 102.0, 104.0, 104.0])
    x = np.array([50.0, 50.0, 51.0, 51.0, 52.0, 52.0])
    h = np.ones(6)
    e = np.array([0.0, 2.0, 0.5, -0.1, -3.0, 0.0])
    s = np.ones(6)
    # enter short at e=2 > 1, hold at 0.5, exit on the cross at -0.1, enter long at -3,
    # exit when e touches 0
    np.testing.assert_array_equal(positions(e, s, 1), [0, -1, -1, 0, 1, 0])
    result, returns = run_backtest(y, x, h, e, s, start=1, cost_bps=10.0, periods_per_year=252)
    c = 10.0 / 1e4
    expected = [
        -c * (101 + 50) / (100 + 50),  # open short: trade 1 Y at 101 and 1 X at 50
        -1.0 * ((103 - 101) - (51 - 50)) / (101 + 50),  # short the hedged unit over a +1 move
        (-1.0 * ((102 - 103) - 0.0) - c * (102 + 51)) / (103 + 51),  # gain 1, then close
        -c * (104 + 52) / (102 + 51),  # open long
        (0.0 - c * (104 + 52)) / (104 + 52),  # flat move, close
    ]
    np.testing.assert_allclose(returns, expected, rtol=1e-12)
    equity = np.cumprod(np.concatenate([[1.0], 1.0 + np.array(expected)]))
    assert result.total_return == pytest.approx(equity[-1] - 1.0)
    assert result.max_drawdown == pytest.approx(1.0 - equity.min())
    assert result.trades == 2
    assert result.exposure == pytest.approx(3 / 5)


def test_rebalancing_an_open_position_is_charged() -> None:
    y = np.array([100.0, 100.0, 100.0])
    x = np.array([50.0, 50.0, 50.0])
    h = np.array([1.0, 1.0, 1.5])  # the hedge moves while the position is open
    e = np.array([0.0, 2.0, 1.0])
    s = np.ones(3)
    _, returns = run_backtest(y, x, h, e, s, start=1, cost_bps=10.0, periods_per_year=252)
    assert returns[1] == pytest.approx(-1e-3 * 0.5 * 50 / 150)


def test_forward_fill_and_static_ols_by_hand() -> None:
    np.testing.assert_array_equal(
        forward_fill(np.array([math.nan, 1.0, math.nan, 3.0, math.nan])),
        [math.nan, 1.0, 1.0, 3.0, 3.0],
    )
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    y = 2.0 * x + 1.0
    y[4] = 100.0  # after the split: never seen by the fit
    path = static_ols_path(y, x, 4, differenced=False)
    np.testing.assert_allclose(path.hedge, 2.0)
    assert path.error[4] == pytest.approx(100.0 - 21.0)


# --- no look-ahead -------------------------------------------------------------------------


def _factor_pair(n: int) -> tuple[np.ndarray, np.ndarray]:
    table = load_prices(FACTORS)
    return table.column("QUAL")[:n].copy(), table.column("MTUM")[:n].copy()


def test_no_hedge_depends_on_a_later_price() -> None:
    y, x = _factor_pair(700)
    split, t = 400, 550
    calibration = default_calibrator(y[:split], x[:split])
    weights_before: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    weights_after: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    before, _, _ = candidate_paths(y, x, split, calibration, weights_before)
    rng = np.random.default_rng(0)
    y2, x2 = y.copy(), x.copy()
    y2[t + 1 :] *= np.exp(rng.normal(0.0, 0.05, len(y) - t - 1))
    x2[t + 1 :] *= np.exp(rng.normal(0.0, 0.05, len(x) - t - 1))
    after, _, _ = candidate_paths(y2, x2, split, calibration, weights_after)
    assert before.keys() == after.keys() and len(before) == 18
    # the combinations' weights set at every close up to t are those of the unperturbed run,
    # and they do move afterwards (the test would see a weight that looked ahead)
    assert weights_before.keys() == {"combined", "combined-equal"}
    members, w = weights_before["combined"]
    assert members == COMBINED_MEMBERS
    np.testing.assert_array_equal(w[: t + 1], weights_after["combined"][1][: t + 1])
    assert not np.array_equal(w[t + 1 :], weights_after["combined"][1][t + 1 :])
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (w >= 0.0).all()
    for name, path in before.items():
        for field in ("hedge", "hedge_sd", "error", "scale"):
            np.testing.assert_array_equal(
                getattr(path, field)[: t + 1], getattr(after[name], field)[: t + 1], err_msg=name
            )
        assert not np.array_equal(path.hedge, after[name].hedge) or name.startswith("static")


def test_filters_and_rolling_fits_are_causal_inside_the_training_window_too() -> None:
    y, x = _factor_pair(300)
    t = 150
    y2 = y.copy()
    y2[t + 1 :] += 3.0

    def paths(yy: np.ndarray) -> list[MethodPath]:
        return [
            kalman_path(chan_params(FilterParams().mode), yy, x),
            rolling_ols_path(yy, x, 40, differenced=True),
            rolling_ols_path(yy, x, 40, differenced=False),
        ]

    for a, b in zip(paths(y), paths(y2), strict=True):
        np.testing.assert_array_equal(a.hedge[: t + 1], b.hedge[: t + 1])
        np.testing.assert_array_equal(a.error[: t + 1], b.error[: t + 1])


def test_window_choice_uses_training_bars_only() -> None:
    y, x = _factor_pair(600)
    y2 = y.copy()
    y2[400:] *= 1.5
    assert choose_window(y, x, 400, True) == choose_window(y2, x, 400, True)


# --- determinism ---------------------------------------------------------------------------


def test_evaluation_json_is_byte_identical_across_runs() -> None:
    table = load_prices(FACTORS)
    y, x = table.column("USMV")[:800], table.column("SIZE")[:800]

    def once() -> bytes:
        return evaluate_pair(
            y, x, pair="USMV/SIZE", ts=table.ts[:800], labels=table.labels[:800], split=400
        ).to_json()

    first = once()
    assert first == once()
    document = json.loads(first)
    assert document["type"] == "hedge_evaluation" and document["version"] == 1
    names = [m["name"] for m in document["methods"]]
    assert len(names) == 18 and len(set(names)) == 18
    variances = [m["hedged_variance"] for m in document["methods"]]
    assert variances == sorted(variances)
    assert document["winner"] == names[0]
    assert sum(m["recommended"] for m in document["methods"]) == 1
    assert document["recommended"] == "combined"
    single = [m for m in document["methods"] if m["family"] != "combined"]
    assert document["best_single"] == single[0]["name"]
    combination = document["combination"]
    assert combination["members"] == list(COMBINED_MEMBERS)
    assert math.isclose(sum(combination["final_weights"]), 1.0, abs_tol=1e-12)
    assert document["alarms"]["method"] == "kalman-returns-calibrated"


# --- tracking a known beta -----------------------------------------------------------------


def test_a_sensible_kalman_tracks_a_drifting_beta_better_than_static_ols() -> None:
    bars = synthetic_bars(seconds=1800.0, seed=0)
    split = len(bars.y) // 2
    truth = bars.true_beta[split:]
    assert truth.max() - truth.min() > 0.1  # the beta really drifts

    def rmse(hedge: np.ndarray) -> float:
        miss = hedge[split:] - truth
        return float(np.sqrt(np.nanmean(miss**2)))

    # levels, slope noise only (the synthetic alpha is constant), R learnt from the data
    kalman = rmse(
        kalman_path(FilterParams(trans_cov=((1e-6, 0.0), (0.0, 0.0))), bars.y, bars.x).hedge
    )
    static_levels = rmse(static_ols_path(bars.y, bars.x, split, differenced=False).hedge)
    static_changes = rmse(static_ols_path(bars.y, bars.x, split, differenced=True).hedge)
    assert kalman < 0.5 * static_levels
    assert kalman < 0.5 * static_changes


# --- the command line ----------------------------------------------------------------------


def test_cli_table_on_sp500_nasdaq() -> None:
    result = run_hedger("evaluate", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ", "--cost", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("hedger evaluate: SP500/NASDAQ")
    assert "test 2009-01-02 .. 2018-12-31 (2516 bars, 2516 measured)" in out
    for mode in ("levels", "log", "changes", "returns"):
        for setting in ("calibrated", "chan", "seed"):
            assert f"kalman-{mode}-{setting}" in out
    for baseline in ("static-levels", "static-changes", "rolling-levels", "rolling-changes"):
        assert baseline in out
    prefixes = ("kalman-", "static-", "rolling", "combine")
    table = [line for line in out.splitlines() if line[3:10] in prefixes]
    assert len(table) == 18
    assert table[0].startswith("*") and sum(line.startswith("*") for line in table) == 1
    assert sum(line[1:2] == "R" for line in table) == 1
    verdict = [line for line in out.splitlines() if line.startswith("verdict: ")]
    assert len(verdict) == 1 and "recommended hedge (4 hedges combined" in verdict[0]
    assert [line[1:2] for line in table if "combined " in line] == ["R"]
    assert "combined weights, mean over the test bars: kalman-returns-calibrated" in out


def test_cli_json_and_plot_on_an_ishares_pair(tmp_path: Path) -> None:
    png = tmp_path / "qual-mtum.png"
    result = run_hedger(
        "evaluate",
        str(FACTORS),
        "--pair",
        "QUAL/MTUM",
        "--train-until",
        "2018-01-01",
        "--json",
        "--plot",
        str(png),
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["pair"] == "QUAL/MTUM"
    assert document["split"]["test_start"] == "2018-01-02"
    families = {m["family"] for m in document["methods"]}
    assert families == {"kalman", "static", "rolling", "combined"}
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1400, 1000)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--pair", "SP500/DAX"), "'DAX' is not in the file"),
        (("--pair", "SP500"), "must look like Y/X"),
        (("--pair", "SP500/NASDAQ+DAX"), "not a basket"),
        (("--pair", "SP500/NASDAQ", "--train-until", "0.999"), "test bars"),
        (("--pair", "SP500/NASDAQ", "--train-until", "2030-01-01"), "test bars"),
        (("--pair", "SP500/NASDAQ", "--train-until", "1999-02-01"), "training bars"),
        (("--pair", "SP500/NASDAQ", "--train-until", "1.5"), "fraction must be in (0, 1)"),
        (("--pair", "SP500/NASDAQ", "--train-until", "soon"), "not an ISO-8601 date"),
        (("--pair", "SP500/NASDAQ", "--cost", "-1"), "cost"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(args: tuple[str, ...], needle: str) -> None:
    result = run_hedger("evaluate", str(SP500_NASDAQ), *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hedger evaluate: "), result.stderr
    assert needle in lines[0]


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_hedger("evaluate", str(tmp_path / "nope.csv"), "--pair", "A/B")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_split_index_accepts_fractions_and_dates() -> None:
    table = load_prices(FACTORS)
    assert split_index(None, table, 100) == 50
    assert split_index("0.25", table, 100) == 25
    assert split_index("2014-01-06", table, len(table.ts)) == 2


def test_prices_through_zero_leave_out_the_log_modes() -> None:
    """A spread as Y (negative prices): no log or returns candidates, the rest are measured,
    and the recommendation comes from the modes that could be calibrated."""
    table = load_prices(EXAMPLES / "ishares_factors_daily.csv")
    y = table.column("QUAL")[:800] - table.column("MTUM")[:800]
    x = table.column("SIZE")[:800]
    ev = evaluate_pair(
        y, x, pair="SPREAD/SIZE", ts=table.ts[:800], labels=table.labels[:800], split=400
    )
    modes = {m.mode for m in ev.methods if m.family != "combined"}
    assert modes == {"levels", "changes"}
    # two modes x three settings, four OLS baselines, two combinations
    assert len(ev.methods) == 2 * 3 + 4 + 2
    # the returns members are out: the combination is rolling OLS on changes alone
    assert ev.combination is not None and ev.combination.members == ("rolling-changes",)
    np.testing.assert_allclose(
        ev.paths["combined"].hedge, ev.paths["rolling-changes"].hedge, rtol=0, atol=1e-15
    )


def test_the_calibrator_sees_only_the_training_bars() -> None:
    """evaluate_pair hands calibration bars [0, split) only: a spy says so, and changing
    every test price changes none of the fitted parameters or chosen windows."""
    table = load_prices(FACTORS)
    y, x = table.column("USMV")[:700].copy(), table.column("SIZE")[:700].copy()
    seen: list[int] = []

    def spy(yy: np.ndarray, xx: np.ndarray) -> CalibrationLike:
        seen.append(len(yy))
        return default_calibrator(yy, xx)

    def settings(yy: np.ndarray) -> list[tuple[str, object, object, object]]:
        ev = evaluate_pair(
            yy, x, pair="USMV/SIZE", ts=table.ts[:700], labels=table.labels[:700], split=400,
            calibrator=spy,
        )  # fmt: skip
        return sorted((m.name, m.delta, m.obs_cov, m.window) for m in ev.methods)

    first = settings(y)
    y[400:] *= 1.1
    assert settings(y) == first
    assert seen == [400, 400]


def test_a_test_window_without_enough_measured_bars_is_refused() -> None:
    table = load_prices(FACTORS)
    y, x = table.column("USMV")[:400].copy(), table.column("SIZE")[:400].copy()
    x[210:] = np.nan  # X stops trading 10 bars into the test window
    with pytest.raises(ConfigError, match="10 bars on which every hedge has a P&L"):
        evaluate_pair(y, x, pair="A/B", ts=table.ts[:400], labels=table.labels[:400], split=200)


def test_a_zero_price_in_the_test_window_is_a_missing_bar_for_the_log_modes() -> None:
    table = load_prices(FACTORS)
    y, x = table.column("USMV")[:600].copy(), table.column("SIZE")[:600].copy()
    y[450] = 0.0  # a bad print after training: the returns filter skips it, nothing crashes
    ev = evaluate_pair(y, x, pair="A/B", ts=table.ts[:600], labels=table.labels[:600], split=300)
    assert ev.method("kalman-returns-calibrated").hedged_variance > 0.0
    path = kalman_path(chan_params(InputMode.RETURNS), y, x)
    assert path.hedge[450] == path.hedge[449]  # the hedge set before the bad bar carries on
