"""The subscriber's bookkeeping: repeats dropped, gaps reported, a restarted daemon followed;
and against a real mosquitto: the daemon's status (offline too, retained for a late
subscriber) shown, and rows that keep ageing without new messages."""

from __future__ import annotations

import asyncio
import io
import math

import orjson

from hedger.cli.subscribe import RatioBoard, run_subscribe
from hedger.core.bus import Message
from hedger.runtime.bridges.mqtt import MqttBridge
from tests.mosquitto import MosquittoBroker
from tests.waiting import eventually


def ratio(pair: str, seq: int, ts: int, beta: float = 1.0) -> bytes:
    return orjson.dumps(
        {
            "type": "hedge_ratio",
            "version": 1,
            "pair": pair,
            "seq": seq,
            "ts": ts,
            "beta": beta,
            "alpha": 0.0,
            "cov": [[1.0]],
            "beta_std": 0.1,
            "warm": True,
            "stale": False,
        }
    )


def test_repeats_gaps_and_restarts() -> None:
    board = RatioBoard()
    assert board.accept(ratio("A/B", 7, 700), 0.0) == (orjson.loads(ratio("A/B", 7, 700)), 0)
    assert board.accept(ratio("A/B", 7, 700), 0.1)[0] is None  # the retained copy again
    event, missed = board.accept(ratio("A/B", 10, 1000), 0.2)
    assert event is not None and missed == 2
    view = board.pairs["A/B"]
    assert (view.gaps, view.missing, view.repeats) == (1, 2, 1)
    # the daemon restarted: seq counts from 1 again, on newer bars
    event, missed = board.accept(ratio("A/B", 1, 2000, beta=1.2), 0.3)
    assert event is not None and event["beta"] == 1.2 and missed == 0
    assert view.restarts == 1
    assert board.accept(ratio("A/B", 2, 2100), 0.4)[0] is not None
    assert "A/B" in board.render(1.0, "mqtt://x") and "1.00000" in board.render_line("A/B", 1.0)


def test_a_combined_pair_shows_its_weights() -> None:
    board = RatioBoard()
    event = orjson.loads(ratio("A/B", 1, 100))
    event["combination"] = {
        "members": ["self", "seed", "chan", "rolling"],
        "weights": [0.273, 0.15, 0.189, 0.388],
        "hedges": [0.71, 0.709, None, 0.713],
    }
    assert board.accept(orjson.dumps(event), 0.0)[0] is not None
    line = board.render_line("A/B", 0.5)
    assert line.endswith("combined self 0.27 seed 0.15 chan 0.19 rolling 0.39")
    event.update(seq=2, ts=200, combination={"members": "?"})  # malformed: shown, not fatal
    assert board.accept(orjson.dumps(event), 1.0)[0] is not None
    assert board.render_line("A/B", 1.5).endswith("combined ?")


def test_malformed_messages_are_counted() -> None:
    board = RatioBoard()
    for payload in (b"not json", b"[1, 2]", b'{"type": "spread"}', b'{"type": "hedge_ratio"}'):
        assert board.accept(payload, 0.0) == (None, 0)
    assert board.malformed == 4


class Screen(io.StringIO):
    """What a terminal would show: the frames of the live table."""

    def frames(self) -> list[str]:
        return [f for f in self.getvalue().split("\x1b[H\x1b[2J") if f]

    def last(self) -> str:
        frames = self.frames()
        return frames[-1] if frames else ""


def _age(frame: str, pair: str) -> float:
    row = next(line for line in frame.splitlines() if line.startswith(pair))
    return float(row.split()[-1].rstrip("s")) if row.split()[-1].endswith("s") else math.nan


async def test_the_live_table_follows_the_daemon_going_offline_and_keeps_ageing(
    mosquitto: MosquittoBroker,
) -> None:
    root = "sub-offline"
    bridge = MqttBridge(mosquitto.url, root=root)  # the daemon's publisher: online, then offline
    screen = Screen()
    async with bridge:
        await eventually(lambda: bridge.connected)
        bridge.outbox.put(Message(f"{root}/v1/ratio/A/B", ratio("A/B", 1, 100), retain=True))
        task = asyncio.create_task(
            run_subscribe(
                mosquitto.url,
                root,
                [],
                as_json=False,
                out=screen,
                err=io.StringIO(),
                live=True,
                refresh=0.05,
            )
        )
        await eventually(lambda: "daemon: online" in screen.last() and "A/B" in screen.last())
    # the bridge closed: it published offline; the table says so without any new ratio
    await eventually(lambda: "daemon: offline" in screen.last(), what="offline shown")
    first = _age(screen.last(), "A/B")
    await eventually(lambda: _age(screen.last(), "A/B") > first, what="the row keeps ageing")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_late_subscriber_shows_the_retained_status(mosquitto: MosquittoBroker) -> None:
    root = "sub-late"
    bridge = MqttBridge(mosquitto.url, root=root)
    async with bridge:
        await eventually(lambda: bridge.connected)
        bridge.outbox.put(Message(f"{root}/v1/ratio/A/B", ratio("A/B", 3, 300), retain=True))
    out = io.StringIO()  # not a terminal: one line per ratio, a line per status change
    task = asyncio.create_task(
        run_subscribe(mosquitto.url, root, [], as_json=False, out=out, err=io.StringIO())
    )
    await eventually(lambda: "daemon: offline" in out.getvalue() and "A/B" in out.getvalue())
    screen = Screen()
    live = asyncio.create_task(
        run_subscribe(
            mosquitto.url,
            root,
            ["A/B"],
            as_json=False,
            out=screen,
            err=io.StringIO(),
            live=True,
            refresh=0.05,
        )
    )
    await eventually(lambda: "daemon: offline" in screen.last() and "A/B" in screen.last())
    for running in (task, live):
        running.cancel()
    await asyncio.gather(task, live, return_exceptions=True)
