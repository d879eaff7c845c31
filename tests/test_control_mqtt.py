"""Control over MQTT (a real mosquitto): with ``[control]`` the daemon takes requests on
``<root>/v1/control`` and replies on ``<root>/v1/control/reply``; a removed pair's retained
ratio is gone for a late subscriber; bad requests (a wrong or missing token, malformed JSON, an
unknown action or pair, bad parameters, a pair already running, a retained request) change
nothing; without ``[control]`` the topic is not subscribed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiomqtt
import orjson
import pytest

from hedger.core.topics import control_reply_topic, control_topic
from hedger.runtime.bridges.mqtt import MqttBridge
from tests.test_clock import Running, daemon_text
from tests.test_control_ws import feed_bars, prices, ratios_of, state
from tests.waiting import eventually

if TYPE_CHECKING:
    from tests.mosquitto import MosquittoBroker

TOKEN = "mqtt-control-s3cret"
_ids = itertools.count(1)


def config(broker: MosquittoBroker, root: str, control: str) -> str:
    return (
        daemon_text("YYY/XXX", "ZZZ/XXX")
        + f'[bus]\nroot = "{root}"\n[bus.mqtt]\nurl = "{broker.url}"\nqos = 1\n'
        + control
    )


def bridge_of(run: Running) -> MqttBridge:
    return next(b for b in run.node.bridges if isinstance(b, MqttBridge))


def address(broker: MosquittoBroker) -> tuple[str, int]:
    host, port = broker.url.removeprefix("mqtt://").split(":")
    return host, int(port)


@pytest.fixture
async def running(mosquitto: MosquittoBroker) -> AsyncIterator[Running]:
    root = "ctl"  # each test has a broker of its own
    run = Running(config(mosquitto, root, f'[control]\ntoken = "{TOKEN}"\n'))
    run.root = root  # type: ignore[attr-defined]
    await run.start()
    await eventually(lambda: bridge_of(run).connected, what="bridge connected")
    yield run
    await run.shutdown()


class Asker:
    """An MQTT client that sends control requests and reads their replies."""

    def __init__(self, client: aiomqtt.Client, root: str) -> None:
        self.client = client
        self.root = root

    async def ask(
        self, body: dict[str, Any] | bytes, *, token: str | None = TOKEN
    ) -> dict[str, Any]:
        if isinstance(body, dict):
            body = {"id": next(_ids), **body}
            if token is not None:
                body["token"] = token
            want = body["id"]
            payload = orjson.dumps(body)
        else:
            want, payload = None, body
        await self.client.publish(control_topic(self.root), payload, qos=1)
        async with asyncio.timeout(10):
            async for message in self.client.messages:
                reply = orjson.loads(bytes(message.payload))
                if reply.get("id") == want:
                    return dict(reply)
        raise AssertionError("no reply")


async def asker(broker: MosquittoBroker, root: str) -> AsyncIterator[Asker]:
    host, port = address(broker)
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(control_reply_topic(root), qos=1)
        yield Asker(client, root)


async def test_pairs_are_added_and_removed_over_mqtt_and_a_late_subscriber_sees_no_ratio(
    running: Running, mosquitto: MosquittoBroker
) -> None:
    root: str = running.root  # type: ignore[attr-defined]
    table = prices(30)
    await feed_bars(running, table[:15], 0)
    async for client in asker(mosquitto, root):
        added = await client.ask({"action": "add_pair", "pair": "ZZZ/YYY", "mode": "returns"})
        assert added["ok"] and added["warm_bars"] == 15
        removed = await client.ask({"action": "remove_pair", "pair": "ZZZ/XXX"})
        assert removed["ok"] and removed["seq"] == 15
        listed = await client.ask({"action": "list_pairs"})
        assert [p["pair"] for p in listed["pairs"]] == ["YYY/XXX", "ZZZ/YYY"]
    await feed_bars(running, table[15:], 15)
    ratios = ratios_of(running)
    assert [e["seq"] for e in ratios if e["pair"] == "ZZZ/YYY"] == list(range(1, 16))
    assert max(e["seq"] for e in ratios if e["pair"] == "ZZZ/XXX") == 15
    bridge = bridge_of(running)
    await eventually(lambda: not bridge.outbox, what="everything delivered")

    host, port = address(mosquitto)
    seen: dict[str, bytes] = {}
    async with aiomqtt.Client(host, port) as late, asyncio.timeout(10):
        # retained messages come in the order of the filters: the removed pair's first
        await late.subscribe(
            [(f"{root}/v1/ratio/ZZZ/XXX", 1), (f"{root}/v1/alarm/ZZZ/XXX", 1),
             (f"{root}/v1/ratio/ZZZ/YYY", 1)]
        )  # fmt: skip
        async for message in late.messages:
            seen[str(message.topic)] = bytes(message.payload)
            if str(message.topic).endswith("ZZZ/YYY"):
                break
    assert list(seen) == [f"{root}/v1/ratio/ZZZ/YYY"]
    assert orjson.loads(seen[f"{root}/v1/ratio/ZZZ/YYY"])["seq"] == 15


@pytest.mark.parametrize(
    ("body", "token", "words"),
    [
        ({"action": "list_pairs"}, "wrong", "unauthorized"),
        ({"action": "add_pair", "pair": "AAA/XXX"}, None, "unauthorized"),
        (b'{"action": "add_pair"', None, "not valid JSON"),
        ({"action": "explode"}, TOKEN, "unknown action 'explode'"),
        ({"action": "remove_pair", "pair": "AAA/XXX"}, TOKEN, "pairs.AAA/XXX: is not running"),
        ({"action": "add_pair", "pair": "AAA/XXX", "obs_cov": -1}, TOKEN, "pairs.AAA/XXX.obs_cov"),
        ({"action": "add_pair", "pair": "YYY/XXX"}, TOKEN, "is already running"),
    ],
)
async def test_bad_mqtt_control_requests_get_an_error_reply_and_change_nothing(
    running: Running,
    mosquitto: MosquittoBroker,
    body: dict[str, Any] | bytes,
    token: str | None,
    words: str,
) -> None:
    await feed_bars(running, prices(3), 0)
    before = state(running)
    async for client in asker(mosquitto, running.root):  # type: ignore[attr-defined]
        reply = await client.ask(body, token=token)
    assert reply["ok"] is False and words in reply["error"]
    assert TOKEN not in orjson.dumps(reply).decode()
    await running.settled()
    assert state(running) == before
    assert running.node.metrics()["control_refused"] == 1
    logged = orjson.dumps([fields for _, _, fields in running.log.records], default=str)
    assert TOKEN.encode() not in logged


async def test_a_retained_request_is_not_applied_again_at_a_connect(
    mosquitto: MosquittoBroker,
) -> None:
    host, port = address(mosquitto)
    async with aiomqtt.Client(host, port) as client:
        body = {"action": "add_pair", "pair": "ZZZ/YYY", "token": TOKEN}
        await client.publish(control_topic("ctl"), orjson.dumps(body), qos=1, retain=True)
    run = Running(config(mosquitto, "ctl", f'[control]\ntoken = "{TOKEN}"\n'))
    await run.start()
    try:
        bridge = bridge_of(run)
        await eventually(lambda: bridge.rejects.counts["control_retained"] == 1, what="ignored")
        assert [a.pair_id for a in run.node.pipeline.actors] == ["YYY/XXX", "ZZZ/XXX"]
        assert run.node.metrics()["control_requests"] == 0
    finally:
        await run.shutdown()


async def test_without_control_the_topic_is_not_subscribed(mosquitto: MosquittoBroker) -> None:
    run = Running(config(mosquitto, "noctl", ""))
    await run.start()
    try:
        bridge = bridge_of(run)
        await eventually(lambda: bridge.connected, what="bridge connected")
        assert bridge.control is None
        assert not run.node.config.control.mqtt
    finally:
        await run.shutdown()
