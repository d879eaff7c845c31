"""Broker crashes mid-stream, measured: hedger's MQTT bridge publishes numbered QoS 1 events
through a real mosquitto that is SIGKILLed and restarted on the same port a few times, and a
persistent QoS 1 subscriber says which events it never got.

Used by ``tests/test_broker_durability.py`` (which asserts on the outcome) and
``bench/broker_kills.py`` (which prints it for several broker configs).

The subscriber records each message in the client's message callback, that is before its
client acknowledges it (PUBACK): aiomqtt's ``client.messages`` iterator stops at a disconnect
and drops the messages still queued in the client, which the client had already acknowledged,
so reading through it would count a subscriber-side loss as the broker's.

The stream ends with a sentinel published after the bridge has delivered everything: one
connection and one QoS keep the order, and the broker delivers a client's queue in order, so
once the sentinel has arrived nothing else is on its way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from feeds.reconnect import Backoff
from hedger.core.bus import Bus, Message
from hedger.core.events import decode
from hedger.runtime.bridges.mqtt import MqttBridge
from tests.mosquitto import MosquittoBroker
from tests.test_bridge_mqtt import publish_bar

BACKOFF = Backoff(initial=0.05, maximum=0.5)
"""The bridge's reconnect delays: quick, as a daemon next to its broker would be set up."""
SENTINEL = "sentinel/end"

Key = tuple[str, int]
"""An event: (topic, seq)."""


def _recording_queue(
    sink: Callable[[aiomqtt.Message], None],
) -> type[asyncio.Queue[aiomqtt.Message]]:
    """An aiomqtt message queue that hands every message to ``sink`` as it arrives (in the
    client's message callback, before the client acknowledges it) and keeps none."""

    class Recording(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            sink(item)

    return Recording


class PersistentSubscriber:
    """A QoS 1 subscriber with a persistent session (fixed client id, ``clean_session=False``)
    that reconnects every 20 ms while the broker is away and subscribes again on every
    connection (a no-op for a session the broker kept)."""

    def __init__(self, broker: MosquittoBroker, topic: str, identifier: str) -> None:
        self.host, self.port = broker.host, broker.port
        self.topic = topic
        self.identifier = identifier
        self.received: list[Key] = []
        """Every (topic, seq) delivered, in order, duplicates included."""
        self.topics: Counter[str] = Counter()
        self.connections = 0
        self.subscriptions = 0
        self._task: asyncio.Task[None] | None = None
        self._queue = _recording_queue(self._record)

    def _record(self, message: aiomqtt.Message) -> None:
        # it runs in the client's callback: an exception here would break the connection
        topic = message.topic.value
        self.topics[topic] += 1
        payload = message.payload
        if ("/ratio/" in topic or "/spread/" in topic) and isinstance(payload, bytes | bytearray):
            self.received.append((topic, int(decode(bytes(payload))["seq"])))

    def got(self, topic_suffix: str) -> int:
        return sum(n for topic, n in self.topics.items() if topic.endswith(topic_suffix))

    async def connect_once(self) -> None:
        """Connect, subscribe and disconnect (cleanly): the broker then keeps the session
        and queues for it."""
        async with aiomqtt.Client(
            self.host, self.port, identifier=self.identifier, clean_session=False
        ) as client:
            await client.subscribe(self.topic, qos=1)
            self.subscriptions += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"subscriber-{self.identifier}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(aiomqtt.MqttError):
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=self.identifier,
                    clean_session=False,
                    queue_type=self._queue,
                ) as client:
                    self.connections += 1
                    await client.subscribe(self.topic, qos=1)
                    self.subscriptions += 1
                    async for _ in client.messages:  # never yields: the queue keeps nothing
                        pass
            await asyncio.sleep(0.02)  # the reconnect delay


@dataclass
class KillRun:
    """The outcome of one run of :func:`stream_through_kills` or :func:`kills_after_saves`."""

    expected: set[Key]
    received: list[Key]
    kills_at: list[int] = field(default_factory=list)
    """The bridge's ``acked`` count at each kill."""
    sentinel: bool = False
    """Whether the end marker arrived (False: the run timed out)."""
    bridge: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def missed(self) -> list[Key]:
        return sorted(self.expected - set(self.received))

    @property
    def duplicates(self) -> int:
        return len(self.received) - len(set(self.received))


def kill_points(rng: random.Random, kills: int, events: int) -> list[int]:
    """``kills`` acknowledgement counts at which to kill the broker, spread over the middle
    80% of the stream, at least 2% of it apart."""
    low, high = int(events * 0.1), int(events * 0.9)
    gap = max(1, events // 50)
    while True:
        points = sorted(rng.sample(range(low, high), kills))
        if all(b - a >= gap for a, b in itertools.pairwise(points)):
            return points


def _saves_on_changes(broker: MosquittoBroker) -> bool:
    return "autosave_on_changes true" in (broker.settings or [])


def _db_version(broker: MosquittoBroker) -> tuple[int, int, int] | None:
    """Which database file is on disk now (each save writes a new file and renames it)."""
    try:
        stat = broker.persistence_file.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


async def _until(predicate: Callable[[], bool], deadline: float) -> bool:
    """Poll ``predicate`` every millisecond until it holds (True) or the monotonic
    ``deadline`` passes (False)."""
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.001)
    return True


async def stream_through_kills(
    broker: MosquittoBroker,
    *,
    events: int = 3000,
    kills: int = 5,
    pairs: Sequence[str] = ("AAA/BBB", "CCC/DDD", "EEE/FFF"),
    rate: float = 1000.0,
    seed: int = 1,
    away: bool = False,
    timeout: float = 60.0,
) -> KillRun:
    """Stream ``events`` events (a ratio and a spread per pair per bar) at ``rate`` events a
    second through an :class:`MqttBridge` on a :class:`Bus` into ``broker`` (running), SIGKILL
    the broker ``kills`` times at seeded points of the stream and start it again at once on the
    same port, then deliver the rest and send the sentinel; a persistent subscriber records
    what it gets: connected throughout, or (``away``) subscribed before the stream, then away
    until the bridge has delivered everything (so that all of the stream sits in the broker's
    queue for it through the kills). Gives up (``sentinel`` False) after ``timeout`` s.

    A broker that saves periodically (``autosave_interval`` without ``autosave_on_changes``)
    is given the time to save once after the subscription, before the stream starts: the
    subscriber's session is then on disk, as a long-standing session would be. (The kills
    come closer together than such a period: what a periodic save loses here is everything
    since the last save before the first kill.)"""
    began = time.monotonic()
    deadline = began + timeout
    root = f"k{uuid.uuid4().hex[:10]}"
    bars = max(1, events // (2 * len(pairs)))
    expected = _expected(root, pairs, bars)
    bus = Bus(root=root)
    bridge = MqttBridge(broker.url, root=root, backoff=BACKOFF, seed=seed)
    bus.attach(bridge)
    subscriber = PersistentSubscriber(broker, f"{root}/v1/+/#", f"{root}-sub")
    points = kill_points(random.Random(seed), kills, len(expected))
    run = KillRun(expected, subscriber.received)

    async def stream() -> None:
        per_bar = 2 * len(pairs)
        t0 = time.monotonic()
        for seq in range(1, bars + 1):
            for pair in pairs:
                publish_bar(bus, pair, seq)
            ahead = t0 + seq * per_bar / rate - time.monotonic()
            await asyncio.sleep(max(ahead, 0.0))  # pacing the stream, not waiting on it

    async def killer() -> None:
        killed = 0  # the bridge's connections when the broker was last killed
        for point in points:
            # each kill once the bridge is back on the restarted broker (its online status
            # acknowledged there) and the stream has reached the point
            def due() -> bool:
                return bridge.connections > killed and bridge.acked >= point  # noqa: B023

            if not await _until(due, deadline):
                return
            killed = bridge.connections
            run.kills_at.append(bridge.acked)
            await asyncio.to_thread(broker.kill)
            await asyncio.to_thread(broker.start)

    before = _db_version(broker)
    if away:
        await subscriber.connect_once()
    else:
        subscriber.start()
    try:
        if not await _until(lambda: subscriber.subscriptions >= 1, deadline):
            return run
        if broker.persistence and not _saves_on_changes(broker):
            subscribed = _db_version(broker)
            saved = {before, subscribed}
            if not await _until(lambda: _db_version(broker) not in saved, deadline):
                return run
        async with bridge:
            await asyncio.gather(stream(), killer())
            await bridge.drain(max(0.0, deadline - time.monotonic()))
            if away:  # back once everything is in the broker (subscribed again, in case the
                # broker lost the session: the sentinel must reach it either way)
                subscriber.start()
                await _until(lambda: subscriber.subscriptions >= 2, deadline)
            bus.send(Message(f"{root}/v1/{SENTINEL}", b"end"))
            run.sentinel = await _until(lambda: subscriber.got(SENTINEL) >= 1, deadline)
            run.bridge = bridge.metrics()
    finally:
        await subscriber.stop()
        run.seconds = time.monotonic() - began
    return run


def _expected(root: str, pairs: Sequence[str], bars: int) -> set[Key]:
    return {
        (f"{root}/v1/{kind}/{pair}", seq)
        for pair in pairs
        for kind in ("ratio", "spread")
        for seq in range(1, bars + 1)
    }


async def _saved(broker: MosquittoBroker, deadline: float) -> bool:
    """Wait until the broker has written its database anew (renamed a fresh file into place)
    since now: that save holds every message it had acknowledged by now."""
    now = _db_version(broker)
    return await _until(lambda: _db_version(broker) != now, deadline)


async def kills_after_saves(
    broker: MosquittoBroker,
    *,
    events: int = 1200,
    kills: int = 5,
    pairs: Sequence[str] = ("AAA/BBB", "CCC/DDD", "EEE/FFF"),
    timeout: float = 60.0,
) -> KillRun:
    """The stream of :func:`stream_through_kills` cut in ``kills + 1`` parts, each published
    at once, to a persistent subscriber that is away throughout (everything sits in the
    broker's queue for it). After each of the first ``kills`` parts, once the bridge has
    delivered it (the broker acknowledged every message) and the broker has saved its
    database since, the broker is SIGKILLed and started again; after the last part the
    subscriber comes back. What the broker had saved before each kill must all reach it.
    For a broker that saves periodically (on changes, a save cannot be told from the next)."""
    if not broker.persistence or _saves_on_changes(broker):
        raise ValueError("kills_after_saves needs a broker with periodic saves")
    began = time.monotonic()
    deadline = began + timeout
    root = f"s{uuid.uuid4().hex[:10]}"
    bars = max(kills + 1, events // (2 * len(pairs)))
    bus = Bus(root=root)
    bridge = MqttBridge(broker.url, root=root, backoff=BACKOFF, outbox_capacity=events + 100)
    bus.attach(bridge)
    subscriber = PersistentSubscriber(broker, f"{root}/v1/+/#", f"{root}-sub")
    run = KillRun(_expected(root, pairs, bars), subscriber.received)
    cuts = [bars * (i + 1) // (kills + 1) for i in range(kills)] + [bars]
    await subscriber.connect_once()
    try:
        async with bridge:
            seq = 0
            for cut in cuts:
                while seq < cut:
                    seq += 1
                    for pair in pairs:
                        publish_bar(bus, pair, seq)
                await bridge.drain(max(0.0, deadline - time.monotonic()))
                if cut == bars:
                    break
                if not await _saved(broker, deadline):
                    return run
                run.kills_at.append(bridge.acked)
                await asyncio.to_thread(broker.kill)
                await asyncio.to_thread(broker.start)
            subscriber.start()
            await _until(lambda: subscriber.subscriptions >= 2, deadline)
            bus.send(Message(f"{root}/v1/{SENTINEL}", b"end"))
            run.sentinel = await _until(lambda: subscriber.got(SENTINEL) >= 1, deadline)
            run.bridge = bridge.metrics()
    finally:
        await subscriber.stop()
        run.seconds = time.monotonic() - began
    return run


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time (s) of a process so far; 0 when unknown (not Linux)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Throughput:
    """One burst of QoS 1 events through the broker to a persistent subscriber."""

    events: int
    seconds: float
    """From the first publish until the subscriber has every event."""
    broker_cpu: float
    """The broker's CPU time over those seconds (s)."""
    complete: bool

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_1000(self) -> float:
        """Broker CPU milliseconds per 1,000 events."""
        return 1e6 * self.broker_cpu / self.events if self.events else 0.0


async def burst_throughput(
    broker: MosquittoBroker,
    *,
    events: int = 5000,
    offline: bool = False,
    pairs: Sequence[str] = ("AAA/BBB", "CCC/DDD", "EEE/FFF"),
    timeout: float = 120.0,
) -> Throughput:
    """Publish ``events`` events in one burst through an :class:`MqttBridge` into ``broker``
    and time them until a persistent QoS 1 subscriber has them all: a subscriber connected
    throughout, or (``offline``) one that is away while the burst is queued for it and
    connects once the broker has acknowledged all of it (the time and CPU then cover both
    the queueing and the delivery)."""
    deadline = time.monotonic() + timeout
    root = f"b{uuid.uuid4().hex[:10]}"
    bus = Bus(root=root)
    bridge = MqttBridge(broker.url, root=root, backoff=BACKOFF, outbox_capacity=events + 100)
    bus.attach(bridge)
    subscriber = PersistentSubscriber(broker, f"{root}/v1/+/#", f"{root}-sub")
    bars = max(1, events // (2 * len(pairs)))
    total = 2 * len(pairs) * bars
    if offline:
        await subscriber.connect_once()
    else:
        subscriber.start()
        await _until(lambda: subscriber.subscriptions >= 1, deadline)
    try:
        async with bridge:
            await _until(lambda: bridge.connected, deadline)
            cpu0, t0 = cpu_seconds(broker.pid), time.monotonic()
            for seq in range(1, bars + 1):
                for pair in pairs:
                    publish_bar(bus, pair, seq)
            if offline:
                await bridge.drain(max(0.0, deadline - time.monotonic()))
                subscriber.start()
            complete = await _until(lambda: len(set(subscriber.received)) >= total, deadline)
            seconds = time.monotonic() - t0
            cpu = cpu_seconds(broker.pid) - cpu0
    finally:
        await subscriber.stop()
    return Throughput(total, seconds, cpu, complete)
