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

    def __init__(self, broker: MosquittoBroker, root: str, *options: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hedger.cli", "subscribe", "--broker", broker.url,
             "--root", root, "--json", *options],
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

    def missing(self, final: dict[str, int]) -> int:
        """The seqs up to each pair's ``final`` it never printed."""
        return sum(len(set(range(1, last + 1)) - set(self.seqs(p))) for p, last in final.items())

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


def daemon_toml(broker: MosquittoBroker, root: str, state: Path) -> str:
    return f"""
[bars]
length = "250ms"
max_age = "1s"
[pairs."YYY/XXX"]
[pairs."ZZZ/XXX"]
{SYNTHETIC_FEEDS}
[bus]
root = "{root}"
[bus.mqtt]
url = "{broker.url}"
[daemon]
metrics_interval = "500ms"
bar_grace = "50ms"
[state]
dir = "{state}"
[logging]
level = "info"
json = true
"""


async def through_broker_kills(
    broker: MosquittoBroker,
    tmp_path: Path,
    daemons: list[DaemonProcess],
    subscribers: dict[str, tuple[str, ...]],
    kills: int = 5,
) -> tuple[dict[str, Subscriber], dict[str, int]]:
    """A daemon with [state] on ``broker`` and ``hedger subscribe --json`` processes with the
    given options; the broker SIGKILLed ``kills`` times with the subscribers stopped across
    each kill until the daemon has published past them (so each kill leaves a gap: bars the
    broker acknowledged while they were away and lost with it, unless it keeps sessions);
    then the daemon stopped. The subscribers (closed) and each pair's final seq."""
    root = f"z{os.getpid()}{len(daemons)}"
    state = tmp_path / f"state{len(daemons)}"
    daemon = start(tmp_path, daemon_toml(broker, root, state), daemons)
    running = {name: Subscriber(broker, root, *options) for name, options in subscribers.items()}
    first = next(iter(running.values()))
    try:
        for kill in range(kills):
            seen = max((max(first.seqs(p), default=0) for p in PAIRS), default=0)

            def moving(before: int = seen) -> bool:
                return all(
                    max(sub.seqs(p), default=0) > before + 2
                    for sub in running.values()
                    for p in PAIRS
                )

            await eventually(moving, timeout=30.0, what=f"events before kill {kill + 1}")
            for sub in running.values():
                sub.proc.send_signal(signal.SIGSTOP)
            broker.kill()
            broker.start()
            away = max(max(sub.seqs(PAIRS[0]), default=0) for sub in running.values())
            await published_past(broker, root, away + 3)
            for sub in running.values():
                sub.proc.send_signal(signal.SIGCONT)
        last = max(first.seqs(PAIRS[0]), default=0)

        def moved_on() -> bool:
            return all(max(first.seqs(p), default=0) > last + 4 for p in PAIRS)

        await eventually(moved_on, timeout=30.0, what="events after the last kill")
        code, log = daemon.stop()
        assert code == 0, log[-2000:]
        loaded = CheckpointStore(state / "checkpoints").load()
        assert loaded is not None
        final = {pair: loaded.body["pairs"][pair]["state"]["seq"] for pair in PAIRS}

        def complete() -> bool:
            return all(
                max(sub.seqs(p), default=0) >= final[p] for sub in running.values() for p in PAIRS
            )

        await eventually(complete, timeout=30.0, what="the daemon's last bars")
    finally:
        for sub in running.values():
            sub.close()
    return running, final


@pytest.mark.slow
async def test_a_subscriber_ends_with_every_seq_across_five_kills_of_a_broker_without_persistence(
    tmp_path: Path, mosquitto: MosquittoBroker, daemons: list[DaemonProcess]
) -> None:
    subscribers, final = await through_broker_kills(
        mosquitto, tmp_path, daemons, {"filling": (), "not filling": ("--no-gap-fill",)}
    )
    filling, plain = subscribers["filling"], subscribers["not filling"]
    notes = "".join(filling.err)
    for pair in PAIRS:
        assert filling.seqs(pair) == list(range(1, final[pair] + 1)), (pair, notes[-2000:])
    assert notes.count("hedger subscribe: filled ") >= 5, notes[-2000:]
    assert "could not fill" not in notes
    # the kills did cost events: the same subscriber without gap fill lacks some
    assert plain.missing(final) > 0
    assert "gap of" in "".join(plain.err)
