"""The bank path (all pairs of a bar in one compiled call, events encoded in bulk) against the
reference path (one :class:`PairActor` and its :class:`HedgeFilter` per pair): the same events,
numbers to 1e-12, in every mode and initialisation, with gates, restarts, stale legs, bad
prints, positions and alarms; the bulk encoder byte for byte against ``encode``; the batch
message against the events; and the actors' state after a run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hedger.core.actors import PairSpec
from hedger.core.bar_events import BarOutput, ratios_of_bar
from hedger.core.bars import LegPrice
from hedger.core.bus import Bus, Message
from hedger.core.events import Event, encode
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickColumns
from hedger.core.topics import PairId
from hedger.engine import FilterParams, Position
from hedger.engine.alarm import AlarmParams
from hedger.engine.params import DiffuseInit, GivenInit, InputMode, OlsWarmupInit

SECOND = 1_000_000_000
SYMBOLS = ("A", "B", "C", "D", "E")
TOUCHY_ALARM = AlarmParams(threshold=2.0, scale_threshold=3.0, burn_in=5, memory=20)
"""An alarm that fires and clears often on random data, so the tests see both."""


def ticks_of(seed: int, bars: int, *, p_tick: float = 0.85, p_bad: float = 0.02) -> list[Tick]:
    """Random-walk trades of :data:`SYMBOLS`, one per bar at most, some bars without one (stale
    legs once older than max_age), some prints 10x off, a level shift on A half way."""
    rng = np.random.default_rng(seed)
    price = dict.fromkeys(SYMBOLS, 100.0)
    ticks = []
    for i in range(bars):
        for symbol in SYMBOLS:
            price[symbol] *= math.exp(rng.normal() * 0.01)
            if symbol == "A" and i == bars // 2:
                price[symbol] *= 1.5
            if rng.random() > p_tick:
                continue
            p = price[symbol] * (10.0 if rng.random() < p_bad else 1.0)
            ts = i * SECOND + int(rng.integers(1, 1000))
            ticks.append(Tick(symbol, p, ts, ts, 1.0))
    ticks.sort(key=lambda t: t.ts_event)
    return ticks


def run(
    specs: Sequence[PairSpec], ticks: Sequence[Tick], *, bank: bool, **kw: Any
) -> tuple[list[Event], Pipeline]:
    events: list[Event] = []
    pipeline = Pipeline(specs, SECOND, 2 * SECOND, events.append, Rejects(), bank=bank, **kw)
    for tick in ticks:
        pipeline.on_tick(tick)
    pipeline.flush()
    return events, pipeline


def assert_close(a: Any, b: Any, where: str) -> None:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            assert math.isnan(a) and math.isnan(b), where
        else:
            assert abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b)), f"{where}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, tuple | list):
        assert isinstance(b, tuple | list) and len(a) == len(b), f"{where}: {a} != {b}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


def assert_same_events(reference: list[Event], banked: list[Event]) -> None:
    assert [type(e) for e in banked] == [type(e) for e in reference]
    for i, (a, b) in enumerate(zip(reference, banked, strict=True)):
        assert_close(a.to_dict(), b.to_dict(), f"event {i} ({a.type} {a.pair} seq {a.seq})")


POSITION_KEYS = ("position", "hedge_qty", "hedge_notional")


def as_a_bar_gives_it(ratio: dict[str, Any]) -> dict[str, Any]:
    """A decoded ratio event as :func:`ratios_of_bar` gives it back: the position's fields
    left out where all three are null (a notional position before Y's first price), as for a
    pair without a position (the batch message has null for both)."""
    if all(ratio.get(key) is None for key in POSITION_KEYS):
        return {key: value for key, value in ratio.items() if key not in POSITION_KEYS}
    return ratio


MODES = list(InputMode)


@st.composite
def pair_specs(draw: st.DrawFn) -> list[PairSpec]:
    """Two to four pairs over :data:`SYMBOLS`, parameters drawn independently."""
    n = draw(st.integers(2, 4))
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(SYMBOLS)).filter(
                lambda yx: yx[0] != yx[1]
            ),
            min_size=n,
            max_size=n,
            unique=True,
        )
    )
    specs = []
    for y, x in pairs:
        mode = draw(st.sampled_from(MODES))
        intercept = draw(st.sampled_from([None, True, False]))
        n_states = 1 + (mode.default_intercept if intercept is None else intercept)
        identity = tuple(
            tuple(1.0 if i == j else 0.0 for j in range(n_states)) for i in range(n_states)
        )
        inits: list[DiffuseInit | OlsWarmupInit | GivenInit] = [
            DiffuseInit(),
            DiffuseInit(variance=10.0, warmup_steps=3),
            OlsWarmupInit(n_obs=n_states + 2),
            OlsWarmupInit(n_obs=12),
            GivenInit(tuple([1.0] * n_states), identity, warmup_steps=2),
        ]
        init = draw(st.sampled_from(inits))
        params = FilterParams(
            mode=mode,
            intercept=intercept,
            delta=draw(st.sampled_from([1e-5, 1e-3, 0.05])),
            obs_cov=draw(st.sampled_from([1e-4, 1e-2, 1.0])),
            adaptive_r=draw(st.sampled_from([None, 0.9, 0.99])),
            init=init,
            outlier_z=draw(st.sampled_from([None, 2.0, 3.5])),
            outlier_run=draw(st.sampled_from([1, 2, 3])),
        )
        position = draw(
            st.sampled_from([None, Position(shares=1000.0), Position(notional=-250_000.0)])
        )
        lots = draw(st.sampled_from([None, (1,), (100,)])) if position is not None else None
        alarm = draw(st.sampled_from([None, AlarmParams(), TOUCHY_ALARM]))
        specs.append(PairSpec(PairId(y, (x,)), params, position, lots, alarm))
    return specs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=pair_specs(), seed=st.integers(0, 2**16), p_tick=st.sampled_from([0.6, 0.95]))
def test_the_bank_takes_every_step_the_actors_take(
    specs: list[PairSpec], seed: int, p_tick: float
) -> None:
    ticks = ticks_of(seed, 120, p_tick=p_tick)
    reference, ref_pipeline = run(specs, ticks, bank=False)
    banked, pipeline = run(specs, ticks, bank=True)
    assert pipeline._bank is not None and len(pipeline._bank.actors) == len(specs)
    assert_same_events(reference, banked)
    assert pipeline.rejects.summary() == ref_pipeline.rejects.summary()
    assert pipeline.stats.stale_bars == ref_pipeline.stats.stale_bars
    assert pipeline.stats.alarms_raised == ref_pipeline.stats.alarms_raised
    # the actors' whole state, written back by the bank, is the reference's
    for a, b in zip(ref_pipeline.actors, pipeline.actors, strict=True):
        assert_close(a.snapshot(), b.snapshot(), a.pair_id)
        assert a.raised == b.raised


def mixed_specs() -> list[PairSpec]:
    """One pair per mode and init, gates and restarts, a position, alarms, and a basket (which
    stays on its actor)."""
    touchy = TOUCHY_ALARM
    return [
        PairSpec(PairId("A", ("B",)), FilterParams(outlier_z=3.0, outlier_run=3), alarm=touchy),
        PairSpec(
            PairId("C", ("D",)),
            FilterParams(mode=InputMode.RETURNS, init=DiffuseInit(), outlier_z=4.0),
            Position(notional=1e6),
            (100,),
            touchy,
        ),
        PairSpec(PairId("B", ("C", "D")), FilterParams(n_legs=2, mode=InputMode.LOG)),
        PairSpec(PairId("D", ("E",)), FilterParams(mode=InputMode.LOG, adaptive_r=None)),
        PairSpec(
            PairId("E", ("A",)), FilterParams(mode=InputMode.CHANGES), Position(shares=-500.0)
        ),
    ]


def test_a_long_mixed_run_is_byte_identical_and_the_basket_stays_on_its_actor() -> None:
    specs, ticks = mixed_specs(), ticks_of(7, 1500)
    reference, _ = run(specs, ticks, bank=False)
    banked, pipeline = run(specs, ticks, bank=True)
    assert pipeline._bank is not None
    assert [a.pair_id for a in pipeline._bank.actors] == ["A/B", "C/D", "D/E", "E/A"]
    assert [encode(e) for e in banked] == [encode(e) for e in reference]
    kinds = {e.type for e in banked}
    assert kinds == {"hedge_ratio", "spread", "alarm"}
    assert pipeline.rejects.summary()["outlier"] > 0


def test_lines_and_entries_are_the_events_encoded_byte_for_byte() -> None:
    outputs: list[BarOutput] = []
    specs, ticks = mixed_specs(), ticks_of(11, 600)
    run(specs, ticks, bank=True, emit_bar=outputs.append)
    assert len(outputs) > 500
    for output in outputs:
        expected = [encode(e) for e in output.events()]
        assert output.lines() == expected
        assert output.text() == b"".join(line + b"\n" for line in expected)
        assert [entry[3] for entry in output.entries()] == expected
        assert output.n_events == len(expected)


def test_text_takes_the_one_join_path_for_pairs_of_one_shape() -> None:
    outputs: list[BarOutput] = []
    specs = [s for s in mixed_specs() if s.pair.xs != ("C", "D") and s.position is None]
    run(specs, ticks_of(12, 200), bank=True, emit_bar=outputs.append)
    plain = [o for o in outputs if o.bank is not None and not o.bank.alarms]
    assert len(plain) > 100
    for output in plain:
        assert output.text() == b"".join(encode(e) + b"\n" for e in output.events())


def test_the_batch_message_carries_every_pairs_fields_of_the_bar() -> None:
    outputs: list[BarOutput] = []
    specs, ticks = mixed_specs(), ticks_of(3, 300)
    run(specs, ticks, bank=True, emit_bar=outputs.append)
    for n, output in enumerate(outputs, 1):
        message = orjson.loads(output.message(n))
        assert (message["type"], message["version"], message["seq"]) == ("bar", 1, n)
        assert message["ts"] == output.ts
        events = [orjson.loads(encode(e)) for e in output.events()]
        ratios = {e["pair"]: e for e in events if e["type"] == "hedge_ratio"}
        spreads = {e["pair"]: e for e in events if e["type"] == "spread"}
        assert sorted(message["pairs"]) == sorted(ratios)
        for i, pair in enumerate(message["pairs"]):
            ratio, spread = ratios[pair], spreads[pair]
            assert message["pair_seq"][i] == ratio["seq"]
            for key in ("mode", "beta", "alpha", "cov", "beta_std", "hedge", "warm", "stale"):
                assert_close(message[key][i], ratio[key], f"{pair}.{key}")
            prices = list(ratio["prices"].values())
            assert_close(message["price_y"][i], prices[0], f"{pair}.price_y")
            x = message["price_x"][i]
            assert_close(x if isinstance(x, list) else [x], prices[1:], f"{pair}.price_x")
            for key in ("spread", "innovation", "innovation_std", "zscore", "hedged_pnl"):
                assert_close(message[key][i], spread[key], f"{pair}.{key}")
            for key in ("position", "hedge_qty", "hedge_notional"):
                assert_close(message[key][i], ratio.get(key), f"{pair}.{key}")
        # a subscriber gets the per-pair ratio events back out of the message
        expanded = {e["pair"]: e for e in ratios_of_bar(message)}
        assert_close(expanded, {p: as_a_bar_gives_it(ratios[p]) for p in expanded}, "expanded")


def test_a_malformed_bar_message_is_a_value_error() -> None:
    for bad in ({"type": "bar"}, {"type": "spread"}, {"type": "bar", "pairs": ["A/B"]}):
        with pytest.raises(ValueError):
            ratios_of_bar(bad)


def test_the_compiled_bars_hand_the_bank_arrays_and_give_the_same_events() -> None:
    specs = [s for s in mixed_specs() if len(s.pair.xs) == 1]
    ticks = ticks_of(5, 800)
    reference, _ = run(specs, ticks, bank=False)
    events: list[Event] = []
    pipeline = Pipeline(specs, SECOND, 2 * SECOND, events.append, Rejects())
    index = {s: k for k, s in enumerate(pipeline.symbols)}
    n = len(ticks)
    columns = TickColumns(
        np.array([t.ts_event for t in ticks], dtype=np.int64),
        np.array([index[t.symbol] for t in ticks], dtype=np.int64),
        np.array([t.price for t in ticks]),
        np.ones(n),
        np.ones(n, dtype=np.bool_),
        np.ones(n, dtype=np.bool_),
    )
    pipeline.on_tick_columns(columns)
    pipeline.flush()
    assert [encode(e) for e in events] == [encode(e) for e in reference]


def test_control_changes_move_pairs_in_and_out_of_the_bank_without_a_difference() -> None:
    specs, ticks = mixed_specs(), ticks_of(9, 400)
    extra = PairSpec(PairId("B", ("A",)), FilterParams(mode=InputMode.CHANGES))

    def drive(bank: bool) -> list[bytes]:
        events: list[Event] = []
        pipeline = Pipeline(specs, SECOND, 2 * SECOND, events.append, Rejects(), bank=bank)
        pipeline.keep_history(50)
        for i, tick in enumerate(ticks):
            if i == 300:
                pipeline.add_pair(extra)
            if i == 600:
                pipeline.remove_pair("D/E")
            if i == 900:
                new = FilterParams(outlier_z=3.0, outlier_run=3, delta=1e-3)
                pipeline.update_pair(PairSpec(PairId("A", ("B",)), new, alarm=TOUCHY_ALARM))
            if i == 1200:
                pipeline.update_pair(PairSpec(PairId("E", ("A",)), FilterParams()))
            pipeline.on_tick(tick)
            assert pipeline.updates == sum(a.snapshot()["seq"] for a in pipeline.actors)
        pipeline.flush()
        return [encode(e) for e in events]

    assert drive(True) == drive(False)


@pytest.mark.parametrize("per_pair", [True, False])
def test_the_bus_publishes_a_bar_per_pair_and_as_one_message(per_pair: bool) -> None:
    seen: list[Message] = []
    bus = Bus(per_pair=per_pair)
    bus.subscribe(seen.append)
    specs, ticks = mixed_specs(), ticks_of(2, 200)
    reference, _ = run(specs, ticks, bank=False)
    events: list[Event] = []
    pipeline = Pipeline(
        specs, SECOND, 2 * SECOND, events.append, Rejects(), emit_bar=bus.publish_bar
    )
    for tick in ticks:
        pipeline.on_tick(tick)
    pipeline.flush()
    bars = [m for m in seen if m.kind == "bar"]
    assert [m.seq for m in bars] == list(range(1, len(bars) + 1))
    assert all(not m.retain and m.topic == "hedger/v1/bar" for m in bars)
    per_pair_messages = [m for m in seen if m.kind in ("ratio", "spread")]
    if per_pair:
        expected = [encode(e) for e in reference if e.type != "alarm"]
        assert [m.payload for m in per_pair_messages] == expected
        assert all(m.retain == (m.kind == "ratio") for m in per_pair_messages)
    else:
        assert per_pair_messages == []
    alarms = [m for m in seen if m.kind == "alarm" and m.payload]
    assert [m.payload for m in alarms] == [encode(e) for e in reference if e.type == "alarm"]
    assert alarms


def test_clearing_a_banked_pairs_alarms_moves_it_off_the_bank_first() -> None:
    """``clear_alarms`` on an actor the bank holds: the bank's detector state is the one
    cleared (not a stale copy), and the runs go on equal."""
    specs, ticks = mixed_specs(), ticks_of(21, 600)

    def drive(bank: bool) -> list[bytes]:
        events: list[Event] = []
        pipeline = Pipeline(specs, SECOND, 2 * SECOND, events.append, Rejects(), bank=bank)
        for i, tick in enumerate(ticks):
            if i and i % 97 == 0:
                events.extend(pipeline.actors[0].clear_alarms())
            pipeline.on_tick(tick)
        pipeline.flush()
        return [encode(e) for e in events]

    assert drive(True) == drive(False)


def test_a_nan_price_at_a_bar_close_is_a_bad_price_on_both_paths() -> None:
    specs = [s for s in mixed_specs() if len(s.pair.xs) == 1]
    legs = sorted({symbol for s in specs for symbol in s.pair.legs})
    runs = []
    for bank in (False, True):
        events: list[Event] = []
        pipeline = Pipeline(specs, SECOND, 2 * SECOND, events.append, Rejects(), bank=bank)
        for k in range(1, 40):
            ts = k * SECOND
            price = {s: 100.0 + k + i for i, s in enumerate(legs)}
            if k == 20:
                price["A"] = math.nan
            prices = {s: LegPrice(p, ts - 1, True) for s, p in price.items()}
            pipeline.on_bar_close(ts, prices, frozenset(legs))
        pipeline.flush()
        runs.append(([encode(e) for e in events], pipeline.rejects.summary()))
    assert runs[0] == runs[1]
    assert runs[1][1].get("nan") == 2  # A/B and E/A
