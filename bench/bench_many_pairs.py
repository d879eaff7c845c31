"""``hedger replay`` of many pairs: P pairs over T daily bars, the whole process timed.

Run as ``python bench/bench_many_pairs.py`` (1,000 pairs x 2,000 bars; the file is written once
to ``--dir``, default /tmp/hedger-bench) or ``--quick`` (200 pairs x 500 bars).

The input is one long tick CSV (``ts,symbol,price``, integer ns times): P hedged symbols and
100 hedges, every symbol trading once a day on a random walk, the pairs ``Y_i/X_(i mod 100)``
in levels with the replay's defaults (OLS warm-up, adaptive R, the gate at 6, the alarm on),
given by a ``--config`` file. Timed: ``python -m hedger.cli replay FILE --config CFG --bar 1d
--out OUT``, wall time of the child process (start-up, imports, numba's cache, the replay,
writing every event) and its peak RSS; best of ``--repeats``. In the same run and on the same
file: the reference path (every pair on its own actor, ``replay(bank=False)``) in a child
process, once; both outputs must be byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HEDGES = 100
DAY = 86_400 * 1_000_000_000
T0 = 1_600_000_000 * 1_000_000_000


def write_files(directory: Path, n_pairs: int, bars: int) -> tuple[Path, Path]:
    """The tick file and the config of ``n_pairs`` pairs over ``bars`` days (cached)."""
    directory.mkdir(parents=True, exist_ok=True)
    ticks = directory / f"many_pairs_{n_pairs}x{bars}.csv"
    config = directory / f"many_pairs_{n_pairs}.toml"
    tables = "".join(f'[pairs."Y{i}/X{i % HEDGES}"]\n' for i in range(n_pairs))
    config.write_text('[bars]\nlength = "1d"\n' + tables)
    if ticks.exists():
        return ticks, config
    rng = np.random.default_rng(0)
    beta = 0.5 + rng.random(n_pairs)
    x = np.full(HEDGES, 100.0)
    names = [f"Y{i}" for i in range(n_pairs)] + [f"X{i}" for i in range(HEDGES)]
    partial = ticks.with_suffix(".part")
    with partial.open("w") as out:
        out.write("ts,symbol,price\n")
        for day in range(bars):
            x *= np.exp(rng.normal(0.0, 0.01, HEDGES))
            y = beta * x[np.arange(n_pairs) % HEDGES] + 10 + rng.normal(0.0, 0.2, n_pairs)
            ts = T0 + day * DAY + 3_600_000_000_000
            prices = np.concatenate([y, x]).round(4).tolist()
            out.writelines(f"{ts},{s},{p}\n" for s, p in zip(names, prices, strict=True))
    partial.rename(ticks)
    return ticks, config


def child_run(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


REFERENCE = """
import sys
from pathlib import Path
import tomllib
from hedger.config.pipeline import pipeline_config
from hedger.runtime.replay import replay
cfg = pipeline_config(tomllib.loads(Path(sys.argv[2]).read_text()))
with open(sys.argv[3], "wb") as out:
    replay([Path(sys.argv[1])], cfg, out, bank=False)
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/hedger-bench"))
    parser.add_argument("--quick", action="store_true", help="200 pairs x 500 bars")
    parser.add_argument("--no-reference", action="store_true", help="skip the old path")
    args = parser.parse_args(argv)
    n, bars = (200, 500) if args.quick else (args.pairs, args.bars)
    print(f"writing the input ({n:,} pairs x {bars:,} bars) ...", file=sys.stderr)
    ticks, config = write_files(args.dir, n, bars)
    out = args.dir / "many_pairs_out.jsonl"
    cli = [sys.executable, "-m", "hedger.cli", "replay", str(ticks), "--config", str(config)]
    cli += ["--bar", "1d", "--out", str(out)]
    runs = [child_run(cli) for _ in range(args.repeats)]
    best = min(runs)
    events = sum(1 for _ in out.open("rb"))
    mine = digest(out)
    rows = [("hedger replay (bank, bulk encoding)", best[0], best[1], args.repeats)]
    same = "-"
    if not args.no_reference:
        ref_out = args.dir / "many_pairs_ref.jsonl"
        print("the reference path (an actor per pair) ...", file=sys.stderr)
        ref = child_run([sys.executable, "-c", REFERENCE, str(ticks), str(config), str(ref_out)])
        rows.append(("reference: replay(bank=False), an actor per pair", ref[0], ref[1], 1))
        same = "yes" if digest(ref_out) == mine else "NO"
    size = os.path.getsize(ticks) / 2**20
    print(
        f"\n{n:,} pairs x {bars:,} daily bars: {n * bars:,} pair-updates, "
        f"{(n + HEDGES) * bars:,} ticks ({size:,.0f} MiB), {events:,} events written\n"
    )
    print("| path | runs | best wall (s), whole process | pair-updates/s | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for name, wall, rss, count in rows:
        print(f"| {name} | {count} | {wall:.2f} | {n * bars / wall:,.0f} | {rss:.0f} |")
    if len(rows) > 1:
        print(f"\nreference / bank: {rows[1][1] / rows[0][1]:.1f}x; outputs identical: {same}")
    met = "met" if best[0] <= 8.0 else "NOT met"
    print(f"target (1,000 x 2,000 in <= 8 s whole process): {met} at {best[0]:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
