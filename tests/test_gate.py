"""The innovation gate: a well-formed tick with a wrong price (10x, 100x, 1/100 off) is refused
as an outlier, so the hedge ratio ends where a clean run ends; a run of outliers (a split) is a
new level, and the pair starts again instead of refusing it for ever. The same gate in the
library (``FilterParams.outlier_z``), in a replay of a real file and in the pipeline the daemon
runs."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedger import FilterParams, HedgeFilter, InputMode
from hedger.config.pipeline import pipeline_config
from hedger.core.events import Event
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
from hedger.errors import ConfigError
from hedger.runtime.replay import replay
from tests.conftest import run_hedger

T = 1500
BAD_BAR = 900


def market(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) prices (T,): x a random walk near 100, y = 1.5 x + 5 + noise."""
    rng = np.random.default_rng(seed)
    x = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, T)))
    return 1.5 * x + 5 + rng.normal(0, 0.3, T), x


def run(params: FilterParams, y: np.ndarray, x: np.ndarray) -> HedgeFilter:
    f = HedgeFilter(params)
    for a, b in zip(y, x, strict=True):
        f.step(float(a), float(b))
    return f


GATED = FilterParams(outlier_z=6.0)


@pytest.mark.parametrize("factor", [10.0, 100.0, 0.01])
@pytest.mark.parametrize("leg", ["y", "x"])
def test_one_bad_print_leaves_the_final_beta_within_1_percent(factor: float, leg: str) -> None:
    y, x = market()
    clean = run(GATED, y, x)
    bad_y, bad_x = y.copy(), x.copy()
    (bad_y if leg == "y" else bad_x)[BAD_BAR] *= factor
    gated = run(GATED, bad_y, bad_x)
    assert gated.outliers == 1 and gated.restarts == 0
    assert abs(gated.step(None, None).beta / clean.step(None, None).beta - 1) < 0.01
    ungated = run(FilterParams(), bad_y, bad_x)  # what happened before the gate
    assert abs(ungated.step(None, None).beta / clean.step(None, None).beta - 1) > 0.05


def test_a_refused_observation_is_a_predict_only_step_that_r_does_not_absorb() -> None:
    y, x = market()
    f, twin = HedgeFilter(GATED), HedgeFilter(GATED)
    for a, b in zip(y[:BAD_BAR], x[:BAD_BAR], strict=True):
        f.step(float(a), float(b))
        twin.step(float(a), float(b))
    step = f.step(float(y[BAD_BAR]) * 10, float(x[BAD_BAR]))
    missing = twin.step(None, None)  # a bar with no observation at all
    assert step.outlier and step.predicted_only and not step.restarted
    assert abs(step.zscore) > 100 and step.innovation == pytest.approx(
        step.zscore * step.innovation_var**0.5
    )
    assert (step.betas, step.alpha, step.cov) == (missing.betas, missing.alpha, missing.cov)
    assert f.snapshot()["obs_cov"] == twin.snapshot()["obs_cov"]
    assert f.observations == twin.observations


def test_a_split_is_a_new_level_after_a_run_of_outliers() -> None:
    y, x = market()
    split = x.copy()
    split[BAD_BAR:] /= 2  # a 2:1 split of X: one share of Y now hedges with twice the shares
    params = replace(GATED, outlier_run=5)
    f = HedgeFilter(params)
    steps = [f.step(float(a), float(b)) for a, b in zip(y, split, strict=True)]
    assert [i for i, s in enumerate(steps) if s.outlier] == list(range(BAD_BAR, BAD_BAR + 4))
    assert [i for i, s in enumerate(steps) if s.restarted] == [BAD_BAR + 4]
    assert (f.outliers, f.restarts) == (4, 1)  # the run's last bar restarted, not refused
    # the clean twin: the same prices with the split always there
    twin = HedgeFilter(params)
    twin_steps = [twin.step(float(a), float(b)) for a, b in zip(y, x / 2, strict=True)]
    back = next(
        i
        for i in range(BAD_BAR, T)
        if steps[i].warm and abs(steps[i].beta - twin_steps[i].beta) < 2 * steps[i].beta_std[0]
    )
    assert back - BAD_BAR < 60  # docs/reliability.md reports the figure
    assert f.step(None, None).beta == pytest.approx(3.0, rel=0.02)


def test_without_a_gate_nothing_is_refused_and_the_gate_is_validated() -> None:
    y, x = market()
    y[BAD_BAR] *= 10
    assert run(FilterParams(), y, x).outliers == 0
    for bad in (0.5, float("inf"), "6"):
        with pytest.raises(ConfigError, match="outlier_z"):
            FilterParams(outlier_z=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="outlier_run"):
        FilterParams(outlier_run=0)


def test_a_basket_is_gated_too() -> None:
    rng = np.random.default_rng(3)
    x1 = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, T)))
    x2 = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, T)))
    y = 0.8 * x1 + 1.2 * x2 + rng.normal(0, 0.3, T)
    params = FilterParams(n_legs=2, outlier_z=6.0)
    clean, bad = HedgeFilter(params), HedgeFilter(params)
    for i in range(T):
        clean.step(float(y[i]), [float(x1[i]), float(x2[i])])
        bad.step(float(y[i]) * (10 if i == BAD_BAR else 1), [float(x1[i]), float(x2[i])])
    assert bad.outliers == 1
    none = [None, None]
    np.testing.assert_allclose(bad.step(None, none).betas, clean.step(None, none).betas, rtol=0.01)


@settings(max_examples=40, deadline=None)
@given(bar=st.integers(100, T - 2), factor=st.sampled_from([8.0, 30.0, 1e3, 1e-2, 1e-3]))
def test_any_single_bad_print_is_refused_in_every_mode(bar: int, factor: float) -> None:
    y, x = market(bar)
    y[bar] *= factor
    for mode in InputMode:
        f = run(replace(GATED, mode=mode), y, x)
        # in the differenced modes one bad price makes two bad changes (into it and out of it)
        assert 1 <= f.outliers <= 2 and f.restarts == 0, mode


# --- the same gate where the daemon and the replay use it -----------------------------------

S = 1_000_000_000
T0 = 1_700_000_000 * S


def tick_rows(bad_factor: float) -> list[tuple[int, str, float]]:
    """Two symbols, 10 ticks each per 1 s bar for 400 s; one YYY print in bar 300, the last of
    its bar, is ``bad_factor`` off."""
    y, x = market(7)
    rows = []
    for bar in range(400):
        for k in range(10):
            ts = T0 + bar * S + k * (S // 10) + 1
            rows.append((ts, "XXX", round(float(x[bar]) * (1 + 1e-4 * k), 4)))
            price = float(y[bar]) * (1 + 1e-4 * k)
            if bar == 300 and k == 9:
                price *= bad_factor
            rows.append((ts + 1, "YYY", round(price, 4)))
    return rows


def final_beta(out: bytes) -> float:
    ratios = [orjson.loads(line) for line in out.splitlines() if b'"hedge_ratio"' in line]
    return float(ratios[-1]["beta"])


@pytest.mark.parametrize("factor", [10.0, 100.0, 0.01])
def test_replay_of_a_real_file_with_one_bad_print(tmp_path: Path, factor: float) -> None:
    clean_file, bad_file = tmp_path / "clean.csv", tmp_path / "bad.csv"
    for path, rows in ((clean_file, tick_rows(1.0)), (bad_file, tick_rows(factor))):
        path.write_text("ts,symbol,price\n" + "".join(f"{t},{s},{p}\n" for t, s, p in rows))
    cfg = pipeline_config({}, extra_pairs=("YYY/XXX",), bar_overrides={"length": "1s"})
    results = {}
    for name, path in (("clean", clean_file), ("bad", bad_file)):
        out = io.BytesIO()
        summary = replay([path], cfg, out, ts_unit="ns")
        results[name] = (final_beta(out.getvalue()), summary.rejects)
    assert abs(results["bad"][0] / results["clean"][0] - 1) < 0.01
    assert results["bad"][1].get("outlier") == 1 and "outlier" not in results["clean"][1]
    # the command line says so too, and the event carries the flag
    events = tmp_path / "events.jsonl"
    result = run_hedger(
        "replay", str(bad_file), "--pair", "YYY/XXX", "--bar", "1s", "--out", str(events)
    )
    assert result.returncode == 0 and "outlier 1" in result.stderr, result.stderr
    flagged = [orjson.loads(line) for line in events.read_bytes().splitlines()]
    assert [(e["type"], e["seq"]) for e in flagged if e["outlier"]] == [
        ("hedge_ratio", 301),
        ("spread", 301),
    ]


def test_the_pipeline_counts_outliers_by_pair() -> None:
    events: list[Event] = []
    rejects = Rejects()
    cfg = pipeline_config({}, extra_pairs=("YYY/XXX", "ZZZ/XXX"))
    pipeline = Pipeline(cfg.pairs, S, S, events.append, rejects)
    y, x = market(11)
    for bar in range(400):
        ts = T0 + bar * S + 1
        pipeline.on_tick(Tick("XXX", float(x[bar]), ts, ts))
        pipeline.on_tick(Tick("YYY", float(y[bar]) * (10 if bar == 300 else 1), ts, ts))
        pipeline.on_tick(Tick("ZZZ", float(y[bar]) + 1, ts, ts))
    pipeline.flush()
    assert rejects.counts["outlier"] == 1
    flagged = [e for e in events if getattr(e, "outlier", False)]
    assert [(e.pair, e.seq) for e in flagged] == [("YYY/XXX", 301), ("YYY/XXX", 301)]
