"""The combined hedge live (:mod:`hedger.core.combined`): a replay reproduces ``hedger
evaluate``'s ``combined`` hedge, the bank and the actors give the same events, the published
hedge and quantities are the combination's, a combination resumes from its snapshot, and a
bad ``combine`` table is one readable line."""

from __future__ import annotations

import asyncio
import json
import math
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from websockets.asyncio.client import connect

from hedger.config.combine import combine_spec
from hedger.config.pipeline import pipeline_config
from hedger.core.actors import PairSpec
from hedger.core.bar_events import BarOutput
from hedger.core.combined import CombinedPair, CombineSpec
from hedger.core.events import HedgeRatioEvent, SpreadEvent, encode
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.topics import PairId
from hedger.engine import FilterParams, Position
from hedger.engine.alarm import AlarmParams
from hedger.engine.calibrate import calibrate
from hedger.engine.params import InputMode
from hedger.errors import ConfigError
from hedger.research.baselines import choose_window
from hedger.research.evaluate import evaluate_pair, split_index
from hedger.research.prices import load_prices
from tests.conftest import run_hedger
from tests.test_bank_path import SECOND, assert_close, assert_same_events, run, ticks_of
from tests.test_daemon import SYNTHETIC_FEEDS, DaemonProcess, start

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FACTORS = EXAMPLES / "ishares_factors_daily.csv"


def combined_spec(y: str, x: str, **pair: object) -> PairSpec:
    """A pair on returns hedged by the default combination (rolling window 20 bars)."""
    params = FilterParams(mode=InputMode.RETURNS, delta=1e-4, obs_cov=1e-4, outlier_z=4.0)
    spec = combine_spec({"rolling_window": 20}, params, "pairs.test.combine")
    return PairSpec(PairId(y, (x,)), params, combine=spec, **pair)  # type: ignore[arg-type]


def test_a_replay_of_a_daily_file_publishes_the_evaluations_combined_hedge(
    tmp_path: Path,
) -> None:
    """The config ``calibrate --write`` gives (the calibrated filter, the combination with
    the window chosen in sample), replayed: every bar's published hedge is evaluate's."""
    table = load_prices(FACTORS)
    y, x = table.column("VLUE"), table.column("SIZE")
    split = split_index(0.5, table, len(y))
    ev = evaluate_pair(
        y, x, pair="VLUE/SIZE", ts=table.ts, labels=table.labels, split=split, alarm=None
    )
    fit = calibrate(y[:split], x[:split]).best
    window = choose_window(y, x, split, True)
    config = tmp_path / "combined.toml"
    config.write_text(
        "[filter]\noutlier_z = false\n[alarm]\nenabled = false\n"
        '[pairs."VLUE/SIZE"]\nmode = "returns"\nintercept = false\n'
        f"delta = {fit.delta!r}\nobs_cov = {fit.obs_cov!r}\nadaptive_r = false\n"
        f'[pairs."VLUE/SIZE".combine]\nrolling_window = {window}\n'
    )
    out = tmp_path / "events.jsonl"
    result = run_hedger(
        "replay", str(FACTORS), "--config", str(config), "--bar", "1d", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    ratios = [json.loads(line) for line in out.read_text().splitlines() if "hedge_ratio" in line]
    assert len(ratios) == len(y)
    live = np.array([math.nan if r["hedge"] is None else r["hedge"] for r in ratios])
    expected = ev.paths["combined"].hedge
    np.testing.assert_array_equal(np.isfinite(live), np.isfinite(expected))
    np.testing.assert_allclose(live, expected, rtol=1e-12, atol=1e-14, equal_nan=True)
    last = ratios[-1]["combination"]
    assert last["members"] == ["self", "seed", "chan", "rolling"]
    assert ev.weights is not None
    np.testing.assert_allclose(last["weights"], ev.weights[-1], rtol=1e-12)
    assert math.isclose(sum(last["weights"]), 1.0, abs_tol=1e-12)
    assert "4,528 events" in result.stderr  # the combined pair's two events a bar, counted


def test_bank_and_actors_publish_the_same_combined_events() -> None:
    specs = [
        combined_spec("A", "B", position=Position(shares=1000.0), lots=(10,)),
        combined_spec("C", "B", alarm=AlarmParams(threshold=2.0, burn_in=5, memory=20)),
        PairSpec(PairId("D", ("E",)), FilterParams(mode=InputMode.LOG)),
    ]
    ticks = ticks_of(5, 400)
    reference, ref_pipeline = run(specs, ticks, bank=False)
    banked, bank_pipeline = run(specs, ticks, bank=True)
    assert_same_events(reference, banked)
    # the pairs' whole state, the combination and its members' filters included, is the same
    for a, b in zip(ref_pipeline.actors, bank_pipeline.actors, strict=True):
        assert_close(a.snapshot(), b.snapshot(), a.pair_id)
        json.dumps(b.snapshot())  # plain values, as a checkpoint saves them
    state = bank_pipeline.actors[0].snapshot()["combination"]
    assert state["members"] == ["self", "seed", "chan", "rolling"]
    assert [m["pair"] for m in state["member_states"]] == ["A/B", "A/B"]
    assert ref_pipeline.updates == bank_pipeline.updates == sum(a.seq for a in ref_pipeline.actors)
    assert bank_pipeline.stats.events == len(banked)
    ratios = [e for e in banked if isinstance(e, HedgeRatioEvent) and e.pair == "A/B"]
    assert len(ratios) > 300
    warm = [r for r in ratios if r.hedge is not None]
    last = warm[-1]
    assert last.combination is not None and last.hedge is not None
    weights, hedges = last.combination["weights"], last.combination["hedges"]
    have = [h is not None for h in hedges]
    expected = sum(w * h for w, h, ok in zip(weights, hedges, have, strict=True) if ok)
    expected /= sum(w for w, ok in zip(weights, have, strict=True) if ok)
    assert math.isclose(last.hedge[0], expected, rel_tol=1e-12)
    # the quantities are the combined hedge's, rounded to the lot
    assert last.hedge_qty == (round(-last.hedge[0] * 1000.0 / 10) * 10,)
    # the plain pair is untouched, and nothing of the members is published
    assert all(e.pair in ("A/B", "C/B", "D/E") for e in banked)
    plain = [e for e in banked if isinstance(e, HedgeRatioEvent) and e.pair == "D/E"]
    assert plain and all(e.combination is None for e in plain)


def test_a_watched_combined_pair_off_the_bank_with_its_members_on_it_is_the_same() -> None:
    """A bar listener (a refitter's) keeps the pair's own actor off the bank while its members
    stay in it, and half way the listener goes: the events are those of the actors alone."""
    specs = [combined_spec("A", "B"), combined_spec("C", "D")]
    ticks = ticks_of(13, 300)
    reference, _ = run(specs, ticks, bank=False)
    events: list[Any] = []
    pipeline = Pipeline(specs, SECOND, 2 * SECOND, events.append, Rejects())
    seen: list[int] = []
    pipeline.actors[0].bar_listener = lambda actor, ts, prices: seen.append(ts)
    for i, tick in enumerate(ticks):
        if i == len(ticks) // 2:
            pipeline.actors[0].bar_listener = None
        pipeline.on_tick(tick)
    pipeline.flush()
    assert seen  # the listener ran while the pair was off the bank
    assert_same_events(reference, events)


def test_combined_pairs_in_bulk_are_their_events_byte_for_byte_and_in_the_bar_message() -> None:
    """The bank's combined columns encoded in bulk (with and without a position, beside a
    plain pair) are ``encode(event)`` of the events; the batch message carries the
    combined hedge."""
    outputs: list[BarOutput] = []
    specs = [
        combined_spec("A", "B", position=Position(notional=-50_000.0), lots=(5,)),
        combined_spec("C", "B"),
        PairSpec(PairId("D", ("E",)), FilterParams(mode=InputMode.LOG)),
    ]
    run(specs, ticks_of(14, 300), bank=True, emit_bar=outputs.append)
    assert len(outputs) > 250
    combined = 0
    for n, output in enumerate(outputs, 1):
        expected = [encode(e) for e in output.events()]
        assert output.lines() == expected
        assert output.text() == b"".join(line + b"\n" for line in expected)
        assert [entry[3] for entry in output.entries()] == expected
        message = orjson.loads(output.message(n))
        ratios = {e.pair: e for e in output.events() if isinstance(e, HedgeRatioEvent)}
        for i, pair in enumerate(message["pairs"]):
            hedge = ratios[pair].hedge
            assert_close(message["hedge"][i], None if hedge is None else hedge[0], pair)
        combined += sum(b'"combination":' in line for line in expected)
    assert combined > 400


def test_the_combined_hedged_pnl_is_that_of_the_published_hedge() -> None:
    """Between two bars the pair's filter took, the published P&L is the previous published
    hedge's over the marks; after a bar it did not take (stale, refused), it is null."""
    events, _ = run([combined_spec("A", "B"), combined_spec("C", "D")], ticks_of(8, 300), bank=True)
    ratios = [e for e in events if isinstance(e, HedgeRatioEvent) and e.pair == "A/B"]
    spreads = [e for e in events if isinstance(e, SpreadEvent) and e.pair == "A/B"]
    checked = nulls = 0
    for before, after, spread in zip(ratios, ratios[1:], spreads[1:], strict=False):
        took = not (before.stale or before.outlier or after.stale or after.outlier)
        if not took:
            assert math.isnan(spread.hedged_pnl)
            nulls += 1
            continue
        assert before.prices is not None and after.prices is not None
        y0, x0 = before.prices.values()
        y1, x1 = after.prices.values()
        if before.hedge is None or y0 is None or x0 is None or y1 is None or x1 is None:
            continue
        expected = (y1 - y0) - before.hedge[0] * (x1 - x0)
        assert math.isclose(spread.hedged_pnl, expected, rel_tol=1e-12, abs_tol=1e-12)
        checked += 1
    assert checked > 100 and nulls > 10


def test_a_combination_resumes_from_its_snapshot_exactly() -> None:
    """Two pipelines on the same ticks; half way, the second's combination is replaced by a
    fresh one restored from its snapshot: the events that follow are the same."""
    ticks = ticks_of(9, 300)
    half = [t for t in ticks if t.ts_event < 150 * SECOND]
    rest = [t for t in ticks if t.ts_event >= 150 * SECOND]
    specs = [combined_spec("A", "B"), combined_spec("C", "D")]
    whole: list[object] = []
    resumed: list[object] = []
    one = Pipeline(specs, SECOND, 2 * SECOND, whole.append, Rejects())
    two = Pipeline(specs, SECOND, 2 * SECOND, resumed.append, Rejects())
    for tick in half:
        one.on_tick(tick)
        two.on_tick(tick)
    for actor in two.actors:
        assert actor.combined is not None
        state = json.loads(json.dumps(actor.combined.snapshot()))  # through JSON, as saved
        fresh = CombinedPair(actor.combined.spec)
        fresh.restore(state)
        actor.combined = fresh
    mark = len(resumed)
    for tick in rest:
        one.on_tick(tick)
        two.on_tick(tick)
    one.flush()
    two.flush()
    assert [e.to_dict() for e in whole[mark:]] == [e.to_dict() for e in resumed[mark:]]  # type: ignore[attr-defined]
    other = CombinedPair(CombineSpec())
    with pytest.raises(ValueError, match="members"):
        other.restore(state)


def test_a_combined_pair_can_be_removed_but_not_added_at_run_time() -> None:
    specs = [combined_spec("A", "B"), PairSpec(PairId("C", ("D",)), FilterParams())]
    events: list[object] = []
    pipeline = Pipeline(specs, SECOND, 2 * SECOND, events.append, Rejects())
    ticks = ticks_of(10, 60)
    for tick in ticks[: len(ticks) // 2]:
        pipeline.on_tick(tick)
    with pytest.raises(ConfigError, match="combine: a combined pair is set in the config"):
        pipeline.add_pair(combined_spec("E", "B"))
    # its own filter's noise may change (as a refit changes it); nothing else
    updated = pipeline.update_pair(
        replace(specs[0], combine=None, params=replace(specs[0].params, delta=1e-3))
    )
    assert updated.kept_state
    q = updated.actor.params.trans_cov
    assert q is not None and math.isclose(q[0][0], 1e-3 / (1 - 1e-3), rel_tol=1e-12)
    assert updated.actor.combined is not None
    with pytest.raises(ConfigError, match="combine"):
        pipeline.update_pair(
            replace(specs[0], combine=None, params=replace(specs[0].params, mode=InputMode.LOG))
        )
    pipeline.remove_pair("A/B")
    before = len(events)
    for tick in ticks[len(ticks) // 2 :]:
        pipeline.on_tick(tick)
    pipeline.flush()
    assert {e.pair for e in events[before:]} == {"C/D"}  # type: ignore[attr-defined]
    assert pipeline.updates == pipeline.actors[0].seq


@pytest.mark.parametrize("bank", [True, False])
def test_a_failing_combination_step_is_contained_and_the_bar_goes_out_without_a_hedge(
    monkeypatch: pytest.MonkeyPatch, bank: bool
) -> None:
    def broken(*args: object) -> None:
        raise ZeroDivisionError("boom")

    specs = [combined_spec("A", "B"), PairSpec(PairId("C", ("D",)), FilterParams())]
    events: list[Any] = []
    pipeline = Pipeline(specs, SECOND, 2 * SECOND, events.append, Rejects(), bank=bank)
    ticks = ticks_of(12, 40)
    for tick in ticks[:200]:
        pipeline.on_tick(tick)
    monkeypatch.setattr(CombinedPair, "begin", broken)
    mark = len(events)
    for tick in ticks[200:]:
        pipeline.on_tick(tick)
    pipeline.flush()
    after = [e for e in events[mark:] if e.pair == "A/B"]
    ratios = [e for e in after if isinstance(e, HedgeRatioEvent)]
    assert ratios and all(e.hedge is None and e.combination is None for e in ratios)
    seqs = [e.seq for e in events if isinstance(e, HedgeRatioEvent) and e.pair == "A/B"]
    assert seqs == list(range(1, len(seqs) + 1))  # no gap for subscribers
    assert pipeline.failures.counts["A/B"] == len(after) // 2
    assert any(e.pair == "C/D" for e in events[mark:])  # the other pair is untouched


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ("members = ['seed', 'chan']", "pairs.A/B.combine.members: must include 'self'"),
        ("members = ['self', 'kalman']", "unknown member 'kalman'"),
        ("members = ['self', 'self']", "names a member twice"),
        ("members = ['self']", "at least two members"),
        ("members = ['self', 'rolling']", "pairs.A/B.combine.rolling_window: is needed"),
        ("rolling_window = 2", "rolling_window"),
        ("members = ['self', 'seed']\nrolling_window = 20", "'rolling' is not one of the members"),
        ("rolling_window = 20\nshrink = -1", "pairs.A/B.combine.shrink"),
        ("rolling_window = 20\nweighting = 'best'", "weighting"),
        ("rolling_window = 20\ncolour = 1", "colour"),
    ],
)
def test_a_bad_combine_table_is_a_config_error_naming_its_key(table: str, needle: str) -> None:
    document = tomllib.loads(f'[pairs."A/B"]\nmode = "returns"\n[pairs."A/B".combine]\n{table}\n')
    with pytest.raises(ConfigError) as caught:
        pipeline_config(document)
    assert needle in str(caught.value)


def test_replay_refuses_a_bad_combine_table_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[pairs."VLUE/SIZE"]\n[pairs."VLUE/SIZE".combine]\nmembers = ["seed"]\n')
    result = run_hedger("replay", str(FACTORS), "--config", str(config), "--bar", "1d")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "must include 'self'" in lines[0], result.stderr


COMBINED_DAEMON = f"""
[bars]
length = "250ms"
max_age = "1s"
[pairs."YYY/XXX"]
mode = "returns"
[pairs."YYY/XXX".combine]
rolling_window = 20
min_obs = 5
[pairs."ZZZ/XXX"]
{SYNTHETIC_FEEDS}
[bus.websocket]
port = 0
[daemon]
shutdown_timeout = "5s"
bar_grace = "50ms"
[logging]
level = "info"
json = true
"""


@pytest.mark.slow
async def test_the_daemon_publishes_the_combined_hedge_live(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """``hedger run`` with a combined pair beside a plain one (both in the bank): its ratio
    events carry the combination, whose weights move off equal, and the hedge is theirs."""
    daemon = start(tmp_path, COMBINED_DAEMON, daemons)
    port = await daemon.ws_port()
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(60), connect(f"ws://127.0.0.1:{port}") as ws:
        await ws.send(orjson.dumps({"action": "subscribe", "pairs": ["YYY/XXX"]}).decode())
        while True:
            event = orjson.loads(await ws.recv())
            if event.get("type") != "hedge_ratio":
                continue
            seen.append(event)
            combination = event["combination"]
            assert isinstance(combination, dict)
            if event["hedge"] is not None and len(set(combination["weights"])) > 1:
                break
    assert combination["members"] == ["self", "seed", "chan", "rolling"]
    pairs = [
        (w, h) for w, h in zip(combination["weights"], combination["hedges"], strict=True) if h
    ]
    expected = sum(w * h for w, h in pairs) / sum(w for w, _ in pairs)
    assert math.isclose(event["hedge"], expected, rel_tol=1e-12)
    seqs = [e["seq"] for e in seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    code, log = await asyncio.to_thread(daemon.stop)
    assert code == 0, log[-3000:]
