"""Benchmark the hedge-ratio matrix: N symbols, every ordered pair, one compiled pass.

Run as ``python bench/bench_matrix.py`` (about a minute) or ``--quick`` (smoke run). Prints the
machine, a markdown table and which targets were met; targets are reported, never enforced.

Cases (synthetic, seeded: N geometric random walks near 50, 1% daily volatility):
1. offline: 100 symbols (9,900 ordered pairs) x 2,500 daily bars through
   ``MatrixFilter.run`` (final state only) and ``MatrixFilter.run_bars`` (every bar's beta,
   alpha, beta s.e., z-score and warm flag recorded, in chunks); target < 1 s.
2. live: one bar of 9,900 pair-updates, ``MatrixFilter.step`` (after 2,500 bars of history),
   and the daemon's whole bar (``MatrixActor.handle_bar``: fresh prices, step, snapshot, JSON
   encoding); median and p99 over many bars; target < 5 ms.
3. peers, same process: a per-pair Python loop of filterpy ``KalmanFilter`` (predict + update)
   and of pykalman ``filter_update``, timed on a subset of pairs and extrapolated linearly to
   9,900 pairs x 2,500 bars (the table says so); hedger's own plain-float ``PairFilter`` loop
   too. For the comparison the matrix runs the model the peers can run: fixed R = 1, prior
   N(0, I), Q = delta / (1 - delta) I, delta = 1e-4, price levels; the agreement of the peers'
   betas with the matrix entries is checked and printed.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from filterpy.kalman import KalmanFilter as FilterpyKF
from numpy.typing import NDArray
from pykalman import KalmanFilter as PykalmanKF

from hedger.core.bars import LegPrice
from hedger.core.events import MatrixEvent, encode_matrix
from hedger.core.matrix_actor import MatrixActor
from hedger.engine import FilterParams, GivenInit, PairFilter
from hedger.engine.matrix import MatrixFilter, load_kernel, pair_indices

FloatArray = NDArray[np.float64]
DELTA = 1e-4
Q_VAR = DELTA / (1.0 - DELTA)
PEER_PARAMS = FilterParams(
    delta=DELTA,
    obs_cov=1.0,
    adaptive_r=None,
    init=GivenInit((0.0, 0.0), ((1.0, 0.0), (0.0, 1.0))),
)


def prices_table(n_bars: int, n_symbols: int, seed: int = 42) -> FloatArray:
    """Seeded geometric random walks (T, N) near 50, 1% volatility per bar."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.01, (n_bars, n_symbols))
    table: FloatArray = 50.0 * np.exp(np.cumsum(steps, axis=0))
    return table


def best_of(fn: Callable[[], object], runs: int) -> float:
    """Best wall time of ``runs`` calls, garbage collector off."""
    times = []
    for _ in range(runs):
        gc.disable()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        gc.enable()
    return min(times)


def live_times(step: Callable[[int], object], bars: int) -> list[float]:
    """Wall time (ms) of each of ``bars`` calls of ``step(i)``."""
    out = []
    gc.disable()
    for i in range(bars):
        start = time.perf_counter()
        step(i)
        out.append((time.perf_counter() - start) * 1e3)
    gc.enable()
    return out


def p99(values: list[float]) -> float:
    """The 99th percentile."""
    return float(np.percentile(values, 99))


def filterpy_loop(prices: FloatArray, pairs: list[tuple[int, int]]) -> list[float]:
    """Final beta of each pair, a filterpy filter per pair, one predict + update per bar."""
    betas = []
    for iy, ix in pairs:
        kf = FilterpyKF(dim_x=2, dim_z=1)
        kf.x = np.zeros((2, 1))
        kf.P = np.eye(2) - np.eye(2) * Q_VAR  # the first predict brings it to I
        kf.F = np.eye(2)
        kf.Q = np.eye(2) * Q_VAR
        kf.R = np.array([[1.0]])
        kf.H = np.array([[0.0, 1.0]])
        ys, xs = prices[:, iy].tolist(), prices[:, ix].tolist()
        for y, x in zip(ys, xs, strict=True):
            kf.H[0, 0] = x
            kf.predict()
            kf.update(y)
        betas.append(float(kf.x[0, 0]))
    return betas


def pykalman_loop(prices: FloatArray, pairs: list[tuple[int, int]]) -> list[float]:
    """Final beta of each pair, pykalman ``filter_update`` per bar."""
    betas = []
    for iy, ix in pairs:
        kf = PykalmanKF(
            transition_matrices=np.eye(2),
            transition_covariance=np.eye(2) * Q_VAR,
            observation_covariance=np.array([[1.0]]),
            n_dim_state=2,
            n_dim_obs=1,
        )
        mean, cov = np.zeros(2), np.eye(2) - np.eye(2) * Q_VAR
        obs = [np.array([y]) for y in prices[:, iy].tolist()]
        rows = [np.array([[x, 1.0]]) for x in prices[:, ix].tolist()]
        for y, h in zip(obs, rows, strict=True):
            mean, cov = kf.filter_update(mean, cov, y, observation_matrix=h)
        betas.append(float(mean[0]))
    return betas


def pairfilter_loop(prices: FloatArray, pairs: list[tuple[int, int]]) -> list[float]:
    """Final beta of each pair, hedger's plain-float ``PairFilter`` per pair."""
    q = ((Q_VAR, 0.0), (0.0, Q_VAR))
    betas = []
    for iy, ix in pairs:
        pf = PairFilter((0.0, 0.0), ((1.0, 0.0), (0.0, 1.0)), q, 1.0)
        update = pf.update
        for y, x in zip(prices[:, iy].tolist(), prices[:, ix].tolist(), strict=True):
            update(y, x)
        betas.append(pf.beta)
    return betas


def run_offline(prices: FloatArray, params: FilterParams) -> None:
    """A fresh matrix over the whole table, final state only."""
    MatrixFilter(prices.shape[1], params).run(prices)


def run_peer(
    loop: Callable[[FloatArray, list[tuple[int, int]]], list[float]],
    prices: FloatArray,
    pairs: list[tuple[int, int]],
    result: list[float],
) -> None:
    """Run a per-pair loop and keep its final betas in ``result``."""
    result[:] = loop(prices, pairs)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    args = parser.parse_args(argv)
    n_symbols, n_bars = 100, 2500
    runs, live_bars = (2, 200) if args.quick else (5, 2000)
    # pairs timed per peer (filterpy, pykalman, hedger's PairFilter)
    subset = (5, 1, 40) if args.quick else (20, 2, 200)
    prices = prices_table(n_bars, n_symbols)
    n_pairs = n_symbols * (n_symbols - 1)
    updates = n_pairs * n_bars
    load_kernel()

    print("# hedge-ratio matrix benchmark\n")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}; one thread\n"
    )
    rows: list[tuple[str, str, str]] = []

    # 1. offline
    for label, params in (("default (OLS warm-up, adaptive R)", FilterParams()),
                          ("peer model (given prior, fixed R)", PEER_PARAMS)):  # fmt: skip
        seconds = best_of(partial(run_offline, prices, params), runs)
        rows.append(
            (
                f"offline `run`, {label}",
                f"{seconds:.3f} s",
                f"{seconds / updates * 1e9:.1f} ns/pair-update",
            )
        )
    offline_default = float(rows[0][1].split()[0])
    peer_model_seconds = float(rows[1][1].split()[0])

    def record_all() -> None:
        for _ in MatrixFilter(n_symbols).run_bars(prices):
            pass

    seconds = best_of(record_all, max(1, runs // 2))
    rows.append(
        (
            "offline `run_bars`, every bar recorded (5 x 9,900 values)",
            f"{seconds:.3f} s",
            f"{seconds / updates * 1e9:.1f} ns/pair-update",
        )
    )

    # 2. live
    live = MatrixFilter(n_symbols)
    live.run(prices)
    bar_rows = prices_table(live_bars, n_symbols, seed=7) * (prices[-1] / 50.0)
    step_ms = live_times(lambda i: live.step(bar_rows[i]), live_bars)
    symbols = [f"S{i:03d}" for i in range(n_symbols)]
    sent: list[bytes] = []

    def publish(event: MatrixEvent) -> None:
        sent.append(encode_matrix(event))
        sent.clear()

    actor = MatrixActor(symbols, FilterParams(), 86_400_000_000_000, publish)
    actor.filter.run(prices)
    ticked = frozenset(symbols)
    bars_in = [
        {s: LegPrice(float(p), i, True) for s, p in zip(symbols, bar_rows[i], strict=True)}
        for i in range(live_bars)
    ]
    actor_ms = live_times(lambda i: actor.handle_bar(i, bars_in[i], ticked), live_bars)
    for label, values in (("`MatrixFilter.step`", step_ms), ("daemon bar: step + snapshot "
                          "+ JSON (`MatrixActor.handle_bar`)", actor_ms)):  # fmt: skip
        rows.append(
            (
                f"live bar of 9,900 pair-updates, {label}",
                f"median {statistics.median(values):.3f} ms",
                f"p99 {p99(values):.3f} ms, max {max(values):.3f} ms ({live_bars:,} bars)",
            )
        )

    # 3. peers on a subset, extrapolated
    ours = peer_model_seconds
    check = MatrixFilter(n_symbols, PEER_PARAMS)
    check.run(prices)
    all_pairs = list(zip(*(a.tolist() for a in pair_indices(n_symbols)), strict=True))
    peers: list[tuple[str, Callable[[FloatArray, list[tuple[int, int]]], list[float]]]] = [
        ("filterpy `KalmanFilter`, per-pair loop", filterpy_loop),
        ("pykalman `filter_update`, per-pair loop", pykalman_loop),
        ("hedger `PairFilter` (plain floats), per-pair loop", pairfilter_loop),
    ]
    agreement = []
    for (label, loop), count in zip(peers, subset, strict=True):
        chosen = all_pairs[:: max(1, n_pairs // count)][:count]
        result: list[float] = []
        seconds = best_of(partial(run_peer, loop, prices, chosen, result), 1)
        extrapolated = seconds * n_pairs / len(chosen)
        worst = max(
            abs(b - check.beta[iy, ix]) / max(1.0, abs(b))
            for b, (iy, ix) in zip(result, chosen, strict=True)
        )
        agreement.append(f"{label}: max relative beta difference {worst:.1e}")
        rows.append(
            (
                f"{label}: {len(chosen)} pairs x {n_bars:,} bars, extrapolated to 9,900 pairs",
                f"{extrapolated:,.1f} s",
                f"{extrapolated / ours:,.0f}x the matrix ({ours:.3f} s, peer model)",
            )
        )

    print("| case | time | per unit / ratio |")
    print("|---|---|---|")
    for case, value, unit in rows:
        print(f"| {case} | {value} | {unit} |")
    print("\nagreement with the matrix entries (same model, same data):")
    for line in agreement:
        print(f"- {line}")
    median_live = statistics.median(actor_ms)
    print("\ntargets:")
    verdict = "met" if offline_default < 1.0 else "NOT met"
    print(f"- 9,900 pairs x 2,500 bars < 1 s: {offline_default:.3f} s, {verdict}")
    verdict = "met" if p99(actor_ms) < 5.0 else "NOT met"
    print(
        f"- live bar of 9,900 pair-updates < 5 ms: median {median_live:.3f} ms, "
        f"p99 {p99(actor_ms):.3f} ms (daemon bar), {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
