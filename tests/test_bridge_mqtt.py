"""The MQTT bridge against a real mosquitto broker: events through a Bus arrive in order on
their topics, the retained ratio and status, the last will of a killed process, a broker
restart mid-stream (nothing lost), outbox overflow during an outage (counted, logged, and
exactly the gap a subscriber sees), and a clean close."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest

from feeds.reconnect import Backoff
from hedger.core.bus import Bus, Message
from hedger.core.events import HedgeRatioEvent, SpreadEvent, decode
from hedger.core.lifecycle import Lifecycle, State
from hedger.errors import TransportError
from hedger.runtime.bridges.mqtt import MqttBridge
from tests.mosquitto import MosquittoBroker
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]
TS0 = 1_700_000_000_000_000_000
FAST = Backoff(initial=0.05, maximum=0.2)
# After a broker restart the test's subscriber must be back before the bridge resends, or it
# would miss messages through no fault of the bridge: the bridge retries every 1.5 s (no
# jitter) and the subscriber every 20 ms.
SLOW = Backoff(initial=1.5, maximum=1.5, jitter=0.0)


def state_of(component: Lifecycle) -> State:
    """The component's state now (a call, so that mypy does not narrow it between steps)."""
    return component.state


def new_root() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def publish_bar(bus: Bus, pair: str, seq: int) -> None:
    """The two events of one bar (a ratio and a spread, sharing the seq)."""
    ts = TS0 + seq * 1_000_000_000
    beta = 1.0 + seq * 1e-3
    bus.publish(
        HedgeRatioEvent(
            pair, seq, ts, (beta,), 0.5, ((1e-4, 0.0), (0.0, 1e-4)), (0.01,), True, False
        )
    )
    bus.publish(SpreadEvent(pair, seq, ts, 0.1 * seq, 0.2, 1.0, 0.2))


def _payload(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return b"" if value is None else str(value).encode()


class Subscriber(Lifecycle):
    """A plain aiomqtt subscriber that records every message and reconnects (every 20 ms)
    when the broker goes away."""

    def __init__(
        self, broker: MosquittoBroker, topic: str, qos: int = 1, *, session: str | None = None
    ) -> None:
        self.host, self.port = broker.host, broker.port
        self.topic = topic
        self.qos = qos
        # a named persistent session: the broker keeps what it could not deliver yet
        self.session = session
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscriptions = 0
        self._task: asyncio.Task[None] | None = None
        super().__init__()

    async def _open(self) -> None:
        self._task = asyncio.create_task(self._run())
        await eventually(lambda: self.subscriptions >= 1, what="the subscription")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(aiomqtt.MqttError):
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=self.session,
                    clean_session=False if self.session else None,
                ) as client:
                    await client.subscribe(self.topic, qos=self.qos)
                    self.subscriptions += 1
                    async for message in client.messages:
                        self.messages.append(
                            (message.topic.value, _payload(message.payload), message.retain)
                        )
            await asyncio.sleep(0.02)

    def payloads(self, topic: str) -> list[bytes]:
        return [payload for t, payload, _ in self.messages if t == topic]

    def seqs(self) -> dict[str, list[int]]:
        """The seqs received per event topic, in order of arrival."""
        by_topic: dict[str, list[int]] = defaultdict(list)
        for topic, payload, _ in self.messages:
            if "/ratio/" in topic or "/spread/" in topic:
                by_topic[topic].append(decode(payload)["seq"])
        return by_topic

    def count(self) -> int:
        return sum(len(seqs) for seqs in self.seqs().values())


class RecordingLogger:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.records.append(("warning", event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self.records.append(("info", event, kw))

    def overflow(self) -> list[dict[str, Any]]:
        return [kw for level, event, kw in self.records if "overflow" in event]


def wired(broker: MosquittoBroker, root: str, **options: Any) -> tuple[Bus, MqttBridge]:
    """A bus under ``root`` with a bridge to ``broker`` attached."""
    bus = Bus(root=root)
    bridge = MqttBridge(broker.url, root=root, **options)
    bus.attach(bridge)
    return bus, bridge


def topics(root: str, pair: str) -> tuple[str, str]:
    return f"{root}/v1/ratio/{pair}", f"{root}/v1/spread/{pair}"


async def send_sentinel(bus: Bus, sub: Subscriber, root: str) -> None:
    """Publish a marker after everything else and wait until it arrives: one connection and
    one QoS keep the order, so whatever was published before it has arrived by then."""
    topic = f"{root}/v1/sentinel/end"
    bus.send(Message(topic, b"end"))
    await eventually(lambda: sub.payloads(topic) == [b"end"], what="the sentinel")


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("http://127.0.0.1:1883", {}),
        ("mqtt://", {}),
        ("mqtt://127.0.0.1", {"qos": 3}),
        ("mqtt://127.0.0.1", {"window": 0}),
        ("mqtt://127.0.0.1", {"outbox_capacity": 0}),
    ],
)
def test_bad_arguments_are_refused(url: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(TransportError) as caught:
        MqttBridge(url, **kwargs)
    assert caught.value.problem in str(caught.value)


def test_url_gives_host_port_and_credentials() -> None:
    bridge = MqttBridge("mqtt://user:p%40ss@broker.example:1999", root="desk")
    assert (bridge.host, bridge.port, bridge.status_topic) == (
        "broker.example",
        1999,
        "desk/v1/status",
    )
    assert (bridge._broker.username, bridge._broker.password) == ("user", "p@ss")
    assert bridge.url == "mqtt://user:***@broker.example:1999"
    assert MqttBridge("mqtts://broker.example").port == 8883
    assert bridge.metrics() == {
        "published": 0.0,
        "acked": 0.0,
        "dropped": 0.0,
        "rejected": 0.0,
        "queued": 0.0,
        "inflight": 0.0,
        "reconnects": 0.0,
        "connected": 0.0,
    }


# --- against the broker -----------------------------------------------------------------------


async def test_events_arrive_in_order_on_their_topics(mosquitto: MosquittoBroker) -> None:
    root = new_root()
    bus, bridge = wired(mosquitto, root, backoff=FAST)
    pairs = ["AAPL/SPY", "XLE/USO", "BRK%2FB/SPY"]
    bars = 1500
    expected: list[tuple[str, int]] = []
    async with Subscriber(mosquitto, f"{root}/v1/#") as sub, bridge:
        await eventually(lambda: bridge.connected, what="the bridge to connect")
        for seq in range(1, bars + 1):
            for pair in pairs:
                publish_bar(bus, pair, seq)
                ratio_topic, spread_topic = topics(root, pair)
                expected += [(ratio_topic, seq), (spread_topic, seq)]
            if seq % 50 == 0:
                await asyncio.sleep(0)  # let the bridge pipeline while the actors publish
        assert await bridge.drain(20.0), (bridge.metrics(), sub.count(), len(expected))
        await eventually(lambda: sub.count() >= len(expected), 20.0, "every event")
        await send_sentinel(bus, sub, root)  # nothing more (no repeats) came before it
    events = [m[:2] for m in sub.messages if not m[0].endswith("/status")]
    assert events[-1] == (f"{root}/v1/sentinel/end", b"end")

    # the whole stream, not just each topic, arrives in publish order: one connection, one QoS
    received = [
        (topic, decode(payload)["seq"])
        for topic, payload, _ in sub.messages
        if not topic.endswith(("/status", "/end"))
    ]
    assert received == expected
    for pair in pairs:
        ratio_topic, spread_topic = topics(root, pair)
        assert sub.seqs()[ratio_topic] == list(range(1, bars + 1))
        assert sub.seqs()[spread_topic] == list(range(1, bars + 1))
        last_ratio = decode(sub.payloads(ratio_topic)[-1])
        assert (last_ratio["type"], last_ratio["pair"]) == ("hedge_ratio", pair)
        assert decode(sub.payloads(spread_topic)[0])["type"] == "spread"
    assert f"{root}/v1/ratio/BRK%2FB/SPY" in sub.seqs()
    metrics = bridge.metrics()
    assert metrics["published"] == metrics["acked"] == len(expected) + 1  # and the sentinel
    assert (metrics["dropped"], metrics["queued"], metrics["reconnects"]) == (0, 0, 0)


async def test_an_unpublishable_message_is_rejected_not_retried(
    mosquitto: MosquittoBroker,
) -> None:
    # A topic with a wildcard can never be published: the client refuses it. It must not
    # block the stream (reconnecting and retrying it forever); it is counted and logged.
    root = new_root()
    log = RecordingLogger()
    bus, bridge = wired(mosquitto, root, backoff=FAST, logger=log)
    async with Subscriber(mosquitto, f"{root}/v1/+/#") as sub, bridge:
        publish_bar(bus, "AAA/BBB", 1)
        bus.send(Message(f"{root}/v1/spread/AAA/B+C", b"{}"))
        publish_bar(bus, "AAA/BBB", 2)
        assert await bridge.drain(5.0)
        await eventually(lambda: sub.count() == 4, what="the good messages")
    assert sub.seqs() == {topic: [1, 2] for topic in topics(root, "AAA/BBB")}
    metrics = bridge.metrics()
    assert (metrics["rejected"], metrics["acked"], metrics["reconnects"]) == (1, 4, 0)
    assert [kw["reason"] for level, event, kw in log.records if event == "rejected"] == [
        "unpublishable"
    ]


async def test_a_late_subscriber_gets_the_current_ratio_at_once(
    mosquitto: MosquittoBroker,
) -> None:
    root = new_root()
    bus, bridge = wired(mosquitto, root, backoff=FAST)
    async with bridge:
        for seq in range(1, 21):
            publish_bar(bus, "AAPL/SPY", seq)
        assert await bridge.drain(5.0)
        async with Subscriber(mosquitto, f"{root}/v1/#") as late:
            await eventually(lambda: len(late.messages) >= 2, 2.0, "the retained messages")
            await send_sentinel(bus, late, root)  # and nothing else: spreads are not retained
    assert late.messages[-1][:2] == (f"{root}/v1/sentinel/end", b"end")
    retained = {topic: (payload, retain) for topic, payload, retain in late.messages[:-1]}
    assert set(retained) == {f"{root}/v1/status", f"{root}/v1/ratio/AAPL/SPY"}
    payload, was_retained = retained[f"{root}/v1/ratio/AAPL/SPY"]
    assert was_retained
    ratio = decode(payload)
    assert (ratio["seq"], ratio["beta"]) == (20, pytest.approx(1.02))
    assert retained[f"{root}/v1/status"] == (b"online", True)


CHILD = """
import asyncio, sys
from hedger.runtime.bridges.mqtt import MqttBridge

async def main():
    bridge = MqttBridge(sys.argv[1], root=sys.argv[2])
    bridge.start()
    while not bridge.connected:
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_online_on_connect_and_the_last_will_when_killed(
    mosquitto: MosquittoBroker,
) -> None:
    root = new_root()
    status = f"{root}/v1/status"
    async with Subscriber(mosquitto, status) as sub:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            mosquitto.url,
            root,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 15.0)
            assert line.strip() == b"ready"
            await eventually(lambda: sub.payloads(status) == [b"online"], what="online")
        finally:
            child.kill()  # SIGKILL: no clean disconnect, the broker sends the will
            await child.wait()
        await eventually(lambda: sub.payloads(status) == [b"online", b"offline"], what="the will")
    async with Subscriber(mosquitto, status) as late:
        await eventually(lambda: late.messages != [], what="the retained status")
    assert late.messages == [(status, b"offline", True)]


async def test_a_broker_restart_mid_stream_loses_nothing() -> None:
    """A broker that keeps its sessions on disk (as deploy/mosquitto.conf does) is stopped and
    started again mid-stream; a QoS 1 subscriber with a persistent session sees every seq.
    (Without broker persistence, messages the broker had acknowledged but not yet forwarded
    die with it: no publisher can prevent that.)"""
    mosquitto = MosquittoBroker(persistence=True)
    mosquitto.start()
    try:
        await _restart_mid_stream(mosquitto)
    finally:
        mosquitto.close()


async def _restart_mid_stream(mosquitto: MosquittoBroker) -> None:
    root = new_root()
    bus, bridge = wired(mosquitto, root, backoff=SLOW)
    pairs = ["AAA/BBB", "CCC/DDD"]
    published = 0
    streaming = True

    async def stream() -> None:
        nonlocal published
        while streaming:
            published += 1
            for pair in pairs:
                publish_bar(bus, pair, published)
            await asyncio.sleep(0.002)

    async with Subscriber(mosquitto, f"{root}/v1/+/#", session=f"{root}-sub") as sub, bridge:
        await eventually(lambda: bridge.connected, what="the bridge to connect")
        streamer = asyncio.create_task(stream())
        await eventually(lambda: sub.count() > 200, what="the stream to flow")

        await asyncio.to_thread(mosquitto.stop)
        await eventually(lambda: not bridge.connected, what="the bridge to notice")
        outage_from = published
        # the actors keep publishing, into the outbox
        await eventually(lambda: published > outage_from + 20, what="publishing during the outage")
        await eventually(lambda: bridge.metrics()["queued"] > 40, what="the outbox to fill")

        await asyncio.to_thread(mosquitto.start)
        await eventually(lambda: sub.subscriptions >= 2, what="the subscriber to come back")
        assert not bridge.connected, "the bridge came back before the subscriber"
        await eventually(lambda: bridge.connected, 5.0, "the bridge to reconnect")
        back_from = published
        await eventually(lambda: published > back_from + 20, what="publishing after the reconnect")
        streaming = False
        await streamer
        assert await bridge.drain(10.0)
        await eventually(lambda: sub.count() >= 4 * published, 10.0, "the resent events")

    seqs = sub.seqs()
    assert sorted(seqs) == sorted(topic for pair in pairs for topic in topics(root, pair))
    for topic, received in seqs.items():
        assert sorted(set(received)) == list(range(1, published + 1)), topic
    metrics = bridge.metrics()
    assert metrics["reconnects"] == 1
    assert metrics["dropped"] == 0
    assert metrics["queued"] == 0
    assert metrics["acked"] >= 4 * published


async def test_overflow_during_an_outage_is_counted_logged_and_is_the_gap(
    mosquitto: MosquittoBroker,
) -> None:
    root = new_root()
    log = RecordingLogger()
    bus, bridge = wired(mosquitto, root, outbox_capacity=40, backoff=SLOW, logger=log)
    pair = "AAA/BBB"
    async with Subscriber(mosquitto, f"{root}/v1/+/#") as sub, bridge:
        await eventually(lambda: bridge.connected, what="the bridge to connect")
        for seq in range(1, 101):
            publish_bar(bus, pair, seq)
            assert await bridge.drain(2.0)  # no overflow yet: the broker is up
        assert bridge.metrics()["dropped"] == 0
        await eventually(lambda: sub.count() == 200, what="the first 100 bars")

        await asyncio.to_thread(mosquitto.stop)
        await eventually(lambda: not bridge.connected, what="the bridge to notice")
        for seq in range(101, 301):  # 400 messages into an outbox of 40
            publish_bar(bus, pair, seq)
        assert bridge.metrics()["dropped"] == 360
        assert bridge.metrics()["queued"] == 40
        assert log.overflow(), "overflow must be logged at once, never silently"

        await asyncio.to_thread(mosquitto.start)
        await eventually(lambda: sub.subscriptions >= 2, what="the subscriber to come back")
        assert not bridge.connected, "the bridge came back before the subscriber"
        await eventually(lambda: bridge.connected, 5.0, "the bridge to reconnect")
        # (an outbox of 40 overflows again if 20 more come while 40 are still in flight)
        assert await bridge.drain(5.0)
        for seq in range(301, 311):
            publish_bar(bus, pair, seq)
        assert await bridge.drain(5.0)
        await eventually(lambda: sub.count() >= 200 + 40 + 20, what="the rest")
        await send_sentinel(bus, sub, root)  # every resend came before it

    missing = 0
    for topic, received in sub.seqs().items():
        gap = sorted(set(range(1, 311)) - set(received))
        # the oldest waiting messages went: bars 101..280; the newest 20 bars were kept
        assert gap == list(range(101, 281)), topic
        missing += len(gap)
    assert missing == bridge.metrics()["dropped"] == 360
    # every drop is in some warning (the first at once, the rest when the bridge reconnects)
    assert sum(record["dropped"] for record in log.overflow()) == 360
    assert log.overflow()[-1]["dropped_total"] == 360


async def test_a_clean_close_publishes_offline(mosquitto: MosquittoBroker) -> None:
    root = new_root()
    status = f"{root}/v1/status"
    states: list[State] = []
    bus, bridge = wired(mosquitto, root, backoff=FAST, on_state=states.append)
    assert state_of(bridge) is State.STARTING
    async with Subscriber(mosquitto, f"{root}/v1/#") as sub:
        bridge.start()
        await eventually(lambda: sub.payloads(status) == [b"online"], what="online")
        for seq in range(1, 51):
            publish_bar(bus, "AAPL/SPY", seq)
        # closing delivers what is waiting first, then says offline
        assert await bridge.close()
        await eventually(lambda: sub.payloads(status) == [b"online", b"offline"], what="offline")
        assert sub.count() == 100
        assert sub.messages[-1][:2] == (status, b"offline")
    assert bridge.metrics()["connected"] == 0
    assert states == [State.RUNNING, State.STOPPING, State.STOPPED]
    assert await bridge.close()  # idempotent
    assert states[-1] is State.STOPPED and len(states) == 3
    async with Subscriber(mosquitto, status) as late:
        await eventually(lambda: late.messages != [], what="the retained status")
    assert late.messages == [(status, b"offline", True)]


async def test_drain_and_close_during_an_outage_give_up_in_time(
    mosquitto: MosquittoBroker,
) -> None:
    root = new_root()
    bus, bridge = wired(mosquitto, root, backoff=FAST)
    bridge.start()
    await eventually(lambda: bridge.connected, what="the bridge to connect")
    mosquitto.stop()
    await eventually(lambda: not bridge.connected, what="the bridge to notice")
    for seq in range(1, 11):
        publish_bar(bus, "AAA/BBB", seq)
    retries = bridge.reconnector.retries
    async with asyncio.timeout(10):  # a guard against a hang, not a measurement
        assert not await bridge.drain(0.3)
        assert not await bridge.close(timeout=0.3)
    assert state_of(bridge) is State.STOPPED
    assert bridge.reconnector.retries > retries  # it kept trying until it gave up
    assert max(bridge.reconnector.delays) <= FAST.maximum
    assert bridge.metrics()["queued"] == 20  # kept, not lost: nothing was acknowledged


async def test_cancelling_run_also_publishes_offline(mosquitto: MosquittoBroker) -> None:
    root = new_root()
    status = f"{root}/v1/status"
    bridge = MqttBridge(mosquitto.url, root=root, qos=0, backoff=FAST)
    async with Subscriber(mosquitto, status) as sub:
        task = asyncio.create_task(bridge.run())
        await eventually(lambda: sub.payloads(status) == [b"online"], what="online")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await eventually(lambda: sub.payloads(status) == [b"online", b"offline"], what="offline")


async def test_metrics_snapshot_payloads_pass_through(mosquitto: MosquittoBroker) -> None:
    root = new_root()
    bus, bridge = wired(mosquitto, root, backoff=FAST)
    async with Subscriber(mosquitto, f"{root}/v1/metrics") as sub, bridge:
        bus.publish_metrics({"bridge": bridge.metrics()})
        await eventually(lambda: len(sub.messages) == 1, what="the metrics message")
    assert orjson.loads(sub.messages[0][1])["bridge"]["dropped"] == 0
