"""Probes of hedger's durable state, with the figures ``docs/reliability.md`` reports under
"Daemon crashes". Run as ``python bench/durability.py`` (about two minutes).

- Checkpoint cost: a pipeline of 1,000 and 10,000 pairs (random pairs of sqrt(N)+2 random-walk
  symbols, every symbol ticking every 1 s bar), warmed over 60 bars; a bar's step, one
  checkpoint (snapshot, encode, write and fsync, each timed), the journal's cost per tick,
  and what a checkpoint costs per bar at ``checkpoint_bars = 100`` and at the default
  ``checkpoint_interval = "10s"`` on 1 s bars (every 10 bars).
- Restart: resuming the checkpoint of 1,000 and 10,000 pairs (load, verify, restore), a
  journal replayed through the core (records per second), and a real ``hedger run`` from
  spawn to live (resumed, journal replayed) with two pairs.
- Broker kills: the scenario of ``tests/test_zero_loss.py`` (a daemon with [state], a broker
  SIGKILLed five times while ``hedger subscribe --json`` processes are stopped), without
  persistence and with the shipped ``deploy/mosquitto.conf``: the seqs never printed by a
  subscriber with gap fill (the default), one without, and one without on a persistent
  session (``--client-id``).
- Daemon kills: the scenario of ``tests/test_recovery.py`` (a tick stream on a real
  mosquitto, a daemon SIGKILLed five times and restarted, a twin that never stops), with
  [state] and without it (as before checkpoints existed): the final beta's drift from the
  twin, the seqs a persistent subscriber never got, and the bars it got twice.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hedger.config.state import StateSettings  # noqa: E402
from hedger.core.actors import PairSpec  # noqa: E402
from hedger.core.bus import Bus  # noqa: E402
from hedger.core.pipeline import Pipeline  # noqa: E402
from hedger.core.rejects import Rejects  # noqa: E402
from hedger.core.ticks import Tick  # noqa: E402
from hedger.core.topics import PairId  # noqa: E402
from hedger.engine import FilterParams  # noqa: E402
from hedger.runtime.state.checkpoint import encode_checkpoint  # noqa: E402
from hedger.runtime.state.journal import Input, InputJournal  # noqa: E402
from hedger.runtime.state.keeper import StateKeeper  # noqa: E402
from tests.mosquitto import MosquittoBroker  # noqa: E402
from tests.test_daemon import DaemonProcess  # noqa: E402
from tests.test_recovery import (  # noqa: E402
    PAIRS,
    Collector,
    daemon_toml,
    prices,
    publish,
    started,
    wait_for_ticks,
)
from tests.test_zero_loss import through_broker_kills  # noqa: E402

SECOND = 1_000_000_000


class _Quiet:
    def info(self, *args: object, **kw: object) -> None: ...

    warning = error = info


def _universe(n: int, seed: int = 1) -> tuple[list[str], list[PairSpec]]:
    rng = random.Random(seed)
    symbols = [f"S{i:03d}" for i in range(math.isqrt(n) + 2)]
    specs: list[PairSpec] = []
    seen: set[tuple[str, str]] = set()
    while len(specs) < n:
        y, x = rng.sample(symbols, 2)
        if (y, x) not in seen:
            seen.add((y, x))
            specs.append(PairSpec(PairId(y, (x,)), FilterParams()))
    return symbols, specs


def _warm_pipeline(n: int, bars: int = 60) -> tuple[Pipeline, list[str], float]:
    """A pipeline of ``n`` pairs after ``bars`` bars; its symbols; seconds per bar."""
    symbols, specs = _universe(n)
    pipeline = Pipeline(
        specs, SECOND, 3 * SECOND, lambda e: None, Rejects(), emit_bar=lambda o: None
    )
    rng = random.Random(2)
    px = dict.fromkeys(symbols, 100.0)
    started_at = time.perf_counter()
    for b in range(bars):
        for s in symbols:
            px[s] *= math.exp(rng.gauss(0.0, 0.01))
            pipeline.on_tick(Tick(s, px[s], b * SECOND + 1000, b * SECOND + 1000, 1.0))
    return pipeline, symbols, (time.perf_counter() - started_at) / bars


def _keeper(pipeline: Pipeline, directory: str) -> StateKeeper:
    return StateKeeper(
        StateSettings(dir=directory, event_journal_bytes=0),
        pipeline,
        Bus(),
        _Quiet(),
        time_ns=time.time_ns,
        monotonic_ns=time.monotonic_ns,
        settings_key={"bar_ns": SECOND},
    )


def checkpoint_cost() -> None:
    print("### Checkpoint cost (1 s bars, every symbol ticking every bar)\n")
    print(
        "| pairs | bar step | checkpoint | of which snapshot | encode | write + fsync | size "
        "| per bar, every 100 bars | per bar, every 10 s | share of a core, every 10 s "
        "| journal per tick |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in (1_000, 10_000):
        pipeline, symbols, bar_s = _warm_pipeline(n)
        with tempfile.TemporaryDirectory() as directory:
            keeper = _keeper(pipeline, directory)
            totals, snaps, encodes, writes = [], [], [], []
            for k in range(5):
                # a bar since the last checkpoint, as in a run
                pipeline.bars.close_until(10**12 + k * SECOND)
                tick_ts = 10**12 + k * SECOND + 1
                pipeline.on_tick(Tick(symbols[0], 100.0 + k, tick_ts, tick_ts, 1.0))
                t0 = time.perf_counter()
                keeper.checkpoint()
                totals.append(time.perf_counter() - t0)
                pipeline.bars.close_until(10**12 + k * SECOND + SECOND // 2)
                gc.disable()  # as the keeper does
                t1 = time.perf_counter()
                snapshot = pipeline.snapshot()
                t2 = time.perf_counter()
                blob = encode_checkpoint({"pairs": snapshot["pairs"]})
                t3 = time.perf_counter()
                gc.enable()
                path = Path(directory) / "probe.bin"
                with open(path, "wb") as file:
                    file.write(blob)
                    file.flush()
                    os.fsync(file.fileno())
                t4 = time.perf_counter()
                snaps.append(t2 - t1)
                encodes.append(t3 - t2)
                writes.append(t4 - t3)
            journal = InputJournal(
                Path(directory) / "inputs", segment_bytes=10**9, segment_ns=10**15,
                retention_ns=SECOND, clock_ns=time.time_ns,
            )  # fmt: skip
            tick = Tick("S001", 101.25, 1, 2, 100.0, "mqtt")
            t0 = time.perf_counter()
            for i in range(100_000):
                journal.tick(tick, i)
                if i % 100 == 99:
                    journal.commit()
            per_tick = (time.perf_counter() - t0) / 100_000
            size = keeper.store.last_bytes
        cp = statistics.median(totals)
        print(
            f"| {n:,} | {bar_s * 1e3:.1f} ms | {cp * 1e3:.0f} ms "
            f"| {statistics.median(snaps) * 1e3:.0f} ms "
            f"| {statistics.median(encodes) * 1e3:.0f} ms "
            f"| {statistics.median(writes) * 1e3:.0f} ms | {size / 1e6:.2f} MB "
            f"| {cp / 100 * 1e3:.2f} ms "
            f"({cp / 100 / bar_s:.1%} of a bar step) | {cp / 10 * 1e3:.1f} ms "
            f"({cp / 10 / bar_s:.0%}) | {cp / 10:.2%} | {per_tick * 1e6:.2f} us |"
        )
    print()


def restart_cost() -> None:
    print("### Restart: resuming a checkpoint, replaying the journal\n")
    print("| pairs | resume (load, verify, restore) | journal replay |")
    print("|---:|---:|---:|")
    for n in (1_000, 10_000):
        pipeline, symbols, _ = _warm_pipeline(n)
        with tempfile.TemporaryDirectory() as directory:
            keeper = _keeper(pipeline, directory)
            keeper.resume(lambda record, now: None)
            keeper.checkpoint()
            rng = random.Random(3)
            px = dict.fromkeys(symbols, 100.0)
            records = 0
            for b in range(60, 90):  # 30 bars journalled after the checkpoint
                for s in symbols:
                    px[s] *= math.exp(rng.gauss(0.0, 0.01))
                    tick = Tick(s, px[s], b * SECOND + 1000, b * SECOND + 1000, 1.0)
                    keeper.journal(tick, 0)
                    records += 1
            keeper.commit()
            _, specs = _universe(n)
            fresh = Pipeline(
                specs, SECOND, 3 * SECOND, lambda e: None, Rejects(), emit_bar=lambda o: None
            )
            again = _keeper(fresh, directory)
            t0 = time.perf_counter()

            def take(record: Input, now: int, into: Pipeline = fresh) -> None:
                if isinstance(record, Tick):
                    into.on_tick(record)

            done = again.resume(take)
            elapsed = time.perf_counter() - t0
            assert len(done.resumed) == n and done.replayed == records
            loaded = Pipeline(
                specs, SECOND, 3 * SECOND, lambda e: None, Rejects(), emit_bar=lambda o: None
            )
            t1 = time.perf_counter()
            _keeper(loaded, directory)._restore(again.store.load(), type(done)())  # type: ignore[arg-type]
            restore_s = time.perf_counter() - t1
        replay_s = max(elapsed - restore_s, 1e-9)
        print(
            f"| {n:,} | {restore_s * 1e3:.0f} ms | {records:,} records (30 bars) in "
            f"{replay_s * 1e3:.0f} ms: {30 / replay_s:,.0f} bars/s, "
            f"{records / replay_s:,.0f} records/s |"
        )
    print()


async def _kills(durable: bool, kills: int, seed: int) -> dict[str, Any]:
    """The recovery scenario once; what the killed daemon's subscriber saw and its drift."""
    broker = MosquittoBroker()
    broker.start()
    processes: list[DaemonProcess] = []
    spawn_to_live: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            tag = f"b{os.getpid()}{int(durable)}"
            ticks_root = f"ticks{tag}"
            stream = prices(7, 700)

            def launch(name: str) -> DaemonProcess:
                state = tmp_path / name if durable else None
                path = tmp_path / f"{name}-{len(processes)}.toml"
                path.write_text(daemon_toml(broker, f"{name}{tag}", ticks_root, state))
                daemon = DaemonProcess(path)
                processes.append(daemon)
                return daemon

            twin, victim = launch("twin"), launch("victim")
            collectors = {name: Collector(broker, f"{name}{tag}") for name in ("twin", "victim")}
            tasks = [asyncio.create_task(c.run()) for c in collectors.values()]
            await _until(lambda: bool(started(twin) and started(victim)) or not durable, 30.0)
            await _until(
                lambda: bool(twin.logged("connected") and victim.logged("connected")), 30.0
            )
            publishing = asyncio.create_task(publish(broker, ticks_root, stream, rate=35.0))
            rng = random.Random(seed)
            done = 0
            while done < kills and not publishing.done():
                await asyncio.sleep(rng.uniform(0.5, 2.5))
                victim.proc.send_signal(signal.SIGKILL)
                victim.proc.wait()
                done += 1
                t0 = time.monotonic()
                victim = launch("victim")
                await _until(lambda d=victim: len(d.logged("connected")) > 0, 30.0)
                spawn_to_live.append(time.monotonic() - t0)
            await publishing
            for name in ("twin", "victim"):
                await wait_for_ticks(broker, f"{name}{tag}", len(stream), 30.0)
            for daemon in (twin, victim):
                daemon.stop()
            await asyncio.sleep(1.0)  # let the subscribers take the last bars
            for task in tasks:
                task.cancel()
    finally:
        for daemon in processes:
            if daemon.proc.poll() is None:
                daemon.kill()
        broker.stop()
    twin_seen, victim_seen = collectors["twin"].payloads, collectors["victim"].payloads

    def by_bar(seen: dict[tuple[str, str, int], list[bytes]]) -> dict[tuple[str, str, int], Any]:
        """Each event by (type, pair, bar close): a cold restart starts its seqs again."""
        events = {}
        for copies in seen.values():
            event = orjson.loads(copies[0])
            events[(event["type"], event["pair"], event["ts"])] = event
        return events

    twin_bars, victim_bars = by_bar(twin_seen), by_bar(victim_seen)
    drift = 0.0
    for pair in PAIRS:
        both = {key for key in twin_bars if key[:2] == ("hedge_ratio", pair)} & set(victim_bars)
        last = max(ts for _, _, ts in both)  # the last bar both published
        b_twin = twin_bars[("hedge_ratio", pair, last)]["beta"]
        b_victim = victim_bars[("hedge_ratio", pair, last)]["beta"]
        drift = max(drift, abs(b_victim - b_twin) / abs(b_twin))
    expected = set(twin_bars)
    missing = len(expected - set(victim_bars))
    twice = sum(1 for copies in victim_seen.values() if len(copies) > 1)
    differing = sum(1 for copies in victim_seen.values() if len(set(copies)) > 1)
    return {
        "drift": drift, "missing": missing, "expected": len(expected), "twice": twice,
        "differing": differing, "spawn_to_live": spawn_to_live,
    }  # fmt: skip


async def _until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the probe's daemons did not come up")
        await asyncio.sleep(0.02)


def daemon_kills(kills: int) -> None:
    print(f"### A daemon SIGKILLed {kills} times on a live MQTT tick stream (700 ticks, 20 s)\n")
    print(
        "| daemon | final beta vs the twin | events the subscriber never got "
        "| events it got twice | twice with other bytes | restart, spawn to live (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for durable in (False, True):
        result = asyncio.run(_kills(durable, kills, 11))
        label = (
            "with [state] (checkpoints, journal, persistent feed)"
            if durable
            else "without [state] (before)"
        )
        live = statistics.median(result["spawn_to_live"]) if result["spawn_to_live"] else math.nan
        print(
            f"| {label} | {result['drift']:.2e} | {result['missing']} of {result['expected']} "
            f"| {result['twice']} | {result['differing']} | {live:.2f} s |"
        )
    print()


def broker_kills(kills: int) -> None:
    print(
        f"### A broker SIGKILLed {kills} times under `hedger subscribe --json` "
        "(two pairs, 250 ms bars)\n"
    )
    print(
        "Each kill with the subscribers stopped (SIGSTOP) until the daemon has published three "
        "bars past them, so that every kill leaves bars they can only get from the broker's "
        "session or the daemon's event journal.\n"
    )
    print("| broker | subscriber | seqs never printed | fills |")
    print("|---|---|---:|---:|")
    for label, shipped in (("no persistence", False), ("the shipped deploy/mosquitto.conf", True)):
        broker = MosquittoBroker.shipped() if shipped else MosquittoBroker()
        broker.start()
        processes: list[DaemonProcess] = []
        try:
            with tempfile.TemporaryDirectory() as tmp:
                subscribers, final = asyncio.run(
                    through_broker_kills(
                        broker, Path(tmp), processes,
                        {
                            "clean session, gap fill (the default)": (),
                            "clean session, --no-gap-fill": ("--no-gap-fill",),
                            "persistent session (--client-id), --no-gap-fill": (
                                "--no-gap-fill", "--client-id", f"bench-{os.getpid()}-{shipped}",
                            ),
                        },
                        kills,
                    )
                )  # fmt: skip
        finally:
            for daemon in processes:
                if daemon.proc.poll() is None:
                    daemon.kill()
            broker.stop()
        total = sum(final.values())
        for name, sub in subscribers.items():
            fills = "".join(sub.err).count("hedger subscribe: filled ")
            print(f"| {label} | {name} | {sub.missing(final)} of {total} | {fills} |")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of the daemon (5)")
    parser.add_argument("--skip-kills", action="store_true", help="only the in-process probes")
    parser.add_argument("--only-broker", action="store_true", help="only the broker kills")
    args = parser.parse_args()
    if args.only_broker:
        broker_kills(args.kills)
        return 0
    checkpoint_cost()
    restart_cost()
    if not args.skip_kills:
        daemon_kills(args.kills)
        broker_kills(args.kills)
    return 0


if __name__ == "__main__":
    sys.exit(main())
