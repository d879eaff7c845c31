"""Probe ``hedger run`` start-up and shutdown on loopback, with the real CLI in subprocesses.

Run as ``python bench/probe_startup_shutdown.py [--starts 15] [--stops 3]`` (about a minute;
needs ``mosquitto``). A script, not a test: it reports, it asserts nothing (exit status 0).
The figures are in docs/reliability.md, "Dead feeds, start-up and shutdown".

* Start-up: ``--starts`` starts of a daemon with MQTT configured (a mosquitto of the probe's
  own on a free port) and its WebSocket port taken. Each start gets 10 s; one still running
  then is sent SIGTERM and 5 s more, then killed. Counted: exits (with their status and
  last stderr line), hangs that SIGTERM ended, hangs that ignored SIGTERM.
* Shutdown: ``--stops`` daemons (a 40-symbol matrix on 50 ms bars, ``shutdown_timeout`` 2 s)
  with one real websockets client that never reads (a 4 KiB receive buffer, reading paused
  after one frame) and is sent frames until its queue holds more than 20; then SIGTERM, and
  the seconds from the signal to the process's exit, and what the log said was left.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.mosquitto import MosquittoBroker
from tests.test_daemon import DaemonProcess
from tests.test_startup_shutdown import busy_config, busy_daemon, ws_queued


def startups(n: int) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    with MosquittoBroker() as broker, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        path = Path(tempfile.mkdtemp()) / "busy.toml"
        path.write_text(busy_config(broker.url, taken.getsockname()[1]))
        for _ in range(n):
            proc = subprocess.Popen(
                [sys.executable, "-m", "hedger.cli", "run", "--config", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                _, err = proc.communicate(timeout=10)
                lines = [line for line in err.splitlines() if not line.startswith("{")]
                last = lines[-1][:60] if lines else ""
                key = f"exit {proc.returncode}, {len(lines)} line(s): {last}"
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=5)
                    key = "hung; SIGTERM ended it"
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    key = "hung; ignored SIGTERM (killed)"
            outcomes[key] = outcomes.get(key, 0) + 1
    return outcomes


async def stuck_stop() -> tuple[float, int | None, float | None]:
    path = Path(tempfile.mkdtemp()) / "stuck.toml"
    path.write_text(busy_daemon())
    daemon = DaemonProcess(path)
    try:
        await asyncio.wait_for(daemon.ws_port(), 60)
        port = await daemon.ws_port()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        async with connect(
            f"ws://127.0.0.1:{port}/", sock=sock, max_queue=1, open_timeout=60
        ) as ws:
            await ws.send(
                orjson.dumps({"action": "subscribe", "pairs": ["*"], "matrix": True}).decode()
            )
            deadline = time.monotonic() + 60
            while ws_queued(port) <= 20 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            began = time.monotonic()
            daemon.proc.send_signal(signal.SIGTERM)
            while daemon.proc.poll() is None and time.monotonic() - began < 30:
                await asyncio.sleep(0.01)
            took = time.monotonic() - began
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    left = [r.get("left") for r in daemon.logged("undelivered at shutdown")]
    stopped = [r.get("shutdown_s") for r in daemon.logged("stopped")]
    return took, (left[0] if left else None), (stopped[0] if stopped else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=15)
    parser.add_argument("--stops", type=int, default=3)
    args = parser.parse_args()
    print(f"## start-up: {args.starts} starts, WebSocket port taken, MQTT configured\n")
    for key, count in startups(args.starts).items():
        print(f"- {count} x {key}")
    print("\n## shutdown: SIGTERM with one stuck websockets client, shutdown_timeout 2 s\n")
    print("| run | signal to exit (s) | logged left | logged shutdown_s |")
    print("|---|---|---|---|")
    for i in range(args.stops):
        took, left, shutdown_s = asyncio.run(stuck_stop())
        print(f"| {i + 1} | {took:.2f} | {left} | {shutdown_s} |")


if __name__ == "__main__":
    main()
