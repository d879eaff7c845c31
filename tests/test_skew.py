"""Clock skew and time jumps: a tick stamped 60 s ahead or in the year 2100 is rejected as
``future`` and loses no valid tick, in ``hedger replay`` of a real file (both bar paths), in
the daemon's entry point with ticks stamped at their receive time, and in the daemon on its
test clock; the shipped daily files, weekends and holidays included, have no ``future``
reject. The figures are in docs/reliability.md (``python bench/skew.py``)."""

from __future__ import annotations

import asyncio
import csv
import datetime
import gzip
import io
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Self

import pytest

from feeds.synthetic import SyntheticMarket, SyntheticSpec
from hedger.config.pipeline import PipelineConfig, pipeline_config
from hedger.core.events import Event, encode
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
from hedger.runtime.clock import TestClock
from hedger.runtime.replay import ReplaySummary, replay
from tests.conftest import run_hedger
from tests.test_clock import GRACE, T0, Running
from tests.waiting import eventually

S = 1_000_000_000
YEAR_2100 = 4_102_444_800 * S
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
Row = tuple[int, str, float, float | None]


def market(n: int = 20_000) -> list[Row]:
    """``n`` ticks of a synthetic pair (YYY on XXX), about 100 per 1 s bar."""
    rows: list[Row] = []
    for tick in SyntheticMarket(SyntheticSpec(rate=50.0), seed=7).ticks(n / 100 + 60):
        rows.append((tick.ts_event, tick.symbol, tick.price, tick.size))
        if len(rows) == n:
            return rows
    raise AssertionError("the market ran short")


def with_future_rows(rows: list[Row]) -> list[Row]:
    """``rows`` plus a copy of the row a third in, 60 s later, and one of the row two thirds
    in, in 2100 (added, so the valid rows are the same)."""
    a, b = len(rows) // 3, 2 * len(rows) // 3
    ahead = (rows[a][0] + 60 * S, *rows[a][1:])
    far = (YEAR_2100, *rows[b][1:])
    return [*rows[: a + 1], ahead, *rows[a + 1 : b + 1], far, *rows[b + 1 :]]


def write_ticks(path: Path, rows: list[Row]) -> Path:
    lines = ["ts,symbol,price,size"]
    lines += [f"{ts},{sym},{px!r},{'' if size is None else size}" for ts, sym, px, size in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def config(*pairs: str, bar: str = "1s", **filters: object) -> PipelineConfig:
    return pipeline_config({"bars": {"length": bar}}, extra_pairs=pairs, filter_overrides=filters)


def replayed(path: Path, cfg: PipelineConfig, compiled: bool) -> tuple[bytes, ReplaySummary]:
    out = io.BytesIO()
    summary = replay([path], cfg, out, compiled=compiled)
    return out.getvalue(), summary


def test_hedger_replay_of_a_file_with_a_60s_and_a_2100_row_writes_the_clean_events(
    tmp_path: Path,
) -> None:
    rows = market()
    clean = write_ticks(tmp_path / "clean.csv", rows)
    skewed = write_ticks(tmp_path / "skewed.csv", with_future_rows(rows))
    outputs = []
    for path in (clean, skewed):
        out = tmp_path / f"{path.stem}.jsonl"
        result = run_hedger(
            "replay", str(path), "--pair", "YYY/XXX", "--bar", "1s", "--out", str(out)
        )
        assert result.returncode == 0, result.stderr
        outputs.append((out.read_bytes(), result.stderr))
    (clean_events, clean_report), (skewed_events, skewed_report) = outputs
    assert "rejected: 0" in clean_report
    assert "rejected: 2 (future 2)" in skewed_report
    assert skewed_events == clean_events and clean_events.count(b"\n") > 300


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "streaming"])
def test_both_bar_paths_reject_the_two_rows_as_future_and_lose_no_valid_tick(
    tmp_path: Path, compiled: bool
) -> None:
    rows = market()
    clean, clean_summary = replayed(
        write_ticks(tmp_path / "c.csv", rows), config("YYY/XXX"), compiled
    )
    path = write_ticks(tmp_path / "s.csv", with_future_rows(rows))
    skewed, summary = replayed(path, config("YYY/XXX"), compiled)
    assert summary.rejects == {"future": 2}
    assert summary.ticks == clean_summary.ticks + 2 and summary.bars == clean_summary.bars
    assert skewed == clean


def test_a_future_row_in_one_of_several_files_holds_none_of_its_file_back(tmp_path: Path) -> None:
    """One file per symbol, merged in event time: the 2100 row of YYY's file is dropped before
    the merge, so YYY's later rows come in time."""
    rows = market()
    ys, xs = [r for r in rows if r[1] == "YYY"], [r for r in rows if r[1] == "XXX"]
    at = len(ys) // 2
    bad = [*ys[: at + 1], (YEAR_2100, *ys[at][1:]), *ys[at + 1 :]]
    x = write_ticks(tmp_path / "x.csv", xs)
    cfg = config("YYY/XXX")
    ys_clean = write_ticks(tmp_path / "y-clean.csv", ys)
    ys_bad = write_ticks(tmp_path / "y-bad.csv", bad)
    out = [replay_pair(y, x, cfg) for y in (ys_clean, ys_bad)]
    (clean, clean_summary), (events, summary) = out
    assert clean_summary.rejects == {} and summary.rejects == {"future": 1}
    assert events == clean and clean.count(b"\n") > 300


def replay_pair(first: Path, second: Path, cfg: PipelineConfig) -> tuple[bytes, ReplaySummary]:
    buffer = io.BytesIO()
    summary = replay([first, second], cfg, buffer)
    return buffer.getvalue(), summary


def gaps_in_days(path: Path) -> set[int]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        dates = [datetime.date.fromisoformat(row[0]) for row in list(csv.reader(fh))[1:]]
    return {(b - a).days for a, b in itertools.pairwise(dates)}


DAILY = [
    ("sp500_nasdaq_daily.csv", ("SP500/NASDAQ",), {"delta": 1e-7}),
    ("ishares_factors_daily.csv", ("VLUE/SIZE", "MTUM/QUAL+USMV"), {"mode": "returns"}),
    ("sp500_stocks_daily.csv.gz", ("AAPL/MSFT", "XOM/CVX", "KO/PEP"), {"mode": "log"}),
]


@pytest.mark.parametrize(("name", "pairs", "filters"), DAILY, ids=["sp500", "ishares", "stocks"])
def test_the_shipped_daily_files_have_no_future_reject_across_weekends_and_holidays(
    name: str, pairs: tuple[str, ...], filters: dict[str, object]
) -> None:
    path = EXAMPLES / name
    gaps = gaps_in_days(path)
    assert {3, 4} <= gaps  # weekends, and long weekends (a holiday on a Monday or a Friday)
    _, summary = replayed(path, config(*pairs, bar="1d", **filters), compiled=False)
    assert "future" not in summary.rejects and summary.events > 1000


def test_a_row_of_a_daily_wide_file_dated_in_2100_is_future_and_changes_nothing_else(
    tmp_path: Path,
) -> None:
    lines = (EXAMPLES / "sp500_nasdaq_daily.csv").read_text().splitlines()
    at = len(lines) // 2
    day, *prices = lines[at].split(",")
    typo = "2100" + day[4:]  # a mistyped year: both symbols of the row in 2100
    planted = tmp_path / "typo.csv"
    planted.write_text("\n".join([*lines[: at + 1], ",".join([typo, *prices]), *lines[at + 1 :]]))
    cfg = config("SP500/NASDAQ", bar="1d", delta=1e-7)
    clean, _ = replayed(EXAMPLES / "sp500_nasdaq_daily.csv", cfg, compiled=False)
    events, summary = replayed(planted, cfg, compiled=False)
    assert summary.rejects == {"future": 2}
    assert events == clean


def live_run(ticks: list[Tick]) -> tuple[list[bytes], Pipeline]:
    events: list[bytes] = []

    def emit(event: Event) -> None:
        events.append(encode(event))

    pipeline = Pipeline(config("YYY/XXX").pairs, S, S, emit, Rejects())
    for tick in ticks:
        pipeline.on_tick(tick)  # the daemon's core task does this with every tick it takes
    pipeline.flush()
    return events, pipeline


def test_live_ticks_stamped_60s_ahead_or_in_2100_of_their_receive_time_are_future() -> None:
    """Received a millisecond after they happened, like a venue's ticks on a good link; the
    two planted ones are received with their neighbours but stamped ahead."""
    ticks = [Tick(sym, px, ts, ts + 1_000_000, size, "live") for ts, sym, px, size in market()]
    clean_events, clean = live_run(ticks)
    a, b = len(ticks) // 3, 2 * len(ticks) // 3
    ahead = Tick("YYY", 1.0, ticks[a].ts_event + 60 * S, ticks[a].ts_recv, None, "live")
    far = Tick("XXX", 1.0, YEAR_2100, ticks[b].ts_recv, None, "live")
    events, pipeline = live_run(
        [*ticks[: a + 1], ahead, *ticks[a + 1 : b + 1], far, *ticks[b + 1 :]]
    )
    assert pipeline.rejects.summary() == {"future": 2}
    assert pipeline.bars.ticks_accepted == clean.bars.ticks_accepted == len(ticks)
    assert events == clean_events


class ClockFeed:
    """A live feed stamping each tick's ``ts_recv`` with the clock's time when it is put, as a
    venue feed stamps a message when it arrives."""

    def __init__(self, clock: TestClock) -> None:
        self.rejects = Rejects()
        self.clock = clock
        self._ticks: asyncio.Queue[Tick] = asyncio.Queue()

    def put(self, symbol: str, price: float, ts_event: int) -> None:
        self._ticks.put_nowait(Tick(symbol, price, ts_event, self.clock.time_ns(), venue="test"))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass  # nothing to release

    async def __aiter__(self) -> AsyncIterator[Tick]:
        while True:
            yield await self._ticks.get()


@pytest.mark.parametrize("stamp", [T0 + 60 * S + S // 2, YEAR_2100], ids=["+60s", "2100"])
async def test_the_daemon_on_its_clock_rejects_a_tick_from_the_future_and_keeps_every_pair_going(
    stamp: int,
) -> None:
    run = Running()
    run.feed = ClockFeed(run.clock)  # type: ignore[assignment]
    run.node.feeds[0] = run.feed
    await run.start()
    await run.ticks(
        ("YYY", 10.0, T0 + S // 4), ("XXX", 5.0, T0 + S // 4), ("ZZZ", 7.0, T0 + S // 4)
    )
    await run.ticks(("XXX", 5.5, stamp))  # received at T0, stamped 60 s on or in 2100
    for k in range(1, 4):  # three more bars, every symbol ticking in each
        await run.clock.advance_to(T0 + k * S)
        await run.ticks(*((sym, 10.0 + k, T0 + k * S + S // 4) for sym in ("YYY", "XXX", "ZZZ")))
    await run.clock.advance_to(T0 + 4 * S + GRACE)
    await eventually(lambda: len(run.bars) == 4, what="four bars closed")
    assert run.node.rejects.summary() == {"future": 1}
    assert [ts for ts, _ in run.bars] == [T0 + k * S for k in range(1, 5)]
    assert run.bars[0][1]["XXX"].price == 5.0  # the future tick set no price
    ratios = run.events("ratio")
    assert [(e["pair"], e["ts"], e["stale"]) for e in ratios] == [
        (pair, T0 + k * S, False) for k in range(1, 5) for pair in ("YYY/XXX", "ZZZ/XXX")
    ]
    await run.shutdown()
