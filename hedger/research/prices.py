"""A recorded price file as one aligned table: bar times (T,), symbols (N,), prices (T, N).

This is the input of the offline tools (``matrix``, ``calibrate``, ``evaluate``), which look at
whole histories at once. A wide bar file is read as it is, but for its rows from the future
(the replay's jump tests, :func:`hedger.core.bars.without_future`, in bars of ``bar``), which
are skipped, each price counted as ``future``. A tick file (long CSV or JSON Lines) is cut into
bars by the daemon's own bar rule (:class:`hedger.core.bars.BarBuilder`, looking ahead as in a
replay: late, backwards, repeated ticks and ticks from the future refused alike), each
symbol's price in a bar being its last trade in it. Prices are judged by the one price rule
(:func:`hedger.engine.transforms.usable_price`) with no mode yet: a price <= 0 is kept, for the
modes that can use it; the offline tools rule a log mode in or out on the training bars and
treat a later price <= 0 as a missing bar. A symbol with no usable price in a bar is NaN
there; nothing is forward-filled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from feeds.files.readers import (
    WideBar,
    file_layout,
    read_ticks,
    read_wide_bars,
    wide_bar_symbols,
)
from feeds.files.timestamps import parse_timestamp_ns
from hedger.core.bars import BarBuilder, LegPrice, parse_duration_ns, without_future
from hedger.core.rejects import Rejects
from hedger.core.ticks import TickKind
from hedger.engine.linalg import FloatArray, IntArray
from hedger.engine.transforms import usable_price
from hedger.errors import ConfigError, DataFileError


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Aligned prices of N symbols over T bars.

    ts: (T,) int64 bar times, ns since the epoch, UTC, strictly increasing.
    labels: (T,) the bars' times as written in the file (wide files) or as ISO-8601 UTC.
    symbols: (N,) column names. prices: (T, N) float64, NaN where a symbol has no price.
    rejects: unusable cells and rows met while reading, counted by reason.
    """

    ts: IntArray
    labels: tuple[str, ...]
    symbols: tuple[str, ...]
    prices: FloatArray
    rejects: Rejects
    repeats: int = 0
    """Rows kept that repeat the row before exactly (``drop_repeats`` drops them instead)."""
    first_reject: dict[str, object] | None = None
    """The first row refused, when no row was kept (what :meth:`require_rows` quotes)."""

    def require_rows(self, path: str | Path) -> PriceTable:
        """The table, or a :class:`DataFileError` when it has no bars: no rows at all, or every
        row rejected (the counts and the first bad row). What the commands refuse."""
        if len(self.ts) == 0:
            first = FirstReject()
            first.first = self.first_reject
            raise DataFileError(str(path), no_rows_problem(self.rejects.counts, first))
        return self

    def rejects_note(self) -> str | None:
        """One line saying what was skipped while reading (``None`` when nothing was):
        ``"skipped while reading: bad_price 3, bad_timestamp 1"``."""
        notes = []
        if self.rejects.counts:
            parts = ", ".join(f"{reason} {n}" for reason, n in sorted(self.rejects.counts.items()))
            notes.append(f"skipped while reading: {parts}")
        if self.repeats:
            notes.append(
                f"{self.repeats} row(s) repeat the row before exactly (holidays?); "
                "--drop-repeats drops them"
            )
        return "; ".join(notes) or None

    def column(self, symbol: str) -> FloatArray:
        """The prices (T,) of ``symbol``; a :class:`ConfigError` names the known ones."""
        try:
            index = self.symbols.index(symbol)
        except ValueError:
            known = ", ".join(self.symbols)
            raise ConfigError("symbol", f"{symbol!r} is not in the file (it has {known})") from None
        column: FloatArray = self.prices[:, index]
        return column

    def select(self, symbols: Sequence[str]) -> PriceTable:
        """The table restricted to ``symbols``, in that order (each must exist, no repeats)."""
        if len(set(symbols)) != len(symbols):
            raise ConfigError("symbols", "a symbol is listed twice")
        indices = []
        for symbol in symbols:
            self.column(symbol)
            indices.append(self.symbols.index(symbol))
        return PriceTable(
            self.ts,
            self.labels,
            tuple(symbols),
            self.prices[:, indices],
            self.rejects,
            self.repeats,
        )

    def index_of(self, moment: str) -> int:
        """The number of bars strictly before ``moment`` (an ISO-8601 date or date-time)."""
        try:
            ts = parse_timestamp_ns(moment)
        except ValueError:
            raise ConfigError("date", f"not an ISO-8601 date or date-time: {moment!r}") from None
        return int(np.searchsorted(self.ts, ts, side="left"))


def leading_bars(
    spec: str | float,
    n_bars: int,
    index_of: Callable[[str], int],
    *,
    key: str,
    whole: bool = False,
) -> int:
    """The number of leading bars of ``n_bars`` that ``spec`` names: a fraction, rounded down
    (in (0, 1); (0, 1] with ``whole``), or an ISO-8601 date, whose bar count ``index_of``
    gives (e.g. :meth:`PriceTable.index_of`). A bad fraction is a :class:`ConfigError`
    naming ``key``: the parsing of ``--until`` / ``--train-until``."""
    try:
        fraction = float(spec)
    except ValueError:
        return index_of(str(spec))
    upper_ok = fraction <= 1.0 if whole else fraction < 1.0
    if not (fraction > 0.0 and upper_ok):
        interval = "(0, 1]" if whole else "(0, 1)"
        raise ConfigError(key, f"a fraction must be in {interval}, got {spec}")
    return math.floor(fraction * n_bars)


def load_prices(
    path: str | Path,
    *,
    bar: str = "1d",
    ts_unit: str = "auto",
    price_source: str = "trade",
    date_format: str | None = None,
    drop_repeats: bool = False,
) -> PriceTable:
    """Read ``path`` (wide bar CSV, long tick CSV or JSON Lines, any of them .gz) as a
    :class:`PriceTable`.

    ``bar`` (e.g. ``1s``, ``1min``, ``1d``) cuts tick files into bars, from trades or quote
    mids (``price_source``); wide files keep their own rows, which must be in time order once
    the rows from the future (jumps the file does not follow, judged in bars of ``bar``) are
    skipped.
    ``date_format``: a strftime pattern of the file's dates (default: the common forms, the
    order of m/d/Y and d/m/Y detected, see :func:`feeds.files.readers.file_dates`)."""
    file_path = Path(path)
    first = FirstReject()
    rejects = Rejects(first)
    bar_ns = parse_duration_ns(bar)
    if file_layout(file_path) == "wide":
        table = _load_wide(file_path, bar_ns, rejects, date_format, drop_repeats)
    else:
        source = TickKind(price_source)
        table = _load_ticks(file_path, bar_ns, ts_unit, source, rejects, date_format)
    if len(table.ts) == 0 and first.first is not None:
        table = replace(table, first_reject=first.first)
    return table


class FirstReject:
    """A :class:`~hedger.core.rejects.Logger` that keeps the first reject it is told of (its
    line and cell) and nothing else: what a refusal of a file quotes."""

    def __init__(self) -> None:
        self.first: dict[str, object] | None = None

    def warning(self, event: str, **kw: object) -> None:
        if event == "rejected" and self.first is None:
            self.first = dict(kw)

    def info(self, event: str, **kw: object) -> None:
        pass


def no_rows_problem(rejects: Mapping[str, int], first: FirstReject | None) -> str:
    """Why a file gave no bars: no rows at all, or every row rejected (the counts by reason,
    and the first bad row that ``first`` kept)."""
    if not rejects:
        return "has no rows (a header only?)"
    detail = ", ".join(f"{reason} {n:,}" for reason, n in sorted(rejects.items()))
    note = ""
    if first is not None and first.first is not None:
        skip = ("count", "source")
        parts = [f"{key} {value!r}" for key, value in first.first.items() if key not in skip]
        note = f"; the first: {', '.join(parts)}"
    return f"every row was rejected ({detail}){note}"


def _load_wide(
    path: Path, bar_ns: int, rejects: Rejects, date_format: str | None, drop_repeats: bool
) -> PriceTable:
    symbols = wide_bar_symbols(path)
    if len(set(symbols)) != len(symbols):
        raise DataFileError(str(path), "a symbol column appears twice")
    position = {symbol: i for i, symbol in enumerate(symbols)}
    times: list[int] = []
    labels: list[str] = []
    rows: list[list[float]] = []
    repeats = 0

    def future(row: WideBar) -> None:
        for symbol in row.prices:
            rejects.add("future", str(path), symbol=symbol, ts=row.ts, label=row.label)

    rows_in = read_wide_bars(path, rejects, date_format=date_format, drop_repeats=drop_repeats)
    for row in without_future(rows_in, _row_ts, bar_ns, future):
        repeats += row.repeat
        if times and row.ts <= times[-1]:
            raise DataFileError(str(path), f"row {row.label!r} is not after the row before it")
        values = [math.nan] * len(symbols)
        for symbol, price in row.prices.items():
            if usable_price(price, False):
                values[position[symbol]] = price
            else:
                rejects.add("bad_price", str(path))
        times.append(row.ts)
        labels.append(row.label)
        rows.append(values)
    prices = np.array(rows, dtype=np.float64).reshape(len(rows), len(symbols))
    return PriceTable(
        np.array(times, dtype=np.int64), tuple(labels), tuple(symbols), prices, rejects, repeats
    )


def _row_ts(row: WideBar) -> int:
    return row.ts


def _load_ticks(
    path: Path,
    bar_ns: int,
    ts_unit: str,
    price_source: TickKind,
    rejects: Rejects,
    date_format: str | None,
) -> PriceTable:
    closes: list[int] = []
    rows: list[dict[str, float]] = []

    def on_bar(ts: int, prices: dict[str, LegPrice], ticked: frozenset[str]) -> None:
        closes.append(ts)
        rows.append({symbol: prices[symbol].price for symbol in ticked})

    bars = BarBuilder(bar_ns, None, on_bar, rejects, price_source=price_source, lookahead=True)
    for tick in read_ticks(path, rejects, ts_unit=ts_unit, date_format=date_format):
        bars.on_tick(tick)
    bars.flush()
    symbols = sorted({symbol for row in rows for symbol in row})
    position = {symbol: i for i, symbol in enumerate(symbols)}
    prices = np.full((len(rows), len(symbols)), math.nan)
    for i, row in enumerate(rows):
        for symbol, price in row.items():
            prices[i, position[symbol]] = price
    ts = np.array(closes, dtype=np.int64)
    labels = tuple(str(np.datetime64(int(t), "ns")) + "Z" for t in ts)
    return PriceTable(ts, labels, tuple(symbols), prices, rejects)
