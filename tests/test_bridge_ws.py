"""The WebSocket bridge against real clients: a server on 127.0.0.1, port 0, and
``websockets.asyncio.client`` connections; the sans-I/O core and the Prometheus text alone."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

from hedger.core.bus import Bus, Message
from hedger.core.events import HedgeRatioEvent, MatrixEvent, SpreadEvent, encode, encode_matrix
from hedger.core.topics import matrix_topic
from hedger.errors import TransportError
from hedger.runtime.bridges.prometheus import CountersCollector, metric_kind, metric_name, render
from hedger.runtime.bridges.ws import FanOut, WebSocketBridge, take_frame
from tests.waiting import eventually

WAIT = 3.0


def ratio(pair: str, seq: int, beta: float = 0.5) -> HedgeRatioEvent:
    return HedgeRatioEvent(
        pair,
        seq,
        seq * 60_000_000_000,
        (beta,),
        0.1,
        ((1e-4, 0.0), (0.0, 1e-4)),
        (0.01,),
        True,
        False,
    )


def spread(pair: str, seq: int) -> SpreadEvent:
    return SpreadEvent(pair, seq, seq * 60_000_000_000, 0.25 * seq, 0.1, 0.5, 0.2)


def basket_ratio(seq: int, legs: int = 30) -> HedgeRatioEvent:
    """A wide basket: about 20 KB of JSON per event, to fill socket buffers quickly."""
    pair = "XLE/" + "+".join(f"H{i}" for i in range(legs))
    n = legs + 1
    cov = tuple(tuple(1e-4 + (i * n + j) * 1.23456789e-9 for j in range(n)) for i in range(n))
    return HedgeRatioEvent(
        pair,
        seq,
        seq,
        tuple(0.1 + i * 1e-3 for i in range(legs)),
        0.1,
        cov,
        (0.01,) * legs,
        True,
        False,
    )


Started = Callable[..., Awaitable[tuple[WebSocketBridge, Bus]]]


@pytest.fixture
async def started() -> AsyncIterator[Started]:
    """Start bridges on a free port with their run() task; close them all afterwards."""
    running: list[tuple[WebSocketBridge, asyncio.Task[None]]] = []

    async def start(**kw: Any) -> tuple[WebSocketBridge, Bus]:
        kw.setdefault("close_timeout", 0.5)
        bridge = WebSocketBridge(port=0, **kw)
        bus = Bus()
        bus.attach(bridge)
        await bridge.start()
        running.append((bridge, asyncio.create_task(bridge.run())))
        return bridge, bus

    yield start
    for bridge, task in running:
        task.cancel()
        await asyncio.wait([task])
        async with asyncio.timeout(WAIT):
            await bridge.close()


async def recv_json(ws: ClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        data = await ws.recv()
    obj = orjson.loads(data)
    assert isinstance(obj, dict)
    return obj


async def subscribe(ws: ClientConnection, *pairs: str) -> dict[str, Any]:
    await ws.send(orjson.dumps({"action": "subscribe", "pairs": list(pairs)}).decode())
    reply = await recv_json(ws)
    assert reply["type"] == "subscribed"
    return reply


_sentinels = iter(range(1, 1_000_000))


async def nothing_more(bus: Bus, *clients: ClientConnection) -> None:
    """Nothing more is on its way to ``clients``: a status sent through the bus after
    everything else (status goes to every client, in bus order) is the next frame each of
    them receives. Every other connected client gets it too and must read it."""
    status = f"sentinel-{next(_sentinels)}"
    bus.publish_status(status)
    for ws in clients:
        assert await recv_json(ws) == {"type": "status", "status": status}


def samples(page: str) -> dict[str, float]:
    """Every sample of a Prometheus text page, by name, as prometheus_client parses it."""
    return {s.name: s.value for f in text_string_to_metric_families(page) for s in f.samples}


async def http_get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """A plain HTTP/1.1 GET (no upgrade): status, headers (lower-case names), body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    async with asyncio.timeout(WAIT):
        raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body.decode()


# ---------------------------------------------------------------------------------------------
# 1. a subscription gets exactly its pair's events, in order


async def test_subscriber_gets_exactly_its_pairs_events_in_order(started: Started) -> None:
    bridge, bus = await started()
    async with connect(bridge.url) as one, connect(bridge.url) as every:
        assert (await subscribe(one, "AAPL/SPY"))["pairs"] == ["AAPL/SPY"]
        assert (await subscribe(every, "*"))["pairs"] == ["*"]
        events: list[HedgeRatioEvent | SpreadEvent] = []
        for seq in range(1, 51):
            for pair in ("AAPL/SPY", "XLE/USO+UNG", "BRK%2FB/SPY"):
                events += [ratio(pair, seq, beta=seq / 100), spread(pair, seq)]
        for event in events:
            bus.publish(event)
        assert await bridge.drain(WAIT)

        mine = [encode(e).decode() for e in events if e.pair == "AAPL/SPY"]
        async with asyncio.timeout(WAIT):
            got = [await one.recv() for _ in mine]
            got_all = [await every.recv() for _ in events]
        assert got == mine
        assert got_all == [encode(e).decode() for e in events]
        await nothing_more(bus, one, every)

        # unsubscribing stops the flow; the reply is the whole remaining subscription
        await one.send('{"action":"unsubscribe","pairs":["AAPL/SPY"]}')
        assert await recv_json(one) == {"type": "subscribed", "pairs": []}
        bus.publish(ratio("AAPL/SPY", 51))
        assert (await recv_json(every))["seq"] == 51
        await nothing_more(bus, one, every)
        assert await bridge.drain(WAIT)

    stats = bridge.metrics()
    assert stats["dropped"] == 0
    assert stats["sent"] == 2 + len(mine) + len(events) + 1 + 1 + 2 * 2  # and the sentinels


async def test_pair_ids_are_normalised_and_status_goes_to_everyone(started: Started) -> None:
    bridge, bus = await started()
    bus.publish_status("online")
    await bridge.drain(WAIT)
    async with connect(bridge.url) as ws:
        # the latest status comes first, without asking
        assert await recv_json(ws) == {"type": "status", "status": "online"}
        reply = await subscribe(ws, " BRK%2FB/SPY ", "AAPL/SPY")
        assert reply["pairs"] == ["AAPL/SPY", "BRK%2FB/SPY"]
        bus.publish(ratio("BRK%2FB/SPY", 1))
        assert (await recv_json(ws))["pair"] == "BRK%2FB/SPY"
        bus.publish_status("degraded")
        bus.publish_metrics({"ticks_in": 5})  # not forwarded
        assert await recv_json(ws) == {"type": "status", "status": "degraded"}
        await nothing_more(bus, ws)


# ---------------------------------------------------------------------------------------------
# 2. a late subscriber gets the latest ratio at once


async def test_late_subscriber_gets_the_latest_ratio_at_once(started: Started) -> None:
    bridge, bus = await started()
    for seq in range(1, 6):
        for pair in ("AAPL/SPY", "XLE/USO+UNG"):
            bus.publish(ratio(pair, seq, beta=seq / 10))
            bus.publish(spread(pair, seq))
    assert await bridge.drain(WAIT)  # no clients yet: the bridge only remembers

    async with connect(bridge.url) as late, connect(bridge.url) as everything:
        await subscribe(late, "AAPL/SPY", "MSFT/QQQ")  # MSFT/QQQ: nothing seen yet
        latest = await recv_json(late, timeout=1.0)
        assert latest == orjson.loads(encode(ratio("AAPL/SPY", 5, beta=0.5)))
        await nothing_more(bus, late, everything)  # no spread, nothing for MSFT/QQQ

        await subscribe(everything, "*")
        got = [await recv_json(everything, timeout=1.0) for _ in range(2)]
        assert [(e["pair"], e["type"], e["seq"]) for e in got] == [
            ("AAPL/SPY", "hedge_ratio", 5),
            ("XLE/USO+UNG", "hedge_ratio", 5),
        ]

        # then the stream continues from there, with no gap and no repeat
        bus.publish(spread("AAPL/SPY", 6))
        assert (await recv_json(late))["seq"] == 6
        # subscribing again sends the retained ratio again (like MQTT)
        await subscribe(late, "AAPL/SPY")
        assert (await recv_json(late))["seq"] == 5


def matrix_event(seq: int) -> MatrixEvent:
    beta = np.array([[np.nan, 0.5 + seq], [1.5, np.nan]])
    return MatrixEvent(
        seq=seq,
        ts=seq * 10**9,
        symbols=("A", "B"),
        beta=beta,
        alpha=np.zeros((2, 2)),
        beta_std=np.full((2, 2), 0.1),
        zscore=np.zeros((2, 2)),
        warm=np.ones((2, 2), dtype=bool),
        stale=(),
    )


async def test_the_matrix_is_its_own_subscription(started: Started) -> None:
    bridge, bus = await started()
    bus.publish_matrix(matrix_event(1))
    bus.publish_matrix(matrix_event(2))
    assert await bridge.drain(WAIT)
    async with connect(bridge.url) as pairs_only, connect(bridge.url) as matrix:
        await subscribe(pairs_only, "*")
        await matrix.send('{"action":"subscribe","matrix":true}')
        assert await recv_json(matrix) == {"type": "subscribed", "pairs": [], "matrix": True}
        retained = await recv_json(matrix)  # the latest matrix, at once
        assert (retained["type"], retained["seq"], retained["beta"]) == (
            "matrix",
            2,
            [[None, 2.5], [1.5, None]],
        )
        bus.publish_matrix(matrix_event(3))
        bus.publish(ratio("A/B", 1))
        assert (await recv_json(matrix))["seq"] == 3
        assert (await recv_json(pairs_only))["type"] == "hedge_ratio"
        # pairs were not asked for by matrix; "*" is every pair, not the matrix
        await nothing_more(bus, matrix, pairs_only)
        await matrix.send('{"action":"unsubscribe","matrix":true}')
        assert await recv_json(matrix) == {"type": "subscribed", "pairs": []}
        bus.publish_matrix(matrix_event(4))
        await nothing_more(bus, matrix, pairs_only)
        await matrix.send('{"action":"subscribe","matrix":"yes"}')
        assert (await recv_json(matrix))["type"] == "error"


# ---------------------------------------------------------------------------------------------
# 3. a slow client does not hold back the others


async def test_slow_client_does_not_slow_the_fast_one(started: Started) -> None:
    bridge, bus = await started(client_queue=256)
    # The slow client never reads; a small receive buffer so the kernel takes less of the
    # backlog (the server's send buffer can still hold megabytes, hence the wide events).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", bridge.port))
    sock.setblocking(False)
    slow = await connect(bridge.url, sock=sock, max_queue=1, close_timeout=0.1)
    fast = await connect(bridge.url)
    try:
        await subscribe(slow, "*")
        await subscribe(fast, "*")
        slow_id, fast_id = (s.id for s in bridge.client_stats())

        received: list[str | bytes] = []

        async def read_all() -> None:
            while True:
                received.append(await fast.recv())

        reader = asyncio.create_task(read_all())
        published = 0
        extra_rounds = 5

        def fast_has_all() -> bool:
            return len(received) == published

        # publish in small bursts, like bars, until the slow client is dropping (then a few
        # bursts more), capped at ~60 MB in case a kernel buffers far more than usual; the
        # fast client has every burst before the next, whatever the slow one does
        while extra_rounds and published < 3000:
            for _ in range(10):
                published += 1
                bus.publish(basket_ratio(published))
            await eventually(fast_has_all)
            if bridge.client_stats()[0].dropped:
                extra_rounds -= 1
        reader.cancel()

        seqs = [orjson.loads(data)["seq"] for data in received]
        assert seqs == list(range(1, published + 1))
        stats = {s.id: s for s in bridge.client_stats()}
        assert stats[fast_id].dropped == 0
        assert stats[slow_id].dropped > 0
        assert stats[slow_id].sent < published
        assert bridge.metrics()["dropped"] == stats[slow_id].dropped
    finally:
        slow.transport.abort()
        await fast.close()


async def test_a_client_past_max_drops_is_disconnected(started: Started) -> None:
    bridge, bus = await started(client_queue=4, max_drops=20)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", bridge.port))
    sock.setblocking(False)
    slow = await connect(bridge.url, sock=sock, max_queue=1, close_timeout=0.1)
    try:
        await subscribe(slow, "*")
        published = 0
        async with asyncio.timeout(10.0):
            while bridge.metrics()["kicked"] == 0:
                for _ in range(10):
                    published += 1
                    bus.publish(basket_ratio(published))
                await eventually(lambda: not bridge.outbox)  # handed to the client queue
        await eventually(lambda: bridge.metrics()["clients"] == 0)  # closed in close_timeout
        assert bridge.metrics()["dropped"] > 20
    finally:
        slow.transport.abort()


# ---------------------------------------------------------------------------------------------
# 4. bearer token; /metrics


async def test_bearer_token_is_required(started: Started) -> None:
    bridge, bus = await started(token="s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        with pytest.raises(InvalidStatus) as refused:
            await connect(bridge.url, additional_headers=headers)
        assert refused.value.response.status_code == 401

    auth = {"Authorization": "Bearer s3cret"}
    async with connect(bridge.url, additional_headers=auth) as ws:
        await subscribe(ws, "AAPL/SPY")
        bus.publish(ratio("AAPL/SPY", 1))
        assert (await recv_json(ws))["seq"] == 1

    status, headers, _ = await http_get(bridge.port, "/metrics")
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    status, _, body = await http_get(bridge.port, "/metrics", auth)
    assert status == 200
    assert samples(body)["hedger_ws_unauthorized_total"] == 4


async def test_metrics_page_is_prometheus_text(started: Started) -> None:
    counters = {"ticks_in": 42.0, "rejected_bad price": 3.0, "uptime_seconds": 1.5}
    bridge, bus = await started(metrics_provider=lambda: counters)
    async with connect(bridge.url) as ws:
        await subscribe(ws, "*")
        bus.publish(ratio("AAPL/SPY", 1))
        await recv_json(ws)
        status, headers, body = await http_get(bridge.port, "/metrics?x=1")

    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(body)}
    types = {name: family.type for name, family in families.items()}
    values = samples(body)
    assert {
        "hedger_ws_clients": "gauge",
        "hedger_ws_sent": "counter",
        "hedger_ws_dropped": "counter",
        "hedger_ws_queued": "gauge",
        "hedger_ticks_in": "counter",
        "hedger_rejected_bad_price": "counter",
        "hedger_uptime_seconds": "gauge",
    }.items() <= types.items()
    assert "untyped" not in types.values()
    assert values["hedger_ws_clients"] == 1
    assert values["hedger_ws_sent_total"] == 2  # the reply and one event
    assert values["hedger_ticks_in_total"] == 42
    assert values["hedger_uptime_seconds"] == 1.5

    # a plain GET elsewhere is not a websocket upgrade: refused, server unharmed
    status, _, _ = await http_get(bridge.port, "/")
    assert status == 426


def test_prometheus_rendering() -> None:
    collector = CountersCollector(
        lambda: [("hedger_ws_clients", "gauge", "Clients.", 2.0)],
        lambda: {
            "ws_clients": 9.0,  # the provider's repeat of the same name is left out
            "events_total": 7.0,
            "9lives": float("inf"),
            "mqtt_queued": float("nan"),
            "flag": True,  # not a number: skipped
        },
    )
    text = render(collector)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {name: f.type for name, f in families.items()} == {
        "hedger_ws_clients": "gauge",
        "hedger_events": "counter",
        "hedger_9lives": "counter",
        "hedger_mqtt_queued": "gauge",
    }
    values = samples(text)
    assert values["hedger_ws_clients"] == 2.0
    assert values["hedger_events_total"] == 7.0
    assert values["hedger_9lives_total"] == float("inf")
    assert math.isnan(values["hedger_mqtt_queued"])
    assert "# HELP hedger_ws_clients Clients." in text.splitlines()
    assert metric_name("rejected_bad.price") == "hedger_rejected_bad_price"
    assert metric_name("hedger_up") == "hedger_up"
    assert [metric_kind(k) for k in ("tick_queue", "ws_clients", "ticks_in", "mqtt_acked")] == [
        "gauge",
        "gauge",
        "counter",
        "counter",
    ]


# ---------------------------------------------------------------------------------------------
# 5. malformed client messages


async def test_malformed_messages_get_an_error_and_are_counted(started: Started) -> None:
    bridge, bus = await started()
    bad: list[str | bytes] = [
        "not json",
        "[1, 2]",
        '{"action": "dance"}',
        '{"pairs": ["AAPL/SPY"]}',
        '{"action": "subscribe", "pairs": "AAPL/SPY"}',
        '{"action": "subscribe", "pairs": []}',
        '{"action": "subscribe", "pairs": ["AAPL/SPY", 7]}',
        '{"action": "subscribe", "pairs": ["AAPL/SPY", "NOSLASH"]}',
        '{"action": "subscribe", "pairs": ["AAPL/AAPL"]}',
        b"\xff\xfe",
    ]
    async with connect(bridge.url) as ws:
        for message in bad:
            await ws.send(message)
            reply = await recv_json(ws)
            assert reply["type"] == "error"
            assert isinstance(reply["error"], str) and reply["error"]
        # nothing was subscribed by the half-valid ones, and the connection still works
        assert (await subscribe(ws, "XLE/USO+UNG"))["pairs"] == ["XLE/USO+UNG"]
        bus.publish(ratio("AAPL/SPY", 1))
        bus.publish(ratio("XLE/USO+UNG", 1))
        assert (await recv_json(ws))["pair"] == "XLE/USO+UNG"

    assert bridge.metrics()["client_errors"] == len(bad)
    assert bridge.client_errors.summary() == {
        "bad_json": 2,
        "bad_pair": 2,
        "bad_pairs": 3,
        "not_an_object": 1,
        "unknown_action": 2,
    }


# ---------------------------------------------------------------------------------------------
# 6. close


async def test_close_is_idempotent_and_clients_see_the_close() -> None:
    bridge = WebSocketBridge(port=0, close_timeout=0.5)
    bus = Bus()
    bus.attach(bridge)
    run = asyncio.create_task(bridge.run())
    await eventually(lambda: bridge.port != 0)
    clients = [await connect(bridge.url) for _ in range(2)]
    await subscribe(clients[0], "*")

    first = bridge.close()
    second = bridge.close()
    async with asyncio.timeout(WAIT):
        await first
        await second
        await bridge.close()
        await bridge.wait_closed()
    for ws in clients:
        with pytest.raises(ConnectionClosedOK):
            async with asyncio.timeout(WAIT):
                await ws.recv()
        assert ws.close_code == 1001
    assert bridge.metrics()["clients"] == 0
    with pytest.raises(OSError):
        await connect(bridge.url, open_timeout=1.0)
    # run() keeps draining the outbox (into no one) until cancelled
    bus.publish(ratio("AAPL/SPY", 1))
    assert await bridge.drain(WAIT)
    run.cancel()
    await asyncio.wait([run])
    with pytest.raises(TransportError, match="closed"):
        await bridge.start()


async def test_close_before_start_and_context_manager() -> None:
    never = WebSocketBridge(port=0)
    await never.close()
    await never.wait_closed()
    async with WebSocketBridge(port=0) as bridge:
        assert bridge.port != 0
        ws = await connect(bridge.url)
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(WAIT):
            await ws.recv()


# ---------------------------------------------------------------------------------------------
# the core without sockets


def message(event: HedgeRatioEvent | SpreadEvent) -> Message:
    return Message("t", encode(event), event.type == "hedge_ratio", event, event.pair, event.seq)


def test_fanout_drops_each_clients_oldest() -> None:
    core = FanOut(client_queue=3, max_drops=4)
    slow, fast = core.add_client("slow"), core.add_client("fast")
    for client in (slow, fast):
        assert core.receive(client, '{"action":"subscribe","pairs":["A/B"]}')
    fast.queue.clear()
    slow.queue.clear()
    for seq in range(1, 9):
        core.publish(message(ratio("A/B", seq)))
        core.publish(message(spread("C/D", seq)))  # wanted by no one
        fast.queue.clear()  # the fast client keeps up
    assert [orjson.loads(f)["seq"] for f in slow.queue] == [6, 7, 8]
    assert (slow.dropped, fast.dropped, core.dropped) == (5, 0, 5)
    assert core.take_kicked() == [slow]
    assert core.take_kicked() == []  # reported once
    assert core.latest_ratio.keys() == {"A/B"}


def test_fanout_subscriptions() -> None:
    core = FanOut(client_queue=100)
    core.publish(message(ratio("A/B", 1)))
    client = core.add_client()
    core.receive(client, '{"action":"subscribe","pairs":["*","A/B"]}')
    core.receive(client, '{"action":"unsubscribe","pairs":["A/B"]}')
    assert client.subscription() == ["*"]
    assert client.wants("A/B")  # still under "*"
    core.receive(client, '{"action":"unsubscribe","pairs":["*"]}')
    assert not client.wants("A/B")
    frames = [orjson.loads(f) for f in client.queue]
    assert frames == [
        {"type": "subscribed", "pairs": ["*", "A/B"]},
        orjson.loads(encode(ratio("A/B", 1))),
        {"type": "subscribed", "pairs": ["*"]},
        {"type": "subscribed", "pairs": []},
    ]
    core.remove_client(client)
    assert core.idle and core.queued == 0


def test_fanout_forgets_a_cleared_retained_ratio() -> None:
    core = FanOut(client_queue=100)
    bus = Bus(subscribers=[core.publish])
    bus.publish(ratio("A/B", 1))
    bus.publish(ratio("C/D", 1))
    bus.clear_retained("ratio", "A/B")
    assert core.latest_ratio.keys() == {"C/D"}
    client = core.add_client()
    core.receive(client, '{"action":"subscribe","pairs":["*"]}')
    assert [orjson.loads(f).get("pair") for f in client.queue] == [None, "C/D"]


def matrix_message(seq: int) -> Message:
    return Message(matrix_topic("hedger"), encode_matrix(matrix_event(seq)), True, seq=seq)


def kinds(frames: Any) -> list[tuple[str, int]]:
    return [(f["type"], f["seq"]) for f in map(orjson.loads, frames)]


def test_fanout_keeps_one_pending_matrix_per_client() -> None:
    core = FanOut(client_queue=1000)
    slow, fast = core.add_client("slow"), core.add_client("fast")
    for client in (slow, fast):
        assert core.receive(client, '{"action":"subscribe","pairs":["A/B"],"matrix":true}')
        client.queue.clear()
    for seq in range(1, 4):
        core.publish(message(ratio("A/B", seq)))
        core.publish(matrix_message(seq))
        core.publish(message(spread("A/B", seq)))
        while fast.queue:  # the fast client keeps up
            take_frame(fast)
    # the slow client holds its pair events in order and only the newest matrix
    assert kinds(slow.queue) == [
        ("hedge_ratio", 1),
        ("spread", 1),
        ("hedge_ratio", 2),
        ("spread", 2),
        ("hedge_ratio", 3),
        ("matrix", 3),
        ("spread", 3),
    ]
    assert (slow.dropped, fast.dropped, core.dropped) == (2, 0, 2)
    # once the matrix has been taken for sending, the next one is queued without a drop
    while slow.queue:
        take_frame(slow)
    core.publish(matrix_message(4))
    core.publish(message(ratio("A/B", 4)))
    assert kinds(slow.queue) == [("matrix", 4), ("hedge_ratio", 4)]
    assert slow.dropped == 2
    # subscribing again moves the retained matrix (the same frame) behind the reply, no drop
    assert core.receive(slow, '{"action":"subscribe","matrix":true}')
    assert [orjson.loads(f)["type"] for f in slow.queue] == [
        "hedge_ratio",
        "subscribed",
        "matrix",
    ]
    assert slow.dropped == 2


def test_fanout_matrix_drops_count_towards_the_kick_and_the_full_queue() -> None:
    core = FanOut(client_queue=2, max_drops=1)
    client = core.add_client()
    assert core.receive(client, '{"action":"subscribe","pairs":["A/B"],"matrix":true}')
    client.queue.clear()
    core.publish(matrix_message(1))
    core.publish(message(ratio("A/B", 1)))
    core.publish(message(ratio("A/B", 2)))  # the full queue drops its oldest: the matrix
    assert kinds(client.queue) == [("hedge_ratio", 1), ("hedge_ratio", 2)]
    assert client.pending_matrix is None and client.dropped == 1
    core.publish(matrix_message(2))  # nothing to replace: the full queue drops ratio 1
    core.publish(matrix_message(3))  # replaces matrix 2
    assert kinds(client.queue) == [("hedge_ratio", 2), ("matrix", 3)]
    assert (client.dropped, core.dropped) == (3, 3)
    assert core.take_kicked() == [client]
    core.remove_client(client)
    assert client.pending_matrix is None and core.queued == 0


async def test_a_port_in_use_and_bad_arguments_are_transport_errors() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bridge = WebSocketBridge(port=port)
        with pytest.raises(TransportError) as caught:
            await bridge.start()
    assert caught.value.transport == "websocket"
    assert caught.value.address == f"ws://127.0.0.1:{port}/"
    assert caught.value.problem.startswith("cannot listen")
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(TransportError, match="token"):
        WebSocketBridge(port=0, token="")
    with pytest.raises(TransportError, match="client_queue"):
        WebSocketBridge(port=0, client_queue=0)


async def test_a_pair_the_daemon_does_not_run_is_refused_by_name(started: Started) -> None:
    bridge, bus = await started(pairs=["AAA/BBB", "XLE/USO+UNG"])
    async with connect(bridge.url) as ws:
        await ws.send(orjson.dumps({"action": "subscribe", "pairs": ["AAA/BBB", "NOPE/X"]}))
        reply = await recv_json(ws)
        assert reply["type"] == "error" and reply["unknown"] == ["NOPE/X"]
        assert "unknown pair 'NOPE/X'" in reply["error"]
        many = [f"F{i}/G{i}" for i in range(500)]
        await ws.send(orjson.dumps({"action": "subscribe", "pairs": many}))
        reply = await recv_json(ws)
        assert len(reply["unknown"]) == 100 and "and 497 more" in reply["error"]
        # nothing changed; the known pairs (normalised) and "*" are taken
        assert (await subscribe(ws, "XLE/USO+UNG", "AAA/BBB"))["pairs"] == [
            "AAA/BBB",
            "XLE/USO+UNG",
        ]
        assert (await subscribe(ws, "*"))["pairs"] == ["*", "AAA/BBB", "XLE/USO+UNG"]
        bus.publish(ratio("AAA/BBB", 1))
        assert (await recv_json(ws))["pair"] == "AAA/BBB"
    assert bridge.core.rejects.counts["unknown_pair"] == 2
    await eventually(lambda: not bridge.core.clients)


async def test_subscriptions_per_client_are_bounded(started: Started) -> None:
    bridge, _ = await started(max_pairs_per_client=3)
    async with connect(bridge.url) as ws:
        await subscribe(ws, "A/B", "C/D")
        await ws.send(orjson.dumps({"action": "subscribe", "pairs": ["E/F", "G/H"]}))
        reply = await recv_json(ws)
        assert reply == {"type": "error", "error": "at most 3 pairs per client"}
        assert (await subscribe(ws, "E/F", "A/B", "*"))["pairs"] == ["*", "A/B", "C/D", "E/F"]
    assert bridge.core.rejects.counts["too_many_pairs"] == 1


async def test_clients_per_server_are_bounded(started: Started) -> None:
    bridge, bus = await started(max_clients=2)
    async with connect(bridge.url) as one, connect(bridge.url) as two:
        await eventually(lambda: len(bridge.core.clients) == 2)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(bridge.url):
                pass
        assert refused.value.response.status_code == 503
        status, _, body = await http_get(bridge.port, "/metrics")  # still served
        assert status == 200 and samples(body)["hedger_ws_refused_total"] == 1
        bus.publish_status("online")
        for ws in (one, two):
            assert await recv_json(ws) == {"type": "status", "status": "online"}
    await eventually(lambda: not bridge.core.clients)
    async with connect(bridge.url) as three:  # a freed place is taken again
        assert await recv_json(three) == {"type": "status", "status": "online"}
        await subscribe(three, "*")
    assert bridge.metrics()["refused"] == 1


def test_limits_must_be_positive() -> None:
    with pytest.raises(TransportError, match="max_clients"):
        WebSocketBridge(max_clients=0)
    with pytest.raises(TransportError, match="max_pairs_per_client"):
        FanOut(10, max_pairs=0)
