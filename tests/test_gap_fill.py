"""Gap fill against real parts: a Bus whose events an EventJournal (in tmp_path) records as a
local subscriber; a WebSocketBridge on 127.0.0.1:0 answering ``replay`` actions; an
MqttBridge to a real mosquitto answering ``<root>/v1/replay``; and ``hedger subscribe``
(``run_subscribe``) filling the holes of its own stream from them, including across five
kills of a broker without persistence."""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from feeds.broker import ClientOptions
from feeds.reconnect import Backoff
from hedger.cli.subscribe import add_arguments, fill_notes, missed_events, run_subscribe
from hedger.core.bus import Bus, Message
from hedger.core.events import AlarmEvent, HedgeRatioEvent, SpreadEvent
from hedger.core.topics import replay_reply_topic, replay_topic
from hedger.errors import TransportError
from hedger.runtime.bridges.gapfill import MAX_SEQS, ReplayRefusedError
from hedger.runtime.bridges.mqtt import MqttBridge, ReplayClient, replay_request
from hedger.runtime.bridges.ws import WebSocketBridge
from hedger.runtime.state.events import EventJournal
from tests.conftest import run_hedger
from tests.mosquitto import MosquittoBroker
from tests.waiting import eventually

TS0 = 1_700_000_000_000_000_000
WAIT = 5.0
FAST = Backoff(initial=0.05, maximum=0.2)
_ids = itertools.count(1)


def publish_bar(bus: Bus, pair: str, seq: int, alarm: str | None = None) -> None:
    """One bar of ``pair``: its ratio and spread (sharing the seq), and an ``up`` alarm
    ``raised`` or ``cleared`` on it when asked."""
    ts = TS0 + seq * 1_000_000_000
    beta = 1.0 + seq * 1e-3
    bus.publish(
        HedgeRatioEvent(
            pair, seq, ts, (beta,), 0.5, ((1e-4, 0.0), (0.0, 1e-4)), (0.01,), True, False
        )
    )
    bus.publish(SpreadEvent(pair, seq, ts, 0.1 * seq, 0.2, 1.0, 0.2))
    if alarm is not None:
        active = ("up",) if alarm == "raised" else ()
        bus.publish(AlarmEvent(pair, seq, ts, "up", alarm, 13.0, 12.0, ts, seq, active))


def basket_bar(bus: Bus, pair: str, seq: int, legs: int = 30) -> None:
    """A wide basket's ratio (about 20 KB of JSON), to fill journal segments quickly."""
    n = legs + 1
    cov = tuple(tuple(1e-4 + (i * n + j) * 1e-9 for j in range(n)) for i in range(n))
    ts = TS0 + seq * 1_000_000_000
    betas = tuple(0.1 + i * 1e-3 for i in range(legs))
    bus.publish(HedgeRatioEvent(pair, seq, ts, betas, 0.1, cov, (0.01,) * legs, True, False))


class Published:
    """Every message the bus sent, as a local subscriber sees it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def payloads(self, pair: str, low: int, high: int) -> list[bytes]:
        """The pair's journalled events with ``low <= seq <= high``, in bus order."""
        return [
            m.payload
            for m in self.messages
            if m.pair == pair and m.kind in ("ratio", "spread", "alarm") and m.payload
            if low <= m.seq <= high
        ]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[EventJournal]:
    events = EventJournal(tmp_path / "events", 50_000_000)
    yield events
    events.close()


def journalled_bus(journal: EventJournal, root: str = "hedger") -> tuple[Bus, Published]:
    bus = Bus(root=root)
    published = Published()
    bus.subscribe(journal.record)
    bus.subscribe(published)
    return bus, published


# ---------------------------------------------------------------------------------------------
# WebSocket


Running = list[tuple[WebSocketBridge, "asyncio.Task[None]"]]


@pytest.fixture
async def ws_bridges() -> AsyncIterator[Running]:
    """The bridges a test starts (:func:`started`) with their run tasks, closed afterwards."""
    running: Running = []
    yield running
    for bridge, task in running:
        task.cancel()
        await asyncio.wait([task])
        async with asyncio.timeout(WAIT):
            await bridge.close()


async def started(
    running: Running, bus: Bus, journal: EventJournal | None, **kw: Any
) -> WebSocketBridge:
    """A WebSocket bridge on a free port, attached to ``bus``, served from ``journal`` as the
    daemon wires it with ``[state]`` (None: no journal)."""
    bridge = WebSocketBridge(port=0, close_timeout=0.5, **kw)
    if journal is not None:
        bridge.core.replay = journal.lookup
        bridge.core.replay_oldest = journal.oldest_seq
    bus.attach(bridge)
    await bridge.start()
    running.append((bridge, asyncio.create_task(bridge.run())))
    return bridge


def replay_action(pair: Any, low: Any, high: Any, **extra: Any) -> str:
    body = {"action": "replay", "pair": pair, "from_seq": low, "to_seq": high, **extra}
    return orjson.dumps(body).decode()


async def ask(ws: ClientConnection, request: str) -> tuple[list[bytes], dict[str, Any]]:
    """Send a request; the frames up to its summary (or error), and that last frame."""
    await ws.send(request)
    frames: list[bytes] = []
    async with asyncio.timeout(WAIT):
        while True:
            data = await ws.recv()
            assert isinstance(data, str)  # text frames, as every event
            frame = orjson.loads(data)
            if frame["type"] in ("replayed", "error"):
                return frames, frame
            frames.append(data.encode())


async def test_a_websocket_replay_sends_the_journalled_events_byte_for_byte(
    journal: EventJournal, ws_bridges: Running
) -> None:
    bus, published = journalled_bus(journal)
    bridge = await started(ws_bridges, bus, journal)
    for seq in range(1, 21):
        alarm = {7: "raised", 12: "cleared"}.get(seq)
        for pair in ("A/B", "C/D", "XLE/USO+UNG"):
            publish_bar(bus, pair, seq, alarm if pair == "A/B" else None)
    async with connect(bridge.url) as ws:  # not subscribed: only the answers come
        events, summary = await ask(ws, replay_action("A/B", 5, 12, id="r1"))
        assert events == published.payloads("A/B", 5, 12)  # identical bytes, bus order
        assert [orjson.loads(e)["type"] for e in events][4:9] == [
            "hedge_ratio", "spread", "alarm", "hedge_ratio", "spread",
        ]  # fmt: skip
        assert summary == {
            "type": "replayed", "id": "r1", "pair": "A/B", "from_seq": 5, "to_seq": 12,
            "events": 18, "oldest_seq": 1, "next_seq": None,
        }  # fmt: skip
        # a basket, its id as a person types it; a range past the newest seq
        events, summary = await ask(ws, replay_action(" XLE/USO+UNG", 19, 40))
        assert events == published.payloads("XLE/USO+UNG", 19, 20)
        assert (summary["pair"], summary["events"], summary["id"]) == ("XLE/USO+UNG", 4, None)
        # a pair the journal holds nothing of
        events, summary = await ask(ws, replay_action("E/F", 1, 5, id=3))
        assert (events, summary["events"], summary["oldest_seq"]) == ([], 0, None)
    assert bridge.metrics()["replays"] == 3


async def test_a_websocket_replay_is_cut_to_the_clients_queue_and_goes_on_from_next_seq(
    journal: EventJournal, ws_bridges: Running
) -> None:
    bus, published = journalled_bus(journal)
    bridge = await started(ws_bridges, bus, journal, client_queue=10)
    for seq in range(1, 31):
        publish_bar(bus, "A/B", seq)
    got: list[bytes] = []
    low = 1
    async with connect(bridge.url) as ws:
        for _ in range(30):
            events, summary = await ask(ws, replay_action("A/B", low, 30))
            # at most the queue's room, never a seq's two events apart
            assert 0 < len(events) <= 9 and len(events) % 2 == 0
            got += events
            if summary["next_seq"] is None:
                break
            assert summary["next_seq"] == orjson.loads(events[-1])["seq"] + 1
            low = summary["next_seq"]
    assert got == published.payloads("A/B", 1, 30)


async def test_bad_replay_requests_get_an_error_frame_are_counted_and_change_nothing(
    journal: EventJournal, ws_bridges: Running
) -> None:
    bus, published = journalled_bus(journal)
    bridge = await started(ws_bridges, bus, journal, token="s3cret")
    for seq in range(1, 6):
        publish_bar(bus, "A/B", seq)
    bad = {
        '{"action": "replay"}': "bad_pair",
        replay_action(7, 1, 2): "bad_pair",
        replay_action("NOSLASH", 1, 2): "bad_pair",
        replay_action("A/A", 1, 2): "bad_pair",
        replay_action("A/B", "1", 2): "bad_range",
        replay_action("A/B", 0, 2): "bad_range",
        replay_action("A/B", True, 2): "bad_range",
        replay_action("A/B", 1.5, 2): "bad_range",
        replay_action("A/B", 5, 2): "bad_range",
        replay_action("A/B", 1, MAX_SEQS + 1): "bad_range",
        replay_action("A/B", 1, 2, id=[1]): "bad_id",
    }
    # a replay needs what a subscribe needs: the connection's token, not control rights
    headers = {"Authorization": "Bearer s3cret"}
    async with connect(bridge.url, additional_headers=headers) as ws:
        for request, reason in bad.items():
            events, error = await ask(ws, request)
            assert events == []
            assert (error["type"], error["action"], error["reason"]) == ("error", "replay", reason)
            assert isinstance(error["error"], str) and "\n" not in error["error"]
        # the server is up, the connection too, and a good request is answered
        events, summary = await ask(ws, replay_action("A/B", 1, 5, id=9))
        assert events == published.payloads("A/B", 1, 5) and summary["id"] == 9
    assert bridge.metrics()["client_errors"] == len(bad)
    assert sum(bridge.client_errors.summary().values()) == len(bad)


async def test_without_a_journal_a_websocket_replay_is_refused(
    journal: EventJournal, ws_bridges: Running
) -> None:
    bus, _ = journalled_bus(journal)
    bridge = await started(ws_bridges, bus, None)
    publish_bar(bus, "A/B", 1)
    async with connect(bridge.url) as ws:
        events, error = await ask(ws, replay_action("A/B", 1, 1, id=4))
    assert events == []
    assert error == {
        "type": "error", "action": "replay", "id": 4, "pair": "A/B", "reason": "no_journal",
        "error": "this daemon keeps no event journal ([state] not configured)",
    }  # fmt: skip
    assert bridge.client_errors.summary() == {"no_journal": 1}


async def test_a_websocket_client_that_was_unsubscribed_fills_its_gap_and_has_every_seq(
    journal: EventJournal, ws_bridges: Running
) -> None:
    """The protocol as a WebSocket client uses it: subscribed, away (unsubscribed) while
    bars go by, back with the retained ratio, which reveals the gap; the replay fills it."""
    bus, _ = journalled_bus(journal)
    bridge = await started(ws_bridges, bus, journal)
    seen: list[int] = []

    async def take_until(ws: ClientConnection, seq: int) -> None:
        async with asyncio.timeout(WAIT):
            while not seen or seen[-1] < seq:
                frame = orjson.loads(await ws.recv())
                if frame["type"] != "hedge_ratio":
                    continue
                if seen and frame["seq"] > seen[-1] + 1:  # a gap: ask for it first
                    events, summary = await ask(
                        ws, replay_action(frame["pair"], seen[-1] + 1, frame["seq"] - 1)
                    )
                    assert summary["type"] == "replayed"
                    seen.extend(
                        e["seq"] for e in map(orjson.loads, events) if e["type"] == "hedge_ratio"
                    )
                if not seen or frame["seq"] > seen[-1]:
                    seen.append(frame["seq"])

    async with connect(bridge.url) as ws:
        await ws.send('{"action":"subscribe","pairs":["A/B"]}')
        assert (await ws.recv()) == '{"type":"subscribed","pairs":["A/B"]}'
        for seq in range(1, 6):
            publish_bar(bus, "A/B", seq)
        await take_until(ws, 5)
        await ws.send('{"action":"unsubscribe","pairs":["A/B"]}')
        await eventually(lambda: not bridge.core.clients[1].pairs, what="unsubscribed")
        for seq in range(6, 16):
            publish_bar(bus, "A/B", seq)
        await ws.send('{"action":"subscribe","pairs":["A/B"]}')  # the latest ratio: seq 15
        await take_until(ws, 15)
        publish_bar(bus, "A/B", 16)
        await take_until(ws, 16)
    assert seen == list(range(1, 17))


# ---------------------------------------------------------------------------------------------
# MQTT


def mqtt_wired(
    broker: MosquittoBroker, journal: EventJournal | None, bus_journal: EventJournal, **kw: Any
) -> tuple[str, Bus, Published, MqttBridge]:
    root = f"g{uuid.uuid4().hex[:10]}"
    bus, published = journalled_bus(bus_journal, root)
    bridge = MqttBridge(broker.url, root=root, backoff=FAST, **kw)
    if journal is not None:  # as the daemon wires it with [state]
        bridge.replay = journal.lookup
        bridge.replay_oldest = journal.oldest_seq
    bus.attach(bridge)
    return root, bus, published, bridge


def body(message: aiomqtt.Message) -> bytes:
    assert isinstance(message.payload, bytes)
    return message.payload


async def raw_answer(
    client: aiomqtt.Client, root: str, payload: bytes, topic: str
) -> list[aiomqtt.Message]:
    """Publish a request on the replay topic; the messages on ``topic`` up to the summary
    or error frame."""
    await client.subscribe(topic, qos=1)
    await client.publish(replay_topic(root), payload, qos=1)
    got: list[aiomqtt.Message] = []
    async with asyncio.timeout(WAIT):
        async for message in client.messages:
            if not message.topic.matches(topic):
                continue
            got.append(message)
            if orjson.loads(body(message))["type"] in ("replayed", "error"):
                return got
    raise AssertionError("no answer")


async def test_an_mqtt_replay_request_is_answered_on_its_own_topic_byte_for_byte(
    mosquitto: MosquittoBroker, journal: EventJournal
) -> None:
    # a bridge at QoS 0: its answers still go at QoS 1
    root, bus, published, bridge = mqtt_wired(mosquitto, journal, journal, qos=0)
    async with bridge:
        await eventually(lambda: bridge.connected, what="the bridge connected")
        for seq in range(1, 13):
            publish_bar(bus, "A/B", seq, {4: "raised"}.get(seq))
            publish_bar(bus, "C/D", seq)
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            request = orjson.dumps({"id": "q-1", "pair": "A/B", "from_seq": 3, "to_seq": 6})
            got = await raw_answer(client, root, request, replay_reply_topic(root, "q-1"))
            *events, summary = got
            assert [body(m) for m in events] == published.payloads("A/B", 3, 6)
            assert {(m.qos, m.retain) for m in got} == {(1, False)}
            assert orjson.loads(body(summary)) == {
                "type": "replayed", "id": "q-1", "pair": "A/B", "from_seq": 3, "to_seq": 6,
                "events": 9, "oldest_seq": 1, "next_seq": None,
            }  # fmt: skip

            # refusals: a bad range on the request's topic; no usable id on the shared one
            bad_range = orjson.dumps({"id": "q-2", "pair": "A/B", "from_seq": 6, "to_seq": 3})
            (error,) = await raw_answer(client, root, bad_range, replay_reply_topic(root, "q-2"))
            assert orjson.loads(body(error))["reason"] == "bad_range"
            for no_id in (
                {"pair": "A/B", "from_seq": 1, "to_seq": 2},
                {"id": "a/b#", "pair": "A/B", "from_seq": 1, "to_seq": 2},
                {"id": 7, "pair": "A/B", "from_seq": 1, "to_seq": 2},
            ):
                payload = orjson.dumps(no_id)
                (error,) = await raw_answer(client, root, payload, replay_reply_topic(root))
                refused = orjson.loads(body(error))
                assert (refused["reason"], refused["id"]) == ("bad_id", None)

        # the client side: the helper asks on a connection of its own
        answer = await replay_request(mosquitto.url, root, "C/D", 1, 12, WAIT)
        assert answer.events == published.payloads("C/D", 1, 12)
        assert (answer.summary["events"], answer.summary["next_seq"]) == (24, None)
    assert bridge.replays == 2
    assert bridge.rejects.counts["replay_bad_range"] == 1
    assert bridge.rejects.counts["replay_bad_id"] == 3


async def test_a_retained_replay_request_is_not_answered_at_a_connect(
    mosquitto: MosquittoBroker, journal: EventJournal
) -> None:
    root, bus, published, bridge = mqtt_wired(mosquitto, journal, journal)
    request = orjson.dumps({"id": "old", "pair": "A/B", "from_seq": 1, "to_seq": 1})
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
        await client.publish(replay_topic(root), request, qos=1, retain=True)
        await client.subscribe(replay_reply_topic(root, "old"), qos=1)
        async with bridge:  # its subscription gets the retained request: ignored, counted
            await eventually(lambda: bridge.rejects.counts["replay_retained"] == 1)
            publish_bar(bus, "A/B", 1)
            answer = await replay_request(mosquitto.url, root, "A/B", 1, 1, WAIT)
            assert answer.events == published.payloads("A/B", 1, 1)
        await client.publish(replay_topic(root), b"", qos=1, retain=True)  # cleared
    assert bridge.replays == 1


async def test_an_mqtt_replay_larger_than_the_outbox_room_comes_in_rounds(
    mosquitto: MosquittoBroker, journal: EventJournal
) -> None:
    root, bus, published, bridge = mqtt_wired(mosquitto, journal, journal, outbox_capacity=16)
    async with bridge, ReplayClient(mosquitto.url, root) as replayer:
        await eventually(lambda: bridge.connected, what="the bridge connected")
        for seq in range(1, 41):
            publish_bar(bus, "A/B", seq)
            await eventually(lambda: not bridge.outbox, what="each bar delivered")
        one = await replayer.request("A/B", 1, 40, WAIT)
        assert 0 < len(one.events) <= 15 and isinstance(one.summary["next_seq"], int)
        whole = await replayer.replay("A/B", 1, 40, WAIT)
    assert whole.events == published.payloads("A/B", 1, 40)
    assert (whole.summary["from_seq"], whole.summary["next_seq"]) == (1, None)
    assert whole.summary["events"] == 80


async def test_without_a_journal_the_replay_topic_is_not_served(
    mosquitto: MosquittoBroker, journal: EventJournal
) -> None:
    root, bus, _, bridge = mqtt_wired(mosquitto, None, journal)
    async with bridge:
        await eventually(lambda: bridge.connected, what="the bridge connected")
        publish_bar(bus, "A/B", 1)
        with pytest.raises(TransportError, match=r"no answer from the daemon within 0\.3 s"):
            await replay_request(mosquitto.url, root, "A/B", 1, 1, 0.3)
    assert bridge.replays == 0


async def test_the_replay_client_reports_a_refusal_and_a_broker_that_is_gone(
    mosquitto: MosquittoBroker, journal: EventJournal
) -> None:
    root, _, _, bridge = mqtt_wired(mosquitto, journal, journal)
    async with bridge, ReplayClient(mosquitto.url, root) as replayer:
        await eventually(lambda: bridge.connected, what="the bridge connected")
        with pytest.raises(ReplayRefusedError, match="bad pair"):
            await replayer.request("A", 1, 2, WAIT)
        await asyncio.to_thread(mosquitto.kill)
        with pytest.raises(TransportError, match=r"cannot reach the broker|no answer"):
            await replayer.request("A/B", 1, 2, 1.0)


# ---------------------------------------------------------------------------------------------
# hedger subscribe


def printed(out: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def ratio_seqs(lines: list[dict[str, Any]], pair: str) -> list[int]:
    return [e["seq"] for e in lines if e["type"] == "hedge_ratio" and e["pair"] == pair]


def subscriber(url: str, root: str, out: io.StringIO, err: io.StringIO, **kw: Any) -> Any:
    return asyncio.create_task(
        run_subscribe(url, root, [], as_json=True, out=out, err=err, live=False, **kw)
    )


async def shows(text: io.StringIO, what: str, times: int = 1) -> None:
    """Wait until ``what`` was written ``times`` times."""
    await eventually(lambda: text.getvalue().count(what) >= times, what=f"{what!r} x{times}")


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_subscribe_fills_a_hole_in_its_stream_from_the_journal(
    mosquitto: MosquittoBroker, journal: EventJournal
) -> None:
    root, bus, _, bridge = mqtt_wired(mosquitto, journal, journal)
    out, err = io.StringIO(), io.StringIO()
    pairs = ("A/B", "C/D")
    async with bridge:
        await eventually(lambda: bridge.connected, what="the bridge connected")
        sub = subscriber(mosquitto.url, root, out, err)
        await shows(out, '"status":"online"')
        for seq in range(1, 6):
            for pair in pairs:
                publish_bar(bus, pair, seq)
        await eventually(lambda: all(ratio_seqs(printed(out), p)[-1:] == [5] for p in pairs))
        bus.bridges.remove(bridge)  # the hole: journalled, never sent to the broker
        for seq in range(6, 13):
            for pair in pairs:
                publish_bar(bus, pair, seq, {8: "raised", 11: "cleared"}.get(seq))
        bus.attach(bridge)
        for seq in range(13, 16):
            for pair in pairs:
                publish_bar(bus, pair, seq)
        await eventually(lambda: all(ratio_seqs(printed(out), p)[-1:] == [15] for p in pairs))
        await stop(sub)
    lines = printed(out)
    for pair in pairs:
        assert ratio_seqs(lines, pair) == list(range(1, 16)), pair
        assert f"hedger subscribe: filled {pair} seq 6-12 (7 bars)\n" in err.getvalue()
    # the missed alarms are shown once, each after its bar's ratio
    alarms = [(e["pair"], e["seq"], e["state"]) for e in lines if e["type"] == "alarm"]
    assert sorted(alarms) == [
        (p, s, st) for p in pairs for s, st in ((8, "raised"), (11, "cleared"))
    ]
    for pair in pairs:
        order = [(e["type"], e["seq"]) for e in lines if e.get("pair") == pair]
        assert order.index(("alarm", 8)) == order.index(("hedge_ratio", 8)) + 1
    assert "gap of" not in err.getvalue() and "could not" not in err.getvalue()


async def test_subscribe_says_what_the_journal_no_longer_holds(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """A journal of 1.5 MB has dropped its oldest segments: the fill brings what it still
    holds and says what it could not."""
    small = EventJournal(tmp_path / "small", 1_500_000)
    pair = "XLE/" + "+".join(f"H{i}" for i in range(30))
    root, bus, _, bridge = mqtt_wired(mosquitto, small, small)
    out, err = io.StringIO(), io.StringIO()
    try:
        async with bridge:
            await eventually(lambda: bridge.connected, what="the bridge connected")
            sub = subscriber(mosquitto.url, root, out, err)
            await shows(out, '"status":"online"')
            basket_bar(bus, pair, 1)
            await eventually(lambda: ratio_seqs(printed(out), pair) == [1])
            bus.bridges.remove(bridge)
            for seq in range(2, 151):
                basket_bar(bus, pair, seq)
                small.commit()  # as the daemon does, bar by bar: the journal rolls
            bus.attach(bridge)
            basket_bar(bus, pair, 151)
            await eventually(lambda: ratio_seqs(printed(out), pair)[-1:] == [151])
            await stop(sub)
        oldest = small.oldest_seq(pair)
    finally:
        small.close()
    assert oldest is not None and 2 < oldest < 150
    assert ratio_seqs(printed(out), pair) == [1, *range(oldest, 152)]
    assert err.getvalue().count("hedger subscribe: filled") == 1
    assert (
        f"hedger subscribe: could not fill {pair} seq 2-{oldest - 1} ({oldest - 2} bars): the "
        f"daemon's journal no longer holds them (it holds seq {oldest} on)\n"
    ) in err.getvalue()


async def test_subscribe_without_a_journal_or_gap_fill_reports_the_gap(
    mosquitto: MosquittoBroker, journal: EventJournal
) -> None:
    root, bus, _, bridge = mqtt_wired(mosquitto, None, journal)
    outs = {fill: (io.StringIO(), io.StringIO()) for fill in (True, False)}
    async with bridge:
        await eventually(lambda: bridge.connected, what="the bridge connected")
        subs = [
            subscriber(mosquitto.url, root, out, err, gap_fill=fill, fill_timeout=0.3)
            for fill, (out, err) in outs.items()
        ]
        for out, _ in outs.values():
            await shows(out, '"status":"online"')
        publish_bar(bus, "A/B", 1)
        bus.bridges.remove(bridge)
        for seq in range(2, 5):
            publish_bar(bus, "A/B", seq)
        bus.attach(bridge)
        publish_bar(bus, "A/B", 5)
        for out, _ in outs.values():
            await shows(out, '"seq":5')
            assert ratio_seqs(printed(out), "A/B") == [1, 5]
        for sub in subs:
            await stop(sub)
    filled_err, plain_err = outs[True][1].getvalue(), outs[False][1].getvalue()
    assert (
        "hedger subscribe: could not fill A/B seq 2-4: no answer from the daemon within 0.3 s\n"
        in filled_err
    )
    assert "hedger subscribe: gap of 3 on A/B\n" in plain_err and "fill" not in plain_err


async def test_subscribe_ends_with_every_seq_across_five_kills_of_a_broker_without_persistence(
    mosquitto: MosquittoBroker, journal: EventJournal
) -> None:
    root, bus, _, bridge = mqtt_wired(mosquitto, journal, journal)
    out, err = io.StringIO(), io.StringIO()
    pairs = ("A/B", "C/D", "E/F")
    last = 0

    def bars(n: int) -> None:
        nonlocal last
        for _ in range(n):
            last += 1
            for pair in pairs:
                publish_bar(bus, pair, last, {3: "raised", 17: "cleared"}.get(last))

    def caught_up() -> bool:
        lines = printed(out)
        return all(ratio_seqs(lines, p)[-1:] == [last] for p in pairs)

    async with bridge:
        await eventually(lambda: bridge.connected, what="the bridge connected")
        sub = subscriber(mosquitto.url, root, out, err, fill_timeout=3.0)
        await shows(out, '"status":"online"')
        bars(3)
        for _ in range(5):
            await eventually(caught_up, what=f"the subscriber at seq {last}")
            drops = err.getvalue().count("disconnected")
            await asyncio.to_thread(mosquitto.kill)
            bars(4)  # into the bridge's outbox
            # the subscriber's retries have backed off beyond the bridge's (0.2 s at most)
            await shows(err, "disconnected", drops + 2)
            await asyncio.to_thread(mosquitto.start)
            await eventually(lambda: bridge.connected, what="the bridge back")
            bars(2)
        await eventually(caught_up, what=f"the subscriber at seq {last}")
        await stop(sub)
    lines = printed(out)
    for pair in pairs:
        assert ratio_seqs(lines, pair) == list(range(1, last + 1)), pair
    alarms = [(e["pair"], e["seq"]) for e in lines if e["type"] == "alarm"]
    assert sorted(alarms) == sorted((p, s) for p in pairs for s in (3, 17))
    assert "filled" in err.getvalue() and "could not fill" not in err.getvalue()


async def test_a_subscriber_with_a_client_id_keeps_its_session_across_a_broker_restart(
    journal: EventJournal,
) -> None:
    """``--client-id`` (a persistent QoS 1 session): a broker that keeps its sessions hands the
    subscriber what was published while it was away; nothing to fill."""
    broker = MosquittoBroker(persistence=True)
    broker.start()
    try:
        root, bus, _, bridge = mqtt_wired(broker, journal, journal)
        out, err = io.StringIO(), io.StringIO()
        session = ClientOptions(client_id=f"{root}-sub", clean_session=False)
        async with bridge:
            await eventually(lambda: bridge.connected, what="the bridge connected")
            sub = subscriber(broker.url, root, out, err, **session)
            await shows(out, '"status":"online"')
            for seq in range(1, 4):
                publish_bar(bus, "A/B", seq)
            await eventually(lambda: ratio_seqs(printed(out), "A/B") == [1, 2, 3])
            await asyncio.to_thread(broker.stop)
            for seq in range(4, 8):
                publish_bar(bus, "A/B", seq)
            await shows(err, "disconnected", 2)
            await asyncio.to_thread(broker.start)
            await eventually(lambda: bridge.connected, what="the bridge back")
            publish_bar(bus, "A/B", 8)
            await eventually(lambda: ratio_seqs(printed(out), "A/B")[-1:] == [8])
            await stop(sub)
    finally:
        broker.close()
    assert ratio_seqs(printed(out), "A/B") == list(range(1, 9))
    assert "fill" not in err.getvalue() and "gap" not in err.getvalue()


def test_the_gap_fill_and_session_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).gap_fill is True
    args = parser.parse_args(["--no-gap-fill", "--client-id", "desk-1"])
    assert (args.gap_fill, args.client_id) == (False, "desk-1")
    result = run_hedger("subscribe", "--client-id", " ")
    assert result.returncode == 2
    assert result.stderr.strip() == "hedger subscribe: client-id: must not be empty"


def test_the_missed_events_and_what_is_said_of_them() -> None:
    def ratio(seq: int, ts: int) -> bytes:
        return orjson.dumps({"type": "hedge_ratio", "pair": "A/B", "seq": seq, "ts": ts})

    def other(kind: str, seq: int, pair: str = "A/B") -> bytes:
        return orjson.dumps({"type": kind, "pair": pair, "seq": seq, "ts": seq})

    payloads = [ratio(3, 3), other("spread", 3), other("alarm", 3), ratio(3, 3), ratio(4, 4)]
    payloads += [ratio(5, 99), other("hedge_ratio", 4, "C/D"), b"torn", ratio(9, 9)]
    events = missed_events(payloads, "A/B", 3, 8, after_ts=2, before_ts=50)
    # one ratio a seq, its alarm after it, no spread, no other pair, no other run's bar
    assert [(e["type"], e["seq"]) for e in events] == [
        ("hedge_ratio", 3), ("alarm", 3), ("hedge_ratio", 4),
    ]  # fmt: skip
    summary = {"events": 3, "oldest_seq": 3, "next_seq": None}
    assert fill_notes("A/B", 1, 8, [3, 4, 7], summary) == [
        "filled A/B seq 3-4, 7 (3 bars)",
        "could not fill A/B seq 1-2, 5-6, 8 (5 bars): not in the daemon's journal",
    ]
    assert fill_notes("A/B", 1, 4, [3, 4], summary) == [
        "filled A/B seq 3-4 (2 bars)",
        "could not fill A/B seq 1-2 (2 bars): the daemon's journal no longer holds them (it "
        "holds seq 3 on)",
    ]
    cut = {"events": 2, "oldest_seq": 1, "next_seq": 5}
    assert fill_notes("A/B", 1, 9, [1, 2, 3, 4], cut)[1] == (
        "could not fill A/B seq 5-9 (5 bars): the daemon stopped answering at seq 5 (no room "
        "to send more)"
    )
    assert fill_notes("A/B", 5, 5, [], {"events": 0, "oldest_seq": None, "next_seq": None}) == [
        "could not fill A/B seq 5 (1 bar): the daemon's journal holds none of the pair's events"
    ]
