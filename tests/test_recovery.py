"""Crash recovery with real processes: a tick stream published to a real mosquitto, two
``hedger run`` daemons on it (persistent MQTT sessions, [state]); one is SIGKILLed at five
random points and restarted each time, the other never stops. At the end both hold the same
state (to 1e-12), the killed one's event stream has no hole in any pair's seq, and a bar it
published twice around a crash is byte-identical. Then ``hedger replay`` of its tick journal
gives its events, field for field, ``ts_init`` aside."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hedger.runtime.state.checkpoint import CheckpointStore
from tests.conftest import run_hedger
from tests.mosquitto import MosquittoBroker
from tests.test_bank_path import assert_close
from tests.test_daemon import DaemonProcess, start
from tests.waiting import eventually

pytest_plugins = ["tests.mosquitto"]

SYMBOLS = ("AAA", "BBB", "CCC")
PAIRS = ("AAA/BBB", "CCC/BBB")


def daemon_toml(broker: MosquittoBroker, name: str, ticks_root: str, state: Path | None) -> str:
    """A daemon on the tick topics under ``ticks_root``, publishing under the root ``name``;
    with ``state``: a persistent feed session and [state] there (without: no state kept, as
    before checkpoints existed)."""
    durable = "true" if state is not None else "false"
    kept = (
        ""
        if state is None
        else f"""
[state]
dir = "{state}"
checkpoint_bars = 3
checkpoint_interval = "2s"
"""
    )
    return f"""
[bars]
length = "1s"
max_age = "3s"
[filter]
warmup = 10
[pairs."AAA/BBB"]
[pairs."CCC/BBB"]
mode = "returns"
[alarm]
burn_in = 20
[[feeds]]
kind = "mqtt"
url = "{broker.url}"
topics = ["{ticks_root}/#"]
client_id = "{name}-feed"
persistent = {durable}
[bus]
root = "{name}"
[bus.mqtt]
url = "{broker.url}"
[daemon]
bar_grace = "400ms"
metrics_interval = "500ms"
shutdown_timeout = "10s"
{kept}
[logging]
level = "info"
json = true
"""


def prices(seed: int, n: int) -> list[tuple[str, float]]:
    """A recorded stream of (symbol, price): BBB a random walk, AAA about 2 BBB and CCC about
    0.4 BBB plus noise of their own, one symbol ticking at a time."""
    rng = random.Random(seed)
    b, noise_a, noise_c = 50.0, 0.0, 0.0
    out = []
    for _ in range(n):
        symbol = rng.choice(SYMBOLS)
        b *= math.exp(rng.gauss(0.0, 0.002))
        noise_a += rng.gauss(0.0, 0.02)
        noise_c += rng.gauss(0.0, 0.01)
        price = {"AAA": 2.0 * b + noise_a, "BBB": b, "CCC": 0.4 * b + 1.0 + noise_c}[symbol]
        out.append((symbol, round(price, 4)))
    return out


async def publish(
    broker: MosquittoBroker, root: str, stream: list[tuple[str, float]], rate: float
) -> None:
    """Publish the stream at ``rate`` ticks per second, each stamped with the wall time it is
    sent at (as a live source would), QoS 1."""
    async with aiomqtt.Client(broker.host, broker.port) as client:
        started = time.monotonic()
        for i, (symbol, price) in enumerate(stream):
            due = started + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the source, not waiting for a result
            tick = {"ts": time.time_ns(), "symbol": symbol, "price": price, "size": 1}
            await client.publish(f"{root}/{symbol}", json.dumps(tick), qos=1)


class Collector:
    """A persistent QoS 1 subscriber of one daemon's ratio and spread topics: every payload
    by (type, pair, seq)."""

    def __init__(self, broker: MosquittoBroker, root: str) -> None:
        self.broker = broker
        self.root = root
        self.payloads: dict[tuple[str, str, int], list[bytes]] = defaultdict(list)
        self.stopping = False

    async def run(self) -> None:
        while not self.stopping:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    identifier=f"{self.root}-collector",
                    clean_session=False,
                ) as client:
                    await client.subscribe(f"{self.root}/v1/ratio/#", qos=1)
                    await client.subscribe(f"{self.root}/v1/spread/#", qos=1)
                    async for message in client.messages:
                        payload = bytes(message.payload)
                        if not payload or message.retain:
                            continue
                        event = json.loads(payload)
                        key = (event["type"], event["pair"], event["seq"])
                        self.payloads[key].append(payload)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)  # the broker went away: reconnect


async def wait_for_ticks(broker: MosquittoBroker, root: str, want: int, timeout: float) -> int:
    """Read the daemon's metrics messages until its ``ticks_in`` reaches ``want``; the last
    count seen (the caller asserts it)."""
    seen = -1
    try:
        async with asyncio.timeout(timeout), aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe(f"{root}/v1/metrics", qos=0)
            async for message in client.messages:
                seen = int(json.loads(bytes(message.payload))["ticks_in"])
                if seen >= want:
                    break
    except TimeoutError:
        pass
    return seen


def started(daemon: DaemonProcess) -> list[dict[str, Any]]:
    """The daemon's log of its start: what it resumed from, what it replayed."""
    return daemon.logged("resumed") + daemon.logged("started fresh")


def final_states(state: Path) -> dict[str, Any]:
    """Each pair's state in the daemon's last checkpoint."""
    loaded = CheckpointStore(state / "checkpoints").load()
    assert loaded is not None
    return {pair: entry["state"] for pair, entry in loaded.body["pairs"].items()}


@pytest.mark.slow
async def test_a_daemon_killed_five_times_ends_where_one_that_never_stopped_ends(
    tmp_path: Path, mosquitto: MosquittoBroker, daemons: list[DaemonProcess]
) -> None:
    tag = f"r{os.getpid()}"
    ticks_root = f"ticks{tag}"
    stream = prices(7, 700)
    twin_state, victim_state = tmp_path / "twin", tmp_path / "victim"
    twin = start(tmp_path, daemon_toml(mosquitto, f"twin{tag}", ticks_root, twin_state), daemons)
    victim_toml = daemon_toml(mosquitto, f"victim{tag}", ticks_root, victim_state)
    victim = start(tmp_path, victim_toml, daemons)
    for daemon in (twin, victim):

        def connected(d: DaemonProcess = daemon) -> bool:
            return bool(d.logged("connected"))

        await eventually(connected, timeout=30.0)
    collector = Collector(mosquitto, f"victim{tag}")
    collecting = asyncio.create_task(collector.run())
    publishing = asyncio.create_task(publish(mosquitto, ticks_root, stream, rate=35.0))
    rng = random.Random(11)
    kills = 0
    while kills < 5 and not publishing.done():
        await eventually(
            lambda d=victim: bool(started(d)),  # type: ignore[misc]
            timeout=30.0,
            what="the daemon is up",
        )
        await asyncio.sleep(rng.uniform(0.5, 2.5))  # a random point of the stream to kill at
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        kills += 1
        victim = start(tmp_path, victim_toml, daemons)
    await publishing
    assert kills == 5
    for root in (f"twin{tag}", f"victim{tag}"):
        assert await wait_for_ticks(mosquitto, root, len(stream), 60.0) == len(stream), root
    for daemon in (twin, victim):
        code, log = daemon.stop()
        assert code == 0, log[-3000:]
    restarts = [record for daemon in daemons[2:] for record in started(daemon)]
    assert len(restarts) == 5
    # each took up where the last one stopped: its checkpoint, or its journal from the start
    assert all(record["checkpoint"] or record["replayed"] for record in restarts), restarts
    assert any(record["checkpoint"] and record["replayed"] for record in restarts), restarts
    expected, got = final_states(twin_state), final_states(victim_state)
    assert sorted(got) == sorted(expected) == sorted(PAIRS)

    def collected() -> bool:
        return all(
            (kind, pair, got[pair]["seq"]) in collector.payloads
            for pair in PAIRS
            for kind in ("hedge_ratio", "spread")
        )

    await eventually(collected, timeout=20.0, what="the last bars reached the subscriber")
    collector.stopping = True
    collecting.cancel()
    for pair in PAIRS:
        assert got[pair]["seq"] >= 15
        assert_close(got[pair], expected[pair], pair)

    for pair in PAIRS:
        for kind in ("hedge_ratio", "spread"):
            seqs = sorted(seq for k, p, seq in collector.payloads if (k, p) == (kind, pair))
            assert seqs == list(range(1, got[pair]["seq"] + 1)), f"{pair}: holes in {kind}"
    twice = {key: copies for key, copies in collector.payloads.items() if len(copies) > 1}
    assert twice, "some bars were published again after a crash"
    for key, copies in twice.items():
        assert len(set(copies)) == 1, f"{key} published twice with different bytes"

    journal = sorted((victim_state / "inputs").glob("inputs-*.jsonl"))
    out = tmp_path / "replayed.jsonl"
    config = tmp_path / "replay.toml"
    config.write_text(victim_toml)
    result = run_hedger("replay", *map(str, journal), "--config", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    replayed = {}
    for line in out.read_text().splitlines():
        event = json.loads(line)
        if event["type"] in ("hedge_ratio", "spread"):
            replayed[(event["type"], event["pair"], event["seq"])] = event
    assert set(replayed) == set(collector.payloads)
    for key, copies in collector.payloads.items():
        live = json.loads(copies[0])
        live.pop("ts_init"), replayed[key].pop("ts_init")
        assert live == replayed[key], key
