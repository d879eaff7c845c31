"""Benchmark the bus's MQTT bridge against a real mosquitto: throughput and tick-to-publish
latency, next to a naive bridge that awaits each publish in turn.

Run as ``python bench/bench_bus.py`` (about a minute) or ``--quick`` (a smoke run). Needs the
``mosquitto`` broker and the ``mosquitto_sub`` client (``apt-get install mosquitto
mosquitto-clients``). Prints a markdown report: the machine, a table, and the target check
(>= 50k events/s at QoS 1 with nothing lost). A script, not a test: targets are reported,
never enforced (exit status 0).

Method:

* One mosquitto of the bench's own on a free loopback port (``tests/mosquitto.py``'s
  ``MosquittoBroker``: persistence off, no inflight or queue limits towards subscribers).
* The subscriber is ``mosquitto_sub`` (C, QoS 1 subscription, its own process), so that the
  subscriber is neither the bottleneck nor sharing the publisher's interpreter. It prints
  every message with its receipt time (``%U``: the wall clock, ns), to a file parsed afterwards.
* Events: ``HedgeRatioEvent`` and ``SpreadEvent`` pairs (one bar: the two events of one seq)
  over 20 pairs, through ``Bus.publish`` (so ratio events are retained, as in production).
  Each event's ``ts`` is ``time.time_ns()`` at its ``Bus.publish`` call: latency is the
  subscriber's receipt time minus ``ts``, same machine, same clock.
* Throughput: the events are published as fast as the producer goes, 500 per turn of the
  event loop (the outbox is large enough to hold them all: nothing is dropped); events/s is
  counted from the first ``Bus.publish`` to the last receipt. "all arrived": every (topic,
  seq) was received at least once; repeats are counted separately.
* Latency: paced publishing at ``--rate`` events/s for ``--seconds`` (every millisecond the
  events due by then are published), p50 and p99 of publish-to-receipt.
* Naive baseline: the same Bus, with a bridge that takes one message from its outbox, awaits
  ``aiomqtt.Client.publish`` and only then takes the next (on an aiomqtt client with its
  default settings). Its throughput run uses fewer events (``--baseline-events``) to keep the
  run short. At a rate above what it can sustain, its latency is mostly queueing and grows
  with the length of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hedger.core.bus import Bridge, Bus, Outbox  # noqa: E402
from hedger.core.events import HedgeRatioEvent, SpreadEvent  # noqa: E402
from hedger.runtime.bridges.mqtt import MqttBridge  # noqa: E402
from tests.mosquitto import MosquittoBroker, find_mosquitto  # noqa: E402

PAIRS = [f"S{i:02d}/H{i:02d}" for i in range(20)]
TARGET = 50_000.0
BETA, COV, BETA_STD = (1.25,), ((1e-4, 0.0), (0.0, 1e-4)), (0.01,)


class NaiveBridge:
    """The baseline: one publish at a time, each awaited before the next is taken."""

    name = "naive"

    def __init__(self, broker: MosquittoBroker, qos: int, capacity: int) -> None:
        self.host, self.port = broker.host, broker.port
        self.qos = qos
        self.outbox = Outbox(capacity, self.name)
        self.connected = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client(self.host, self.port) as client:
            self.connected.set()
            outbox = self.outbox
            while True:
                await outbox.wait()
                batch = outbox.peek_batch(1)
                message = batch[0]
                await client.publish(message.topic, message.payload, self.qos, message.retain)
                outbox.ack(batch)

    async def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.outbox and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return not self.outbox

    def metrics(self) -> dict[str, float]:
        return {"queued": float(len(self.outbox)), "dropped": float(self.outbox.dropped)}


@dataclass
class Result:
    case: str
    qos: int
    mode: str
    events: int
    received: int  # distinct (topic, seq)
    repeats: int
    dropped: int
    seconds: float  # first publish to last receipt
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.received == self.events

    def summary(self) -> str:
        return (
            f"{self.case} qos {self.qos} {self.mode}: {self.rate:,.0f} events/s, "
            f"{self.received:,}/{self.events:,} arrived, "
            f"p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms"
        )


def best(runs: list[Result]) -> Result:
    """The run least disturbed by other load: the fastest burst, the paced run with the
    lowest p99 (an incomplete run, if any, is reported rather than hidden)."""
    incomplete = [r for r in runs if not r.complete or r.dropped]
    if incomplete:
        return incomplete[0]
    if runs[0].mode == "burst":
        return max(runs, key=lambda r: r.rate)
    return min(runs, key=lambda r: r.p99_ms)


class Publisher:
    """Makes the events of consecutive bars over PAIRS, stamped at publish time."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.count = 0

    def publish(self, n: int) -> None:
        """Publish the next ``n`` events (``n`` even: whole bars)."""
        bus, pairs = self.bus, PAIRS
        for _ in range(n // 2):
            bar = self.count // 2
            pair = pairs[bar % len(pairs)]
            seq = bar // len(pairs) + 1
            bus.publish(
                HedgeRatioEvent(pair, seq, time.time_ns(), BETA, 0.5, COV, BETA_STD, True, False)
            )
            bus.publish(SpreadEvent(pair, seq, time.time_ns(), 0.1, 0.2, 1.0, 0.2))
            self.count += 2


class Subscriber:
    """``mosquitto_sub`` counting ``count`` messages into a file."""

    def __init__(
        self,
        broker: MosquittoBroker,
        root: str,
        count: int,
        workdir: Path,
        topics: tuple[str, ...] = ("ratio/#", "spread/#"),
    ) -> None:
        self.path = workdir / f"sub-{time.monotonic_ns()}.txt"
        self.client_id = f"bench-sub-{time.monotonic_ns()}"
        self._broker = broker
        self._out = self.path.open("wb")
        self.process = subprocess.Popen(
            [
                _need("mosquitto_sub"),
                *("-h", broker.host, "-p", str(broker.port), "-q", "1"),
                *(arg for topic in topics for arg in ("-t", f"{root}/v1/{topic}")),
                *("-i", self.client_id, "-C", str(count), "-F", "%U %t %p"),
            ],
            stdout=self._out,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self) -> None:
        deadline = time.monotonic() + 10.0
        while self.client_id not in self._broker.log():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("mosquitto_sub did not connect")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # its SUBSCRIBE follows the CONNACK at once

    async def finish(self, timeout: float) -> list[tuple[int, str, int, int]]:
        """Wait for it to have counted everything (or give up after ``timeout``); the
        messages as (receipt ns, topic, seq, ts)."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()
        self._out.close()
        received = []
        with self.path.open("rb") as fh:
            for line in fh:
                stamp, topic, payload = line.rstrip(b"\n").split(b" ", 2)
                seconds, _, fraction = stamp.partition(b".")
                recv_ns = int(seconds) * 1_000_000_000 + int(fraction.ljust(9, b"0"))
                event = orjson.loads(payload)
                received.append((recv_ns, topic.decode(), event["seq"], event["ts"]))
        self.path.unlink()
        return received


def _need(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise SystemExit(f"{program} is needed: apt-get install mosquitto-clients")
    return found


def _percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index] / 1e6


BridgeFactory = Callable[[str, int, int], Bridge]


async def run_case(
    broker: MosquittoBroker,
    workdir: Path,
    case: str,
    make_bridge: BridgeFactory,
    qos: int,
    events: int,
    rate: float | None,
) -> Result:
    """Publish ``events`` through a Bus and the bridge (as fast as possible, or paced at
    ``rate`` events/s) and measure what the subscriber got."""
    root = f"bench{time.monotonic_ns()}"
    bus = Bus(root=root)
    bridge = make_bridge(root, qos, events + 1000)
    bus.attach(bridge)
    subscriber = Subscriber(broker, root, events, workdir)
    await subscriber.ready()
    runner = asyncio.create_task(bridge.run())
    try:
        await _connected(bridge)
        publisher = Publisher(bus)
        first_ns = time.time_ns()
        if rate is None:
            while publisher.count < events:
                publisher.publish(min(500, events - publisher.count))
                await asyncio.sleep(0)
        else:
            start = time.perf_counter()
            while publisher.count < events:
                due = min(events, int((time.perf_counter() - start) * rate) // 2 * 2)
                if due > publisher.count:
                    publisher.publish(due - publisher.count)
                await asyncio.sleep(0.001)
        await bridge.drain(300.0)
        received = await subscriber.finish(timeout=30.0)
        dropped = int(bridge.metrics()["dropped"])
    finally:
        if isinstance(bridge, MqttBridge):
            await bridge.close()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    distinct = {(topic, seq) for _, topic, seq, _ in received}
    latencies = sorted(recv - ts for recv, _, _, ts in received)
    last_ns = max((recv for recv, _, _, _ in received), default=first_ns)
    return Result(
        case=case,
        qos=qos,
        mode="burst" if rate is None else f"paced {rate / 1000:g}k/s",
        events=events,
        received=len(distinct),
        repeats=len(received) - len(distinct),
        dropped=dropped,
        seconds=(last_ns - first_ns) / 1e9,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
    )


async def _connected(bridge: Bridge) -> None:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if isinstance(bridge, MqttBridge) and bridge.connected:
            return
        if isinstance(bridge, NaiveBridge) and bridge.connected.is_set():
            return
        await asyncio.sleep(0.01)
    raise RuntimeError("the bridge did not connect")


async def bench(args: argparse.Namespace) -> list[Result]:
    workdir = Path(tempfile.mkdtemp(prefix="hedger-bench-bus-"))
    results: list[Result] = []
    try:
        with MosquittoBroker() as broker:

            def pipelined(root: str, qos: int, capacity: int) -> Bridge:
                return MqttBridge(
                    broker.url, root=root, qos=qos, outbox_capacity=capacity, window=args.window
                )

            def naive(root: str, qos: int, capacity: int) -> Bridge:
                return NaiveBridge(broker, qos, capacity)

            paced = int(args.rate * args.seconds) // 2 * 2
            cases: list[tuple[str, BridgeFactory, int, int, float | None]] = [
                ("MqttBridge", pipelined, 1, args.events, None),
                ("MqttBridge", pipelined, 0, args.events, None),
                ("naive", naive, 1, args.baseline_events, None),
                ("naive", naive, 0, args.baseline_events, None),
                ("MqttBridge", pipelined, 1, paced, args.rate),
                ("MqttBridge", pipelined, 0, paced, args.rate),
                ("naive", naive, 1, paced, args.rate),
            ]
            for case, factory, qos, events, rate in cases:
                runs = []
                for _ in range(args.repeat):
                    runs.append(await run_case(broker, workdir, case, factory, qos, events, rate))
                    print(f"  {runs[-1].summary()}", file=sys.stderr, flush=True)
                results.append(best(runs))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _cpu() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _mosquitto_version() -> str:
    try:
        done = subprocess.run(
            [find_mosquitto(), "-h"], capture_output=True, text=True, check=False, timeout=5
        )
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return "?"
    for line in (done.stdout + done.stderr).splitlines():
        words = line.split()
        if "version" in words and words.index("version") + 1 < len(words):
            return words[words.index("version") + 1]
    return "?"


def report(args: argparse.Namespace, results: list[Result]) -> str:
    lines = [
        "# Bus -> MQTT bridge benchmark",
        "",
        f"- machine: {_cpu()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, aiomqtt {_version('aiomqtt')}, "
        f"paho-mqtt {_version('paho-mqtt')}, mosquitto {_mosquitto_version()} (local)",
        f"- MqttBridge window {args.window}; subscriber: mosquitto_sub (QoS 1 subscription)",
        "",
        "| bridge | QoS | mode | events | all arrived | repeats | dropped | events/s "
        "| p50 ms | p99 ms |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        arrived = "yes" if r.complete else f"NO ({r.received:,})"
        latency = "| - | - |" if r.mode == "burst" else f"| {r.p50_ms:.2f} | {r.p99_ms:.2f} |"
        lines.append(
            f"| {r.case} | {r.qos} | {r.mode} | {r.events:,} | {arrived} | {r.repeats:,} "
            f"| {r.dropped:,} | {r.rate:,.0f} {latency}"
        )
    burst = {(r.case, r.qos): r for r in results if r.mode == "burst"}
    lines.append("")
    ours = burst.get(("MqttBridge", 1))
    base = burst.get(("naive", 1))
    if ours is not None:
        met = ours.rate >= TARGET and ours.complete and ours.dropped == 0
        lines.append(
            f"- target >= {TARGET:,.0f} events/s at QoS 1, nothing lost: "
            f"{'met' if met else 'NOT met'} ({ours.rate:,.0f} events/s, "
            f"{'complete' if ours.complete else 'incomplete'})"
        )
    if ours is not None and base is not None and base.rate > 0:
        lines.append(f"- pipelined / naive at QoS 1: {ours.rate / base.rate:.1f}x")
    lines.append(
        f"- best of {args.repeat} runs per row: the fastest burst, the paced run with the "
        "lowest p99 (other load on the machine only ever slows a run down)"
    )
    lines.append(
        "- latency: Bus.publish to receipt by the subscriber; burst rows have none (their "
        "events queue behind the whole burst)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--baseline-events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=10_000.0, help="paced events/s")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the paced runs")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (best is kept)")
    parser.add_argument("--quick", action="store_true", help="a smoke run with small sizes")
    args = parser.parse_args()
    if args.quick:
        args.events, args.baseline_events, args.seconds, args.repeat = 20_000, 4_000, 0.5, 1
    _need("mosquitto_sub")
    results = asyncio.run(bench(args))
    print(report(args, results))


if __name__ == "__main__":
    main()
