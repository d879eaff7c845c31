"""The message bus: one synchronous publish for the actors, a bounded in-order outbox per
bridge, so that a slow or absent consumer can never block the pipeline.

The actors call :meth:`Bus.publish` on the core's event loop thread; local subscribers are
called at once, in order; every bridge (MQTT, WebSocket) gets the message appended to its own
:class:`Outbox` and drains it in its own task. An outbox that is full drops its *oldest*
message (the newest ratio is worth more than a stale one) and counts the drop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from hedger.core.bar_events import BarOutput
from hedger.core.events import AlarmEvent, Event, MatrixEvent, encode, encode_matrix
from hedger.core.failures import Failures
from hedger.core.topics import (
    bar_topic,
    matrix_topic,
    metrics_topic,
    pair_id_topic,
    status_topic,
)


@dataclass(frozen=True, slots=True)
class Message:
    """One message on the bus: its topic, its encoded payload, whether a broker should retain
    it, the event it came from (None for status and metrics messages, and for the ratios and
    spreads of a bar encoded in bulk), its pair and seq, and its kind (``ratio``, ``spread``,
    ``alarm``, ``bar``; empty for the rest)."""

    topic: str
    payload: bytes
    retain: bool = False
    event: Event | None = None
    pair: str = ""
    seq: int = 0
    kind: str = ""


class Outbox:
    """A bounded FIFO of messages between the bus and one bridge.

    ``put`` never blocks: past ``capacity`` the oldest message is dropped and counted.
    The bridge takes messages with :meth:`peek_batch` and removes them with :meth:`ack` only
    once delivered, so messages in flight when a connection drops are sent again, in order
    (at least once: subscribers drop repeats by ``seq``).
    """

    def __init__(self, capacity: int, name: str = "") -> None:
        if capacity < 1:
            raise ValueError("an outbox needs a capacity of at least 1")
        self.capacity = capacity
        self.name = name
        self.dropped = 0
        self.delivered = 0
        self._items: deque[Message] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: Message) -> None:
        """Append a message; drop the oldest when full."""
        if len(self._items) >= self.capacity:
            self._items.popleft()
            self.dropped += 1
        self._items.append(message)
        self._ready.set()

    async def wait(self) -> None:
        """Wait until at least one message is waiting."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()

    def peek_batch(self, limit: int) -> list[Message]:
        """Up to ``limit`` messages from the front, left in the outbox."""
        items = self._items
        return [items[i] for i in range(min(limit, len(items)))]

    def ack(self, batch: list[Message]) -> None:
        """Remove a delivered batch (from :meth:`peek_batch`) from the front. Those of its
        messages that overflow already dropped while they were in flight are not removed
        twice, and nothing newer is removed."""
        sent = {id(message) for message in batch}
        items = self._items
        while items and id(items[0]) in sent:
            items.popleft()
        self.delivered += len(batch)


class Bridge(Protocol):
    """A transport that carries bus messages somewhere (a broker, sockets)."""

    name: str
    outbox: Outbox

    async def run(self) -> None:
        """Deliver messages until cancelled (reconnecting as needed)."""
        ...

    async def drain(self, timeout: float) -> bool:
        """Deliver what is waiting, within ``timeout`` seconds; True if all was delivered."""
        ...

    def metrics(self) -> dict[str, float]:
        """The bridge's counters."""
        ...


LocalSubscriber = Callable[[Message], None]


_TOPIC_KIND = {"hedge_ratio": "ratio", "spread": "spread", "alarm": "alarm"}
"""The per-pair topic kind of each event type."""


@dataclass
class Bus:
    """Routes events to local subscribers and to bridges' outboxes.

    ``root``: the topic root (``hedger``); topics come from :mod:`hedger.core.topics`.
    ``per_pair``: a bar's ratios and spreads go on their per-pair topics (alarms always do);
    ``bar_message``: each bar also goes out whole as one batch message (:meth:`publish_bar`).
    ``failures``: counts and logs a local subscriber's exception (by the message's pair, or
    its topic), which is contained: the other subscribers and the bridges still get the
    message, and the publisher never sees it.
    """

    root: str = "hedger"
    bridges: list[Bridge] = field(default_factory=list)
    subscribers: list[LocalSubscriber] = field(default_factory=list)
    published: int = 0
    failures: Failures = field(default_factory=Failures)
    per_pair: bool = True
    bar_message: bool = True
    bars_published: int = 0
    """Batch messages sent (the ``seq`` of the last one)."""
    _topics: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    def _topic(self, kind: str, pair: str) -> str:
        key = (kind, pair)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = pair_id_topic(self.root, kind, pair)
        return topic

    def attach(self, bridge: Bridge) -> None:
        """Add a bridge; it receives every message published from now on."""
        self.bridges.append(bridge)

    def subscribe(self, callback: LocalSubscriber) -> None:
        """Call ``callback`` synchronously with every message (keep it quick)."""
        self.subscribers.append(callback)

    def publish(self, event: Event) -> None:
        """Publish one event: ratio events retained on the ratio topic, spreads not, alarms
        retained while the pair has an active alarm (the event that clears the last one is
        sent, then the retained alarm is cleared)."""
        kind = _TOPIC_KIND[event.type]
        topic = self._topic(kind, event.pair)
        active = event.active if isinstance(event, AlarmEvent) else None
        retain = kind == "ratio" or bool(active)
        self.send(Message(topic, encode(event), retain, event, event.pair, event.seq, kind))
        if active == ():  # the event that ended the pair's last alarm
            self.clear_retained("alarm", event.pair)

    def publish_bar(self, output: BarOutput) -> None:
        """Publish one bar's output: with ``per_pair`` every pair's ratio (retained) and
        spread on its own topics, as :meth:`publish` would, encoded in bulk; the alarms on
        theirs in any case; then, with ``bar_message``, the whole bar as one message."""
        if self.per_pair:
            send, topic = self.send, self._topic
            for kind, pair, seq, payload, event in output.entries():
                if event is not None:
                    self.publish(event)
                else:
                    retain = kind == "ratio"
                    send(Message(topic(kind, pair), payload, retain, None, pair, seq, kind))
        else:
            for alarm in output.alarms():
                self.publish(alarm)
        if self.bar_message and output.n_pairs:
            self.bars_published += 1
            payload = output.message(self.bars_published)
            where = bar_topic(self.root)
            self.send(Message(where, payload, False, seq=self.bars_published, kind="bar"))

    def publish_status(self, status: str) -> None:
        """The retained daemon status (``online``; the MQTT will says ``offline``)."""
        self.send(Message(status_topic(self.root), status.encode(), True))

    def publish_matrix(self, event: MatrixEvent) -> None:
        """One bar's hedge-ratio matrix, retained, on the matrix topic."""
        self.send(Message(matrix_topic(self.root), encode_matrix(event), True, seq=event.seq))

    def clear_retained(self, kind: str, pair: str) -> None:
        """Clear the retained message of a per-pair topic (``kind`` as in
        :data:`~hedger.core.topics.PAIR_KINDS`, ``pair`` a pair id): an empty retained payload,
        which a broker takes as "delete the retained message" and the WebSocket bridge as
        "forget the pair's latest frame of that kind"."""
        self.send(Message(pair_id_topic(self.root, kind, pair), b"", True, pair=pair, kind=kind))

    def publish_metrics(self, payload: dict[str, Any]) -> None:
        """A metrics snapshot on the metrics topic."""
        self.send(Message(metrics_topic(self.root), orjson.dumps(payload), False))

    def send(self, message: Message) -> None:
        """Deliver a ready message to everyone."""
        self.published += 1
        for callback in self.subscribers:
            try:
                callback(message)
            except Exception as exc:
                self.failures.record(
                    "subscriber", message.pair or message.topic, exc, topic=message.topic
                )
        for bridge in self.bridges:
            bridge.outbox.put(message)
