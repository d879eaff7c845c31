"""The batch message of every bar, end to end: through a real mosquitto (per-pair topics on and
off, nothing lost at QoS 1), to a real WebSocket client that subscribes to it, and into
``hedger subscribe`` when the per-pair topics are off."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import orjson
from websockets.asyncio.client import connect

from hedger.cli.subscribe import run_subscribe
from hedger.core.bar_events import ratios_of_bar
from hedger.core.bus import Bus
from hedger.core.events import Event, encode
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.runtime.bridges.mqtt import MqttBridge
from hedger.runtime.bridges.ws import WebSocketBridge
from tests.mosquitto import MosquittoBroker
from tests.test_bank_path import SECOND, as_a_bar_gives_it, mixed_specs, run, ticks_of
from tests.test_bridge_mqtt import FAST, Subscriber, new_root, send_sentinel
from tests.waiting import eventually

WAIT = 10.0


def reference_ratios(bars: int, seed: int) -> list[dict[str, Any]]:
    """The ratio events of the reference path (an actor per pair), decoded, as a batch
    message gives them back: the position's fields left out where all three are null (a
    notional position before Y's first price), as for a pair without a position."""
    events, _ = run(mixed_specs(), ticks_of(seed, bars), bank=False)
    return [as_a_bar_gives_it(orjson.loads(encode(e))) for e in events if e.type == "hedge_ratio"]


def drive(bus: Bus, bars: int, seed: int) -> list[Event]:
    """The mixed pairs over ``bars`` bars, the bank's output published on ``bus``."""
    events: list[Event] = []
    pipeline = Pipeline(
        mixed_specs(), SECOND, 2 * SECOND, events.append, Rejects(), emit_bar=bus.publish_bar
    )
    for tick in ticks_of(seed, bars):
        pipeline.on_tick(tick)
    pipeline.flush()
    return events


def by_pair(ratios: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["pair"], r["seq"]): r for r in ratios}


async def test_the_bar_message_through_mosquitto_with_and_without_per_pair_topics(
    mosquitto: MosquittoBroker,
) -> None:
    expected = reference_ratios(300, 4)
    for per_pair in (True, False):
        root = new_root()
        bus = Bus(root=root, per_pair=per_pair)
        bridge = MqttBridge(mosquitto.url, root=root, qos=1, backoff=FAST)
        bus.attach(bridge)
        async with bridge, Subscriber(mosquitto, f"{root}/v1/#", qos=1) as sub:
            drive(bus, 300, 4)
            assert await bridge.drain(WAIT)
            await send_sentinel(bus, sub, root)
        bars = [orjson.loads(p) for p in sub.payloads(f"{root}/v1/bar")]
        assert [b["seq"] for b in bars] == list(range(1, bus.bars_published + 1))
        assert len(bars) > 250
        expanded = [ratio for bar in bars for ratio in ratios_of_bar(bar)]
        # every pair's every ratio, equal to the reference path's events
        assert by_pair(expanded) == by_pair(expected)
        ratio_topics = [t for t, _, _ in sub.messages if "/v1/ratio/" in t]
        if per_pair:
            assert len(ratio_topics) == len(expected)
        else:
            assert ratio_topics == []
            assert not any("/v1/spread/" in t for t, _, _ in sub.messages)


async def test_a_websocket_client_subscribes_to_the_bar_message() -> None:
    bus = Bus()
    bridge = WebSocketBridge(port=0, close_timeout=0.5)
    bus.attach(bridge)
    await bridge.start()
    task = asyncio.create_task(bridge.run())
    try:
        async with connect(bridge.url) as client, connect(bridge.url) as pairs_only:
            await client.send('{"action":"subscribe","bar":true}')
            assert orjson.loads(await client.recv()) == {
                "type": "subscribed",
                "pairs": [],
                "bar": True,
            }
            await pairs_only.send('{"action":"subscribe","pairs":["A/B"]}')
            assert orjson.loads(await pairs_only.recv())["type"] == "subscribed"
            drive(bus, 40, 8)
            frames: list[dict[str, Any]] = []
            async with asyncio.timeout(WAIT):
                while len(frames) < bus.bars_published:
                    frames.append(orjson.loads(await client.recv()))
            assert [f["type"] for f in frames] == ["bar"] * len(frames)
            assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
            expected = by_pair(reference_ratios(40, 8))
            assert by_pair([r for f in frames for r in ratios_of_bar(f)]) == expected
            # a client of pairs gets their events, not the bar messages
            async with asyncio.timeout(WAIT):
                first = orjson.loads(await pairs_only.recv())
            assert (first["type"], first["pair"]) == ("hedge_ratio", "A/B")
            await client.send('{"action":"unsubscribe","bar":true}')
            assert orjson.loads(await client.recv()) == {"type": "subscribed", "pairs": []}
            await client.send('{"action":"subscribe","bar":"yes"}')
            assert orjson.loads(await client.recv())["type"] == "error"
    finally:
        task.cancel()
        await asyncio.wait([task])
        await bridge.close()


async def test_subscribe_reads_the_ratios_out_of_bar_messages(mosquitto: MosquittoBroker) -> None:
    root = new_root()
    bus = Bus(root=root, per_pair=False)
    bridge = MqttBridge(mosquitto.url, root=root, qos=1, backoff=FAST)
    bus.attach(bridge)
    out, err = io.StringIO(), io.StringIO()
    expected = reference_ratios(60, 6)
    async with bridge:
        # a retained status first: once subscribe prints it, its one SUBSCRIBE (every topic,
        # the bar's included) has been granted
        bus.publish_status("online")
        assert await bridge.drain(WAIT)
        sub = asyncio.create_task(
            run_subscribe(
                mosquitto.url, root, ["A/B", "E/A"], as_json=True, out=out, err=err,
                max_messages=sum(r["pair"] in ("A/B", "E/A") for r in expected), live=False,
            )
        )  # fmt: skip
        await eventually(lambda: '"status":"online"' in out.getvalue(), what="subscribed")
        drive(bus, 60, 6)
        assert await bridge.drain(WAIT)
        assert await asyncio.wait_for(sub, WAIT) == 0
    printed = [orjson.loads(line) for line in out.getvalue().splitlines()[1:]]
    wanted = [r for r in expected if r["pair"] in ("A/B", "E/A")]
    assert by_pair(printed) == by_pair(wanted)
    assert "gap" not in err.getvalue()
