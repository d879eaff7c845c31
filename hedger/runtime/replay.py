"""``hedger replay``: recorded files through the same pipeline the daemon runs, as fast as
possible (or paced), events written as JSON Lines."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from feeds.files.compiled import OK, STATUS_REASONS, fast_path_unit, read_tick_blocks
from feeds.files.readers import file_layout, read_ticks
from hedger.config.pipeline import PipelineConfig
from hedger.core.bar_events import BarOutput
from hedger.core.bars import without_future_rows
from hedger.core.events import Event, encode
from hedger.core.failures import Failures
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Logger, Rejects
from hedger.core.ticks import Tick, TickColumns, TickKind
from hedger.errors import DataFileError
from hedger.runtime.state.journal import (
    Clocked,
    Close,
    JournalError,
    read_inputs,
    segment_header,
)

_WRITE_BATCH = 4096


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """What a replay did."""

    files: int
    ticks: int
    bars: int
    events: int
    duplicates: int
    rejects: dict[str, int]
    stale_bars: dict[str, int]
    seconds: float
    actor_errors: dict[str, int] = field(default_factory=dict)
    """Failures contained while stepping (by pair id or bar listener), see the log."""

    @property
    def ticks_per_second(self) -> float:
        """Throughput over the whole run."""
        return self.ticks / self.seconds if self.seconds > 0 else float("inf")


Progress = Callable[[int, int, float], None]
"""Called now and then with (ticks so far, events so far, seconds so far)."""


def merged_ticks(
    paths: Sequence[Path],
    rejects: Rejects,
    ts_unit: str,
    bar_ns: int | None = None,
    *,
    symbols: Sequence[str] | None = None,
    date_format: str | None = None,
    drop_repeats: bool = False,
) -> Iterator[Tick]:
    """The ticks of every file in event-time order; ties keep the order of the files.

    ``bar_ns``: with several files, each file's rows from the future (the bar rule's jump
    test, :func:`~hedger.core.bars.tick_verdict`, on the file alone) are counted as ``future``
    and dropped before the merge, which orders files by their next row: a row in 2100 would
    otherwise hold its file's later rows back until every other file had passed them.
    ``symbols``: the columns of wide files to read (the others are ignored quietly);
    ``date_format``: a strftime pattern of text times (default: the common forms, detected)."""
    streams = [
        read_ticks(
            path,
            rejects,
            ts_unit=ts_unit,
            symbols=symbols,
            date_format=date_format,
            drop_repeats=drop_repeats,
        )
        for path in paths
    ]
    if len(streams) == 1:
        return streams[0]
    if bar_ns is not None:
        streams = [
            without_future_rows(stream, bar_ns, rejects, str(path))
            for stream, path in zip(streams, paths, strict=True)
        ]
    return heapq.merge(*streams, key=lambda tick: tick.ts_event)


def replay(
    paths: Sequence[Path],
    config: PipelineConfig,
    out: BinaryIO,
    *,
    ts_unit: str = "auto",
    speed: float | None = None,
    progress: Progress | None = None,
    logger: Logger | None = None,
    compiled: bool | None = None,
    date_format: str | None = None,
    drop_repeats: bool = False,
    bank: bool = True,
) -> ReplaySummary:
    """Run the pipeline over ``paths`` and write every event to ``out`` as a JSON line.

    ``speed``: None for as fast as possible, else N times real time (event time paces the
    run). The output depends only on the input and the configuration.

    ``compiled``: a single long tick CSV with numeric times, replayed flat out with bars from
    trades, goes through the compiled reader and bar rules (:mod:`feeds.files.compiled`,
    :mod:`hedger.core.bar_kernel`); anything else through the streaming path. Both give the same
    events and counts; ``True``/``False`` forces the choice (``True`` raises if the input does
    not allow it). ``bank``: False runs every pair on its own actor, events one by one (the
    reference path, for tests and benchmarks); the output is the same.
    """
    rejects = Rejects(logger)
    pending: list[bytes] = []

    def emit(event: Event) -> None:
        pending.append(encode(event))
        if len(pending) >= _WRITE_BATCH:
            _flush(out, pending)

    def emit_bar(output: BarOutput) -> None:
        _flush(out, pending)  # what went out one by one (alarms ended by a change) first
        out.write(output.text())

    pipeline = Pipeline(
        config.pairs,
        config.bars.length_ns,
        config.bars.max_age_ns,
        emit,
        rejects,
        price_source=config.bars.source,
        failures=Failures(logger),
        max_skew_ns=config.bars.max_skew_ns,
        lookahead=True,  # recorded rows: a jump the stream does not follow is `future`
        emit_bar=emit_bar,
        bank=bank,
    )
    headers = [segment_header(path) for path in paths]
    if any(header is not None for header in headers):
        if not all(header is not None for header in headers):
            where = ", ".join(str(p) for p in paths)
            raise DataFileError(where, "a daemon's journal segments replay alone, not with files")
        pipeline.bars.lookahead = False  # the live rule: the daemon judged these ticks so
        pipeline.bars.clocked = any(h is not None and h.get("clock") == "wall" for h in headers)
        return _replay_journal(paths, pipeline, out, pending, progress)
    unit = _compiled_unit(paths, config, ts_unit, speed) if compiled is not False else None
    if compiled and unit is None:
        raise ValueError("the compiled path needs one long tick CSV with numeric times")
    if unit is not None:
        return _replay_compiled(paths[0], unit, pipeline, rejects, out, pending, progress)
    started = time.perf_counter()
    next_report = started + 0.25
    ticks = 0
    first_ts: int | None = None
    on_tick = pipeline.on_tick
    ticks_in = merged_ticks(
        paths,
        rejects,
        ts_unit,
        config.bars.length_ns,
        symbols=pipeline.symbols,
        date_format=date_format,
        drop_repeats=drop_repeats,
    )
    for tick in ticks_in:
        if speed is not None:
            if first_ts is None:
                first_ts = tick.ts_event
            _pace(started, tick.ts_event - first_ts, speed)
        on_tick(tick)
        ticks += 1
        if progress is not None and ticks & 0xFFF == 0:
            now = time.perf_counter()
            if now >= next_report:
                progress(ticks, pipeline.stats.events, now - started)
                next_report = now + 0.25
    pipeline.flush()
    _flush(out, pending)
    out.flush()
    elapsed = time.perf_counter() - started
    if progress is not None:
        progress(ticks, pipeline.stats.events, elapsed)
    return _summary(pipeline, files=len(paths), ticks=ticks, seconds=elapsed)


def _replay_journal(
    paths: Sequence[Path],
    pipeline: Pipeline,
    out: BinaryIO,
    pending: list[bytes],
    progress: Progress | None,
) -> ReplaySummary:
    """A daemon's input journal (:mod:`hedger.runtime.state.journal`) through the pipeline
    as the daemon took it: its ticks judged by the live rule, its bars closed where its bar
    clock closed them. The events are the daemon's, ``ts_init`` aside (here: the bar's
    close)."""
    started = time.perf_counter()
    ticks = 0
    bars = pipeline.bars
    try:
        for record, _ in read_inputs(paths):
            if isinstance(record, Tick):
                pipeline.on_tick(record)
                ticks += 1
            elif isinstance(record, Close):
                bars.close_until(record.ts)
            elif isinstance(record, Clocked):
                bars.set_clocked(record.on)
            else:
                pipeline.flush()
            if progress is not None and ticks & 0xFFF == 0:
                progress(ticks, pipeline.stats.events, time.perf_counter() - started)
    except JournalError as exc:
        raise DataFileError(", ".join(str(p) for p in paths), str(exc)) from None
    pipeline.flush()
    _flush(out, pending)
    out.flush()
    elapsed = time.perf_counter() - started
    return _summary(pipeline, files=len(paths), ticks=ticks, seconds=elapsed)


def _compiled_unit(
    paths: Sequence[Path], config: PipelineConfig, ts_unit: str, speed: float | None
) -> str | None:
    if len(paths) != 1 or speed is not None or config.bars.source is not TickKind.TRADE:
        return None
    if file_layout(paths[0]) != "ticks":
        return None
    return fast_path_unit(paths[0], ts_unit)


def _replay_compiled(
    path: Path,
    unit: str,
    pipeline: Pipeline,
    rejects: Rejects,
    out: BinaryIO,
    pending: list[bytes],
    progress: Progress | None,
) -> ReplaySummary:
    started = time.perf_counter()
    ticks = 0
    source = str(path)
    for block in read_tick_blocks(path, pipeline.symbols, unit):
        status = block.status
        for code, reason in STATUS_REASONS.items():
            rejects.add_many(reason, int(np.count_nonzero(status == code)), source)
        ok = status == OK
        columns = TickColumns(block.ts, block.sym, block.price, block.size, block.has_size, ok)
        pipeline.on_tick_columns(columns, source)
        ticks += int(np.count_nonzero(ok))
        if progress is not None:
            progress(ticks, pipeline.stats.events, time.perf_counter() - started)
    pipeline.flush()
    _flush(out, pending)
    out.flush()
    return _summary(pipeline, files=1, ticks=ticks, seconds=time.perf_counter() - started)


def _summary(pipeline: Pipeline, *, files: int, ticks: int, seconds: float) -> ReplaySummary:
    return ReplaySummary(
        files=files,
        ticks=ticks,
        bars=pipeline.bars_closed,
        events=pipeline.stats.events,
        duplicates=pipeline.duplicates,
        rejects=pipeline.rejects.summary(),
        stale_bars=pipeline.stats.stale_bars,
        seconds=seconds,
        actor_errors=dict(pipeline.stats.actor_errors),
    )


def _flush(out: BinaryIO, pending: list[bytes]) -> None:
    if pending:
        out.write(b"\n".join(pending) + b"\n")
        pending.clear()


def _pace(started: float, event_elapsed_ns: int, speed: float) -> None:
    due = started + event_elapsed_ns / 1e9 / speed
    delay = due - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def format_summary(summary: ReplaySummary) -> str:
    """The human summary printed at the end of a replay."""
    lines = [
        f"replayed {summary.files} file(s): {summary.ticks:,} ticks, {summary.bars:,} bars, "
        f"{summary.events:,} events in {summary.seconds:.2f} s "
        f"({summary.ticks_per_second:,.0f} ticks/s)",
    ]
    if summary.duplicates:
        lines.append(f"  duplicates ignored: {summary.duplicates:,}")
    if summary.rejects:
        detail = ", ".join(f"{reason} {count:,}" for reason, count in summary.rejects.items())
        lines.append(f"  rejected: {sum(summary.rejects.values()):,} ({detail})")
    else:
        lines.append("  rejected: 0")
    for pair, count in summary.stale_bars.items():
        lines.append(f"  {pair}: {count:,} stale bar(s) (predict-only)")
    for pair, count in summary.actor_errors.items():
        lines.append(f"  {pair}: {count:,} failed step(s), contained (no events; see the log)")
    return "\n".join(lines)
