"""Clock skew and time jumps: what one tick stamped in the future does to a replay and to a live
pipeline, before and after the ``future`` rule (see docs/reliability.md).

Run as ``python bench/skew.py`` (about half a minute; ``--ticks N`` for another size). Prints a
markdown table. It works against any tree that has ``hedger.runtime.replay.replay`` and
``hedger.core.pipeline.Pipeline`` (run it with ``PYTHONPATH`` at an older tree for the
"before" figures).

Method:

* Input: one pair (YYY hedged with XXX) from :class:`feeds.synthetic.SyntheticMarket` with
  ``rate=50`` (about 100 ticks per 1 s bar), seed 7, ``--ticks`` ticks (200,000), written as
  ``ts,symbol,price,size`` lines with epoch-ns times.
* Planted rows are *added* (copies of a real row with another time), so every run has the same
  valid ticks as the clean run: a valid tick lost is one the clean run accepted and the planted
  run did not. The +60 s row copies the row a third into the file, 60 s later; the year-2100 row
  copies the row two thirds into the file, at 2100-01-01; "both" plants the two. "in a row"
  plants two bad rows one after the other, the second later than the first (the +60 s row,
  then a copy in 2100, a third into the file); "last row" appends a copy of the last row, 60 s
  later.
* Replay: :func:`hedger.runtime.replay.replay` with 1 s bars, through the compiled path (the
  one ``hedger replay`` takes for a long tick CSV) and through the streaming path.
* Live: the same ticks through :meth:`hedger.core.pipeline.Pipeline.on_tick` (the daemon's entry
  point) with ``ts_recv`` = ``ts_event`` + 1 ms (the receive time); a planted tick is received
  when its neighbours are but stamped 60 s ahead, or in 2100.
* One file per symbol: YYY's and XXX's rows in two files, merged by ``replay``, with a
  year-2100 row half-way into YYY's file.
* Price table: :func:`hedger.research.prices.load_prices` of the planted files (1 s bars),
  the input of ``matrix``, ``calibrate`` and ``evaluate``.
* Daemon: :class:`hedger.runtime.daemon.Daemon` on a test clock (1 s bars, 200 ms grace, pairs
  YYY/XXX and ZZZ/XXX) with a feed stamping ``ts_recv`` from the clock: three symbols tick at
  a quarter past each second for 70 s; right after the first three ticks comes one tick stamped
  60 s ahead (or in 2100). Counts the bars closed and the ticks refused.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import sys
import tempfile
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from feeds.synthetic import SyntheticMarket, SyntheticSpec
from hedger.config.daemon import daemon_config
from hedger.config.pipeline import pipeline_config
from hedger.core.actors import PairSpec
from hedger.core.events import Event, HedgeRatioEvent
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
from hedger.runtime.clock import TestClock
from hedger.runtime.daemon import Daemon
from hedger.runtime.replay import replay

S = 1_000_000_000
YEAR_2100 = 4_102_444_800 * S
RECV_LAG = 1_000_000
Row = tuple[int, str, float, float | None]


@dataclass(frozen=True)
class Run:
    """What one run did: events, ticks the bars accepted, rejects by reason, the last beta."""

    events: int
    accepted: int
    rejects: dict[str, int]
    beta: float


def market_rows(n: int) -> list[Row]:
    market = SyntheticMarket(SyntheticSpec(rate=50.0), seed=7)
    rows: list[Row] = []
    for tick in market.ticks(n / 100 + 60):
        rows.append((tick.ts_event, tick.symbol, tick.price, tick.size))
        if len(rows) == n:
            break
    return rows


KINDS = ("clean", "+60s", "2100", "both", "in a row", "last row")


def planted_at(rows: list[Row], kind: str) -> tuple[list[Row], set[int]]:
    """``rows`` with the planted row(s) of ``kind`` (one of :data:`KINDS`), and the indices
    of the planted rows in the result."""
    third = len(rows) // 3
    plants: list[tuple[int, list[int]]] = []  # (after row, times of the rows planted there)
    if kind in ("+60s", "both"):
        plants.append((third, [rows[third][0] + 60 * S]))
    if kind in ("2100", "both"):
        plants.append((2 * len(rows) // 3, [YEAR_2100]))
    if kind == "in a row":
        plants.append((third, [rows[third][0] + 60 * S, YEAR_2100]))
    if kind == "last row":
        plants.append((len(rows) - 1, [rows[-1][0] + 60 * S]))
    out = list(rows)
    for at, times in sorted(plants, reverse=True):
        _, symbol, price, size = rows[at]
        out[at + 1 : at + 1] = [(ts, symbol, price, size) for ts in times]
    where: set[int] = set()
    shift = 0
    for at, times in sorted(plants):
        where.update(at + 1 + shift + k for k in range(len(times)))
        shift += len(times)
    return out, where


def planted(rows: list[Row], kind: str) -> list[Row]:
    """``rows`` with the planted row(s) of ``kind``."""
    return planted_at(rows, kind)[0]


def write_csv(path: Path, rows: list[Row]) -> None:
    lines = ["ts,symbol,price,size"]
    lines += [
        f"{ts},{sym},{price!r},{'' if size is None else size}" for ts, sym, price, size in rows
    ]
    path.write_text("\n".join(lines) + "\n")


def final_beta(events: list[bytes]) -> float:
    for line in reversed(events):
        event = json.loads(line)
        if event.get("type") == "hedge_ratio":
            return float(event["beta"][0] if isinstance(event["beta"], list) else event["beta"])
    return math.nan


def replay_run(path: Path, compiled: bool) -> Run:
    config = pipeline_config({"bars": {"length": "1s"}}, extra_pairs=("YYY/XXX",))
    out = io.BytesIO()
    summary = replay([path], config, out, compiled=compiled)
    lines = out.getvalue().splitlines()
    rejected = sum(summary.rejects.values())
    accepted = summary.ticks - rejected - summary.duplicates
    return Run(summary.events, accepted, dict(summary.rejects), final_beta(lines))


def live_run(rows: list[Row], kind: str) -> Run:
    config = pipeline_config({"bars": {"length": "1s"}}, extra_pairs=("YYY/XXX",))
    spec: PairSpec = config.pairs[0]
    events: list[Event] = []
    rejects = Rejects()
    pipeline = Pipeline([spec], S, S, events.append, rejects)
    stream, where = planted_at(rows, kind)
    ticks: list[Tick] = []
    recv = 0
    for i, (ts, sym, price, size) in enumerate(stream):
        if i not in where:  # a planted tick is received with its neighbours
            recv = ts + RECV_LAG
        ticks.append(Tick(sym, price, ts, recv, size, "live"))
    for tick in ticks:
        pipeline.on_tick(tick)  # the daemon's core task does this for each tick it takes
    pipeline.flush()
    betas = [e for e in events if isinstance(e, HedgeRatioEvent)]
    beta = float(betas[-1].beta[0]) if betas else math.nan
    return Run(len(events), pipeline.bars.ticks_accepted, rejects.summary(), beta)


class _ClockFeed:
    """A live feed that stamps ``ts_recv`` with the clock's time when a tick is put."""

    def __init__(self, clock: TestClock) -> None:
        self.rejects = Rejects()
        self.clock = clock
        self.queue: asyncio.Queue[Tick] = asyncio.Queue()

    def put(self, symbol: str, price: float, ts_event: int) -> None:
        self.queue.put_nowait(Tick(symbol, price, ts_event, self.clock.time_ns(), venue="probe"))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass  # nothing to release

    async def __aiter__(self) -> AsyncIterator[Tick]:
        while True:
            yield await self.queue.get()


class _Quiet:
    """A logger that drops everything (the table is the output)."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kw: None


DAEMON_TOML = """
[bars]
length = "1s"
max_age = "10s"
[pairs."YYY/XXX"]
[pairs."ZZZ/XXX"]
[[feeds]]
kind = "synthetic"
[daemon]
bar_grace = "200ms"
shutdown_timeout = "3s"
"""


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise RuntimeError("the daemon did not get there")


async def daemon_probe(stamp: int | None, seconds: int = 70) -> tuple[int, int, dict[str, int]]:
    """(bars closed, valid ticks, rejects) of the daemon scenario; ``stamp``: the planted
    tick's ``ts_event`` (None: none)."""
    t0 = 1_700_000_000 * S
    clock = TestClock(t0)
    feed = _ClockFeed(clock)
    node = Daemon(daemon_config(tomllib.loads(DAEMON_TOML)), _Quiet(), clock=clock,
                  feeds=[feed])  # fmt: skip
    closed: list[int] = []
    node.pipeline.bar_listeners.append(("probe", lambda ts, prices, ticked: closed.append(ts)))
    stop = asyncio.Event()
    task = asyncio.create_task(node.run(stop))
    await _until(lambda: bool(clock.pending()))
    valid = 0
    for k in range(seconds):
        await clock.advance_to(t0 + k * S)
        for symbol in ("YYY", "XXX", "ZZZ"):
            feed.put(symbol, 10.0 + k, t0 + k * S + S // 4)
            valid += 1
        if k == 0 and stamp is not None:
            feed.put("XXX", 5.5, stamp)
        want = valid + (stamp is not None)

        def taken(want: int = want) -> bool:
            return node.pipeline.stats.ticks_in == want

        await _until(taken)
    await clock.advance_to(t0 + seconds * S + 200_000_000)
    await _until(lambda: node.queue.qsize() == 0)
    for _ in range(1000):  # let the core finish the item it took off the queue
        await asyncio.sleep(0)
    bars = len(closed)
    stop.set()
    await asyncio.wait_for(task, 10)
    return bars, valid, dict(node.rejects.summary())


def files_table(rows: list[Row], tmp: str) -> None:
    """One file per symbol, merged in event time; a year-2100 row half-way into YYY's file."""
    ys = [r for r in rows if r[1] == "YYY"]
    xs = [r for r in rows if r[1] == "XXX"]
    bad = [*ys[: len(ys) // 2 + 1], (YEAR_2100, *ys[len(ys) // 2][1:]), *ys[len(ys) // 2 + 1 :]]
    x = Path(tmp) / "x.csv"
    write_csv(x, xs)
    config = pipeline_config({"bars": {"length": "1s"}}, extra_pairs=("YYY/XXX",))
    print()
    print("| replay, one file per symbol | events | valid ticks lost | rejects | final beta |")
    print("|---|---|---|---|---|")
    for name, y_rows in (("clean", ys), ("2100", bad)):
        y = Path(tmp) / f"y-{name}.csv"
        write_csv(y, y_rows)
        out = io.BytesIO()
        summary = replay([y, x], config, out)
        # the clean run refuses nothing: every reject but `future` is a valid row refused
        lost = sum(n for reason, n in summary.rejects.items() if reason != "future")
        text = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.rejects.items())) or "0"
        beta = final_beta(out.getvalue().splitlines())
        print(f"| {name} | {summary.events:,} | {lost:,} | {text} | {beta:.6f} |")


def price_table(rows: list[Row], tmp: str) -> None:
    """The offline price table (``load_prices``, 1 s bars) of the planted files against the
    clean file's: bars, rejects, and whether the table is the clean one."""
    from hedger.research.prices import load_prices  # noqa: PLC0415 (this table only)

    clean = load_prices(_file(tmp, rows, "clean"), bar="1s")
    print()
    print("| price table (load_prices, 1 s) | bars | rejects | equal to the clean table |")
    print("|---|---|---|---|")
    for kind in ("both", "in a row", "last row"):
        table = load_prices(_file(tmp, rows, kind), bar="1s")
        equal = table.ts.tolist() == clean.ts.tolist() and bool(
            ((table.prices == clean.prices) | (table.prices != table.prices)).all()
        )
        text = ", ".join(f"{k} {v:,}" for k, v in sorted(table.rejects.counts.items())) or "0"
        print(f"| {kind} | {len(table.ts):,} of {len(clean.ts):,} | {text} | {equal} |")


def daemon_table() -> None:
    print()
    print("| daemon (test clock) | bars closed | valid ticks lost | rejects |")
    print("|---|---|---|---|")
    t0 = 1_700_000_000 * S
    for label, stamp in (("clean", None), ("+60s", t0 + 60 * S + S // 2), ("2100", YEAR_2100)):
        bars, valid, rejects = asyncio.run(daemon_probe(stamp))
        lost = sum(n for reason, n in rejects.items() if reason != "future")
        text = ", ".join(f"{k} {v:,}" for k, v in sorted(rejects.items())) or "0"
        print(f"| {label} | {bars} of 70 | {lost} of {valid} | {text} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200_000)
    args = parser.parse_args(argv)
    rows = market_rows(args.ticks)
    kinds = KINDS
    print("| path | planted | events | valid ticks lost | rejects | final beta | vs clean |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:

        def compiled(kind: str) -> Run:
            return replay_run(_file(tmp, rows, kind), True)

        def streaming(kind: str) -> Run:
            return replay_run(_file(tmp, rows, kind), False)

        def live(kind: str) -> Run:
            return live_run(rows, kind)

        paths: list[tuple[str, Callable[[str], Run]]] = [
            ("replay, compiled", compiled),
            ("replay, streaming", streaming),
            ("live (Pipeline.on_tick)", live),
        ]
        for label, run in paths:
            clean = run("clean")
            for kind in kinds:
                got = clean if kind == "clean" else run(kind)
                lost = clean.accepted - got.accepted
                rejects = ", ".join(f"{k} {v:,}" for k, v in sorted(got.rejects.items()))
                change = (got.beta - clean.beta) / abs(clean.beta)
                print(
                    f"| {label} | {kind} | {got.events:,} | {lost:,} | {rejects or '0'} "
                    f"| {got.beta:.6f} | {change:+.3%} |"
                )
            sys.stdout.flush()
        files_table(rows, tmp)
        price_table(rows, tmp)
    daemon_table()
    return 0


def _file(tmp: str, rows: list[Row], kind: str) -> Path:
    path = Path(tmp) / f"ticks-{kind}.csv"
    if not path.exists():
        write_csv(path, planted(rows, kind))
    return path


if __name__ == "__main__":
    raise SystemExit(main())
