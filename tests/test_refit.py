"""Background refits: swapping noise into a running filter keeps its state, the [refit]
config, and a daemon on a recorded file that refits every few bars without losing a beat."""

from __future__ import annotations

import asyncio
import itertools
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from hedger.config.daemon import daemon_config
from hedger.config.refit import MIN_BARS, RefitSettings, refit_settings
from hedger.core.bus import Message
from hedger.engine import (
    BasketFilter,
    DiffuseInit,
    FilterParams,
    HedgeFilter,
    InputMode,
    PairFilter,
)
from hedger.errors import ConfigError
from hedger.research.prices import load_prices
from hedger.runtime.daemon import Daemon
from tests.conftest import ROOT
from tests.waiting import eventually

Q2 = ((3e-5, 1e-6), (1e-6, 2e-5))


def prices(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = 50.0 + np.cumsum(rng.normal(0.0, 0.5, n))
    return 0.8 * x + 3.0 + rng.normal(0.0, 0.3, n), x


@pytest.mark.parametrize("intercept", [True, False])
def test_pair_filter_set_noise_keeps_the_state(intercept: bool) -> None:
    """After ``set_noise`` the state is untouched (R aside), and the next steps are exactly
    those of a filter built with the new noise and restored to the same state."""
    y, x = prices(80)
    a = PairFilter((0.0, 0.0), ((1e4, 0.0), (0.0, 1e4)), ((1e-6, 0.0), (0.0, 1e-6)), 0.5,
                   intercept=intercept)  # fmt: skip
    for t in range(40):
        a.update(y[t], x[t])
    before = a.state
    a.set_noise(Q2, 0.09)
    assert a.state == before._replace(r=0.09)
    b = PairFilter((0.0, 0.0), ((1.0, 0.0), (0.0, 1.0)), Q2, 1.0, intercept=intercept)
    b.restore(a.state)
    a.predict()
    b.predict()
    for t in range(40, 80):
        assert a.update(y[t], x[t]) == b.update(y[t], x[t])
        assert a.raw() == b.raw()


def test_basket_filter_set_noise_keeps_the_state() -> None:
    rng = np.random.default_rng(5)
    xs = 20.0 + np.cumsum(rng.normal(0.0, 0.3, (60, 2)), axis=0)
    y = xs @ np.array([0.5, 1.5]) + 2.0 + rng.normal(0.0, 0.2, 60)
    q1, q3 = np.eye(3) * 1e-6, np.diag([2e-5, 1e-5, 3e-5])
    a = BasketFilter(np.zeros(3), np.eye(3) * 1e4, q1, 0.5)
    for t in range(30):
        a.update(y[t], xs[t])
    mean, cov = a.mean, a.cov
    a.set_noise(q3, 0.04)
    assert np.array_equal(a.mean, mean) and np.array_equal(a.cov, cov) and a.obs_cov == 0.04
    b = BasketFilter(mean, cov, q3, 0.04)
    b.reset(mean, cov, 0.04, primed=True)
    # b re-factorises P into another square root: equal to rounding, not to the bit
    for t in range(30, 60):
        assert a.update(y[t], xs[t]) == pytest.approx(b.update(y[t], xs[t]), rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(a.mean, b.mean, rtol=1e-9)


@pytest.mark.parametrize(
    "params",
    [
        FilterParams(mode=InputMode.LEVELS, adaptive_r=None),
        FilterParams(mode=InputMode.CHANGES, adaptive_r=0.98),  # no intercept, adaptive R
        FilterParams(mode=InputMode.LOG, init=DiffuseInit(), adaptive_r=None),
    ],
)
def test_hedge_filter_set_noise_keeps_state_and_memory(params: FilterParams) -> None:
    """The whole online filter: the snapshot (mean, covariance, transform memory, warm-up
    progress) is unchanged apart from R, ``params`` carries the new noise, and the following
    steps equal those of the core filter built with the new noise from the same state."""
    y, x = prices(120)
    hf = HedgeFilter(params)
    for t in range(60):
        hf.step(y[t], x[t])
    n = params.n_states
    q = np.eye(n) * 4e-6
    before = hf.snapshot()
    core_state = hf._core.state  # type: ignore[union-attr]
    hf.set_noise(q, 0.07)
    assert hf.snapshot() == {**before, "obs_cov": 0.07}
    assert hf.params.state_noise().tolist() == q.tolist() and hf.params.obs_cov == 0.07
    assert hf.params.mode is params.mode and hf.params.adaptive_r == params.adaptive_r
    padded = np.zeros((2, 2))
    padded[:n, :n] = q
    ref = PairFilter((0.0, 0.0), ((1.0, 0.0), (0.0, 1.0)), padded, 1.0,
                     intercept=params.has_intercept, adaptive_r=params.adaptive_r)  # fmt: skip
    ref.restore(core_state._replace(r=0.07))
    transform = np.log if params.mode.logarithmic else (lambda v: v)
    for t in range(60, 120):
        step = hf.step(y[t], x[t])
        yo, xo = transform(y[t]), transform(x[t])
        if params.mode.differenced:
            yo, xo = yo - transform(y[t - 1]), xo - transform(x[t - 1])
        assert step.zscore == ref.update(yo, xo)
        assert step.betas[0] == ref.beta and step.obs_cov >= 0.0
    with pytest.raises(ConfigError):
        hf.set_noise(-q, 0.07)  # invalid noise changes nothing
    assert hf.params.obs_cov == 0.07


def test_refit_settings_are_validated() -> None:
    assert refit_settings({}) == RefitSettings(500, None, 2000, 250)
    settings = refit_settings({"every": "4h", "window": 300, "min_bars": 100})
    assert settings.every_bars is None and settings.every_ns == 4 * 3600 * 10**9
    bad: list[tuple[dict[str, Any], str]] = [
        ({"colour": 1}, "refit.colour"),
        ({"every": 0}, "refit.every"),
        ({"every": "soon"}, "refit.every"),
        ({"every": True}, "refit.every"),
        ({"window": MIN_BARS - 1}, "refit.window"),
        ({"window": 100, "min_bars": 200}, "refit.min_bars"),
        ({"min_bars": 10}, "refit.min_bars"),
    ]
    for table, key in bad:
        with pytest.raises(ConfigError) as err:
            refit_settings(table)
        assert err.value.key == key
    text = '[pairs."A/B"]\n[[feeds]]\nkind = "synthetic"\n[refit]\nevery = 10\nwindow = 60\n'
    config = daemon_config(tomllib.loads(text))
    assert config.refit == RefitSettings(10, None, 60, 60)
    with pytest.raises(ConfigError) as err:
        daemon_config(tomllib.loads(text + "windo = 3\n"))
    assert err.value.key == "refit.windo"
    assert daemon_config(tomllib.loads(text.partition("[refit]")[0])).refit is None


class RecordingLogger:
    """A logger that keeps what it is told (event, fields)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def _log(self, level: str, event: str, **fields: Any) -> None:
        self.records.append((level, event, fields))

    def debug(self, event: str, **fields: Any) -> None:
        self._log("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, **fields)


async def test_daemon_refits_in_the_background_without_resetting(tmp_path: Path) -> None:
    """A daemon on 300 recorded daily bars of QUAL/MTUM (paced at ~3 ms a day so refits land
    while bars flow), refitting every 20 bars on a 120-bar window: refits happen and are
    logged with both parameter sets and counted in the metrics; seq is contiguous; and every
    published beta equals an offline filter that swaps in each refit's noise after the bar
    the daemon swapped it at: the filter's state carried on through every swap."""
    table = load_prices(ROOT / "examples" / "ishares_factors_daily.csv").select(["QUAL", "MTUM"])
    bars = 300
    data = tmp_path / "qual_mtum.csv"
    rows = [f"{table.labels[t]},{table.prices[t, 0]},{table.prices[t, 1]}" for t in range(bars)]
    data.write_text("date,QUAL,MTUM\n" + "\n".join(rows) + "\n")
    text = f"""
[bars]
length = "1d"
max_age = "1d"
[pairs."QUAL/MTUM"]
mode = "changes"
delta = 1e-4
obs_cov = 0.05
adaptive_r = false
[[feeds]]
kind = "file"
paths = ["{data}"]
speed = {86400 * 300}
[refit]
every = 20
window = 120
min_bars = 60
[daemon]
metrics_interval = "1h"
"""
    config = daemon_config(tomllib.loads(text))
    log = RecordingLogger()
    node = Daemon(config, log)
    assert node.refitter is not None
    received: list[Message] = []
    node.bus.subscribe(received.append)
    stop = asyncio.Event()
    runner = asyncio.create_task(node.run(stop))
    refitter = node.refitter
    stats = node.pipeline.stats
    await eventually(lambda: stats.events == 2 * bars, timeout=60.0, what="every bar's events")
    await eventually(  # let a fit still running land
        lambda: (
            not refitter._due.qsize() and not any(h.running for h in refitter._histories.values())
        ),
        timeout=60.0,
        what="refits settled",
    )
    stop.set()
    await runner

    refits = [fields for _, event, fields in log.records if event == "refit"]
    records = list(node.refitter.records)
    assert len(refits) == len(records) == node.refitter.refits >= 3
    assert node.metrics()["refits"] == node.refitter.refits
    assert node.refitter.failures == 0
    first = refits[0]
    assert first["old_delta"] == pytest.approx(1e-4) and first["old_obs_cov"] == 0.05
    assert first["delta"] != first["old_delta"] and first["mode"] == "changes"
    for earlier, later in itertools.pairwise(refits):
        assert later["old_delta"] == pytest.approx(earlier["delta"], rel=1e-12)
        assert later["old_obs_cov"] == earlier["obs_cov"]
    assert all(r.bars <= 120 for r in records) and records[0].bars >= 60

    ratios = [orjson_loads(m.payload) for m in received if m.topic.endswith("ratio/QUAL/MTUM")]
    assert [e["seq"] for e in ratios] == list(range(1, bars + 1))
    actor = node.pipeline.actors[0]
    assert actor.observations == bars - 1  # changes: the first bar has no observation
    assert actor.params.obs_cov == records[-1].fit.obs_cov

    swaps = {r.seq: r.fit for r in records}
    hf = HedgeFilter(FilterParams(mode=InputMode.CHANGES, delta=1e-4, obs_cov=0.05,
                                  adaptive_r=None))  # fmt: skip
    for seq in range(1, bars + 1):
        step = hf.step(float(table.prices[seq - 1, 0]), float(table.prices[seq - 1, 1]))
        event = ratios[seq - 1]
        assert event["beta"] == step.betas[0], f"seq {seq}"
        assert event["warm"] == step.warm
        if seq in swaps:
            fit = swaps[seq]
            hf.set_noise(np.eye(1) * fit.trans_cov, fit.obs_cov)
    assert all(e["warm"] for e in ratios[21:])
    assert math.isfinite(ratios[-1]["beta"])


def orjson_loads(payload: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(payload)
    return value


def test_pairs_with_an_adaptive_r_are_not_refitted() -> None:
    """The fit is of a fixed-R model: a pair with an adaptive R is left alone, with a warning
    naming it, and the metrics say how many pairs are refitted."""
    text = """
[pairs."AAA/BBB"]
adaptive_r = false
[pairs."CCC/DDD"]
[[feeds]]
kind = "synthetic"
[refit]
every = 20
"""
    log = RecordingLogger()
    node = Daemon(daemon_config(tomllib.loads(text)), log)
    assert node.refitter is not None
    warned = [f["pair"] for level, e, f in log.records if level == "warning" and "refit" in e]
    assert warned == ["CCC/DDD"]
    assert node.metrics()["refit_pairs"] == 1
    assert [a.bar_listener is not None for a in node.pipeline.actors] == [True, False]
