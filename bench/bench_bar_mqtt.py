"""The batch message through a real mosquitto: pair-updates per second delivered at QoS 1, and
bar close -> subscriber latency of a bar of P pairs.

Run as ``python bench/bench_bar_mqtt.py`` (1,000 pairs; about a minute) or ``--quick``. Needs
``mosquitto`` and ``mosquitto_sub`` (``apt-get install mosquitto mosquitto-clients``).

Method: a mosquitto of the bench's own on a free loopback port (``tests/mosquitto.py``);
``mosquitto_sub`` (C, its own process) subscribed at QoS 1 to ``<root>/v1/bar``, printing each
message's receipt time (``%U``, wall clock ns). The publisher is the daemon's own path: a
pipeline of P pairs on the bank (``bench_bar.Market``: levels, hedger's defaults) whose bar
closes go to ``Bus.publish_bar`` with ``per_pair = false`` and the ``MqttBridge`` at QoS 1.
Each bar's wall time is taken when its close is called; latency = receipt - that time (same
machine, same clock), so it includes the filter, the encoding, the outbox, the bridge, the
broker and the subscriber.

- throughput: bars closed back to back (the event loop turns between bars, so the bridge
  sends while the next bars are made), pair-updates/s = bars x P / (first close -> last
  receipt); "all arrived": every bar's seq was received;
- latency: one bar every ``1 / --rate`` s, p50 and p99 over ``--paced`` bars.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_bar import SECOND, Market, specs  # noqa: E402
from bench_bus import Subscriber  # noqa: E402

from hedger.core.bar_events import BarOutput  # noqa: E402
from hedger.core.bus import Bus  # noqa: E402
from hedger.core.pipeline import Pipeline  # noqa: E402
from hedger.core.rejects import Rejects  # noqa: E402
from hedger.runtime.bridges.mqtt import MqttBridge  # noqa: E402
from tests.mosquitto import MosquittoBroker  # noqa: E402

WARMUP_BARS = 30


class BarSubscriber(Subscriber):
    """``mosquitto_sub`` on the bar topic (``bench_bus.Subscriber``), ``count`` messages."""

    def __init__(self, broker: MosquittoBroker, root: str, count: int, workdir: Path) -> None:
        super().__init__(broker, root, count, workdir, topics=("bar",))

    async def receipts(self, timeout: float) -> dict[int, int]:
        """Bar seq -> receipt ns of what arrived (the bar message's ``seq``)."""
        got: dict[int, int] = {}
        for recv, _, seq, _ in await self.finish(timeout):
            got.setdefault(seq, recv)
        return got


async def run(
    broker: MosquittoBroker, workdir: Path, n_pairs: int, bars: int, rate: float | None
) -> tuple[float, int, list[float]]:
    """(pair-updates/s, bars received, latencies ms) of ``bars`` bars after the warm-up."""
    root = f"bench{time.monotonic_ns()}"
    market = Market(n_pairs)
    bus = Bus(root=root, per_pair=False)
    bridge = MqttBridge(broker.url, root=root, qos=1, outbox_capacity=1_000_000)
    bus.attach(bridge)
    publishing = False

    def publish_bar(output: BarOutput) -> None:
        if publishing:
            bus.publish_bar(output)

    pipeline = Pipeline(
        specs(market), SECOND, 10 * SECOND, bus.publish, Rejects(), emit_bar=publish_bar
    )
    for k in range(WARMUP_BARS):  # the warm-up (its OLS fits) is not published
        pipeline.on_bar_close(*market.bar(k))
    publishing = True
    closes = [market.bar(k) for k in range(WARMUP_BARS, WARMUP_BARS + bars)]
    subscriber = BarSubscriber(broker, root, bars, workdir)
    await subscriber.ready()
    sent: dict[int, int] = {}
    async with bridge:
        while not bridge.connected:
            await asyncio.sleep(0.01)
        assert await bridge.drain(30.0)
        start = time.perf_counter()
        for i, close in enumerate(closes):
            if rate is not None:
                due = start + i / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent[bus.bars_published + 1] = time.time_ns()
            pipeline.on_bar_close(*close)
            await asyncio.sleep(0)
        assert await bridge.drain(120.0)
        got = await subscriber.receipts(30.0)
    first = min(sent.values())
    last = max(got.values(), default=first)
    latencies = sorted((got[s] - t) / 1e6 for s, t in sent.items() if s in got)
    received = sum(s in got for s in sent)
    return bars * n_pairs / ((last - first) / 1e9), received, latencies


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else float("nan")


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hedger-bench-bar-"))
    try:
        with MosquittoBroker() as broker:
            rates, lats = [], []
            for _ in range(args.repeat):
                rate, received, _ = await run(broker, workdir, args.pairs, args.bars, None)
                rates.append((rate, received))
                print(
                    f"  burst: {rate:,.0f} pair-updates/s, {received}/{args.bars}", file=sys.stderr
                )
                _, received_paced, latencies = await run(
                    broker, workdir, args.pairs, args.paced, args.rate
                )
                lats.append((pct(latencies, 0.99), latencies, received_paced))
                print(f"  paced: p99 {pct(latencies, 0.99):.2f} ms", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    best_rate, received = max(rates)
    _, latencies, received_paced = min(lats, key=lambda item: item[0])
    print(f"\n{args.pairs:,} pairs a bar, batch message only, QoS 1, best of {args.repeat}\n")
    print("| case | bars | arrived | pair-updates/s | p50 (ms) | p99 (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| bars back to back | {args.bars} | {received} | {best_rate:,.0f} | - | - |")
    print(
        f"| one bar every {1000 / args.rate:g} ms | {args.paced} | {received_paced} | - | "
        f"{pct(latencies, 0.5):.2f} | {pct(latencies, 0.99):.2f} |"
    )
    print(
        f"\ntargets: >= 100k pair-updates/s with nothing lost: "
        f"{'met' if best_rate >= 100_000 and received == args.bars else 'NOT met'}; "
        f"bar close -> subscriber p99 < 2 ms: "
        f"{'met' if pct(latencies, 0.99) < 2.0 else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=500)
    parser.add_argument("--paced", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="paced bars per second")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.bars, args.paced, args.repeat = 100, 60, 1
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
