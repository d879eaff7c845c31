"""Control over the daemon's real WebSocket server (a daemon on a test clock, fed by a queue
feed): pairs added warm with ``seq`` from 1 and equal to a pair run from the start, removed
with their retained topics cleared, and every bad request answered with an error that changes
nothing."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import numpy as np
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from hedger.core.actors import PairSpec
from hedger.core.events import Event, HedgeRatioEvent
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
from hedger.core.topics import PairId
from hedger.engine import InputMode
from hedger.runtime.bridges.ws import WebSocketBridge
from tests.test_clock import GRACE, T0, Running, daemon_text
from tests.waiting import eventually

S = 1_000_000_000
TOKEN = "ws-s3cret"
WS = f'[bus.websocket]\nport = 0\ntoken = "{TOKEN}"\n'
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SYMBOLS = ("XXX", "YYY", "ZZZ")
_ids = itertools.count(1)


def prices(n_bars: int, seed: int = 7) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    common = np.cumsum(rng.normal(0, 0.4, n_bars)) + 50.0
    return [[float(common[k] * (1 + 0.2 * i) + rng.normal(0, 0.1)) for i in range(3)] for k in
            range(n_bars)]  # fmt: skip


async def feed_bars(run: Running, table: list[list[float]], first: int) -> None:
    """Bar ``first + k`` gets row k's prices (one tick a symbol), then the clock closes it."""
    for k, row in enumerate(table):
        start = T0 + (first + k) * S
        await run.ticks(*[(s, p, start + 1000 * (i + 1)) for i, (s, p) in
                          enumerate(zip(SYMBOLS, row, strict=True))])  # fmt: skip
        await run.clock.advance_to(start + S + GRACE)
        await run.settled()


def ratios_of(run: Running) -> list[dict[str, Any]]:
    """The ratio events published (not the empty payloads that clear a retained topic)."""
    return [orjson.loads(m.payload) for m in run.messages if "/v1/ratio/" in m.topic and m.payload]


def ws_url(run: Running) -> str:
    bridge = next(b for b in run.node.bridges if isinstance(b, WebSocketBridge))
    return bridge.url


async def ask(ws: ClientConnection, body: dict[str, Any] | bytes) -> dict[str, Any]:
    """Send one request, return its control reply (other frames skipped)."""
    if isinstance(body, dict) and "id" not in body:
        body = {**body, "id": next(_ids)}
    await ws.send(body.decode() if isinstance(body, bytes) else orjson.dumps(body).decode())
    want = body.get("id") if isinstance(body, dict) else None
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame.get("type") == "control_reply" and frame.get("id") == want:
            return dict(frame)


def state(run: Running) -> list[Any]:
    pipeline = run.node.pipeline
    return [(a.pair_id, a.seq, a.snapshot()) for a in pipeline.actors] + [
        pipeline.symbols,
        run.node.bridges[0].core.known if isinstance(run.node.bridges[0], WebSocketBridge) else 0,
    ]


@pytest.fixture
async def running() -> Any:
    run = Running(daemon_text("YYY/XXX", "ZZZ/XXX") + WS)
    await run.start()
    yield run
    await run.shutdown()


async def test_a_pair_added_over_websocket_warms_and_equals_a_pair_run_from_the_start(
    running: Running,
) -> None:
    table = prices(50)
    await feed_bars(running, table[:30], 0)
    async with connect(ws_url(running), additional_headers=AUTH) as ws:
        reply = await ask(ws, {"action": "add_pair", "pair": "ZZZ/YYY", "mode": "log"})
        assert reply["ok"] and reply["action"] == "add_pair" and reply["pair"] == "ZZZ/YYY"
        assert reply["warm_bars"] == 30
        await ws.send('{"action":"subscribe","pairs":["ZZZ/YYY"]}')
        listed = await ask(ws, {"action": "list_pairs"})
    assert [p["pair"] for p in listed["pairs"]] == ["YYY/XXX", "ZZZ/XXX", "ZZZ/YYY"]
    assert listed["pairs"][2]["seq"] == 0 and listed["pairs"][2]["mode"] == "log"
    await feed_bars(running, table[30:], 30)

    added = [e for e in ratios_of(running) if e["pair"] == "ZZZ/YYY"]
    assert [e["seq"] for e in added] == list(range(1, 21))
    # the same bars through a pipeline that ran the pair from the start
    events: list[Event] = []
    params = running.node.pipeline.actors[-1].params
    assert params.mode is InputMode.LOG
    reference = Pipeline(
        [PairSpec(PairId.parse("ZZZ/YYY"), params)], S, 10 * S, events.append, Rejects()
    )
    for k, row in enumerate(table):
        for i, (symbol, price) in enumerate(zip(SYMBOLS, row, strict=True)):
            ts = T0 + k * S + 1000 * (i + 1)
            reference.on_tick(Tick(symbol, price, ts, ts, venue="test"))
    reference.flush()
    want = [e for e in events if isinstance(e, HedgeRatioEvent)][30:]
    assert len(want) == len(added)
    for got, ref in zip(added, want, strict=True):
        assert got["ts"] == ref.ts
        assert abs(got["beta"] - ref.beta[0]) <= 1e-12
        assert abs(got["alpha"] - ref.alpha) <= 1e-12
    assert any(
        level == "warning" and event == "pair added" for level, event, _ in running.log.records
    )


async def test_a_removed_pair_publishes_nothing_more_and_its_retained_topics_are_cleared(
    running: Running,
) -> None:
    table = prices(20)
    await feed_bars(running, table[:10], 0)
    async with connect(ws_url(running), additional_headers=AUTH) as ws:
        before = len(running.messages)  # (the daemon's start cleared stale alarms of each pair)
        reply = await ask(ws, {"action": "remove_pair", "pair": "ZZZ/XXX"})
        assert reply["ok"] and reply["seq"] == 10
        cleared = [m for m in running.messages[before:] if m.retain and not m.payload]
        assert {m.topic.split("/v1/")[1] for m in cleared} == {
            "ratio/ZZZ/XXX", "alarm/ZZZ/XXX",
        }  # fmt: skip
        await ws.send('{"action":"subscribe","pairs":["ZZZ/XXX"]}')
        refused = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        while refused.get("type") != "error":
            refused = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert "unknown pair" in refused["error"]
    await feed_bars(running, table[10:], 10)
    ratios = ratios_of(running)
    assert max(e["seq"] for e in ratios if e["pair"] == "ZZZ/XXX") == 10
    assert max(e["seq"] for e in ratios if e["pair"] == "YYY/XXX") == 20
    assert running.node.metrics()["control_applied"] == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"action": "remove_pair", "pair": "AAA/XXX"}, "pairs.AAA/XXX: is not running"),
        ({"action": "update_pair", "pair": "AAA/XXX"}, "is not running"),
        ({"action": "add_pair", "pair": "YYY/XXX"}, "is already running"),
        ({"action": "add_pair", "pair": "AAA/XXX", "delta": 2.0}, "pairs.AAA/XXX.delta"),
        ({"action": "add_pair", "pair": "AAA/XXX", "n_legs": 2}, "unknown key"),
        ({"action": "add_pair", "pair": "AAA"}, "bad pair"),
        ({"action": "explode"}, "unknown action"),
        (b'{"action": "add_pair", ', "not valid JSON"),
    ],
)
async def test_bad_control_requests_get_an_error_reply_and_change_nothing(
    running: Running, body: dict[str, Any] | bytes, words: str
) -> None:
    await feed_bars(running, prices(3), 0)
    before = state(running)
    async with connect(ws_url(running), additional_headers=AUTH) as ws:
        if isinstance(body, bytes):
            await ws.send(body.decode())
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            while reply.get("type") == "status":
                reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["type"] == "error"  # not JSON: the bridge's own error frame
        elif body.get("action") == "explode":
            await ws.send(orjson.dumps(body).decode())
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            while reply.get("type") == "status":
                reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["type"] == "error"
        else:
            reply = await ask(ws, body)
            assert reply["ok"] is False and reply["id"] is not None
        assert words in reply["error"]
        assert "\n" not in reply["error"]
        await running.settled()
    assert state(running) == before


async def test_without_the_token_there_is_no_connection_and_without_a_server_token_no_control() -> (
    None
):
    run = Running(daemon_text("YYY/XXX") + "[bus.websocket]\nport = 0\n")
    await run.start()
    try:
        before = state(run)
        async with connect(ws_url(run)) as ws:
            await ws.send('{"action":"add_pair","pair":"ZZZ/XXX","id":"a"}')
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            while reply.get("type") == "status":
                reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply == {
            "type": "control_reply", "id": "a", "ok": False,
            "error": "control needs a server with a token ([bus.websocket] token)",
        }  # fmt: skip
        assert state(run) == before
    finally:
        await run.shutdown()
    secured = Running(daemon_text("YYY/XXX") + WS)
    await secured.start()
    try:
        with pytest.raises(InvalidStatus) as err:
            async with connect(ws_url(secured)):
                pass
        assert err.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            async with connect(ws_url(secured), additional_headers={"Authorization": "Bearer no"}):
                pass
        await eventually(lambda: secured.node.metrics()["ws_unauthorized"] == 2)
        assert [a.pair_id for a in secured.node.pipeline.actors] == ["YYY/XXX"]
    finally:
        await secured.shutdown()


async def test_update_over_websocket_keeps_the_state_for_new_noise_else_rebuilds(
    running: Running,
) -> None:
    await feed_bars(running, prices(25), 0)
    actor = running.node.pipeline.actors[0]
    observations = actor.observations
    async with connect(ws_url(running), additional_headers=AUTH) as ws:
        noise = await ask(ws, {"action": "update_pair", "pair": "YYY/XXX", "delta": 1e-6})
        assert noise["ok"] and noise["kept_state"] and noise["warm_bars"] == 0
        assert running.node.pipeline.actors[0] is actor
        assert actor.observations == observations
        assert actor.params.state_noise()[0, 0] == pytest.approx(1e-6 / (1 - 1e-6), rel=1e-12)
        mode = await ask(ws, {"action": "update_pair", "pair": "YYY/XXX", "mode": "log"})
        assert mode["ok"] and not mode["kept_state"] and mode["warm_bars"] == 25
    rebuilt = running.node.pipeline.actors[0]
    assert rebuilt is not actor and rebuilt.seq == 25
    assert rebuilt.params.mode is InputMode.LOG


async def test_the_shutdown_says_loudly_what_a_restart_forgets() -> None:
    run = Running(daemon_text("YYY/XXX", "ZZZ/XXX") + WS)
    await run.start()
    async with connect(ws_url(run), additional_headers=AUTH) as ws:
        assert (await ask(ws, {"action": "add_pair", "pair": "ZZZ/YYY"}))["ok"]
        assert (await ask(ws, {"action": "remove_pair", "pair": "YYY/XXX"}))["ok"]
    await run.shutdown()
    notes = [
        fields
        for level, event, fields in run.log.records
        if level == "warning" and event.startswith("pairs changed at run time are forgotten")
    ]
    assert notes == [
        {"added": ["ZZZ/YYY"], "removed": ["YYY/XXX"], "running": ["ZZZ/XXX", "ZZZ/YYY"]}
    ]
    started = [fields for _, event, fields in run.log.records if event == "control"]
    assert started == [{"transports": ["websocket"], "history_bars": 2000}]


async def test_an_added_pair_takes_a_position_and_the_files_lots_and_keeps_them_on_update() -> None:
    run = Running(daemon_text("YYY/XXX", "ZZZ/XXX") + WS + "[lots]\nYYY = 5\n")
    await run.start()
    try:
        await feed_bars(run, prices(25), 0)
        async with connect(ws_url(run), additional_headers=AUTH) as ws:
            bad = await ask(ws, {"action": "add_pair", "pair": "ZZZ/YYY", "position": "lots"})
            assert not bad["ok"] and bad["error"].startswith("positions.ZZZ/YYY: must be")
            added = await ask(ws, {"action": "add_pair", "pair": "ZZZ/YYY", "position": 1000})
            assert added["ok"]
            await feed_bars(run, prices(2, seed=8), 25)
            update = await ask(ws, {"action": "update_pair", "pair": "ZZZ/YYY", "mode": "log"})
            assert update["ok"] and not update["kept_state"]
            await feed_bars(run, prices(2, seed=9), 27)
        events = [e for e in ratios_of(run) if e["pair"] == "ZZZ/YYY"]
        assert [e["seq"] for e in events] == [1, 2, 3, 4]
        assert all(e["position"] == 1000 for e in events)
        assert all(e["hedge_qty"] % 5 == 0 and e["hedge_qty"] != 0 for e in events)
        assert events[-1]["mode"] == "log"
    finally:
        await run.shutdown()
