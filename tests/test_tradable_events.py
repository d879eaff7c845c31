"""Events a desk can trade on: ``mode``, ``hedge`` in shares at the bar's ``prices``, the
position's ``hedge_qty`` and ``hedge_notional``, ``hedged_pnl`` and ``ts_init``, in every mode,
for pairs and baskets, checked against independent computations (the offline path of
:mod:`hedger.engine.units`, and the formulas written out here)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hedger import Position, bar_hedge, hedge_quantities, round_to_lot
from hedger.cli.subscribe import RatioBoard
from hedger.config.pipeline import pipeline_config
from hedger.core.actors import PairSpec
from hedger.core.events import Event, HedgeRatioEvent, SpreadEvent, encode
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
from hedger.core.topics import PairId
from hedger.engine import FilterParams, InputMode, filter_prices, hedged_pnl, shares_hedge
from hedger.errors import ConfigError
from tests.conftest import run_hedger

S = 1_000_000_000
MODES = list(InputMode)


def market(n_bars: int, n_legs: int, seed: int = 7) -> np.ndarray:
    """(n_bars, 1 + n_legs) positive prices: hedges as random walks in log, Y tied to them."""
    rng = np.random.default_rng(seed)
    xs = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_bars, n_legs)), axis=0))
    y = 20.0 + xs @ np.linspace(0.8, 0.3, n_legs) + rng.normal(0, 0.3, n_bars)
    return np.column_stack([y, xs])


def run(
    pair: str,
    prices: np.ndarray,
    params: FilterParams,
    *,
    position: Position | None = None,
    lots: tuple[int, ...] | None = None,
    skip: set[tuple[int, int]] = frozenset(),  # type: ignore[assignment]
    clock: Any = None,
) -> list[Event]:
    """Events of one pair over bars of ``prices`` (one tick per leg per 1 s bar; ``skip``
    holds (bar, leg) without a tick)."""
    pid = PairId.parse(pair)
    events: list[Event] = []
    spec = PairSpec(pid, params, position, lots)
    pipeline = Pipeline([spec], S, S, events.append, Rejects(), clock=clock)
    for t, row in enumerate(prices):
        for leg, (symbol, price) in enumerate(zip(pid.legs, row, strict=True)):
            if (t, leg) not in skip:
                pipeline.on_tick(Tick(symbol, float(price), t * S + 1, t * S + 1))
    pipeline.flush()
    return events


def ratios(events: list[Event]) -> list[HedgeRatioEvent]:
    return [e for e in events if isinstance(e, HedgeRatioEvent)]


def spreads(events: list[Event]) -> list[SpreadEvent]:
    return [e for e in events if isinstance(e, SpreadEvent)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pair", ["Y/X", "Y/X1+X2"])
def test_hedge_is_beta_in_shares_at_the_bars_prices(mode: InputMode, pair: str) -> None:
    legs = PairId.parse(pair).legs
    prices = market(120, len(legs) - 1)
    params = FilterParams(mode=mode, n_legs=len(legs) - 1)
    events = ratios(run(pair, prices, params))
    assert len(events) == 120
    for t, event in enumerate(events):
        body = orjson.loads(encode(event))
        assert body["mode"] == mode.value
        assert list(body["prices"]) == list(legs)  # Y first, then the pair id's order
        assert list(body["prices"].values()) == pytest.approx(prices[t].tolist(), abs=0)
        py, pxs = prices[t][0], prices[t][1:]
        betas = event.beta
        expected = (
            [b * py / px for b, px in zip(betas, pxs, strict=True)] if mode.logarithmic else betas
        )
        hedge = body["hedge"] if isinstance(body["hedge"], list) else [body["hedge"]]
        assert hedge == pytest.approx(list(expected), rel=1e-15)
        assert isinstance(body["hedge"], list) == (len(legs) > 2)
        assert body["ts_init"] == body["ts"]  # no clock: a replay stamps the bar's close
        assert "hedge_qty" not in body and "position" not in body


@pytest.mark.parametrize("mode", MODES)
def test_hedged_pnl_equals_the_offline_path(mode: InputMode) -> None:
    """Live ``hedged_pnl`` (and ``hedge``) equal ``filter_prices`` -> ``shares_hedge`` ->
    ``hedged_pnl`` over the same bars."""
    prices = market(300, 1, seed=11)
    params = FilterParams(mode=mode)
    events = run("Y/X", prices, params)
    y, x = prices[:, 0].copy(), prices[:, 1].copy()
    path = filter_prices(params, y, x)
    h = shares_hedge(path.beta, y, x, mode)
    pnl = hedged_pnl(y, x, h)
    live_h = np.array([e.hedge[0] if e.hedge else math.nan for e in ratios(events)])
    live_pnl = np.array([e.hedged_pnl for e in spreads(events)])
    np.testing.assert_allclose(live_h, h, rtol=1e-12)
    assert math.isnan(live_pnl[0])
    np.testing.assert_allclose(live_pnl[1:], pnl[1:], rtol=1e-9, atol=1e-12)


def test_basket_hedged_pnl_is_dy_minus_the_previous_hedges_times_dx() -> None:
    prices = market(80, 2, seed=3)
    events = run("Y/A+B", prices, FilterParams(mode=InputMode.RETURNS, n_legs=2))
    r, s = ratios(events), spreads(events)
    for t in range(1, len(r)):
        held = r[t - 1].hedge
        assert held is not None
        dy, dxs = prices[t][0] - prices[t - 1][0], prices[t][1:] - prices[t - 1][1:]
        expected = dy - sum(h * dx for h, dx in zip(held, dxs, strict=True))
        assert s[t].hedged_pnl == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_a_bad_print_moves_neither_the_marks_nor_the_hedge() -> None:
    prices = market(100, 1, seed=5)
    prices[60, 0] *= 10  # one print of Y 10x off
    params = FilterParams(mode=InputMode.LOG, outlier_z=6.0)
    r, s = ratios(e := run("Y/X", prices, params)), spreads(e)
    assert r[60].outlier and not r[59].outlier
    assert r[60].prices == r[59].prices  # the refused print is not a mark
    assert r[60].hedge is not None and r[59].hedge is not None
    assert r[60].hedge[0] == pytest.approx(r[59].hedge[0], rel=1e-3)  # predict-only: beta kept
    assert s[60].hedged_pnl == pytest.approx(0.0, abs=1e-12)  # marks did not move
    assert r[61].prices is not None and r[61].prices["Y"] == prices[61, 0]


def test_stale_legs_keep_their_mark_and_log_hedges_wait_for_prices() -> None:
    prices = market(10, 1)
    events = run("Y/X", prices, FilterParams(mode=InputMode.RETURNS), skip={(0, 1), (4, 1)})
    r = ratios(events)
    assert r[0].prices == {"Y": prices[0, 0], "X": None} and r[0].hedge is None
    assert r[4].stale and r[4].prices is not None and r[4].prices["X"] == prices[3, 1]
    s = spreads(events)
    assert math.isnan(s[1].hedged_pnl)  # no previous hedge yet


def test_null_numbers_go_together_in_spread_events() -> None:
    prices = market(40, 1)
    events = run("Y/X", prices, FilterParams(mode=InputMode.CHANGES), skip={(3, 0), (9, 1)})
    for event in spreads(events):
        body = orjson.loads(encode(event))
        nulls = {k for k in ("innovation", "innovation_std", "zscore") if body[k] is None}
        assert nulls in (set(), {"innovation", "innovation_std", "zscore"})


def test_ts_init_comes_from_the_clock() -> None:
    ticks = iter(range(10**18, 10**18 + 1000))
    events = run("Y/X", market(5, 1), FilterParams(), clock=lambda: next(ticks))
    stamps = [e.ts_init for e in events]
    assert stamps[0::2] == stamps[1::2]  # one stamp a bar, on both of its events
    assert stamps[0::2] == list(range(10**18, 10**18 + 5))


@pytest.mark.parametrize("mode", [InputMode.LEVELS, InputMode.RETURNS])
def test_positions_give_integer_quantities_rounded_to_the_lot(mode: InputMode) -> None:
    prices = market(60, 2, seed=9)
    position = Position(shares=12_345)
    events = ratios(
        run("Y/A+B", prices, FilterParams(mode=mode, n_legs=2), position=position, lots=(1, 100))
    )
    for event in events:
        body = orjson.loads(encode(event))
        assert body["position"] == 12_345
        assert event.hedge is not None
        raw = [-h * 12_345 for h in event.hedge]
        assert body["hedge_qty"][0] == round(raw[0])
        assert body["hedge_qty"][1] % 100 == 0 and abs(body["hedge_qty"][1] - raw[1]) <= 50
        assert all(
            q == 0 or math.copysign(1, q) == math.copysign(1, v)
            for q, v in zip(body["hedge_qty"], raw, strict=True)
        )
        assert body["hedge_notional"] == pytest.approx(
            [
                q * p
                for q, p in zip(body["hedge_qty"], list(body["prices"].values())[1:], strict=True)
            ]
        )


def test_a_notional_position_is_shares_at_the_price_of_y() -> None:
    prices = market(20, 1)
    events = ratios(run("Y/X", prices, FilterParams(), position=Position(notional=1e6)))
    for t, event in enumerate(events):
        assert event.position == pytest.approx(1e6 / prices[t, 0], rel=1e-15)
        assert event.hedge_qty == hedge_quantities(event.hedge or (), 1e6 / prices[t, 0], [1])
        assert isinstance(orjson.loads(encode(event))["hedge_qty"], int)


@given(st.floats(-1e9, 1e9, allow_nan=False), st.integers(1, 10_000))
def test_round_to_lot_is_nearest_and_never_flips_sign(quantity: float, lot: int) -> None:
    rounded = round_to_lot(quantity, lot)
    assert rounded % lot == 0
    assert abs(rounded - quantity) <= lot / 2 + 1e-6 * max(1.0, abs(quantity))
    assert rounded == 0 or (rounded > 0) == (quantity > 0)


def test_round_to_lot_halves_go_away_from_zero_and_bad_lots_are_refused() -> None:
    assert round_to_lot(150, 100) == 200 and round_to_lot(-150, 100) == -200
    assert round_to_lot(49.9, 100) == 0 and round_to_lot(-0.4) == 0
    with pytest.raises(ValueError, match="lot"):
        round_to_lot(10, 0)
    with pytest.raises(ValueError, match="cannot round"):
        round_to_lot(math.nan)
    assert bar_hedge([0.5], InputMode.LOG, 100.0, [50.0]) == (1.0,)
    assert bar_hedge([0.5], InputMode.CHANGES, 100.0, [50.0]) == (0.5,)


def test_positions_and_lots_from_the_config() -> None:
    doc = {
        "pairs": {"AAPL/SPY": {}, "XLE/USO+UNG": {}},
        "positions": {"AAPL/SPY": -500, "XLE/USO+UNG": {"notional": 2.5e5}},
        "lots": {"UNG": 100},
    }
    specs = {str(s.pair): s for s in pipeline_config(doc).pairs}
    assert specs["AAPL/SPY"].position == Position(shares=-500.0)
    assert specs["AAPL/SPY"].lots == (1,)
    assert specs["XLE/USO+UNG"].position == Position(notional=2.5e5)
    assert specs["XLE/USO+UNG"].lots == (1, 100)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"positions": {"A/C": 5}}, "positions.A/C: no such pair is run"),
        ({"positions": {"A/B": True}}, "positions.A/B: must be a number of shares or a table"),
        (
            {"positions": {"A/B": {"shares": 1, "notional": 2}}},
            "positions.A/B: give shares or a notional",
        ),
        ({"positions": {"A/B": {"lots": 1}}}, "positions.A/B.lots: unknown key"),
        ({"positions": {"A/B": math.inf}}, "positions.A/B: must be a finite number"),
        ({"lots": {"B": 0}}, "lots.B: must be a whole number of shares >= 1"),
        ({"lots": {"B": 2.5}}, "lots.B: must be a whole number of shares >= 1"),
        ({"positions": 3}, "positions: must be a table"),
    ],
)
def test_bad_positions_are_one_line_naming_the_key(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        pipeline_config({"pairs": {"A/B": {}}, **extra})
    assert str(caught.value).startswith(message), str(caught.value)


def test_replay_with_positions_writes_quantities(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[1] / "examples"
    config = tmp_path / "desk.toml"
    config.write_text('[positions]\n"VLUE/SIZE" = 1000\n[lots]\nSIZE = 10\n')
    out = tmp_path / "events.jsonl"
    result = run_hedger(
        "replay", str(examples / "ishares_factors_daily.csv"), "--pair", "VLUE/SIZE",
        "--bar", "1d", "--mode", "returns", "--config", str(config), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    last = [r for r in rows if r["type"] == "hedge_ratio"][-1]
    assert last["position"] == 1000 and last["hedge_qty"] % 10 == 0
    assert last["hedge_qty"] == round_to_lot(-last["hedge"] * 1000, 10)
    bad = tmp_path / "bad.toml"
    bad.write_text('[positions]\n"VLUE/QUAL" = 1000\n')
    result = run_hedger(
        "replay", str(examples / "ishares_factors_daily.csv"), "--pair", "VLUE/SIZE",
        "--bar", "1d", "--config", str(bad),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "positions.VLUE/QUAL" in result.stderr


def test_subscribe_shows_shares_quantities_and_spaced_symbols() -> None:
    board = RatioBoard()
    body = {
        "type": "hedge_ratio", "pair": "BRK%20B/SPY", "seq": 3, "ts": 1, "beta": 0.25,
        "beta_std": 0.01, "alpha": 0.0, "hedge": 0.5, "hedge_qty": -500, "warm": True,
        "stale": False, "outlier": True,
    }  # fmt: skip
    event, _ = board.accept(orjson.dumps(body), 0.0)
    assert event is not None
    line = board.render_line("BRK%20B/SPY", 1.0)
    assert line.startswith("BRK B/SPY ") and "0.5000" in line and "-500" in line
    assert "outlier" in line
