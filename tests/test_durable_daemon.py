"""A daemon with [state], as the README's tour runs it: a real ``hedger run`` on the
synthetic feeds answers a WebSocket ``replay`` with the bytes it published, and a SIGKILL
costs it nothing: the next start resumes warm from its checkpoint and journal and goes on
with the next seq (a cold start would begin again at 1); a state directory it cannot use is
one line and exit status 2."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import run_hedger
from tests.test_daemon import SYNTHETIC_FEEDS, DaemonProcess, start


def durable_toml(state: Path) -> str:
    return f"""
[bars]
length = "250ms"
max_age = "1s"
[pairs."YYY/XXX"]
intercept = false
delta = 2.5e-7
[pairs."ZZZ/XXX"]
{SYNTHETIC_FEEDS}
[bus.websocket]
port = 0
[daemon]
metrics_interval = "500ms"
bar_grace = "50ms"
[state]
dir = "{state}"
checkpoint_bars = 4
checkpoint_interval = "1s"
[logging]
level = "info"
json = true
"""


async def frames_until(
    ws: ClientConnection, pair: str, seq: int, *, warm: bool = False
) -> list[dict[str, Any]]:
    """Event frames (decoded, with their bytes under ``"raw"``) until ``pair``'s ratio of
    ``seq`` or later (and warm, with ``warm``)."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(30.0):
        while True:
            data = await ws.recv()
            assert isinstance(data, str)
            frame = orjson.loads(data)
            frame["raw"] = data
            got.append(frame)
            is_ratio = frame.get("type") == "hedge_ratio" and frame["pair"] == pair
            if is_ratio and frame["seq"] >= seq and (frame["warm"] or not warm):
                return got


async def test_a_daemon_answers_a_replay_with_its_bytes_and_resumes_warm_after_a_sigkill(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    state = tmp_path / "state"
    first = start(tmp_path, durable_toml(state), daemons)
    port = await first.ws_port()
    async with connect(f"ws://127.0.0.1:{port}") as ws:
        await ws.send('{"action": "subscribe", "pairs": ["YYY/XXX"]}')
        frames = await frames_until(ws, "YYY/XXX", 12, warm=True)
        seen = {
            (f["type"], f["seq"]): f["raw"]
            for f in frames
            if f.get("type") in ("hedge_ratio", "spread")
        }
        last = max(seq for kind, seq in seen if kind == "hedge_ratio")
        low = last - 5  # bars whose ratio and spread both came while subscribed
        await ws.send(
            orjson.dumps(
                {"action": "replay", "id": 1, "pair": "YYY/XXX", "from_seq": low, "to_seq": low + 3}
            ).decode()
        )
        answer: list[str] = []
        async with asyncio.timeout(10.0):
            while True:
                data = await ws.recv()
                assert isinstance(data, str)
                frame = orjson.loads(data)
                if frame.get("type") == "replayed":
                    break
                if frame.get("type") in ("hedge_ratio", "spread") and frame["seq"] <= low + 3:
                    answer.append(data)
    assert frame["events"] == 8 and frame["id"] == 1
    assert sorted(answer) == sorted(
        seen[(t, s)] for t in ("hedge_ratio", "spread") for s in range(low, low + 4)
    )
    assert first.logged("started fresh") and not first.logged("resumed")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    killed_at = last

    second = start(tmp_path, durable_toml(state), daemons)
    port = await second.ws_port()
    async with connect(f"ws://127.0.0.1:{port}") as ws:
        await ws.send('{"action": "subscribe", "pairs": ["YYY/XXX"]}')
        frames = await frames_until(ws, "YYY/XXX", killed_at + 1)
    resumed = second.logged("resumed")
    assert resumed and resumed[0]["pairs_resumed"] == 2, second.lines[-20:]
    ratios = [f for f in frames if f.get("type") == "hedge_ratio"]
    # the seq goes on from the killed run's, warm from the first bar (a cold start would
    # publish seq 1, warming up for 20 bars)
    assert ratios[0]["seq"] > killed_at - 8 and all(r["warm"] for r in ratios)
    code, log = second.stop()
    assert code == 0, log[-2000:]


def test_a_state_directory_that_cannot_be_used_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = tmp_path / "hedger.toml"
    config.write_text(durable_toml(blocker / "state"))
    result = run_hedger("run", "--config", str(config), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("hedger run: state.dir: ")
    assert "Traceback" not in result.stderr
