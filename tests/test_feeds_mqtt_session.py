"""An MQTT tick feed with a persistent session that acknowledges messages only once their
ticks are durable (what the daemon's journal does): across a broker restart the broker sends
the unacknowledged messages again, and the feed hands none of their ticks on twice; once
acknowledged, nothing comes again."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import orjson
import pytest

from feeds.mqtt import MqttTickFeed
from feeds.reconnect import Backoff
from hedger.core.ticks import Tick
from hedger.errors import TransportError
from tests.mosquitto import MosquittoBroker
from tests.waiting import eventually

FAST = Backoff(initial=0.05, maximum=0.2)


async def publish(broker: MosquittoBroker, topic: str, first: int, n: int) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        for i in range(first, first + n):
            tick = {"ts": 1_700_000_000_000_000_000 + i, "symbol": "AAA", "price": 100.0 + i}
            await client.publish(topic, orjson.dumps(tick), qos=1)


async def acknowledged(feed: MqttTickFeed, topic: str) -> None:
    """Until the broker has the acknowledgements just sent: it answers a request on the same
    connection only after the packets before it."""
    client = feed._client  # the feed's connection (a test reaching in: no API needs this)
    assert client is not None
    await client.subscribe(f"{topic}/sync", qos=1)


async def take(feed: MqttTickFeed, n: int, into: list[Tick]) -> None:
    async with asyncio.timeout(15.0):
        async for tick in feed:
            into.append(tick)
            if len(into) >= n:
                return


async def test_unacknowledged_ticks_are_not_handed_on_twice_after_a_broker_restart() -> None:
    broker = MosquittoBroker(persistence=True)
    broker.start()
    topic = f"ticks/{uuid.uuid4().hex}"
    feed = MqttTickFeed(
        broker.url, [topic], client_id=f"feed-{uuid.uuid4().hex[:8]}", persistent=True,
        ack_when_durable=True, backoff=FAST,
    )  # fmt: skip
    assert feed.acknowledges
    got: list[Tick] = []
    try:
        async with feed:
            await eventually(lambda: feed.connections == 1, timeout=10.0)
            await publish(broker, topic, 0, 30)
            await take(feed, 30, got)
            feed.durable(10)  # the first ten are journalled: acknowledged
            await acknowledged(feed, topic)
            await asyncio.to_thread(broker.stop)  # a clean stop saves the sessions
            await asyncio.to_thread(broker.start)
            await eventually(lambda: feed.connections == 2, timeout=10.0)
            # the broker sends the twenty it has no acknowledgement for again
            await eventually(lambda: feed.redelivered == 20, timeout=10.0)
            await publish(broker, topic, 30, 5)
            await take(feed, 35, got)
            feed.durable(25)
            await acknowledged(feed, topic)
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)
            await eventually(lambda: feed.connections == 3, timeout=10.0)
            await publish(broker, topic, 35, 1)
            await take(feed, 36, got)
            assert feed.redelivered == 20  # all acknowledged: nothing came again
    finally:
        broker.stop()
    assert [t.price for t in got] == [100.0 + i for i in range(36)]


def test_a_persistent_session_needs_a_client_id() -> None:
    with pytest.raises(TransportError, match="needs a client_id"):
        MqttTickFeed("mqtt://127.0.0.1:1", ["t"], persistent=True)
