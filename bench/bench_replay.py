"""Benchmark ``hedger replay`` end to end: a long tick CSV in, hedge-ratio events out.

Run as ``python bench/bench_replay.py`` (1M and 10M ticks; about a minute to write the files the
first time, then about a minute and a half) or ``--quick`` (200k and 1M ticks, a smoke run).
Prints a markdown report: the machine, a table of throughput and peak memory per file size, a
profile of the largest file, and a verdict against the targets (>= 2M ticks/s on one core from
file to events written; peak RSS that does not grow with the file).

Method:

* Input: one pair (YYY hedged with XXX) from :class:`feeds.synthetic.SyntheticMarket` with
  ``rate=50`` (50 ticks/s per symbol, so about 100 ticks per 1 s bar), seed 7, written as
  ``ts,symbol,price,size`` lines with epoch-ns times. The files are cached in ``--dir``; one pass
  over the generator writes every file still missing (a smaller file is a prefix of a larger
  one: the generator is deterministic), through a temporary name and a rename, so a file present
  with the right line count is complete.
* Each timed run is the real command line, ``python -m hedger.cli replay FILE --pair YYY/XXX
  --bar 1s --out OUT``, in a fresh child process, timed by the wall clock around the child
  (interpreter start-up, imports and loading numba's disk cache included) and measured for peak
  RSS and CPU time by ``/usr/bin/time -v`` (without it: ``getrusage(RUSAGE_CHILDREN)`` in a fresh
  helper process per run). Two replays of a small file come first: one fills numba's disk cache
  (compiling if the sources changed), the second gives the start-up footprint.
* The streaming (pure Python) path runs on the smaller file in a child calling
  ``hedger.runtime.replay.replay(..., compiled=False)``; the same child mode with
  ``compiled=True`` checks that both paths write the same number of events.
* Profile of the larger file, in one child that has already replayed the small file (numba
  loaded, so these are steady-state figures): ``feeds.files.compiled.read_tick_blocks`` alone
  over the file (parse); the same loop feeding ``CompiledBars`` with a bar-close handler that
  does nothing, its ``feed`` calls timed on their own (bar rules); the whole compiled replay;
  best of 2 each. Rest = replay - parse (per bar); filter + events + writing = rest - bar rules.
* Memory diagnosis: the two sizes again with glibc's ``MALLOC_MMAP_THRESHOLD_`` pinned at
  128 KiB (glibc otherwise raises the threshold after large blocks are freed, and later blocks
  then come from the heap, which keeps freed pages resident).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import itertools
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from feeds.files.compiled import OK, fast_path_unit, read_tick_blocks
from feeds.synthetic import SyntheticMarket, SyntheticSpec
from hedger.config.pipeline import pipeline_config
from hedger.core.bar_kernel import CompiledBars
from hedger.core.ticks import TickColumns
from hedger.core.topics import PairId
from hedger.runtime.replay import ReplaySummary, replay

DESCRIPTION = "Benchmark hedger replay end to end (tick CSV -> events), speed and peak memory."
PAIR = "YYY/XXX"
SEED = 7
RATE = 50.0  # ticks per second per symbol: about 100 ticks per 1 s bar for the pair
HEADER = "ts,symbol,price,size\n"
WARM_TICKS = 20_000
TARGET_TICKS_PER_S = 2_000_000.0
RSS_TOLERANCE = 0.10
GENERATE_BATCH = 100_000
MIB = 1024 * 1024
PINNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}

_TIME_V = "/usr/bin/time"
_MAXRSS = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")
_USER = re.compile(r"User time \(seconds\):\s*([\d.]+)")
_SYSTEM = re.compile(r"System time \(seconds\):\s*([\d.]+)")
_SUMMARY = re.compile(
    r"replayed \d+ file\(s\): ([\d,]+) ticks, ([\d,]+) bars, ([\d,]+) events in ([\d.]+) s"
)


# --------------------------------------------------------------------------- input files


def file_name(n_ticks: int) -> str:
    """The cache file for ``n_ticks`` ticks."""
    return f"ticks_{n_ticks}.csv"


def count_lines(path: Path) -> int:
    """Newlines in a file, read in binary blocks."""
    total = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 24):
            total += block.count(b"\n")
    return total


def is_complete(path: Path, n_ticks: int) -> bool:
    """The file is there with its header and ``n_ticks`` lines."""
    return path.is_file() and count_lines(path) == n_ticks + 1


def synthetic_lines(n_ticks: int) -> Iterator[list[str]]:
    """The first ``n_ticks`` ticks of the seeded market as CSV lines, in batches."""
    market = SyntheticMarket(SyntheticSpec(rate=RATE), seed=SEED)
    # enough market time for n_ticks (two symbols at RATE each), with a wide margin; the
    # generator is lazy, so the margin costs nothing
    seconds = n_ticks / (2.0 * RATE) * 1.05 + 60.0
    ticks = itertools.islice(market.ticks(seconds), n_ticks)
    while batch := list(itertools.islice(ticks, GENERATE_BATCH)):
        yield [f"{t.ts_event},{t.symbol},{t.price:.4f},100\n" for t in batch]


def ensure_files(directory: Path, sizes: Sequence[int]) -> dict[int, Path]:
    """Write the tick files that are missing (or incomplete); returns size -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {n: directory / file_name(n) for n in sizes}
    missing = sorted(n for n, path in paths.items() if not is_complete(path, n))
    if not missing:
        return paths
    started = time.perf_counter()
    log(f"writing tick files {missing} in {directory} ...")
    partial = {n: paths[n].with_suffix(".csv.partial") for n in missing}
    handles = {n: partial[n].open("w", encoding="ascii", newline="") for n in missing}
    try:
        for fh in handles.values():
            fh.write(HEADER)
        written = 0
        for lines in synthetic_lines(max(missing)):
            for n, fh in handles.items():
                if written < n:
                    fh.writelines(lines[: n - written])
            written += len(lines)
        if written != max(missing):
            raise RuntimeError(f"the generator stopped after {written} ticks")
    finally:
        for fh in handles.values():
            fh.close()
    for n in missing:
        partial[n].replace(paths[n])
    log(f"  written in {time.perf_counter() - started:.1f} s")
    return paths


# --------------------------------------------------------------------------- child processes


@dataclass(frozen=True)
class Run:
    """One child process: wall time around it, CPU time and peak RSS, and what it reported."""

    wall: float
    cpu: float  # user + system seconds
    peak_rss: int  # bytes
    ticks: int
    bars: int
    events: int
    inner: float  # the replay's own elapsed time (after start-up and imports)


def log(message: str) -> None:
    """Progress on stderr (the report goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


def rss_helper(argv: Sequence[str]) -> int:
    """Helper mode: run ``argv`` as a child and print its peak RSS and CPU times (getrusage)
    on stderr, in the words of ``/usr/bin/time -v``."""
    done = subprocess.run(list(argv), check=False)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"User time (seconds): {usage.ru_utime:.2f}", file=sys.stderr)
    print(f"System time (seconds): {usage.ru_stime:.2f}", file=sys.stderr)
    print(f"Maximum resident set size (kbytes): {usage.ru_maxrss}", file=sys.stderr)  # KiB
    return done.returncode


def measured(
    argv: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[float, float, int, str, str]:
    """Run ``argv`` in a fresh child; (wall s, CPU s, peak RSS bytes, stdout, stderr)."""
    if os.access(_TIME_V, os.X_OK):
        wrapped = [_TIME_V, "-v", *argv]
    else:
        wrapped = [sys.executable, __file__, "--rss-of", *argv]
    child_env = {**os.environ, **(env or {})}
    started = time.perf_counter()
    done = subprocess.run(wrapped, capture_output=True, text=True, env=child_env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed ({done.returncode}):\n{done.stderr}")
    found = [p.findall(done.stderr) for p in (_MAXRSS, _USER, _SYSTEM)]
    if not all(found):
        raise RuntimeError(f"no peak RSS or CPU time from {wrapped}:\n{done.stderr}")
    rss, user, system = (f[-1] for f in found)
    return wall, float(user) + float(system), int(rss) * 1024, done.stdout, done.stderr


def run_cli(path: Path, out: Path, env: Mapping[str, str] | None = None) -> Run:
    """The real command line on ``path``."""
    argv = [sys.executable, "-m", "hedger.cli", "replay", str(path)]
    argv += ["--pair", PAIR, "--bar", "1s", "--out", str(out)]
    wall, cpu, rss, _, stderr = measured(argv, env)
    match = _SUMMARY.search(stderr)
    if match is None:
        raise RuntimeError(f"no replay summary in:\n{stderr}")
    ticks, bars, events = (int(g.replace(",", "")) for g in match.groups()[:3])
    return Run(wall, cpu, rss, ticks, bars, events, float(match.group(4)))


def run_helper(mode: str, path: Path, out: Path, warm: Path) -> tuple[Run, dict[str, float]]:
    """This script's helper ``mode`` in a fresh child (see :func:`helper`); the run and the
    child's JSON report."""
    argv = [sys.executable, __file__, "--helper", mode, str(path), str(out), str(warm)]
    wall, cpu, rss, stdout, _ = measured(argv)
    report: dict[str, float] = json.loads(stdout.strip().splitlines()[-1])
    run = Run(
        wall,
        cpu,
        rss,
        int(report["ticks"]),
        int(report["bars"]),
        int(report["events"]),
        report["seconds"],
    )
    return run, report


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def helper(mode: str, path: Path, out: Path, warm: Path) -> int:
    """Helper mode, in a child process. Prints a JSON object as its last stdout line.

    ``streaming`` / ``compiled``: one ``hedger.runtime.replay.replay`` of ``path`` forced down
    that path
    (seconds: the replay's own elapsed time). ``profile``: replay ``warm`` first (numba loaded),
    then best of 2 of: parse alone, parse + bar rules, the whole compiled replay."""
    config = pipeline_config({}, extra_pairs=(PAIR,), bar_overrides={"length": "1s"})

    def replay_to_out(source: Path, compiled: bool) -> ReplaySummary:
        with out.open("wb") as fh:
            return replay([source], config, fh, compiled=compiled)

    if mode in ("streaming", "compiled"):
        summary = replay_to_out(path, mode == "compiled")
        report = {"ticks": summary.ticks, "bars": summary.bars, "events": summary.events}
        print(json.dumps({**report, "seconds": summary.seconds}))
        return 0
    if mode != "profile":
        raise ValueError(f"unknown helper mode {mode}")

    replay_to_out(warm, True)
    unit = fast_path_unit(path, "auto")
    if unit is None:
        raise RuntimeError(f"{path} is not a file for the compiled path")
    symbols = tuple(sorted(PairId.parse(PAIR).legs))  # the pipeline's symbol table, sorted
    bar_ns = config.bars.length_ns
    counted = {"ticks": 0, "bars": 0}

    def parse_only() -> None:
        ticks = 0
        for block in read_tick_blocks(path, symbols, unit):
            ticks += int(np.count_nonzero(block.status == OK))
        counted["ticks"] = ticks

    feed_times: list[float] = []

    def parse_and_bars() -> None:
        # the feed calls are timed on their own (one per block of about 100k ticks)
        bars = CompiledBars(symbols, bar_ns, lambda ts, prices, ticked: None)
        spent = 0.0
        for block in read_tick_blocks(path, symbols, unit):
            ok = block.status == OK
            columns = TickColumns(block.ts, block.sym, block.price, block.size, block.has_size, ok)
            started = time.perf_counter()
            bars.feed(columns)
            spent += time.perf_counter() - started
        bars.flush()
        feed_times.append(spent)
        counted["bars"] = bars.bars_closed

    summaries: list[ReplaySummary] = []
    parse_s = best_time(parse_only, 2)
    best_time(parse_and_bars, 2)
    replay_s = best_time(lambda: summaries.append(replay_to_out(path, True)), 2)
    summary = summaries[-1]
    print(
        json.dumps(
            {
                "ticks": summary.ticks,
                "bars": summary.bars,
                "events": summary.events,
                "seconds": min(s.seconds for s in summaries),
                "outer_seconds": replay_s,
                "parse_seconds": parse_s,
                "parse_ticks": counted["ticks"],
                "bars_seconds": min(feed_times),
                "bars_closed": counted["bars"],
            }
        )
    )
    return 0


# --------------------------------------------------------------------------- report


def fmt_count(n: int) -> str:
    """1000000 -> 1M, 200000 -> 200k."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


def fmt_rate(per_second: float) -> str:
    """A rate in M or k per second."""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f}M"
    return f"{per_second / 1e3:.0f}k"


def mib(n_bytes: int) -> str:
    """Bytes in MiB."""
    return f"{n_bytes / MIB:.1f}"


def machine_lines() -> list[str]:
    """Where the run happened."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("hedger", "numpy", "numba", "orjson")
    )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    tool = "/usr/bin/time -v" if os.access(_TIME_V, os.X_OK) else "getrusage(RUSAGE_CHILDREN)"
    return [
        f"- date: {now}",
        f"- platform: {platform.platform()}",
        f"- CPU: {cpu}, os.cpu_count() = {os.cpu_count()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}",
        f"- load average at the end (1, 5, 15 min): {load}",
        f"- peak RSS and CPU time from: {tool}",
    ]


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    path: str
    size: int
    runs: Sequence[Run]
    events: int
    note: str = ""

    @property
    def best(self) -> Run:
        """The fastest run by wall time."""
        return min(self.runs, key=lambda r: r.wall)

    def cells(self) -> list[str]:
        """The markdown cells."""
        r = self.best
        rss = ", ".join(mib(run.peak_rss) for run in self.runs)
        return [
            self.path,
            fmt_count(self.size),
            str(len(self.runs)),
            f"{r.wall:.2f}",
            fmt_rate(self.size / r.wall),
            f"{r.inner:.2f}",
            fmt_rate(r.ticks / r.inner) if r.inner > 0 else "-",
            f"{r.cpu / r.wall:.0%}",
            f"{r.bars:,}",
            f"{self.events:,}",
            rss,
            self.note,
        ]


def table(rows: Sequence[Row]) -> list[str]:
    """The results as a markdown table."""
    head = [
        "path",
        "ticks",
        "runs",
        "best wall (s)",
        "ticks/s, wall",
        "replay (s)",
        "ticks/s, replay",
        "CPU / wall",
        "bars",
        "events written",
        "peak RSS per run (MiB)",
        "notes",
    ]
    left = {0, len(head) - 1}
    out = ["| " + " | ".join(head) + " |"]
    out.append("|" + "|".join("---" if i in left else "---:" for i in range(len(head))) + "|")
    out.extend("| " + " | ".join(row.cells()) + " |" for row in rows)
    return out


# --------------------------------------------------------------------------- main


def run_cli_series(path: Path, out: Path, n: int, repeats: int) -> list[Run]:
    """``repeats`` runs of the command line on the file of ``n`` ticks."""
    runs = []
    for i in range(repeats):
        run = run_cli(path, out)
        log(f"  cli {fmt_count(n)} run {i + 1}: {run.wall:.2f} s, {mib(run.peak_rss)} MiB")
        if run.ticks != n:
            raise RuntimeError(f"replayed {run.ticks} ticks of {n}")
        runs.append(run)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the files, run the replays, print the report."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="smoke run: 200k and 1M ticks")
    parser.add_argument(
        "--dir", type=Path, default=Path("/tmp/hedger-bench"), help="cache of tick files"
    )
    parser.add_argument("--helper", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--rss-of", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_of is not None:
        return rss_helper(args.rss_of)
    if args.helper is not None:
        mode, file, out_file, warm_file = args.helper
        return helper(mode, Path(file), Path(out_file), Path(warm_file))

    small, large = (200_000, 1_000_000) if args.quick else (1_000_000, 10_000_000)
    repeats = {small: 3, large: 2}
    started = time.perf_counter()
    paths = ensure_files(args.dir, [WARM_TICKS, small, large])
    warm = paths[WARM_TICKS]
    work = Path(tempfile.mkdtemp(prefix="hedger-bench-replay-"))
    try:
        out = work / "events.jsonl"
        log("warming the numba cache ...")
        run_cli(warm, out)
        baseline = run_cli(warm, out)
        rows = [Row("compiled (CLI), start-up", WARM_TICKS, [baseline], count_lines(out))]
        cli: dict[int, Row] = {}
        for n in (small, large):
            runs = run_cli_series(paths[n], out, n, repeats[n])
            cli[n] = Row("compiled (CLI)", n, runs, count_lines(out))
            rows.append(cli[n])

        log("streaming path ...")
        stream, _ = run_helper("streaming", paths[small], out, warm)
        stream_events = count_lines(out)
        note = "child calling `replay(compiled=False)`"
        rows.append(Row("streaming (Python)", small, [stream], stream_events, note))
        same, _ = run_helper("compiled", paths[small], out, warm)
        same_events = count_lines(out)

        log("profile ...")
        _, prof = run_helper("profile", paths[large], out, warm)

        log("peak RSS with the mmap threshold pinned ...")
        pinned = {n: run_cli(paths[n], out, PINNED_MALLOC) for n in (small, large)}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # ------------------------------------------------------------------ report
    big, little = cli[large].best, cli[small].best
    bars = prof["bars"]
    steady = prof["seconds"]
    parse_s = prof["parse_seconds"]
    bars_only = prof["bars_seconds"]
    rest = steady - parse_s
    python_side = rest - bars_only
    lines = ["### Machine", "", *machine_lines(), "", "### Results", "", *table(rows)]
    lines += [
        "",
        "wall: the whole child process (interpreter start-up, imports, numba cache load, replay, "
        "exit); replay: the elapsed time the replay reports itself (numba cache load included); "
        "CPU / wall: user + system time over wall time (one core = 100 %).",
        "",
        f"Compiled and streaming paths on the {fmt_count(small)} file: {same_events:,} vs "
        f"{stream_events:,} events ({'same' if same_events == stream_events else 'DIFFERENT'}); "
        f"the compiled replay itself ran {stream.inner / same.inner:.1f}x faster "
        f"({fmt_rate(same.ticks / same.inner)} vs {fmt_rate(stream.ticks / stream.inner)} "
        "ticks/s, one run each, in the same kind of child).",
        "",
        f"### Profile of the {fmt_count(large)} file (compiled path)",
        "",
        "Steady state: one child that has replayed the small file first (numba loaded); "
        "best of 2 each.",
        "",
        "| part | seconds | share of replay | per unit |",
        "|---|---:|---:|---:|",
        f"| parse: `read_tick_blocks` alone | {parse_s:.2f} | {parse_s / steady:.0%} | "
        f"{parse_s / prof['parse_ticks'] * 1e9:.0f} ns/tick |",
        f"| rest = replay - parse: bars + filter + events + writing | {rest:.2f} | "
        f"{rest / steady:.0%} | {rest / bars * 1e6:.1f} µs/bar ({rest / large * 1e9:.0f} "
        "ns/tick) |",
        f"| of which bar rules (`CompiledBars.feed` calls, no-op handler) | {bars_only:.2f} | "
        f"{bars_only / steady:.0%} | {bars_only / large * 1e9:.0f} ns/tick "
        f"({bars_only / bars * 1e6:.1f} µs/bar) |",
        f"| of which filter + events + writing (per bar close, Python) | {python_side:.2f} | "
        f"{python_side / steady:.0%} | {python_side / bars * 1e6:.1f} µs/bar |",
        f"| replay, steady state | {steady:.2f} | 100% | {steady / large * 1e9:.0f} ns/tick "
        f"({fmt_rate(large / steady)} ticks/s) |",
        f"| replay inside the best CLI run | {big.inner:.2f} | | includes a one-off first-call "
        f"cost (numba cache load): the {fmt_count(WARM_TICKS)}-tick start-up run's replay took "
        f"{baseline.inner:.2f} s |",
        f"| whole CLI process, best run | {big.wall:.2f} | | start-up and exit: "
        f"{big.wall - big.inner:.2f} s |",
        "",
        f"Peak RSS with `MALLOC_MMAP_THRESHOLD_=131072` (one run each): "
        f"{mib(pinned[small].peak_rss)} MiB at {fmt_count(small)}, "
        f"{mib(pinned[large].peak_rss)} MiB at {fmt_count(large)} "
        f"({pinned[large].peak_rss / pinned[small].peak_rss - 1:+.1%}).",
    ]

    rate_wall = large / big.wall
    rate_inner = big.ticks / big.inner
    growth = big.peak_rss / little.peak_rss - 1.0
    met_rate = rate_wall >= TARGET_TICKS_PER_S
    met_rss = abs(growth) <= RSS_TOLERANCE
    lines += [
        "",
        "### Verdict",
        "",
        f"- [{'x' if met_rate else ' '}] >= {fmt_rate(TARGET_TICKS_PER_S)} ticks/s end to end "
        f"on {fmt_count(large)} ticks, one core: {fmt_rate(rate_wall)} ticks/s over the "
        f"process wall time -> {'MET' if met_rate else 'NOT MET'} (inside the replay "
        f"{fmt_rate(rate_inner)} ticks/s; steady state {fmt_rate(large / steady)} ticks/s)",
        f"- [{'x' if met_rss else ' '}] constant memory: peak RSS {mib(little.peak_rss)} MiB "
        f"at {fmt_count(small)} vs {mib(big.peak_rss)} MiB at {fmt_count(large)} "
        f"({growth:+.1%}; allowed +-{RSS_TOLERANCE:.0%}) -> {'MET' if met_rss else 'NOT MET'} "
        f"(start-up footprint, {fmt_count(WARM_TICKS)} ticks: {mib(baseline.peak_rss)} MiB)",
        "",
        f"Total run time {time.perf_counter() - started:.0f} s (tick files cached in {args.dir}).",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
