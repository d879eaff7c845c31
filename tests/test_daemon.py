"""The daemon as a user runs it: `hedger run` in a real process, a real mosquitto, a real
WebSocket client, `hedger subscribe`, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import orjson
import pytest
from websockets.asyncio.client import connect

if TYPE_CHECKING:
    from tests.mosquitto import MosquittoBroker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_toml(broker: MosquittoBroker, ws_port: int, root: str, extra: str = "") -> str:
    return f"""
[bars]
length = "250ms"
max_age = "1s"
[pairs."YYY/XXX"]
intercept = false
delta = 2.5e-7
[pairs."ZZZ/XXX"]
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
[bus]
root = "{root}"
[bus.mqtt]
url = "{broker.url}"
qos = 1
[bus.websocket]
port = {ws_port}
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
    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hedger.cli", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            pytest.fail(f"daemon did not stop within {timeout} s:\n{err[-2000:]}")
        return self.proc.returncode, err


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.communicate()


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


@pytest.mark.slow
async def test_daemon_end_to_end(
    mosquitto: MosquittoBroker, tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    root = f"e2e{os.getpid()}"
    ws_port = free_port()
    daemon = start(tmp_path, daemon_toml(mosquitto, ws_port, root), daemon_factory)
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
    status = await collect(mosquitto.url, f"{root}/v1/status", 1, timeout=2.0)
    assert status[0][1] == b"online"
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
    # 6. SIGTERM: drain, final events, `offline`, exit 0
    started = time.monotonic()
    code, err = await asyncio.to_thread(daemon.stop)
    assert code == 0, err[-3000:]
    assert time.monotonic() - started < 10
    status = await collect(mosquitto.url, f"{root}/v1/status", 1, timeout=2.0)
    assert status[0][1] == b"offline"
    assert '"stopped"' in err


@pytest.mark.slow
async def test_killed_daemon_leaves_offline_by_last_will(
    mosquitto: MosquittoBroker, tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    root = f"will{os.getpid()}"
    daemon = start(tmp_path, daemon_toml(mosquitto, free_port(), root), daemon_factory)
    status = await collect(mosquitto.url, f"{root}/v1/status", 1, timeout=20.0)
    assert status[0][1] == b"online"
    daemon.proc.kill()
    daemon.proc.communicate()
    await asyncio.sleep(0.3)
    status = await collect(mosquitto.url, f"{root}/v1/status", 1, timeout=5.0)
    assert status[0][1] == b"offline"


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
