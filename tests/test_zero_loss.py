"""Zero loss to subscribers, with real processes: ``hedger run`` with [state] publishing on a
mosquitto without persistence, ``hedger subscribe --json`` reading it, the broker SIGKILLed
five times mid-stream (each time it forgets every session and message): the subscriber fills
each gap from the daemon's event journal and ends with every seq of every pair, once and in
order (the subscriber is stopped, SIGSTOP, across each kill until the daemon has published
past it, so each kill leaves a gap to fill)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import aiomqtt
import pytest

from hedger.runtime.state.checkpoint import CheckpointStore
from tests.mosquitto import MosquittoBroker
from tests.test_daemon import SYNTHETIC_FEEDS, DaemonProcess, start
from tests.waiting import eventually

pytest_plugins = ["tests.mosquitto"]

PAIRS = ("YYY/XXX", "ZZZ/XXX")


class Subscriber:
    """``hedger subscribe --json`` in a child process; its stdout and stderr lines as they
    come."""

    def __init__(self, broker: MosquittoBroker, root: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hedger.cli", "subscribe", "--broker", broker.url,
             "--root", root, "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)

    def seqs(self, pair: str) -> list[int]:
        found = []
        for line in list(self.out):
            event = json.loads(line)
            if event.get("type") == "hedge_ratio" and event["pair"] == pair:
                found.append(event["seq"])
        return found

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


async def published_past(broker: MosquittoBroker, root: str, seq: int) -> None:
    """Until the daemon has published a ratio of seq ``seq`` or later through ``broker``."""
    async with asyncio.timeout(30.0), aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(f"{root}/v1/ratio/#", qos=1)
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, bytes) and payload and json.loads(payload)["seq"] >= seq:
                return


@pytest.mark.slow
async def test_a_subscriber_ends_with_every_seq_across_five_kills_of_a_broker_without_persistence(
    tmp_path: Path, mosquitto: MosquittoBroker, daemons: list[DaemonProcess]
) -> None:
    root = f"z{os.getpid()}"
    state = tmp_path / "state"
    daemon = start(tmp_path, f"""
[bars]
length = "250ms"
max_age = "1s"
[pairs."YYY/XXX"]
[pairs."ZZZ/XXX"]
{SYNTHETIC_FEEDS}
[bus]
root = "{root}"
[bus.mqtt]
url = "{mosquitto.url}"
[daemon]
metrics_interval = "500ms"
bar_grace = "50ms"
[state]
dir = "{state}"
[logging]
level = "info"
json = true
""", daemons)  # fmt: skip
    subscriber = Subscriber(mosquitto, root)
    try:
        for kill in range(5):
            seen = max((max(subscriber.seqs(p), default=0) for p in PAIRS), default=0)

            def moving(before: int = seen) -> bool:
                return all(max(subscriber.seqs(p), default=0) > before + 2 for p in PAIRS)

            await eventually(moving, timeout=30.0, what=f"events before kill {kill + 1}")
            # the subscriber is away while the broker dies and comes back empty, and the
            # daemon publishes on: those bars never reach it through the broker
            subscriber.proc.send_signal(signal.SIGSTOP)
            mosquitto.kill()  # no persistence: the broker forgets every session and message
            mosquitto.start()
            away = max(subscriber.seqs(PAIRS[0]), default=0)
            await published_past(mosquitto, root, away + 3)
            subscriber.proc.send_signal(signal.SIGCONT)
        last = max(subscriber.seqs(PAIRS[0]), default=0)

        def moved_on() -> bool:
            return all(max(subscriber.seqs(p), default=0) > last + 4 for p in PAIRS)

        await eventually(moved_on, timeout=30.0, what="events after the last kill")
        code, log = daemon.stop()
        assert code == 0, log[-2000:]
        loaded = CheckpointStore(state / "checkpoints").load()
        assert loaded is not None
        final = {pair: loaded.body["pairs"][pair]["state"]["seq"] for pair in PAIRS}

        def complete() -> bool:
            return all(max(subscriber.seqs(p), default=0) >= final[p] for p in PAIRS)

        await eventually(complete, timeout=30.0, what="the daemon's last bars")
    finally:
        subscriber.close()
    notes = "".join(subscriber.err)
    for pair in PAIRS:
        assert subscriber.seqs(pair) == list(range(1, final[pair] + 1)), (pair, notes[-2000:])
    assert notes.count("hedger subscribe: filled ") >= 5, notes[-2000:]
    assert "could not fill" not in notes
