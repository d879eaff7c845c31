"""The daemon's bar: P pairs from a bar close to messages in a bridge's outbox, on one core.

Run as ``python bench/bench_bar.py`` (10,000 pairs, 1,000 bars: about a minute) or ``--quick``.
Prints a markdown table: median and p99 of the bar (milliseconds), per pair-update, and the
ratio of each row to the bank with the batch message only.

Set-up: P pairs ``Y_i/X_(i mod 100)`` (P hedged symbols, 100 hedges) in levels with hedger's
defaults (OLS warm-up, adaptive R, the innovation gate at 6, the alarm on), every symbol
ticking every bar on a random walk. Each timed bar is one call of the pipeline's bar close
(``Pipeline.on_bar_close`` with the bar's prices, as the bar builder makes them) to the moment
the bus has handed its messages to an MQTT-like bridge's outbox: filter, events, encoding,
routing. The first 50 bars (the warm-up, whose end fits an OLS per pair) are not timed.

Rows, all in this process on the same prices:
- bank, batch message only (``[bus] per_pair = false``): the configuration for large universes;
- bank, per-pair topics and the batch message (the default);
- the reference path (``bank=False``: one actor and one ``HedgeFilter`` per pair, events one by
  one), on fewer bars (it is slow), the old path this issue replaces;
- the bank with every pair a combined hedge (its two other Kalman members in the bank as
  pairs of their own, the combination stepped per pair in Python), on fewer bars;
- peers: filterpy's ``KalmanFilter.predict()`` + ``update()`` and pykalman's ``filter_update``
  for P pairs, filter only (no events), measured on 500 pairs and scaled to P.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time

import numpy as np

from hedger.config.combine import combine_spec
from hedger.core.actors import PairSpec
from hedger.core.bars import LegPrice
from hedger.core.bus import Bus, Outbox
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.topics import PairId
from hedger.engine import FilterParams
from hedger.engine.alarm import AlarmParams
from hedger.engine.params import InputMode

SECOND = 1_000_000_000
HEDGES = 100
WARMUP_BARS = 50


class OutboxOnly:
    """A bridge that only holds what it is handed (what the daemon's bar costs stops here)."""

    name = "bench"

    def __init__(self) -> None:
        self.outbox = Outbox(10_000_000, "bench")

    async def run(self) -> None:  # the protocol's; never run here
        return

    async def drain(self, timeout: float) -> bool:
        return True

    def metrics(self) -> dict[str, float]:
        return {}


class Market:
    """Prices of P hedged symbols and 100 hedges, one random-walk step a bar."""

    def __init__(self, n_pairs: int, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.ys = [f"Y{i}" for i in range(n_pairs)]
        self.xs = [f"X{i}" for i in range(HEDGES)]
        self.beta = 0.5 + self.rng.random(n_pairs)
        self.x = np.full(HEDGES, 100.0)
        self.symbols = self.ys + self.xs
        self.pairs = [PairId(y, (self.xs[i % HEDGES],)) for i, y in enumerate(self.ys)]

    def bar(self, k: int) -> tuple[int, dict[str, LegPrice], frozenset[str]]:
        """The k-th bar's close, prices and ticked symbols (every symbol ticks)."""
        self.x *= np.exp(self.rng.normal(0.0, 0.01, HEDGES))
        hedge = self.x[np.arange(len(self.ys)) % HEDGES]
        y = self.beta * hedge + 10.0 + self.rng.normal(0.0, 0.2, len(self.ys))
        ts = (k + 1) * SECOND
        tick = ts - SECOND // 2
        prices = {s: LegPrice(p, tick, True) for s, p in zip(self.ys, y.tolist(), strict=True)}
        prices.update(
            {s: LegPrice(p, tick, True) for s, p in zip(self.xs, self.x.tolist(), strict=True)}
        )
        return ts, prices, frozenset(self.symbols)


def specs(market: Market, combined: bool = False) -> list[PairSpec]:
    params = FilterParams(outlier_z=6.0)
    if not combined:
        return [PairSpec(pair, params, alarm=AlarmParams()) for pair in market.pairs]
    params = FilterParams(mode=InputMode.RETURNS, outlier_z=6.0)
    combine = combine_spec({"rolling_window": 20}, params, "bench")
    return [PairSpec(pair, params, alarm=AlarmParams(), combine=combine) for pair in market.pairs]


def time_bars(
    n_pairs: int, bars: int, *, bank: bool, per_pair: bool, combined: bool = False
) -> tuple[list[float], int]:
    """Seconds of each timed bar, and the messages handed to the bridge."""
    market = Market(n_pairs)
    bus = Bus(per_pair=per_pair)
    bridge = OutboxOnly()
    bus.attach(bridge)
    pipeline = Pipeline(
        specs(market, combined), SECOND, 10 * SECOND, bus.publish, Rejects(),
        emit_bar=bus.publish_bar, bank=bank,
    )  # fmt: skip
    closes = [market.bar(k) for k in range(WARMUP_BARS)]
    for close in closes:
        pipeline.on_bar_close(*close)
    times = []
    gc.collect()
    gc.disable()
    try:
        for k in range(WARMUP_BARS, WARMUP_BARS + bars):
            close = market.bar(k)
            started = time.perf_counter()
            pipeline.on_bar_close(*close)
            times.append(time.perf_counter() - started)
            bridge.outbox._items.clear()  # a real bridge takes them away; keep memory flat
    finally:
        gc.enable()
    return times, bus.published


def peer_seconds_per_update(kind: str, n: int = 500, steps: int = 20) -> float:
    """A peer library's filter step of one pair (predict + update), seconds."""
    rng = np.random.default_rng(1)
    x = 100.0 + rng.normal(size=(steps, n)).cumsum(axis=0)
    y = 0.8 * x + 10 + rng.normal(size=(steps, n))
    q = 1e-4 / (1 - 1e-4) * np.eye(2)
    if kind == "filterpy":
        from filterpy.kalman import KalmanFilter  # noqa: PLC0415

        filters = []
        for _ in range(n):
            kf = KalmanFilter(dim_x=2, dim_z=1)
            kf.P, kf.Q, kf.R, kf.F = np.eye(2), q, np.eye(1), np.eye(2)
            filters.append(kf)
        started = time.perf_counter()
        for t in range(steps):
            for i, kf in enumerate(filters):
                kf.H = np.array([[x[t, i], 1.0]])
                kf.predict()
                kf.update(y[t, i])
        return (time.perf_counter() - started) / (n * steps)
    from pykalman import KalmanFilter as Pykalman  # noqa: PLC0415

    kf = Pykalman(
        transition_matrices=np.eye(2), transition_covariance=q, observation_covariance=1.0
    )
    means = [np.zeros(2)] * n
    covs = [np.eye(2)] * n
    h = [[np.array([[x[t, i], 1.0]]) for i in range(n)] for t in range(steps)]
    started = time.perf_counter()
    for t in range(steps):
        for i in range(n):
            means[i], covs[i] = kf.filter_update(
                means[i], covs[i], y[t, i], observation_matrix=h[t][i]
            )
    return (time.perf_counter() - started) / (n * steps)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--bars", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="1,000 pairs, 100 bars")
    args = parser.parse_args(argv)
    n, bars = (1000, 100) if args.quick else (args.pairs, args.bars)
    old_bars = max(5, bars // 50)
    rows: list[tuple[str, list[float], int, int]] = []
    for name, bank, per_pair, count, combined in (
        ("bank, batch message only (per_pair = false)", True, False, bars, False),
        ("bank, per-pair topics + batch message (default)", True, True, bars, False),
        ("reference path: an actor per pair (bank = false)", False, True, old_bars, False),
        (
            "bank, every pair a combined hedge (returns; self, seed, chan, rolling 20), "
            "batch message only",
            True, False, old_bars, True,
        ),
    ):  # fmt: skip
        print(f"timing {name}: {n:,} pairs x {count:,} bars ...", file=sys.stderr)
        times, published = time_bars(n, count, bank=bank, per_pair=per_pair, combined=combined)
        rows.append((name, times, published, count))
    base = statistics.median(rows[0][1])
    print(f"\n{n:,} pairs, levels, defaults (OLS warm-up, adaptive R, gate at 6, alarm on)\n")
    print("| path | bars timed | median (ms) | p99 (ms) | per pair-update (us) | x batch-only |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, times, _, count in rows:
        med = statistics.median(times)
        print(
            f"| {name} | {count:,} | {med * 1e3:.2f} | {p99(times) * 1e3:.2f} | "
            f"{med / n * 1e6:.3f} | {med / base:.1f} |"
        )
    for peer in ("filterpy", "pykalman"):
        per = peer_seconds_per_update(peer)
        print(
            f"| peer: {peer} predict + update, filter only (500 pairs, scaled) | - | "
            f"{per * n * 1e3:.1f} | - | {per * 1e6:.2f} | {per * n / base:.0f} |"
        )
    target = statistics.median(rows[0][1]) <= 0.010 and p99(rows[0][1]) <= 0.010
    print(
        f"\ntarget: {n:,} pairs in <= 10 ms a bar, median and p99 (batch message only): "
        f"{'met' if target else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
