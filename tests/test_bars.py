"""Bars on event time, staleness, and the pipeline from ticks to events."""

from __future__ import annotations

import math

import pytest

from hedger.config.pipeline import bar_settings
from hedger.core.actors import PairSpec
from hedger.core.bars import BarBuilder, LegPrice, parse_duration_ns
from hedger.core.events import Event, HedgeRatioEvent, SpreadEvent
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind
from hedger.core.topics import PairId
from hedger.engine import DiffuseInit, FilterParams, InputMode
from hedger.errors import ConfigError

S = 1_000_000_000


def tick(symbol: str, price: float, t: float, kind: TickKind = TickKind.TRADE) -> Tick:
    ts = round(t * S)
    return Tick(symbol, price, ts, ts, 1.0, "test", kind)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("250ms", 250_000_000),
        ("1s", S),
        ("1min", 60 * S),
        ("1m", 60 * S),
        ("1d", 86_400 * S),
        ("1.5s", 1_500_000_000),
    ],
)
def test_durations(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["", "1", "1 sec", "-1s", "0s", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration_ns(text)


class Recorder:
    def __init__(self) -> None:
        self.bars: list[tuple[int, dict[str, LegPrice], frozenset[str]]] = []

    def __call__(self, ts: int, prices: dict[str, LegPrice], ticked: frozenset[str]) -> None:
        self.bars.append((ts, prices, ticked))


def test_bars_close_on_event_time_with_last_prices() -> None:
    rec, rejects = Recorder(), Rejects()
    bars = BarBuilder(S, {"A", "B"}, rec, rejects)
    for t in [
        tick("A", 10.0, 0.1),
        tick("B", 20.0, 0.2),
        tick("A", 10.5, 0.9),
        tick("A", 11.0, 1.5),
    ]:
        bars.on_tick(t)
    assert len(rec.bars) == 1
    ts, prices, ticked = rec.bars[0]
    assert ts == S and ticked == {"A", "B"}
    assert prices["A"] == LegPrice(10.5, 900_000_000, True)
    bars.on_tick(tick("B", 21.0, 3.2))  # closes bar [1, 2); bar [2, 3) is empty: no close
    assert [b[0] for b in rec.bars] == [S, 2 * S]
    assert rec.bars[1][2] == {"A"} and rec.bars[1][1]["B"].in_bar is False
    bars.flush()
    assert [b[0] for b in rec.bars] == [S, 2 * S, 4 * S]


def test_late_backwards_duplicate_and_bad_ticks_are_counted_not_used() -> None:
    rec, rejects = Recorder(), Rejects()
    bars = BarBuilder(S, {"A", "B"}, rec, rejects, positive_symbols={"B"})  # B: in a log pair
    bars.on_tick(tick("A", 10.0, 1.5))
    bars.on_tick(tick("A", 10.0, 1.5))  # exact duplicate
    bars.on_tick(tick("A", 10.1, 1.2))  # backwards for A
    bars.on_tick(tick("B", 20.0, 0.5))  # older than the current bar
    bars.on_tick(tick("C", 1.0, 1.6))  # unknown
    for bad in (math.nan, math.inf, 0.0, -3.0, 2e15):
        bars.on_tick(tick("B", bad, 1.7))
    bars.on_tick(Tick("B", 20.0, -5, -5))
    bars.on_tick(tick("B", 20.5, 1.8, TickKind.QUOTE))  # bars use trades
    bars.flush()
    assert bars.duplicates == 1 and bars.skipped_kind == 1
    assert rejects.summary() == {
        "backwards": 1,
        "bad_price": 5,
        "bad_timestamp": 1,
        "late": 1,
        "unknown_symbol": 1,
    }
    assert len(rec.bars) == 1 and rec.bars[0][1] == {"A": LegPrice(10.0, 1_500_000_000, True)}


def test_prices_at_or_below_zero_are_kept_where_no_log_pair_needs_the_symbol() -> None:
    rec, rejects = Recorder(), Rejects()
    bars = BarBuilder(S, {"SPREAD", "B"}, rec, rejects, positive_symbols={"B"})
    bars.on_tick(tick("SPREAD", -1.25, 0.5))  # a calendar spread or a futures price below 0
    bars.on_tick(tick("B", -1.25, 0.6))
    bars.on_tick(tick("SPREAD", 0.0, 1.5))
    bars.flush()
    assert rejects.summary() == {"bad_price": 1}
    assert [(b[0], b[1]["SPREAD"].price) for b in rec.bars] == [(S, -1.25), (2 * S, 0.0)]


def test_the_pipeline_needs_positive_prices_only_for_legs_of_log_pairs() -> None:
    pairs = [
        PairSpec(PairId.parse("A/B"), FilterParams(mode=InputMode.LEVELS)),
        PairSpec(PairId.parse("C/B"), FilterParams(mode=InputMode.RETURNS)),
    ]
    pipeline = Pipeline(pairs, S, S, lambda event: None, Rejects())
    assert pipeline.positive_symbols == {"B", "C"}


def run_pipeline(ticks: list[Tick], max_age: int = S, mode: str = "levels") -> list[Event]:
    events: list[Event] = []
    params = FilterParams(mode=mode, init=DiffuseInit(variance=100.0))  # type: ignore[arg-type]
    pipe = Pipeline([PairSpec(PairId.parse("Y/X"), params)], S, max_age, events.append, Rejects())
    for t in ticks:
        pipe.on_tick(t)
    pipe.flush()
    return events


def test_pipeline_events_share_contiguous_seq_per_bar() -> None:
    ticks = []
    for i in range(20):
        ticks += [
            tick("X", 50.0 + 0.1 * i, i + 0.1),
            tick("Y", 100.0 + 0.2 * i + 0.01 * (-1) ** i, i + 0.2),
        ]
    events = run_pipeline(ticks)
    assert len(events) == 40
    ratios = [e for e in events if isinstance(e, HedgeRatioEvent)]
    spreads = [e for e in events if isinstance(e, SpreadEvent)]
    assert [e.seq for e in ratios] == list(range(1, 21)) == [e.seq for e in spreads]
    assert [e.ts for e in ratios] == [(i + 1) * S for i in range(20)]
    assert not any(e.stale for e in ratios)


def test_stale_leg_gives_a_predict_only_event() -> None:
    ticks = [
        tick("X", 50.0, 0.1),
        tick("Y", 100.0, 0.2),
        tick("Y", 101.0, 1.2),
        tick("X", 50.5, 5.1),
        tick("Y", 101.0, 5.2),
    ]
    events = run_pipeline(ticks, max_age=S)
    ratios = [e for e in events if isinstance(e, HedgeRatioEvent)]
    assert [(e.seq, e.stale) for e in ratios] == [(1, False), (2, True), (3, False)]
    assert ratios[1].beta == ratios[0].beta
    spreads = [e for e in events if isinstance(e, SpreadEvent)]
    assert math.isnan(spreads[1].zscore)
    # with a longer max age, the old X price is still fresh enough
    relaxed = [e for e in run_pipeline(ticks, max_age=2 * S) if isinstance(e, HedgeRatioEvent)]
    assert [e.stale for e in relaxed] == [False, False, False]


def test_pipeline_rejects_pairs_with_the_wrong_number_of_legs() -> None:
    with pytest.raises(ConfigError, match="n_legs"):
        Pipeline([PairSpec(PairId.parse("Y/A+B"), FilterParams())], S, S, print, Rejects())
    with pytest.raises(ConfigError, match="twice"):
        spec = PairSpec(PairId.parse("Y/X"), FilterParams())
        Pipeline([spec, spec], S, S, print, Rejects())


def test_a_tick_stamped_more_than_max_skew_after_its_receive_time_is_future() -> None:
    rec, rejects = Recorder(), Rejects()
    bars = BarBuilder(S, {"A"}, rec, rejects, max_skew_ns=5 * S)
    bars.on_tick(Tick("A", 10.0, 100 * S, 100 * S))
    bars.on_tick(Tick("A", 10.1, 105 * S, 100 * S))  # exactly max_skew ahead: taken
    bars.on_tick(Tick("A", 10.2, 105 * S + 1, 100 * S))  # 1 ns more: future
    bars.on_tick(Tick("A", 10.3, 105 * S, 106 * S))  # received late: not the future's business
    bars.flush()
    assert rejects.summary() == {"future": 1}
    assert [b[1]["A"].price for b in rec.bars] == [10.0, 10.3]


def test_with_lookahead_a_jump_waits_for_the_next_times_and_the_last_ticks_for_flush() -> None:
    rec, rejects = Recorder(), Rejects()
    bars = BarBuilder(S, {"A", "B"}, rec, rejects, lookahead=True)
    bars.on_tick(tick("A", 10.0, 0.5))
    bars.on_tick(tick("A", 10.5, 60.5))  # 60 bars ahead: judged when two more times came
    bars.on_tick(tick("B", 20.0, 60.5))  # the same time: waits with it
    assert bars.ticks_accepted == 0 and rejects.total == 0  # 0.5 waits for a second time
    bars.on_tick(tick("B", 20.5, 0.7))  # the stream goes on where it was: both are future
    assert bars.ticks_accepted == 1 and rejects.total == 0
    bars.on_tick(tick("A", 11.0, 5.5))  # a gap the stream follows (5 bars, then 6)
    assert bars.ticks_accepted == 1 and rejects.summary() == {"future": 2}
    bars.on_tick(tick("A", 11.5, 6.5))
    assert bars.ticks_accepted == 2
    bars.flush()  # the last ticks have fewer next times, and too short a past to be refused
    assert bars.ticks_accepted == 4 and rejects.summary() == {"future": 2}
    assert [b[0] for b in rec.bars] == [S, 6 * S, 7 * S]


@pytest.mark.parametrize(("text", "ns"), [(None, 5 * S), ("250ms", S // 4), ("1min", 60 * S)])
def test_max_skew_is_read_from_bars(text: str | None, ns: int) -> None:
    table = {} if text is None else {"max_skew": text}
    assert bar_settings(table).max_skew_ns == ns


@pytest.mark.parametrize("text", ["0s", "soon", "-1s"])
def test_a_bad_max_skew_is_an_error_naming_the_key(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        bar_settings({"max_skew": text})
    assert info.value.key == "bars.max_skew"


def test_with_lookahead_a_first_tick_far_after_the_next_one_is_future() -> None:
    rec, rejects = Recorder(), Rejects()
    bars = BarBuilder(S, {"A"}, rec, rejects, lookahead=True)
    for t in (tick("A", 9.0, 4_102_444_800.0), tick("A", 10.0, 0.5), tick("A", 10.5, 1.5)):
        bars.on_tick(t)
    bars.flush()
    assert rejects.summary() == {"future": 1}
    assert [b[0] for b in rec.bars] == [S, 2 * S]
