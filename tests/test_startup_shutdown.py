"""Start-up and shutdown of the real CLI in a subprocess: a transport that cannot start is one
line naming it and exit status 1, every time (20 starts, a real mosquitto configured and the
WebSocket port taken); SIGTERM and SIGINT end the daemon with a stuck real websockets client
(one that never reads), and the log counts what that client was not sent.

Every wait on a process is a hang guard, not a timing assert; the seconds are in
docs/reliability.md ("Dead feeds, start-up and shutdown").
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.test_daemon import DaemonProcess, start
from tests.waiting import eventually

if TYPE_CHECKING:
    from tests.mosquitto import MosquittoBroker


def busy_config(broker_url: str, port: int) -> str:
    return f"""
[pairs."YYY/XXX"]
[[feeds]]
kind = "synthetic"
[bus.mqtt]
url = "{broker_url}"
[bus.websocket]
host = "127.0.0.1"
port = {port}
"""


@pytest.mark.slow
def test_a_websocket_port_in_use_is_one_line_and_exit_1_every_time(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "busy.toml"
        path.write_text(busy_config(mosquitto.url, port))
        for _ in range(20):
            result = subprocess.run(
                [sys.executable, "-m", "hedger.cli", "run", "--config", str(path)],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert result.returncode == 1, result.stderr
            lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith("hedger run: websocket ws://127.0.0.1:")
            assert str(port) in lines[0] and "address already in use" in lines[0]


XS = [f"X{i}" for i in range(39)]


def busy_daemon() -> str:
    """A 40-symbol matrix (large frames) and a pair on 50 ms bars: a client that never reads
    soon has its socket full and frames waiting."""
    symbols = orjson.dumps(["Y", *XS]).decode()
    return f"""
[bars]
length = "50ms"
max_age = "1s"
[pairs."Y/X0"]
[matrix]
symbols = {symbols}
[[feeds]]
kind = "synthetic"
y = "Y"
xs = {orjson.dumps(XS).decode()}
rate = 40.0
[bus.websocket]
host = "127.0.0.1"
port = 0
[daemon]
shutdown_timeout = "2s"
metrics_interval = "500ms"
bar_grace = "5ms"
[logging]
level = "info"
json = true
"""


def ws_queued(port: int) -> float:
    """``hedger_ws_queued`` from the daemon's /metrics: frames waiting for clients."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        text = page.read().decode()
    for line in text.splitlines():
        if line.startswith("hedger_ws_queued "):
            return float(line.split()[1])
    return 0.0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stuck_websocket_client_does_not_hold_the_shutdown(
    tmp_path: Path, daemons: list[DaemonProcess], sig: int
) -> None:
    daemon = start(tmp_path, busy_daemon(), daemons)
    port = await daemon.ws_port()
    # a client that never reads: a tiny receive buffer, and reading paused after one frame
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    async with connect(f"ws://127.0.0.1:{port}/", sock=sock, max_queue=1, open_timeout=60) as ws:
        subscribe = {"action": "subscribe", "pairs": ["*"], "matrix": True}
        await ws.send(orjson.dumps(subscribe).decode())
        await eventually(lambda: ws_queued(port) > 20, timeout=30, what="the client stuck")
        code, log = daemon.stop(sig, timeout=30)  # a hang guard
    assert code == 0, log[-2000:]
    [undelivered] = daemon.logged("undelivered at shutdown")
    assert undelivered["bridge"] == "ws" and undelivered["left"] > 0
    [stopped] = daemon.logged("stopped")
    assert "shutdown_s" in stopped
