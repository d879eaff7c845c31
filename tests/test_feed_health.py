"""Dead feeds are visible and come back: a live feed that fails, ends or stalls makes the
status ``degraded: <feed>`` (retained on the bus, so on MQTT and as the WebSocket status
frame), the metrics carry ``feed_up_<feed>`` and ``feed_errors_<feed>``, and the feed is
started again after a backoff delay slept on the daemon's clock. On the test clock; the last
test runs the real MQTT and WebSocket bridges (a real mosquitto, a real websockets client).
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Self

import aiomqtt
import orjson
import pytest
from websockets.asyncio.client import connect

from hedger.config.daemon import daemon_config
from hedger.core.bus import Message
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
from hedger.runtime.clock import TestClock
from hedger.runtime.daemon import FEED_BACKOFF, STALL_INTERVALS, Daemon
from tests.test_clock import CONFIG, GRACE, T0, QueueFeed
from tests.test_refit import RecordingLogger
from tests.waiting import eventually

if TYPE_CHECKING:
    from tests.mosquitto import MosquittoBroker

S = 1_000_000_000


class FlakyFeed:
    """A live feed whose first ``failures`` runs raise (or, with ``ends``, end at once), then
    delivers what the test puts; counts its runs."""

    def __init__(self, failures: int, *, ends: bool = False) -> None:
        self.rejects = Rejects()
        self.failures = failures
        self.ends = ends
        self.runs = 0
        self.ticks: asyncio.Queue[Tick] = asyncio.Queue()

    def put(self, symbol: str, price: float, ts: int) -> None:
        self.ticks.put_nowait(Tick(symbol, price, ts, ts, venue="test"))

    async def __aenter__(self) -> Self:
        self.runs += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass  # nothing to release

    async def __aiter__(self) -> AsyncIterator[Tick]:
        if self.runs <= self.failures:
            if self.ends:
                return
            raise OSError("the venue went away")
        while True:
            yield await self.ticks.get()


def statuses(messages: list[Message]) -> list[str]:
    return [m.payload.decode() for m in messages if m.topic.endswith("/v1/status")]


def last_metrics(messages: list[Message]) -> dict[str, Any]:
    snapshots = [orjson.loads(m.payload) for m in messages if m.topic.endswith("/v1/metrics")]
    return snapshots[-1] if snapshots else {}


@pytest.mark.parametrize("ends", [False, True], ids=["fails", "ends"])
async def test_a_failed_feed_is_degraded_counted_and_restarted_after_a_backoff(ends: bool) -> None:
    clock = TestClock(T0)
    feed = FlakyFeed(2, ends=ends)
    node = Daemon(daemon_config(tomllib.loads(CONFIG)), RecordingLogger(), clock=clock,
                  feeds=[feed])  # fmt: skip
    messages: list[Message] = []
    node.bus.subscribe(messages.append)
    async with node:
        await eventually(lambda: node.feed_errors["synthetic"] == 1, what="first failure")
        assert statuses(messages)[-1] == "degraded: synthetic"
        assert node.metrics()["feed_up_synthetic"] == 0
        assert node.metrics()["feed_errors_synthetic"] == 1
        assert feed.runs == 1  # waiting for its backoff, on the clock
        await clock.advance_ns(round(FEED_BACKOFF.initial * S))
        await eventually(lambda: node.feed_errors["synthetic"] == 2, what="second failure")
        await clock.advance_ns(round(FEED_BACKOFF.initial * FEED_BACKOFF.factor * S))
        await eventually(lambda: feed.runs == 3, what="third run")
        assert statuses(messages)[-1] == "degraded: synthetic"  # up once it delivers
        feed.put("YYY", 10.0, T0 + 5)
        await eventually(lambda: node.pipeline.stats.ticks_in == 1)
        await eventually(lambda: statuses(messages)[-1] == "online", what="online again")
        metrics = node.metrics()
        assert metrics["feed_up_synthetic"] == 1 and metrics["feed_errors_synthetic"] == 2
        assert statuses(messages) == ["online", "degraded: synthetic", "online"]
    log = node.log.records
    assert [e for _, e, _ in log].count("feed restarting") == 2


async def test_a_stalled_feed_is_degraded_until_it_ticks_again() -> None:
    clock = TestClock(T0)
    feed = QueueFeed()
    node = Daemon(daemon_config(tomllib.loads(CONFIG)), RecordingLogger(), clock=clock,
                  feeds=[feed])  # fmt: skip
    messages: list[Message] = []
    node.bus.subscribe(messages.append)
    interval = round(node.config.metrics_interval_s * S)
    async with node:
        await eventually(lambda: statuses(messages) == ["online"], what="online")
        await eventually(lambda: T0 + GRACE in clock.pending(), what="bar clock asleep")
        await clock.advance_ns(STALL_INTERVALS * interval)
        await eventually(lambda: bool(last_metrics(messages)), what="metrics")
        assert statuses(messages)[-1] == "degraded: synthetic"
        assert last_metrics(messages)["feed_up_synthetic"] == 0
        feed.put("YYY", 10.0, clock.time_ns())
        await eventually(lambda: node.pipeline.stats.ticks_in == 1)
        await clock.advance_ns(interval)
        await eventually(lambda: statuses(messages)[-1] == "online", what="online again")
        assert last_metrics(messages)["feed_up_synthetic"] == 1


async def test_the_retained_status_and_the_websocket_frame_name_the_dead_feed(
    mosquitto: MosquittoBroker,
) -> None:
    root = "health"
    config = daemon_config(
        tomllib.loads(
            CONFIG
            + f'[bus]\nroot = "{root}"\n[bus.mqtt]\nurl = "{mosquitto.url}"\nqos = 1\n'
            + '[bus.websocket]\nhost = "127.0.0.1"\nport = 0\n'
        )
    )
    clock = TestClock(T0)
    node = Daemon(config, RecordingLogger(), clock=clock, feeds=[FlakyFeed(1)])
    host, port = mosquitto.url.removeprefix("mqtt://").split(":")
    async with node, asyncio.timeout(30):
        await eventually(lambda: node.feed_errors["synthetic"] == 1, what="the feed failed")
        ws_bridge = next(b for b in node.bridges if b.name == "ws")
        await eventually(lambda: ws_bridge._server is not None, what="ws listening")  # type: ignore[attr-defined]
        url = ws_bridge.url  # type: ignore[attr-defined]
        async with connect(url) as ws:
            frame = orjson.loads(await ws.recv())
        assert frame == {"type": "status", "status": "degraded: synthetic"}

        async def retained() -> bytes:
            async with aiomqtt.Client(host, int(port)) as client:
                await client.subscribe(f"{root}/v1/status", qos=1)
                async for message in client.messages:
                    return bytes(message.payload)
            return b""

        await eventually(
            lambda: retained_is(retained, b"degraded: synthetic"), what="retained degraded"
        )


async def retained_is(read: Any, want: bytes) -> bool:
    return bool(await read() == want)
