"""The clocks, and the daemon driven by a test clock: bars close on the wall clock after the
grace period and only then, a tick within grace lands in its bar, metrics every
``metrics_interval`` of clock time, and shutdown drains within ``shutdown_timeout`` on the
clock. Nothing here sleeps or reads the wall clock."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from typing import Any, Self

import orjson
import pytest

from hedger.config.daemon import daemon_config
from hedger.core.bars import LegPrice
from hedger.core.bus import Message, Outbox
from hedger.core.lifecycle import State
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
from hedger.runtime.clock import LiveClock, TestClock
from hedger.runtime.daemon import SHUTDOWN_SHARE, Daemon
from tests.test_refit import RecordingLogger
from tests.waiting import eventually

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a bar boundary for 1 s bars
GRACE = 200_000_000


def daemon_text(*pairs: str) -> str:
    """A daemon of 1 s bars over ``pairs`` with a 200 ms grace (its one feed is replaced)."""
    tables = "".join(f'[pairs."{pair}"]\n' for pair in pairs)
    return f"""
[bars]
length = "1s"
max_age = "10s"
{tables}
[[feeds]]
kind = "synthetic"
[daemon]
metrics_interval = "5s"
bar_grace = "200ms"
shutdown_timeout = "3s"
"""


CONFIG = daemon_text("YYY/XXX", "ZZZ/XXX")


class QueueFeed:
    """A live feed the test writes ticks into (the daemon's side of a feed is under test, not
    a venue)."""

    def __init__(self) -> None:
        self.rejects = Rejects()
        self._ticks: asyncio.Queue[Tick] = asyncio.Queue()

    def put(self, symbol: str, price: float, ts_event: int) -> None:
        self._ticks.put_nowait(Tick(symbol, price, ts_event, ts_event, venue="test"))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass  # nothing to release

    async def __aiter__(self) -> AsyncIterator[Tick]:
        while True:
            yield await self._ticks.get()


class Running:
    """A daemon on a test clock and a queue feed, running in a task."""

    def __init__(self, config_text: str = CONFIG) -> None:
        self.clock = TestClock(T0)
        self.feed = QueueFeed()
        self.log = RecordingLogger()
        config = daemon_config(tomllib.loads(config_text))
        self.node = Daemon(config, self.log, clock=self.clock, feeds=[self.feed])
        self.messages: list[Message] = []
        self.node.bus.subscribe(self.messages.append)
        self.bars: list[tuple[int, dict[str, LegPrice]]] = []
        self.node.pipeline.bar_listeners.append(
            ("probe", lambda ts, prices, ticked: self.bars.append((ts, prices)))
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.node.run(self.stop))
        # the bar clock waits for the close of the bar before T0, grace after it
        await eventually(lambda: T0 + GRACE in self.clock.pending(), what="bar clock asleep")

    async def ticks(self, *ticks: tuple[str, float, int]) -> None:
        """Feed ticks and wait until the core has taken them."""
        want = self.node.pipeline.stats.ticks_in + len(ticks)
        for symbol, price, ts in ticks:
            self.feed.put(symbol, price, ts)
        await eventually(lambda: self.node.pipeline.stats.ticks_in == want, what="ticks taken")

    async def settled(self) -> None:
        """Wait until the core has taken everything queued so far (it works on an item in
        the step that takes it off the queue)."""
        await eventually(lambda: self.node.queue.qsize() == 0, what="tick queue empty")

    async def shutdown(self) -> None:
        assert self.task is not None
        self.stop.set()
        await asyncio.wait_for(self.task, 10)

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [orjson.loads(m.payload) for m in self.messages if f"/v1/{kind}/" in m.topic]

    def metrics(self) -> list[dict[str, Any]]:
        return [orjson.loads(m.payload) for m in self.messages if m.topic.endswith("/metrics")]


async def test_the_test_clock_wakes_sleepers_in_time_order_and_reads_their_time() -> None:
    clock = TestClock(T0)
    woke: list[tuple[str, int, int]] = []

    async def sleeper(name: str, until: int) -> None:
        await clock.sleep_until_ns(until)
        woke.append((name, clock.time_ns(), clock.monotonic_ns()))

    tasks = [
        asyncio.create_task(sleeper(name, T0 + at))
        for name, at in (("c", 3 * S), ("a", 1 * S), ("b", 1 * S), ("d", 9 * S))
    ]
    await eventually(lambda: len(clock.pending()) == 4)
    assert clock.pending() == [T0 + S, T0 + S, T0 + 3 * S, T0 + 9 * S]
    await clock.advance_ns(S - 1)
    assert woke == [] and clock.time_ns() == T0 + S - 1
    await clock.advance_to(T0 + 5 * S)
    assert woke == [("a", T0 + S, S), ("b", T0 + S, S), ("c", T0 + 3 * S, 3 * S)]
    assert clock.time_ns() == T0 + 5 * S and clock.pending() == [T0 + 9 * S]
    tasks[3].cancel()
    await asyncio.gather(tasks[3], return_exceptions=True)
    assert clock.pending() == []
    with pytest.raises(ValueError, match="back"):
        await clock.advance_to(T0)


async def test_within_is_measured_on_the_clock() -> None:
    clock = TestClock(T0)
    never = asyncio.Event()
    timed = asyncio.create_task(clock.within(2.0, never.wait()))
    await eventually(lambda: clock.pending() == [T0 + 2 * S])
    await clock.advance_ns(2 * S - 1)
    assert not timed.done()
    await clock.advance_ns(1)
    assert await asyncio.wait_for(timed, 10) == (False, None)

    async def answer() -> int:
        return 42

    assert await clock.within(2.0, answer()) == (True, 42)
    assert await LiveClock().within(60.0, answer()) == (True, 42)


async def test_bars_close_at_their_boundaries_after_the_grace_period_and_only_then() -> None:
    run = Running()
    await run.start()
    await run.ticks(("YYY", 10.0, T0 + S // 10), ("XXX", 5.0, T0 + S // 10))
    await run.clock.advance_to(T0 + GRACE)  # closes the bar before T0: it had no ticks
    await run.clock.advance_to(T0 + S + GRACE - 1)
    assert T0 + S + GRACE in run.clock.pending()  # the close of [T0, T0 + 1 s) is next
    await run.settled()
    assert run.bars == [] and run.node.pipeline.bars.bars_closed == 0
    await run.clock.advance_ns(1)
    await eventually(lambda: len(run.bars) == 1, what="first bar closed")
    assert run.bars[0][0] == T0 + S
    # two bars later, one tick in each: each closes at its own boundary
    await run.ticks(("YYY", 11.0, T0 + S + 5))
    await run.clock.advance_to(T0 + 2 * S + GRACE)
    await eventually(lambda: len(run.bars) == 2)
    await run.ticks(("XXX", 6.0, T0 + 2 * S + 5))
    await run.clock.advance_to(T0 + 3 * S + GRACE)
    await eventually(lambda: len(run.bars) == 3)
    assert [ts for ts, _ in run.bars] == [T0 + S, T0 + 2 * S, T0 + 3 * S]
    ratios = run.events("ratio")
    assert [(e["pair"], e["seq"], e["ts"], e["stale"]) for e in ratios] == [
        ("YYY/XXX", 1, T0 + S, False),
        ("ZZZ/XXX", 1, T0 + S, True),  # ZZZ never ticked: predict only
        ("YYY/XXX", 2, T0 + 2 * S, False),  # only YYY ticked: ZZZ/XXX sits it out
        ("YYY/XXX", 3, T0 + 3 * S, False),
        ("ZZZ/XXX", 2, T0 + 3 * S, True),
    ]
    await run.shutdown()


async def test_a_tick_within_the_grace_period_lands_in_its_bar_and_one_after_is_late() -> None:
    run = Running()
    await run.start()
    await run.ticks(("YYY", 10.0, T0 + 100), ("XXX", 5.0, T0 + 100))
    await run.clock.advance_to(T0 + S + GRACE // 2)  # the bar has ended; its grace has not
    await run.ticks(("YYY", 10.5, T0 + S - 1))
    assert run.node.rejects.counts["late"] == 0
    await run.clock.advance_to(T0 + S + GRACE)
    await eventually(lambda: len(run.bars) == 1)
    ts, prices = run.bars[0]
    assert ts == T0 + S and prices["YYY"] == LegPrice(10.5, T0 + S - 1, True)
    await run.ticks(("XXX", 5.5, T0 + S - 2))  # its bar is closed now
    assert run.node.rejects.counts["late"] == 1
    await run.shutdown()


async def test_metrics_are_published_every_interval_of_clock_time() -> None:
    run = Running()
    await run.start()
    await run.clock.advance_ns(5 * S - 1)
    assert T0 + 5 * S in run.clock.pending()  # the metrics loop waits for its interval
    await run.settled()
    assert run.metrics() == []
    await run.clock.advance_ns(1)
    assert [m["uptime_seconds"] for m in run.metrics()] == [5.0]
    await run.clock.advance_ns(15 * S)  # three intervals in one move: three snapshots
    assert [m["uptime_seconds"] for m in run.metrics()] == [5.0, 10.0, 15.0, 20.0]
    await run.shutdown()
    assert [m["uptime_seconds"] for m in run.metrics()] == [5.0, 10.0, 15.0, 20.0, 20.0]


class Bridge:
    """A bridge whose drain finishes at once (``stuck=False``) or never."""

    def __init__(self, stuck: bool) -> None:
        self.name = "stuck" if stuck else "prompt"
        self.outbox = Outbox(100, self.name)
        self.stuck = stuck
        self.draining = False

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def drain(self, timeout: float) -> bool:
        self.draining = True
        if self.stuck:
            await asyncio.Event().wait()
        return True

    def metrics(self) -> dict[str, float]:
        return {}


async def test_shutdown_closes_the_open_bar_and_drains_within_the_timeout_on_the_clock() -> None:
    run = Running()
    stuck = Bridge(stuck=True)
    run.node.add_bridge(stuck)
    await run.start()
    await run.ticks(("YYY", 10.0, T0 + 100), ("XXX", 5.0, T0 + 100))
    assert run.task is not None
    run.stop.set()
    await eventually(lambda: stuck.draining, what="drain started")
    deadline = T0 + round(3 * SHUTDOWN_SHARE * S)  # the daemon's share of the 3 s
    assert run.clock.pending() == [deadline]
    # the open bar was closed at stop and its events handed to the bridge
    assert [ts for ts, _ in run.bars] == [T0 + S]
    events = [m.pair for m in stuck.outbox.peek_batch(10) if m.kind in ("ratio", "spread")]
    assert events == ["YYY/XXX", "YYY/XXX", "ZZZ/XXX", "ZZZ/XXX"]
    await run.clock.advance_to(deadline - 1)
    assert not run.task.done()
    await run.clock.advance_to(deadline)
    await asyncio.wait_for(run.task, 10)
    warned = [f for level, e, f in run.log.records if e == "undelivered at shutdown"]
    assert warned == [{"bridge": "stuck", "left": len(stuck.outbox)}]
    assert any(e == "stopped" for _, e, _ in run.log.records)


async def test_a_bridge_that_drains_in_time_needs_no_clock_time() -> None:
    run = Running()
    prompt = Bridge(stuck=False)
    run.node.add_bridge(prompt)
    await run.start()
    await run.shutdown()  # no advance: the drain finished before the timeout
    assert prompt.draining
    assert not [e for _, e, _ in run.log.records if e == "undelivered at shutdown"]


async def test_async_with_runs_the_daemon_and_its_end_stops_it_in_order() -> None:
    run = Running()
    states = [run.node.state]
    async with run.node as daemon:
        states.append(daemon.state)
        await run.ticks(("XXX", 10.0, T0 + 1), ("YYY", 15.0, T0 + 2), ("ZZZ", 20.0, T0 + 3))
    states.append(run.node.state)
    assert states == [State.STARTING, State.RUNNING, State.STOPPED]
    # leaving the block closed the open bar: both pairs published their first update
    assert [e["pair"] for e in run.events("ratio")] == ["YYY/XXX", "ZZZ/XXX"]
    await run.node.close()  # idempotent
    assert run.node.state is State.STOPPED


class BrokenFeed(QueueFeed):
    """A feed whose source fails at once (a file that vanished, a bug in an adapter)."""

    async def __aiter__(self) -> AsyncIterator[Tick]:
        raise OSError("the source went away")
        yield  # an async generator all the same


async def test_a_daemon_whose_feed_failed_is_degraded_not_stopped() -> None:
    run = Running()
    run.node.feeds[0] = BrokenFeed()
    async with run.node as daemon:
        await eventually(lambda: daemon.state is State.DEGRADED, what="the daemon degraded")
        assert daemon.feed_errors == {"synthetic": 1}
    assert run.node.state is State.STOPPED
