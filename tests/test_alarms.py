"""The relationship-break alarm: the detector's arithmetic by hand and under hypothesis, the
actor's alarm events on a synthetic market with and without a break, bad prints, the bus's
retained alarm (a real mosquitto), the WebSocket's latest alarm, [alarm] in the config, the
replay, subscribe and evaluate."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.synthetic import SyntheticMarket, SyntheticSpec
from hedger.cli.subscribe import RatioBoard, alarm_line
from hedger.config.alarm import alarm_params
from hedger.config.pipeline import pipeline_config
from hedger.core.actors import PairSpec
from hedger.core.bus import Bus, Message
from hedger.core.events import AlarmEvent, Event, HedgeRatioEvent, SpreadEvent, decode, encode
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.topics import PairId
from hedger.engine import FilterParams, InputMode
from hedger.engine.alarm import AlarmParams, BreakDetector
from hedger.errors import ConfigError
from hedger.research.alarms import alarm_spans
from hedger.runtime.bridges.mqtt import MqttBridge
from hedger.runtime.bridges.ws import FanOut
from tests.conftest import run_hedger
from tests.mosquitto import MosquittoBroker
from tests.test_bridge_mqtt import FAST, Subscriber, new_root, send_sentinel
from tests.waiting import eventually

NS = 1_000_000_000
ROOT = Path(__file__).resolve().parents[1]

# --- the detector ---------------------------------------------------------------------------


def test_the_statistics_by_hand() -> None:
    """burn_in = 1: the first z (2.0) only sets the scale (mean square 4), so the next z's
    are read in units of 2."""
    params = AlarmParams(
        drift=0.5, threshold=3.0, scale_drift=0.5, scale_threshold=4.0, clip=3, burn_in=1
    )
    detector = BreakDetector(params)
    assert detector.update(2.0) == () and detector.mean_square == 4.0
    # z = 4 -> u = 2: up = 2 - 0.5, down = max(0, -2 - 0.5), scale = 4 - 1.5
    assert detector.update(4.0) == ()
    assert detector.statistics == (1.5, 0.0, 2.5)
    # the mean square learns (a plain mean while steps < memory): (4 + 16) / 2
    assert detector.mean_square == 10.0
    # z = 20 -> u = 20 / sqrt(10), clipped at 3: up = 1.5 + 2.5 = 4 > 3 raises "up";
    # scale = 2.5 + 9 - 1.5 = 10 > 4 raises "scale"; both are held at their threshold
    changes = detector.update(20.0)
    assert [(c.kind, c.raised, c.statistic, c.started) for c in changes] == [
        ("up", True, 4.0, 3),
        ("scale", True, 10.0, 3),
    ]
    assert detector.statistics == (3.0, 0.0, 4.0)
    # while active the scale learns four times slower: 10 + (400 - 10) / 3 / 4
    assert detector.mean_square == 42.5
    # z = 0: up = 3 - 0.5, down stays 0, scale = 4 - 1.5
    assert detector.update(0.0) == ()
    assert detector.statistics == (2.5, 0.0, 2.5)
    # u clipped at -3: up = max(0, 2.5 - 3 - 0.5) = 0 clears "up"; down = 3 - 0.5; scale =
    # 2.5 + 9 - 1.5 = 10, held at 4 (still active)
    changes = detector.update(-1000.0)
    assert [(c.kind, c.raised, c.statistic, c.started) for c in changes] == [("up", False, 0.0, 3)]
    assert detector.statistics == (0.0, 2.5, 4.0)
    assert detector.active == {"scale": 3}


def test_nan_is_not_a_step() -> None:
    detector = BreakDetector(AlarmParams(burn_in=2))
    detector.update(1.0)
    before = detector.snapshot()
    assert detector.update(math.nan) == ()
    assert detector.snapshot() == before


def test_an_infinity_is_not_a_step_and_a_bad_print_in_the_burn_in_does_not_set_the_scale() -> None:
    detector = BreakDetector(AlarmParams(burn_in=50))
    for _ in range(20):
        detector.update(1.0)
    assert detector.update(math.inf) == () and detector.steps == 20
    detector.update(1000.0)  # a bad print: counted at most clip^2 = 9 times the mean
    assert detector.mean_square == pytest.approx((20 + 9) / 21)


def test_no_alarm_during_the_burn_in_whatever_the_z() -> None:
    detector = BreakDetector(AlarmParams(burn_in=50))
    assert all(detector.update(1e6) == () for _ in range(50))
    assert detector.statistics == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("key", "value"),
    [("drift", -1.0), ("threshold", 0.0), ("clip", math.inf), ("memory", 0), ("burn_in", 1.5)],
)
def test_bad_params_name_their_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"alarm\.{key}"):
        AlarmParams(**{key: value})


zs = st.lists(
    st.one_of(st.floats(-50, 50, allow_nan=False), st.just(math.nan)), min_size=1, max_size=400
)


@settings(max_examples=200, deadline=None)
@given(zs, st.integers(1, 30))
def test_alarms_alternate_and_statistics_stay_in_bounds(values: list[float], burn: int) -> None:
    params = AlarmParams(threshold=4.0, scale_threshold=8.0, burn_in=burn, memory=40)
    detector = BreakDetector(params)
    state: dict[str, bool] = {}
    for z in values:
        for change in detector.update(z):
            assert state.get(change.kind, False) != change.raised  # raise, clear, raise...
            state[change.kind] = change.raised
        up, down, scale = detector.statistics
        assert up >= 0.0 and down >= 0.0 and scale >= 0.0
        for kind, value, level in (("up", up, 4.0), ("down", down, 4.0), ("scale", scale, 8.0)):
            assert value <= level or kind in detector.active
            if kind in detector.active:
                assert value <= level  # held at its threshold while active
    assert set(detector.active) == {kind for kind, on in state.items() if on}


@settings(max_examples=100, deadline=None)
@given(zs, st.sampled_from([0.125, 0.5, 4.0, 1024.0]))
def test_the_detector_does_not_care_about_the_scale_of_z(values: list[float], c: float) -> None:
    """Multiplying every z by a power of two changes no alarm: the detector reads z in units
    of its own long-run size (a filter whose S is off by a constant alarms the same)."""
    params = AlarmParams(threshold=4.0, scale_threshold=8.0, burn_in=5, memory=30)
    plain, scaled = BreakDetector(params), BreakDetector(params)
    for z in values:
        a, b = plain.update(z), scaled.update(z * c)
        assert [(x.kind, x.raised, x.started) for x in a] == [
            (x.kind, x.raised, x.started) for x in b
        ]


# --- the actor on a synthetic market --------------------------------------------------------


def run_market(
    spec: SyntheticSpec,
    seconds: float,
    *,
    mode: str = "levels",
    seed: int = 0,
    corrupt: dict[int, float] | None = None,
) -> list[Event]:
    """Every event of the synthetic pair at 1 s bars with the gate on and default alarms;
    ``corrupt`` multiplies the price of the Y ticks in those seconds from the start (bad
    prints: each such second is a bar whose Y closes at a wrong price)."""
    events: list[Event] = []
    params = FilterParams(mode=InputMode(mode), outlier_z=6.0)
    pair = PairSpec(PairId(spec.y, spec.xs), params, alarm=AlarmParams())
    pipeline = Pipeline([pair], NS, NS, events.append, Rejects())
    for tick in SyntheticMarket(spec, seed=seed).ticks(seconds):
        factor = None
        if tick.symbol == spec.y and corrupt:
            factor = corrupt.get((tick.ts_event - spec.start_ns) // NS)
        pipeline.on_tick(tick if factor is None else replace(tick, price=tick.price * factor))
    pipeline.flush()
    return events


def alarms_of(events: list[Event]) -> list[AlarmEvent]:
    return [e for e in events if isinstance(e, AlarmEvent)]


def test_a_constant_beta_raises_no_alarm() -> None:
    for mode in ("levels", "returns"):
        for seed in range(2):
            events = run_market(SyntheticSpec(beta_vol=0.0), 3000, mode=mode, seed=seed)
            assert alarms_of(events) == [], (mode, seed)


@pytest.mark.parametrize(("mode", "factor", "within"), [("levels", 1.2, 5), ("returns", -1.0, 40)])
def test_a_break_raises_an_alarm_soon_after(mode: str, factor: float, within: int) -> None:
    spec = SyntheticSpec(beta_vol=0.0, alpha=400.0, beta_jumps=((1500.0, factor),))
    events = run_market(spec, 2000, mode=mode)
    raised = [e for e in alarms_of(events) if e.state == "raised"]
    assert raised, "no alarm after the break"
    first = raised[0]
    bar_of_break = spec.start_ns + 1500 * NS
    assert first.ts >= bar_of_break
    assert (first.ts - bar_of_break) // NS <= within
    assert first.started_seq == first.seq and first.started_ts == first.ts
    assert first.kind in first.active


def test_single_bad_prints_raise_no_alarm() -> None:
    """A x10 print, and two /100 prints in a row on the same leg: refused by the gate as
    outliers, and each bar adds at most ``clip`` sd to the statistics: no alarm."""
    spec = SyntheticSpec(beta_vol=0.0)
    clean = run_market(spec, 1500)
    bad = run_market(spec, 1500, corrupt={600: 10.0, 1000: 0.01, 1001: 0.01})
    outliers = [e for e in bad if isinstance(e, SpreadEvent) and e.outlier]
    assert len(outliers) == 3
    assert alarms_of(clean) == [] and alarms_of(bad) == []


def test_alarm_events_raise_then_clear_with_the_active_kinds() -> None:
    spec = SyntheticSpec(beta_vol=0.0, alpha=400.0, beta_jumps=((1500.0, 1.5),))
    events = run_market(spec, 2500)
    alarms = alarms_of(events)
    assert alarms and alarms[0].state == "raised"
    active: set[str] = set()
    for alarm in alarms:
        if alarm.state == "raised":
            assert alarm.kind not in active
            active.add(alarm.kind)
        else:
            assert alarm.kind in active and alarm.statistic == 0.0
            active.discard(alarm.kind)
        assert set(alarm.active) == active
    # the alarm follows its bar's two events, with the bar's seq and ts
    index = events.index(alarms[0])
    assert [e.type for e in events[index - 2 : index]] == ["hedge_ratio", "spread"]
    assert events[index - 1].seq == alarms[0].seq and events[index - 1].ts == alarms[0].ts


def test_the_alarm_json_in_schema_order() -> None:
    event = AlarmEvent("A/B", 7, 70, "scale", "raised", 26.5, 25.0, 70, 7, ("up", "scale"), 71)
    assert list(orjson.loads(encode(event))) == [
        "type", "version", "pair", "seq", "ts", "ts_init", "kind", "state", "statistic",
        "threshold", "started_ts", "started_seq", "active",
    ]  # fmt: skip
    assert decode(encode(event))["active"] == ["up", "scale"]


# --- the bus, MQTT and the WebSocket --------------------------------------------------------


def alarm(pair: str, seq: int, state: str, active: tuple[str, ...]) -> AlarmEvent:
    return AlarmEvent(pair, seq, seq * NS, "up", state, 13.0, 12.0, NS, 1, active, seq * NS)


def test_the_bus_retains_an_alarm_while_active_and_clears_it_after() -> None:
    sent: list[Message] = []
    bus = Bus(subscribers=[sent.append])
    bus.publish(alarm("A/B", 1, "raised", ("up",)))
    bus.publish(alarm("A/B", 9, "cleared", ()))
    assert [(m.topic, m.retain, bool(m.payload)) for m in sent] == [
        ("hedger/v1/alarm/A/B", True, True),
        ("hedger/v1/alarm/A/B", False, True),  # the cleared event, to everyone listening
        ("hedger/v1/alarm/A/B", True, False),  # then the retained alarm is deleted
    ]


async def test_a_late_mqtt_subscriber_sees_an_active_alarm_and_not_a_cleared_one(
    mosquitto: MosquittoBroker,
) -> None:
    root = new_root()
    bus = Bus(root=root)
    bridge = MqttBridge(mosquitto.url, root=root, backoff=FAST)
    bus.attach(bridge)
    topic = f"{root}/v1/alarm/A/B"
    async with bridge:
        bus.publish(alarm("A/B", 1, "raised", ("up",)))
        assert await bridge.drain(5.0)
        async with Subscriber(mosquitto, topic) as late:
            await eventually(lambda: late.payloads(topic) != [], what="the retained alarm")
            assert decode(late.payloads(topic)[0])["state"] == "raised"
            bus.publish(alarm("A/B", 9, "cleared", ()))
            await eventually(lambda: len(late.payloads(topic)) >= 2, what="the cleared event")
        assert await bridge.drain(5.0)
        async with Subscriber(mosquitto, f"{root}/v1/#") as later:
            await send_sentinel(bus, later, root)
    assert decode(late.payloads(topic)[1])["state"] == "cleared"
    assert later.payloads(topic) == []  # nothing retained once cleared


def test_a_websocket_subscriber_gets_the_active_alarm_after_the_ratio() -> None:
    core = FanOut(client_queue=100)
    bus = Bus(subscribers=[core.publish])
    bus.publish(alarm("A/B", 1, "raised", ("up",)))
    bus.publish(alarm("C/D", 1, "raised", ("up",)))
    bus.publish(alarm("C/D", 5, "cleared", ()))
    assert set(core.latest_alarm) == {"A/B"}
    client = core.add_client()
    core.receive(client, '{"action":"subscribe","pairs":["*"]}')
    frames = [orjson.loads(f) for f in client.queue]
    assert [(f["type"], f.get("pair")) for f in frames] == [("subscribed", None), ("alarm", "A/B")]


# --- configuration, replay, subscribe, evaluate ---------------------------------------------


def test_alarm_config_defaults_off_and_errors() -> None:
    assert alarm_params({}) == AlarmParams()
    assert alarm_params({"alarm": {"enabled": False}}) is None
    assert alarm_params({"alarm": {"threshold": 8, "memory": 100}}) == AlarmParams(
        threshold=8.0, memory=100
    )
    with pytest.raises(ConfigError, match=r"alarm\.threshold"):
        alarm_params({"alarm": {"threshold": -1}})
    with pytest.raises(ConfigError, match="alarm"):
        alarm_params({"alarm": {"treshold": 8}})
    config = pipeline_config({"pairs": {"A/B": {}}, "alarm": {"enabled": False}})
    assert config.pairs[0].alarm is None


def test_replay_writes_alarms_deterministically(tmp_path: Path) -> None:
    """The shipped SP500/NASDAQ history in replay: alarms raised and cleared, byte-identical
    on a second run, and none with [alarm] enabled = false."""
    data = ROOT / "examples" / "sp500_nasdaq_daily.csv"
    outputs = []
    for name, text in (("a", ""), ("b", ""), ("off", "[alarm]\nenabled = false\n")):
        config = tmp_path / f"{name}.toml"
        config.write_text(text)
        out = tmp_path / f"{name}.jsonl"
        args = ("--pair", "SP500/NASDAQ", "--bar", "1d", "--delta", "1e-7")
        result = run_hedger("replay", str(data), *args, "--config", str(config), "--out", str(out))
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    alarms = [decode(line) for line in outputs[0].splitlines() if b'"type":"alarm"' in line]
    assert {a["state"] for a in alarms} == {"raised", "cleared"}
    assert b'"type":"alarm"' not in outputs[2]
    assert outputs[2].count(b"\n") == 2 * 5031


def test_subscribe_flags_active_alarms_and_prints_lines() -> None:
    board = RatioBoard()
    raised = encode(alarm("A/B", 3, "raised", ("up",)))
    assert board.accept_alarm(raised) is not None and board.alarms == {"A/B": ("up",)}
    assert board.accept_alarm(b"") is None and board.malformed == 0  # nothing to forget
    assert board.alarms == {"A/B": ("up",)}
    board.accept_alarm(b"", "A/B")  # the retained alarm was deleted: the pair has none
    assert board.alarms == {}
    board.accept_alarm(raised)
    assert board.accept_alarm(b"{nope") is None and board.malformed == 1
    line = alarm_line(decode(raised))
    assert line == "alarm A/B up raised at seq 3 (13.0 > 12.0)"
    board.accept(encode(ratio_event("A/B")), 0.0)
    assert "ALARM up" in board.render_line("A/B", 0.0)
    board.accept_alarm(encode(alarm("A/B", 9, "cleared", ())))
    assert board.alarms == {} and "ALARM" not in board.render_line("A/B", 0.0)


def ratio_event(pair: str) -> HedgeRatioEvent:
    return HedgeRatioEvent(pair, 1, NS, (1.0,), 0.0, ((1.0, 0.0), (0.0, 1.0)), (0.1,), True, False)


def test_evaluate_lists_the_calibrated_filters_alarms(tmp_path: Path) -> None:
    """The alarms are a filter's (the combined hedge has no innovations of its own): those of
    the calibrated filter in the mode calibration picks, the combination's first member."""
    data = ROOT / "examples" / "ishares_factors_daily.csv"
    plot = tmp_path / "plot.png"
    result = run_hedger("evaluate", str(data), "--pair", "VLUE/SIZE", "--json")
    assert result.returncode == 0, result.stderr
    document = orjson.loads(result.stdout)
    alarms = document["alarms"]
    assert alarms["method"] == "kalman-returns-calibrated"
    assert document["combination"]["members"][0] == alarms["method"]
    assert alarms["raised"] == len(alarms["spans"]) >= 1
    for span in alarms["spans"]:
        assert span["kind"] in ("up", "down", "scale")
        assert span["end_bar"] is None or span["end_bar"] > span["start_bar"]
    text = run_hedger("evaluate", str(data), "--pair", "VLUE/SIZE", "--plot", str(plot))
    assert text.returncode == 0, text.stderr
    assert f"break alarms on kalman-returns-calibrated: {alarms['raised']} over" in text.stdout
    assert plot.stat().st_size > 10_000


def test_alarm_spans_are_the_live_detectors_alarms() -> None:
    values = [0.1, -0.2] * 30 + [5.0] * 10 + [0.0] * 100
    params = AlarmParams(burn_in=20)
    spans = alarm_spans(np.array(values), params)
    detector = BreakDetector(params)
    live = [(t, c.kind, c.raised) for t, z in enumerate(values) for c in detector.update(z)]
    expected = [(t, k, True) for t, k, r in live if r]
    assert [(s.start, s.kind, True) for s in spans] == expected
    ends = {k: t for t, k, r in live if not r}
    assert all(s.end == ends.get(s.kind) for s in spans)


# --- pairs changed at run time --------------------------------------------------------------


def broken_pipeline(events: list[Event], history: int) -> tuple[Pipeline, SyntheticSpec]:
    """A pipeline holding ``history`` bars, fed a synthetic pair whose beta jumps by +50%
    at 1,500 s, up to 1,510 s (the alarm is active then)."""
    spec = SyntheticSpec(beta_vol=0.0, beta_jumps=((1500.0, 1.5),))
    params = FilterParams(outlier_z=6.0)
    pair = PairSpec(PairId(spec.y, spec.xs), params, alarm=AlarmParams())
    pipeline = Pipeline([pair], NS, NS, events.append, Rejects())
    pipeline.keep_history(history)
    for tick in SyntheticMarket(spec, seed=0).ticks(1510):
        pipeline.on_tick(tick)
    return pipeline, spec


def test_an_update_that_replaces_the_filter_ends_its_alarms_with_cleared_events() -> None:
    events: list[Event] = []
    pipeline, _ = broken_pipeline(events, 0)
    actor = pipeline.actors[0]
    active = set(actor.active_alarms)
    assert active, "the break raised an alarm"
    published = len(events)
    new = PairSpec(actor.pair, FilterParams(outlier_z=4.0), alarm=AlarmParams())
    assert not pipeline.update_pair(new).kept_state
    cleared = [e for e in events[published:] if isinstance(e, AlarmEvent)]
    assert {e.kind for e in cleared} == active
    assert all(e.state == "cleared" and e.seq == actor.seq for e in cleared)
    assert cleared[-1].active == ()  # so the bus deletes the retained alarm
    assert pipeline.actors[0].active_alarms == ()


def test_a_pair_warmed_from_held_bars_publishes_no_alarm_it_never_raised() -> None:
    """The pair is added at 1,510 s, after the break at 1,500 s, and steps through the held
    bars: the same pair run from the start has an alarm active then, so the catch-up raised
    it too, unpublished. The added pair must not publish the clearing of an alarm it never
    published as raised."""
    spec = SyntheticSpec(beta_vol=0.0, beta_jumps=((1500.0, 1.5),))
    pair = PairSpec(PairId(spec.y, spec.xs), FilterParams(outlier_z=6.0), alarm=AlarmParams())
    ticks = list(SyntheticMarket(spec, seed=0).ticks(1800))
    cut = spec.start_ns + 1510 * NS
    reference: list[Event] = []
    from_start = Pipeline([pair], NS, NS, reference.append, Rejects())
    for tick in ticks:
        from_start.on_tick(tick)
        if tick.ts_event <= cut:
            active_at_cut = from_start.actors[0].active_alarms
    assert active_at_cut, "the break raised an alarm before the pair is added"
    events: list[Event] = []
    live = Pipeline([], NS, NS, events.append, Rejects(), symbols=pair.pair.legs)
    live.keep_history(2000)
    added = None
    for tick in ticks:
        if added is None and tick.ts_event > cut:
            added = live.add_pair(pair)
            assert added.warm_bars > 1000 and added.actor.active_alarms == ()
        live.on_tick(tick)
    alarms = alarms_of(events)
    open_kinds: set[str] = set()
    for event in alarms:
        if event.state == "raised":
            open_kinds.add(event.kind)
        else:
            assert event.kind in open_kinds, "a cleared event for an alarm never raised"
            open_kinds.discard(event.kind)


def test_a_noise_swap_ends_the_alarms_and_restarts_the_detector() -> None:
    """A refit (or an update of delta / R) changes what a z of 1 means: the actor ends its
    active alarms with published cleared events and its detector starts a new burn-in."""
    events: list[Event] = []
    pipeline, _ = broken_pipeline(events, 0)
    actor = pipeline.actors[0]
    active = set(actor.active_alarms)
    assert active
    published = len(events)
    actor.set_noise([[1e-9, 0.0], [0.0, 1e-9]], 0.25)
    cleared = alarms_of(events[published:])
    assert {e.kind for e in cleared} == active and cleared[-1].active == ()
    assert actor.active_alarms == () and actor.detector is not None
    assert actor.detector.steps == 0 and actor.detector.statistics == (0.0, 0.0, 0.0)


def test_removing_a_pair_ends_its_alarms() -> None:
    events: list[Event] = []
    pipeline, _ = broken_pipeline(events, 0)
    active = set(pipeline.actors[0].active_alarms)
    assert active
    published = len(events)
    pipeline.remove_pair(pipeline.actors[0].pair_id)
    cleared = alarms_of(events[published:])
    assert {e.kind for e in cleared} == active and cleared[-1].active == ()
    assert pipeline.stats.alarms_raised == len(
        [e for e in alarms_of(events) if e.state == "raised"]
    )


async def test_a_starting_daemon_deletes_the_alarms_a_previous_run_left_retained(
    mosquitto: MosquittoBroker,
) -> None:
    """A run that crashed with an alarm active left it retained on the broker; the next
    daemon's detectors never raised it, so the daemon deletes it at start (a real mosquitto,
    a real daemon with its MQTT bridge)."""
    from tests.test_clock import Running, daemon_text  # noqa: PLC0415
    from tests.test_control_mqtt import bridge_of  # noqa: PLC0415

    root = new_root()
    topic = f"{root}/v1/alarm/YYY/XXX"
    bus = Bus(root=root)
    previous = MqttBridge(mosquitto.url, root=root, backoff=FAST)
    bus.attach(previous)
    async with previous:
        bus.publish(alarm("YYY/XXX", 7, "raised", ("up",)))
        assert await previous.drain(5.0)
    async with Subscriber(mosquitto, topic) as before:
        await eventually(lambda: before.payloads(topic) != [], what="the stale retained alarm")
    text = daemon_text("YYY/XXX") + f'[bus]\nroot = "{root}"\n[bus.mqtt]\nurl = "{mosquitto.url}"\n'
    run = Running(text)
    await run.start()
    try:
        await eventually(lambda: bridge_of(run).connected, what="bridge connected")
        assert await bridge_of(run).drain(5.0)
        async with Subscriber(mosquitto, f"{root}/v1/#") as after:
            await send_sentinel(run.node.bus, after, root)
    finally:
        await run.shutdown()
    assert after.payloads(topic) == []
