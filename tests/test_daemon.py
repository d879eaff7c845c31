"""The daemon as a user runs it: `hedger run` in a real process, a real mosquitto, a real
WebSocket client, `hedger subscribe`, signals. The daemon's WebSocket server binds port 0 and
the tests read the bound port from its log."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
import orjson
import pytest
from websockets.asyncio.client import connect

from tests.waiting import eventually

if TYPE_CHECKING:
    from tests.mosquitto import MosquittoBroker


SYNTHETIC_FEEDS = """
[[feeds]]
kind = "synthetic"
y = "YYY"
xs = ["XXX"]
seed = 3
rate = 40.0
alpha = 0.0
[[feeds]]
kind = "synthetic"
y = "ZZZ"
xs = ["XXX"]
seed = 4
rate = 40.0
"""
"""Two live synthetic pairs sharing XXX, 40 ticks a second per symbol."""


def daemon_toml(broker: MosquittoBroker, root: str, extra: str = "") -> str:
    return f"""
[bars]
length = "250ms"
max_age = "1s"
[pairs."YYY/XXX"]
intercept = false
delta = 2.5e-7
[pairs."ZZZ/XXX"]
{SYNTHETIC_FEEDS}
[bus]
root = "{root}"
[bus.mqtt]
url = "{broker.url}"
qos = 1
[bus.websocket]
port = 0
token = "s3cret"
[daemon]
shutdown_timeout = "5s"
metrics_interval = "500ms"
bar_grace = "50ms"
[logging]
level = "info"
json = true
{extra}
"""


class DaemonProcess:
    """`hedger run` in a child process; its log (JSON lines on stderr) is read as it comes."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hedger.cli", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def logged(self, event: str) -> list[dict[str, Any]]:
        """The log records so far whose event is ``event``."""
        records = []
        for line in list(self.lines):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("event") == event:
                records.append(record)
        return records

    async def ws_port(self) -> int:
        """The port the daemon's WebSocket server bound (the config says port 0)."""
        await eventually(lambda: bool(self.logged("websocket listening")), timeout=20.0)
        return int(self.logged("websocket listening")[0]["port"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, str]:
        """Signal the daemon and wait for it to exit (a hang guard, not a timing assert);
        its exit code and log."""
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"daemon did not stop within {timeout} s:\n{''.join(self.lines)[-2000:]}")
        self._reader.join(timeout)
        return self.proc.returncode, "".join(self.lines)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._reader.join(15)


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.kill()


def start(tmp_path: Path, text: str, started: list[DaemonProcess]) -> DaemonProcess:
    path = tmp_path / f"hedger-{len(started)}.toml"
    path.write_text(text)
    daemon = DaemonProcess(path)
    started.append(daemon)
    return daemon


async def collect(
    url: str, topic: str, want: int, timeout: float = 20.0
) -> list[tuple[str, bytes]]:
    host, port = url.removeprefix("mqtt://").split(":")
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(timeout), aiomqtt.Client(host, int(port)) as client:
        await client.subscribe(topic, qos=1)
        async for message in client.messages:
            payload = message.payload
            data = (
                bytes(payload) if isinstance(payload, bytes | bytearray) else str(payload).encode()
            )
            got.append((str(message.topic), data))
            if len(got) >= want:
                break
    return got


def launch(
    broker: MosquittoBroker, tmp_path: Path, started: list[DaemonProcess], name: str
) -> tuple[DaemonProcess, str]:
    """`hedger run` of :func:`daemon_toml` under a topic root of its own; the daemon, the root."""
    root = f"{name}{os.getpid()}"
    return start(tmp_path, daemon_toml(broker, root), started), root


async def status_of(broker: MosquittoBroker, root: str, timeout: float) -> bytes:
    """The retained daemon status under ``root``."""
    [(_, payload)] = await collect(broker.url, f"{root}/v1/status", 1, timeout=timeout)
    return payload


@pytest.mark.slow
async def test_daemon_end_to_end(
    mosquitto: MosquittoBroker, tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    daemon, root = launch(mosquitto, tmp_path, daemon_factory, "e2e")
    ws_port = await daemon.ws_port()
    # 1. ratio events on MQTT, contiguous seq per pair
    messages = await collect(mosquitto.url, f"{root}/v1/ratio/#", 24)
    by_pair: dict[str, list[int]] = {}
    for topic, payload in messages:
        event = orjson.loads(payload)
        assert topic == f"{root}/v1/ratio/{event['pair']}"
        by_pair.setdefault(event["pair"], []).append(event["seq"])
    assert set(by_pair) == {"YYY/XXX", "ZZZ/XXX"}
    for seqs in by_pair.values():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    # 2. a late subscriber gets the retained ratio of every pair at once
    late = await collect(mosquitto.url, f"{root}/v1/ratio/#", 2, timeout=2.0)
    assert {orjson.loads(p)["pair"] for _, p in late} == {"YYY/XXX", "ZZZ/XXX"}
    assert await status_of(mosquitto, root, timeout=2.0) == b"online"
    # 3. the WebSocket server: a bearer token, a subscription, the same events
    headers = {"Authorization": "Bearer s3cret"}
    async with (
        asyncio.timeout(10),
        connect(f"ws://127.0.0.1:{ws_port}", additional_headers=headers) as ws,
    ):
        await ws.send(orjson.dumps({"action": "subscribe", "pairs": ["YYY/XXX"]}).decode())
        seen: list[dict[str, object]] = []
        while len(seen) < 6:
            obj = orjson.loads(await ws.recv())
            if obj.get("type") in ("hedge_ratio", "spread"):
                assert obj["pair"] == "YYY/XXX"
                seen.append(obj)
    # 4. metrics in Prometheus text on /metrics
    reader, writer = await asyncio.open_connection("127.0.0.1", ws_port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n")
    await writer.drain()
    body = (await asyncio.wait_for(reader.read(65536), 5)).decode()
    writer.close()
    assert "200" in body.splitlines()[0] and "hedger_ticks_in" in body
    # 5. `hedger subscribe --json` reads the same ratios
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hedger.cli", "subscribe", "--broker", mosquitto.url,
         "--root", root, "--json", "--count", "4"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert sum(1 for e in lines if e.get("type") == "hedge_ratio") >= 3
    # 6. SIGTERM: the feeds stop, the bridges drain everything, `offline`, exit 0
    code, err = await asyncio.to_thread(daemon.stop)
    assert code == 0, err[-3000:]
    assert daemon.logged("stopping") and daemon.logged("stopped")
    assert daemon.logged("undelivered at shutdown") == [], err[-3000:]
    assert await status_of(mosquitto, root, timeout=2.0) == b"offline"


@pytest.mark.slow
async def test_killed_daemon_leaves_offline_by_last_will(
    mosquitto: MosquittoBroker, tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    daemon, root = launch(mosquitto, tmp_path, daemon_factory, "will")
    assert await status_of(mosquitto, root, timeout=20.0) == b"online"
    daemon.kill()

    async def offline() -> bool:  # the broker publishes the will once it sees the socket close
        return await status_of(mosquitto, root, timeout=5.0) == b"offline"

    await eventually(offline, timeout=10.0, what="status offline by the last will")


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[pairs."A/B"]\n[[feeds]]\nkind = "synthetic"\n[bus.mqtt]\nqos = 5\n')
    result = subprocess.run(
        [sys.executable, "-m", "hedger.cli", "run", "--config", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "hedger run: bus.mqtt.qos: must be 0, 1 or 2"
    missing = subprocess.run(
        [sys.executable, "-m", "hedger.cli", "run", "--config", str(tmp_path / "nope.toml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_a_transport_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "busy.toml"
        path.write_text(
            f'[pairs."YYY/XXX"]\n[[feeds]]\nkind = "synthetic"\n[bus.websocket]\nport = {port}\n'
        )
        result = subprocess.run(
            [sys.executable, "-m", "hedger.cli", "run", "--config", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hedger run:") and "Traceback" not in result.stderr
