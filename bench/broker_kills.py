"""Broker crashes: QoS 1 events lost by a persistent subscriber when mosquitto is SIGKILLed
mid-stream, for several persistence settings, and what the settings cost in throughput.

Run as ``python bench/broker_kills.py`` (about ten minutes; ``--help`` for the knobs). Each
run starts its own mosquitto on a free loopback port (``tests/mosquitto.py``) with the options
of the shipped ``deploy/mosquitto.conf``, its persistence lines replaced per row:

- *shipped before*: ``persistence true``, ``autosave_interval 30`` (a save every 30 s);
- *shipped now*: the file as it is (``autosave_interval 1``: a save every 2 s, mosquitto
  saving once more than the interval has passed, in whole seconds);
- *on every change*: ``autosave_on_changes true``, ``autosave_interval 1`` (a save after
  every change, not shipped: see the cost);
- *no persistence*: ``persistence false``.

Every save writes mosquitto's whole in-memory database (then fsyncs and renames it).

Losses (``tests/broker_kills.py``): hedger's own ``MqttBridge`` on a ``Bus`` streams numbered
events (a ratio, retained, and a spread per pair per bar, 3 pairs) at each of ``--rates``
events/s (1,000: a steady stream the subscriber keeps up with; 5,000: the burst of a bar
close, faster than the subscriber takes it, so that the broker queues);
the broker is SIGKILLed ``--kills`` times at seeded points (each just after the bridge got a
PUBACK) and restarted at once on the same port with its persistence file; a QoS 1 subscriber
with a persistent session (fixed client id, ``clean_session=False``) either stays connected
(reconnecting 20 ms after each kill) or is away from before the stream until the bridge has
delivered everything. Lost: events the bridge had delivered (acknowledged by the broker)
that the subscriber never got; duplicates (resends, retained copies) are counted apart. With
periodic saves the broker is given the time to save once after the subscription (the session
is on disk, as a long-standing one would be); the kills then come closer together than the
period, so what those rows lose is everything since the last save before the first kill.

Cost: a burst of ``--burst`` events through the bridge to a persistent subscriber, timed until
it has them all: connected, with 3 pairs and with 300 (each save writes every retained ratio),
and away while the burst is queued for it (each save writes the whole queue). Broker CPU
from ``/proc``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.broker_kills import Throughput, burst_throughput, stream_through_kills  # noqa: E402
from tests.mosquitto import MosquittoBroker, find_mosquitto, shipped_settings  # noqa: E402

WIDE = tuple(f"Y{i:03d}/X{i:03d}" for i in range(300))


def _variant(settings: Sequence[str], *persistence: str) -> list[str]:
    """``settings`` with their persistence lines replaced by ``persistence``."""
    kept = [s for s in settings if not s.split()[0].startswith(("persistence", "autosave"))]
    return [*kept, *persistence]


def configs() -> dict[str, list[str]]:
    shipped = shipped_settings()
    now = [s for s in shipped if s.split()[0].startswith("autosave")]
    return {
        "shipped before: autosave_interval 30": _variant(
            shipped, "persistence true", "autosave_interval 30"
        ),
        f"shipped now: {', '.join(now)}": shipped,
        "on every change: autosave_on_changes true, autosave_interval 1": _variant(
            shipped, "persistence true", "autosave_on_changes true", "autosave_interval 1"
        ),
        "no persistence": _variant(shipped, "persistence false"),
    }


def _environment() -> str:
    version = subprocess.run(
        [find_mosquitto(), "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    tmp = os.path.realpath(tempfile.gettempdir())
    fs, best = "?", ""
    mounts = Path("/proc/mounts")
    for line in mounts.read_text().splitlines() if mounts.exists() else []:
        _, point, kind, *_ = line.split()
        if (tmp == point or tmp.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, fs = point, kind
    return f"{version}; {os.cpu_count()} CPUs; persistence files in {tmp} ({fs})"


async def _losses(
    settings: list[str], args: argparse.Namespace, rate: float, away: bool
) -> tuple[list[int], int, int]:
    """Events lost in each run, duplicates in all runs, runs that did not finish."""
    lost, duplicates, unfinished = [], 0, 0
    for run in range(args.runs):
        with MosquittoBroker(settings=settings) as broker:
            result = await stream_through_kills(
                broker,
                events=args.messages,
                kills=args.kills,
                rate=rate,
                seed=args.seed + run,
                away=away,
                timeout=args.timeout,
            )
        lost.append(len(result.missed))
        duplicates += result.duplicates
        unfinished += not result.sentinel or len(result.kills_at) < args.kills
    return lost, duplicates, unfinished


async def _burst(
    settings: list[str],
    events: int,
    *,
    pairs: Sequence[str] = ("AAA/BBB", "CCC/DDD", "EEE/FFF"),
    offline: bool = False,
    timeout: float = 120.0,
) -> Throughput:
    with MosquittoBroker(settings=settings) as broker:
        return await burst_throughput(
            broker, events=events, pairs=pairs, offline=offline, timeout=timeout
        )


def _cell(lost: list[int]) -> str:
    return f"{sum(lost)} ({', '.join(str(n) for n in lost)})"


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=5, help="broker SIGKILLs per run (5)")
    parser.add_argument("--messages", type=int, default=3000, help="events per run (3000)")
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[1000.0, 5000.0],
        help="events/s streamed, one set of runs each (1000 5000)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs (seeds) per cell (3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first run (1)")
    parser.add_argument("--burst", type=int, default=5000, help="events of the cost burst (5000)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a run may take")
    parser.add_argument("--no-cost", action="store_true", help="skip the throughput bursts")
    args = parser.parse_args(argv)
    for name in ("mqtt", "asyncio"):  # connection resets at every kill: expected, not news
        logging.getLogger(name).setLevel(logging.CRITICAL)

    print(f"_{_environment()}_\n")
    print(
        f"### Events lost by a persistent QoS 1 subscriber over {args.kills} broker SIGKILLs\n\n"
        f"{args.messages:,} events per run on 3 pairs; each cell: the events lost in "
        f"{args.runs} runs (seeds {args.seed}-{args.seed + args.runs - 1}) in all, then in each "
        f"run, of {args.messages * args.runs:,} published; dup.: deliveries beyond the first "
        "(resends, retained copies), all runs of the row.\n"
    )
    heads = [f"{where} at {rate:,.0f}/s" for rate in args.rates for where in ("connected", "away")]
    print("| broker config | " + " | ".join(heads) + " | dup. |")
    print("|---|" + "---:|" * (len(heads) + 1))
    for name, settings in configs().items():
        cells, dups, unfinished = [], 0, 0
        for rate in args.rates:
            for away in (False, True):
                lost, d, bad = await _losses(settings, args, rate, away)
                cells.append(_cell(lost))
                dups, unfinished = dups + d, unfinished + bad
        note = f" ({unfinished} runs timed out)" if unfinished else ""
        print(f"| {name}{note} | " + " | ".join(cells) + f" | {dups} |", flush=True)
    print(
        "\nThe kills of a run come closer together than periodic saves (every 2 s or 30 s, the "
        "timer starting again at each restart): those rows lose everything since the last "
        "save before the first kill, alike for both periods. Crashes far apart lose, each, "
        "what the broker acknowledged since its last save and had not delivered: at most the "
        "last 2 s (30 s before) of a subscriber's queue. `tests/test_broker_durability.py` "
        "kills the shipped broker five times just after saves: nothing is lost."
    )
    if args.no_cost:
        return
    print(
        f"\n### Cost: a burst of {args.burst:,} QoS 1 events through the bridge to a persistent "
        "subscriber\n\nevents/s until the subscriber has them all; broker CPU in ms per 1,000 "
        "events.\n"
    )
    print(
        "| broker config | connected, 3 pairs | CPU | connected, 300 pairs | CPU "
        "| away, queued then fetched | CPU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, settings in configs().items():
        narrow = await _burst(settings, args.burst)
        wide = await _burst(settings, args.burst, pairs=WIDE)
        queued = await _burst(settings, args.burst, offline=True, timeout=600.0)
        cells = []
        for t in (narrow, wide, queued):
            rate = f"{t.rate:,.0f}" if t.complete else f"incomplete ({t.rate:,.0f})"
            cells += [rate, f"{t.cpu_per_1000:,.0f}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
