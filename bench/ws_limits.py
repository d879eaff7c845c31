"""The WebSocket bridge's limits against a real daemon: ``hedger run`` (a synthetic feed, one
pair, the WebSocket bridge on a free loopback port) in a subprocess, and N real
``websockets`` clients that each subscribe to M made-up pair ids; the daemon's resident
memory (``VmRSS`` of ``/proc/<pid>/status``) before the clients connect and after every
subscribe was answered, and what the clients were answered. Also: how many of
``--extra-clients`` more connections the daemon accepts.

Run as ``python bench/ws_limits.py`` (defaults: 100 clients x 10,000 pairs, a few seconds).
Linux only (``/proc``). A script, not a test: it reports, never enforces (exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

ROOT = Path(__file__).resolve().parents[1]
RUN = "import sys; from hedger.cli import main; sys.exit(main())"
CHUNK = 2_000  # pair ids per subscribe message (a client message is at most 64 KiB)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Run:
    """What the clients share: how many finished subscribing, and when to let go."""

    def __init__(self) -> None:
        self.subscribed = 0
        self.release = asyncio.Event()


async def client(url: str, index: int, pairs: int, run: Run) -> tuple[int, int, str]:
    """Subscribe to ``pairs`` made-up ids in chunks, then stay connected until released;
    (replies, error replies, the first error)."""
    replies = errors = 0
    first = ""
    counted = False
    try:
        async with connect(url, max_size=None, open_timeout=30) as ws:
            ids = [f"FAKE{index}X{i}/MADEUP{i}" for i in range(pairs)]
            for start in range(0, pairs, CHUNK):
                chunk = ids[start : start + CHUNK]
                await ws.send(orjson.dumps({"action": "subscribe", "pairs": chunk}).decode())
                while True:
                    reply = orjson.loads(await ws.recv())
                    if reply.get("type") in ("subscribed", "error"):
                        break
                replies += 1
                if reply["type"] == "error":
                    errors += 1
                    first = first or reply["error"]
            run.subscribed += 1
            counted = True
            await run.release.wait()
    finally:
        if not counted:
            run.subscribed += 1  # refused or closed: nothing more to wait for
    return replies, errors, first


async def measure(args: argparse.Namespace) -> None:
    port = free_port()
    config = Path(tempfile.mkdtemp(prefix="hedger-wslimits-")) / "hedger.toml"
    config.write_text(
        '[pairs."YYY/XXX"]\n[[feeds]]\nkind = "synthetic"\nrate = 5.0\n'
        f'[bus.websocket]\nhost = "127.0.0.1"\nport = {port}\n[logging]\nlevel = "warning"\n'
    )
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from hedger.cli import main; sys.exit(main())",
            "run",
            "--config",
            str(config),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"ws://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:
                async with connect(url):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the daemon settles after its first client
        before = rss_mb(daemon.pid)
        run = Run()
        tasks = [asyncio.create_task(client(url, i, args.pairs, run)) for i in range(args.clients)]
        while run.subscribed < args.clients:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        after = rss_mb(daemon.pid)
        refused = await extra_clients(url, args.extra_clients)
        run.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        oks = [r for r in results if isinstance(r, tuple)]
        failed = [r for r in results if not isinstance(r, tuple)]
        errors = sum(r[1] for r in oks)
        firsts = sorted({r[2] for r in oks if r[2]})
        print(f"daemon: hedger run, 1 pair, WebSocket bridge on 127.0.0.1:{port}")
        print(f"clients: {args.clients} x {args.pairs} made-up pair ids ({CHUNK} per message)")
        print(f"clients refused or closed: {len(failed)}")
        print(f"subscribe messages answered with an error: {errors} of {sum(r[0] for r in oks)}")
        print(f"first error: {firsts[0] if firsts else None}")
        print(f"daemon RSS: {before:.1f} MB before, {after:.1f} MB after, +{after - before:.1f} MB")
        print(f"{args.extra_clients} more connections while those stay: {refused} refused")
    finally:
        daemon.terminate()
        daemon.wait(30)


async def extra_clients(url: str, n: int) -> int:
    refused = 0
    opened = []
    for _ in range(n):
        try:
            opened.append(await connect(url))
        except InvalidStatus:
            refused += 1
    for ws in opened:
        await ws.close()
    return refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--extra-clients", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
