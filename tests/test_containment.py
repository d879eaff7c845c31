"""One failing component never stops the others: a pair whose step raises, a bar listener, a
local bus subscriber. Each failure is counted by pair and logged; the other pairs' events are
exactly those of a run without the failure.

A pair whose step raises is injected as a :class:`HedgeFilter` that raises, so those tests run
the actors' path (``bank=False``): the bank's compiled step has no Python step of its own that
could raise, and the steps it leaves to Python (the end of an OLS warm-up, a restart) go
through the actor, contained the same way (the last test)."""

from __future__ import annotations

from typing import Any

import pytest

from hedger.config.pipeline import pipeline_config
from hedger.core.bus import Bus, Message
from hedger.core.events import Event
from hedger.core.failures import Failures
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
from tests.test_clock import GRACE, T0, Running, S, daemon_text
from tests.test_refit import RecordingLogger
from tests.waiting import eventually

PAIRS = ("AAA/XXX", "BBB/XXX")
BAD_PRICE = 13.0  # the crafted input on which AAA/XXX's filter raises


def ticks(bars: int) -> list[Tick]:
    """One tick per symbol per 1 s bar; AAA trades at BAD_PRICE in bar 5."""
    out: list[Tick] = []
    for i in range(bars):
        ts = T0 + i * S + 1
        a = BAD_PRICE if i == 5 else 20.0 + 0.1 * i + 0.03 * (i % 3)
        for symbol, price in (("AAA", a), ("BBB", 30.0 - 0.2 * i), ("XXX", 10.0 + 0.05 * i)):
            out.append(Tick(symbol, price, ts, ts, venue="test"))
    return out


def pipeline(
    events: list[Event], failures: Failures | None = None, *, bank: bool = False
) -> Pipeline:
    cfg = pipeline_config({}, extra_pairs=PAIRS)
    return Pipeline(
        cfg.pairs, cfg.bars.length_ns, cfg.bars.max_age_ns, events.append, Rejects(),
        failures=failures, bank=bank,
    )  # fmt: skip


def fail_on_bad_price(pipe: Pipeline, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Make AAA/XXX's filter raise on BAD_PRICE; returns where its state before is kept."""
    actor = pipe.actors[0]
    assert actor.pair_id == "AAA/XXX"
    step = actor._filter.step
    seen: dict[str, Any] = {}

    def failing_step(y: float | None, x: Any) -> Any:
        if y == BAD_PRICE:
            seen.update(seq=actor.seq, last_ts=actor.last_ts, filter=actor._filter.snapshot())
            raise ZeroDivisionError("crafted")
        return step(y, x)

    monkeypatch.setattr(actor._filter, "step", failing_step)
    return seen


def test_a_pair_whose_step_raises_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    clean: list[Event] = []
    reference = pipeline(clean)
    for tick in ticks(12):
        reference.on_tick(tick)
    reference.flush()

    events: list[Event] = []
    log = RecordingLogger()
    pipe = pipeline(events, Failures(log))
    before = fail_on_bad_price(pipe, monkeypatch)
    actor = pipe.actors[0]
    for tick in ticks(7):  # up to the bar after the bad one has closed
        pipe.on_tick(tick)
    # the failing bar left the pair as it was before the step
    assert (actor.seq, actor.last_ts, actor._filter.snapshot()) == (
        before["seq"], before["last_ts"], before["filter"],
    )  # fmt: skip
    for tick in ticks(12)[21:]:
        pipe.on_tick(tick)
    pipe.flush()

    assert pipe.stats.actor_errors == {"AAA/XXX": 1}
    [(level, message, fields)] = log.records
    assert (level, message, fields["pair"], fields["ts"]) == ("error", "actor failed", "AAA/XXX",
                                                             T0 + 6 * S)  # fmt: skip
    assert "ZeroDivisionError: crafted" in fields["traceback"]
    # the other pair is untouched; the failing one skips one bar and its seq stays contiguous
    assert [e for e in events if e.pair == "BBB/XXX"] == [e for e in clean if e.pair == "BBB/XXX"]
    mine = [e for e in events if e.pair == "AAA/XXX"]
    assert [e.ts for e in mine[::2]] == [T0 + (i + 1) * S for i in range(12) if i != 5]
    assert [e.seq for e in mine[::2]] == list(range(1, 12))
    assert pipe.stats.events == len(events) == len(clean) - 2


def test_a_failing_sink_is_not_swallowed() -> None:
    """What the pipeline emits to (a replay's output file) failing stops the run."""

    def full_disk(event: Event) -> None:
        raise OSError(28, "No space left on device")

    cfg = pipeline_config({}, extra_pairs=PAIRS)
    pipe = Pipeline(cfg.pairs, cfg.bars.length_ns, cfg.bars.max_age_ns, full_disk, Rejects())
    with pytest.raises(OSError, match="No space"):
        for tick in ticks(3):
            pipe.on_tick(tick)
    assert pipe.stats.actor_errors == {}


def test_a_failing_bar_listener_is_contained_and_counted_by_name() -> None:
    events: list[Event] = []
    pipe = pipeline(events)
    calls: list[int] = []

    def broken(ts: int, prices: Any, ticked: Any) -> None:
        raise KeyError("oops")

    pipe.bar_listeners.append(("broken", broken))
    pipe.bar_listeners.append(("counting", lambda ts, prices, ticked: calls.append(ts)))
    for tick in ticks(4):
        pipe.on_tick(tick)
    pipe.flush()
    assert pipe.stats.actor_errors == {"broken": 4}
    assert calls == [T0 + (i + 1) * S for i in range(4)]
    assert len(events) == 4 * 2 * 2


def test_a_pair_listener_that_raises_does_not_cost_the_events() -> None:
    events: list[Event] = []
    pipe = pipeline(events)

    def broken(actor: Any, ts: int, prices: list[float | None]) -> None:
        raise RuntimeError("refit bookkeeping")

    pipe.actors[1].bar_listener = broken
    for tick in ticks(3):
        pipe.on_tick(tick)
    pipe.flush()
    assert pipe.stats.actor_errors == {"BBB/XXX": 3}
    assert [e.seq for e in events if e.pair == "BBB/XXX"] == [1, 1, 2, 2, 3, 3]


def test_a_subscriber_that_raises_on_one_pair_leaves_the_others_their_messages() -> None:
    log = RecordingLogger()
    bus = Bus(failures=Failures(log))
    got: list[Message] = []

    def picky(message: Message) -> None:
        if message.pair == "AAA/XXX":
            raise ValueError("cannot handle AAA")

    bus.subscribe(picky)
    bus.subscribe(got.append)
    events: list[Event] = []
    pipe = pipeline(events)
    pipe._emit = bus.publish  # the daemon's wiring: the pipeline emits onto the bus
    for tick in ticks(3):
        pipe.on_tick(tick)
    pipe.flush()
    assert [m.event for m in got] == [e for e in _clean_events(3)]
    assert bus.failures.counts == {"AAA/XXX": 6}
    assert {f["topic"] for _, e, f in log.records if e == "subscriber failed"} == {
        "hedger/v1/ratio/AAA/XXX", "hedger/v1/spread/AAA/XXX",
    }  # fmt: skip


def _clean_events(bars: int) -> list[Event]:
    events: list[Event] = []
    pipe = pipeline(events)
    for tick in ticks(bars):
        pipe.on_tick(tick)
    pipe.flush()
    return events


async def test_the_daemon_counts_contained_failures_by_pair_in_its_metrics() -> None:
    run = Running(daemon_text(*PAIRS))

    def picky(message: Message) -> None:
        if message.pair == "BBB/XXX" and message.kind in ("ratio", "spread"):  # its bar events
            raise ValueError("cannot handle BBB")

    run.node.bus.subscribe(picky)
    await run.start()
    await run.ticks(*((t.symbol, t.price, t.ts_event) for t in ticks(2)))
    await run.clock.advance_to(T0 + 2 * S + GRACE)
    await eventually(lambda: len(run.bars) == 2)
    metrics = run.node.metrics()
    assert metrics["actor_errors"] == metrics["actor_errors_BBB/XXX"] == 4
    assert "actor_errors_AAA/XXX" not in metrics
    assert len(run.events("ratio")) == 4  # the recording subscriber still got both pairs'
    await run.shutdown()


def test_a_replay_reports_the_failures_it_contained(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io  # noqa: PLC0415

    from hedger.engine.filter import HedgeFilter  # noqa: PLC0415
    from hedger.runtime.replay import format_summary, replay  # noqa: PLC0415

    path = tmp_path / "ticks.csv"
    rows = [f"{t.ts_event},{t.symbol},{t.price!r}" for t in ticks(12)]
    path.write_text("ts,symbol,price\n" + "\n".join(rows) + "\n")
    step = HedgeFilter.step

    def failing_step(self: HedgeFilter, y: float | None, x: Any) -> Any:
        if y == BAD_PRICE:
            raise ZeroDivisionError("crafted")
        return step(self, y, x)

    monkeypatch.setattr(HedgeFilter, "step", failing_step)
    cfg = pipeline_config({}, extra_pairs=PAIRS)
    for compiled in (False, True):
        out = io.BytesIO()
        summary = replay([path], cfg, out, ts_unit="ns", compiled=compiled, bank=False)
        assert summary.actor_errors == {"AAA/XXX": 1}
        assert "AAA/XXX: 1 failed step(s), contained" in format_summary(summary)
        assert summary.events == 2 * (12 + 12 - 1)  # every bar of both pairs but the failed one


def test_a_banked_pair_whose_slow_step_raises_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bank leaves the end of the OLS warm-up (the 20th observation) to the actor: a filter
    that raises there costs that pair that bar only, counted; the other pair and the pair's
    later bars are as in a clean run."""
    from hedger.engine.filter import HedgeFilter  # noqa: PLC0415

    clean: list[Event] = []
    reference = pipeline(clean, bank=True)
    for tick in ticks(30):
        reference.on_tick(tick)
    reference.flush()
    step = HedgeFilter.step
    calls: list[float | None] = []

    def failing_step(self: HedgeFilter, y: float | None, x: Any) -> Any:
        calls.append(y)
        if len(calls) == 1:  # the first slow step: AAA/XXX's 20th bar (before BBB's)
            raise ZeroDivisionError("crafted")
        return step(self, y, x)

    monkeypatch.setattr(HedgeFilter, "step", failing_step)
    events: list[Event] = []
    pipe = pipeline(events, bank=True)
    for tick in ticks(30):
        pipe.on_tick(tick)
    pipe.flush()
    assert pipe._bank is not None and len(pipe._bank.actors) == 2
    # the slow steps only (AAA twice: the failed one, then the next bar): the bank took the rest
    assert len(calls) == 3
    assert pipe.stats.actor_errors == {"AAA/XXX": 1}
    assert [e for e in events if e.pair == "BBB/XXX"] == [e for e in clean if e.pair == "BBB/XXX"]
    mine = [e.seq for e in events if e.pair == "AAA/XXX"]
    assert mine[::2] == list(range(1, 30))  # one bar fewer, seq contiguous
