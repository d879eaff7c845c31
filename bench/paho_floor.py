"""The floor under the MQTT bridge: paho's own QoS 1 publish rate on this machine, no hedger.

Run as ``python bench/paho_floor.py`` (needs ``mosquitto``; about 20 s). The bridge publishes
through the paho client that aiomqtt connects and drives; this script does the same with
nothing of hedger's around it: one aiomqtt connection to a mosquitto of its own, and
``client._client.publish`` (paho) called in a loop that keeps ``--window`` publishes in
flight, each a ~300-byte payload on one of 20 topics, until ``--messages`` are acknowledged.
No subscriber (the broker only acknowledges). Prints the acknowledged messages per second, and
the same through ``MqttBridge`` (the bus's outbox, the window, the bookkeeping) for the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hedger.core.bus import Bus, Message  # noqa: E402
from hedger.runtime.bridges.mqtt import MqttBridge  # noqa: E402
from tests.mosquitto import MosquittoBroker  # noqa: E402

PAYLOAD = b"x" * 300


async def raw_paho(broker: MosquittoBroker, n: int, window: int) -> float:
    async with aiomqtt.Client(broker.host, broker.port, max_inflight_messages=0) as client:
        paho = client._client  # the paho client aiomqtt drives, as the bridge
        done = asyncio.Event()
        acked = 0

        chained = paho.on_publish

        def on_publish(*args: Any) -> None:
            nonlocal acked
            if chained is not None:
                chained(*args)
            acked += 1
            done.set()

        paho.on_publish = on_publish
        sent = 0
        started = time.perf_counter()
        while acked < n:
            while sent < n and sent - acked < window:
                paho.publish(f"floor/{sent % 20}", PAYLOAD, 1)
                sent += 1
            done.clear()
            await done.wait()
        return n / (time.perf_counter() - started)


async def through_bridge(broker: MosquittoBroker, n: int, window: int) -> float:
    bus = Bus(root="floor")
    bridge = MqttBridge(broker.url, root="floor", qos=1, window=window, outbox_capacity=n + 10)
    bus.attach(bridge)
    async with bridge:
        while not bridge.connected:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        for i in range(n):
            bus.send(Message(f"floor/v1/spread/S{i % 20}/H", PAYLOAD, False, seq=i))
        assert await bridge.drain(300.0)
        return n / (time.perf_counter() - started)


async def main_async(args: argparse.Namespace) -> None:
    with MosquittoBroker() as broker:
        raw = max([await raw_paho(broker, args.messages, args.window) for _ in range(3)])
        bridged = max([await through_bridge(broker, args.messages, args.window) for _ in range(3)])
    print(f"| path (QoS 1, {args.messages:,} messages, window {args.window}, best of 3) | msg/s |")
    print("|---|---:|")
    print(f"| paho publish loop (aiomqtt's connection), no hedger | {raw:,.0f} |")
    print(f"| MqttBridge from the bus's outbox | {bridged:,.0f} |")
    print(f"\nbridge / raw paho: {bridged / raw:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--window", type=int, default=128)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
