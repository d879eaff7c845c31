"""Lagging legs: two live feeds, the second 80 ms behind, a 200 ms grace. Live bars close on
the clock (bar end + grace), so the lagging leg's ticks land in their bars: 0 lost at 1 s and
250 ms bars. On the test clock with two queue feeds; nothing sleeps or reads the wall clock.

``python -m tests.test_lagging_legs`` prints the figure with the clocked bars and with the old
rule (a bar closed by the first tick of the next one), for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import random
import tomllib
from dataclasses import dataclass

import pytest

from hedger.config.daemon import daemon_config
from hedger.core.bars import LegPrice
from hedger.runtime.clock import TestClock
from hedger.runtime.daemon import Daemon
from tests.test_clock import QueueFeed
from tests.test_refit import RecordingLogger
from tests.waiting import eventually

MS = 1_000_000
S = 1_000 * MS
T0 = 1_700_000_000 * S


def config_text(bar: str, grace: str) -> str:
    return f"""
[bars]
length = "{bar}"
max_age = "10s"
[pairs."YYY/XXX"]
[[feeds]]
kind = "synthetic"
[[feeds]]
kind = "synthetic"
[daemon]
metrics_interval = "5s"
bar_grace = "{grace}"
shutdown_timeout = "3s"
"""


@dataclass
class Lag:
    ticks: int
    lost: int
    """Ticks not taken (rejected ``late``, or not counted as accepted)."""
    wrong_bars: int
    """Bars whose price of a leg is not the last tick of that leg in the bar."""


async def lagging_run(
    bar_ms: int, lag_ms: int = 80, grace_ms: int = 200, *, seconds: int = 6, clocked: bool = True
) -> Lag:
    """Feed A (YYY) on time, feed B (XXX) ``lag_ms`` behind, ticks every 5-45 ms each, for
    ``seconds`` of clock time; ``clocked=False`` puts back the old rule."""
    clock = TestClock(T0)
    fast, slow = QueueFeed(), QueueFeed()
    config = daemon_config(tomllib.loads(config_text(f"{bar_ms}ms", f"{grace_ms}ms")))
    node = Daemon(config, RecordingLogger(), clock=clock, feeds=[fast, slow])
    node.pipeline.bars.clocked = clocked
    bars: list[tuple[int, dict[str, LegPrice]]] = []
    node.pipeline.bar_listeners.append(("probe", lambda ts, p, _t: bars.append((ts, dict(p)))))
    rng = random.Random(7)
    arrivals: list[tuple[int, QueueFeed, str, float, int]] = []  # (arrives, feed, sym, px, ts)
    for feed, symbol, lag in ((fast, "YYY", 0), (slow, "XXX", lag_ms * MS)):
        ts = T0 + 1
        while ts < T0 + seconds * S:
            arrivals.append((ts + lag, feed, symbol, round(rng.uniform(50, 150), 2), ts))
            ts += rng.randrange(5, 46) * MS
    arrivals.sort(key=lambda a: (a[0], a[2]))
    stop = asyncio.Event()
    task = asyncio.create_task(node.run(stop))
    grace = grace_ms * MS
    await eventually(lambda: T0 + grace in clock.pending(), what="bar clock asleep")
    put = 0
    last_feed: QueueFeed | None = None
    for arrives, feed, symbol, price, ts in arrivals:
        # the core takes ticks in arrival order: before a bar closes on the clock, and before
        # the other feed's next tick, it has taken every tick sent so far
        if feed is not last_feed or any(t <= arrives for t in clock.pending()):
            await taken(node, put)
        await clock.advance_to(max(arrives, clock.time_ns()))
        feed.put(symbol, price, ts)
        last_feed = feed
        put += 1
    await eventually(lambda: node.pipeline.stats.ticks_in == put, what="all ticks taken")
    stop.set()
    await asyncio.wait_for(task, 10)
    # the last price of each leg in each bar, from what was sent
    bar_ns = bar_ms * MS
    want: dict[int, dict[str, float]] = {}
    for _, _, symbol, price, ts in sorted(arrivals, key=lambda a: a[4]):
        want.setdefault((ts // bar_ns + 1) * bar_ns, {})[symbol] = price
    wrong = 0
    for close_ts, prices in bars:
        for symbol, leg in prices.items():
            if leg.in_bar and want.get(close_ts, {}).get(symbol) != leg.price:
                wrong += 1
    wrong += sum(1 for close_ts in want if close_ts not in {ts for ts, _ in bars})
    accepted = node.pipeline.bars.ticks_accepted
    lost = put - accepted
    return Lag(put, lost, wrong)


async def taken(node: Daemon, want: int) -> None:
    """Wait until the core has taken ``want`` ticks (a few loop turns, usually)."""
    for _ in range(50):
        if node.pipeline.stats.ticks_in == want:
            return
        await asyncio.sleep(0)
    await eventually(lambda: node.pipeline.stats.ticks_in == want, what="ticks taken")


@pytest.mark.parametrize("bar_ms", [1000, 250])
async def test_a_leg_80ms_behind_loses_no_tick_within_a_200ms_grace(bar_ms: int) -> None:
    result = await lagging_run(bar_ms)
    assert result.ticks > 400
    assert result.lost == 0
    assert result.wrong_bars == 0


async def test_a_leg_later_than_the_grace_is_late_as_before() -> None:
    result = await lagging_run(250, lag_ms=300)
    assert result.lost > 0


if __name__ == "__main__":

    async def main() -> None:
        for bar_ms in (1000, 250):
            for clocked in (False, True):
                r = await lagging_run(bar_ms, clocked=clocked)
                rule = "clocked (bar end + grace)" if clocked else "old: next tick closes"
                print(
                    f"bar {bar_ms} ms, lag 80 ms, grace 200 ms, {rule}: lost {r.lost} of "
                    f"{r.ticks} ticks ({100 * r.lost / r.ticks:.1f}%), wrong bars {r.wrong_bars}"
                )

    asyncio.run(main())
