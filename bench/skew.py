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
  copies the row two thirds into the file, at 2100-01-01.
* Replay: :func:`hedger.runtime.replay.replay` with 1 s bars, through the compiled path (the
  one ``hedger replay`` takes for a long tick CSV) and through the streaming path.
* Live: the same ticks through :meth:`hedger.core.pipeline.Pipeline.on_tick` (the daemon's entry
  point) with ``ts_recv`` = ``ts_event`` + 1 ms (the receive time); a planted tick is received
  when its neighbours are but stamped 60 s ahead, or in 2100.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from feeds.synthetic import SyntheticMarket, SyntheticSpec
from hedger.config.pipeline import pipeline_config
from hedger.core.actors import PairSpec
from hedger.core.events import Event, HedgeRatioEvent
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
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


def planted(rows: list[Row], kind: str) -> list[Row]:
    """``rows`` with the planted row(s) of ``kind`` ("clean", "+60s", "2100", "both")."""
    out = list(rows)
    plants: list[tuple[int, int]] = []
    if kind in ("+60s", "both"):
        at = len(rows) // 3
        plants.append((at, rows[at][0] + 60 * S))
    if kind in ("2100", "both"):
        plants.append((2 * len(rows) // 3, YEAR_2100))
    for at, ts in sorted(plants, reverse=True):
        _, symbol, price, size = rows[at]
        out.insert(at + 1, (ts, symbol, price, size))
    return out


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
    ticks = [Tick(sym, price, ts, ts + RECV_LAG, size, "live") for ts, sym, price, size in rows]
    plants: list[tuple[int, Callable[[Tick], Tick]]] = []
    if kind in ("+60s", "both"):
        plants.append((len(rows) // 3, lambda t: _restamped(t, t.ts_event + 60 * S)))
    if kind in ("2100", "both"):
        plants.append((2 * len(rows) // 3, lambda t: _restamped(t, YEAR_2100)))
    for at, make in sorted(plants, key=lambda p: p[0], reverse=True):
        ticks.insert(at + 1, make(ticks[at]))
    for tick in ticks:
        pipeline.on_tick(tick)  # the daemon's core task does this for each tick it takes
    pipeline.flush()
    betas = [e for e in events if isinstance(e, HedgeRatioEvent)]
    beta = float(betas[-1].beta[0]) if betas else math.nan
    return Run(len(events), pipeline.bars.ticks_accepted, rejects.summary(), beta)


def _restamped(tick: Tick, ts_event: int) -> Tick:
    return Tick(tick.symbol, tick.price, ts_event, tick.ts_recv, tick.size, tick.venue, tick.kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200_000)
    args = parser.parse_args(argv)
    rows = market_rows(args.ticks)
    kinds = ("clean", "+60s", "2100", "both")
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
    return 0


def _file(tmp: str, rows: list[Row], kind: str) -> Path:
    path = Path(tmp) / f"ticks-{kind}.csv"
    if not path.exists():
        write_csv(path, planted(rows, kind))
    return path


if __name__ == "__main__":
    raise SystemExit(main())
