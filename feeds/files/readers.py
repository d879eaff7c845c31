"""Recorded files: wide bar CSV (one row per bar, one column of closes per symbol).

The common layout of daily-price files::

    date,SP500,NASDAQ
    1999-01-04,1228.099976,2208.050049

The first column is a date or timestamp (ISO-8601, Y/m/d, m/d/Y or d/m/Y, with or without a
time; a date alone means midnight UTC, see :mod:`feeds.files.timestamps`); the others are
prices. Files may be gzip-compressed (``.gz``). Rows are streamed, never loaded whole.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from feeds.files.timestamps import (
    AmbiguousDatesError,
    DateParser,
    TimestampParser,
    detect_date_order,
)
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind
from hedger.errors import DataFileError


@dataclass(frozen=True, slots=True)
class WideBar:
    """One row of a wide bar file.

    ts: bar time, integer ns since the epoch, UTC. label: the first column as written.
    prices: symbol -> price; a symbol whose cell is empty or unusable is absent.
    """

    ts: int
    label: str
    prices: dict[str, float]
    repeat: bool = False
    """Every price is the previous row's, exactly (a holiday filled forward, most likely)."""


def _open_text(path: Path) -> io.TextIOBase:
    if not path.exists():
        raise DataFileError(str(path), "no such file")
    if not path.is_file():
        raise DataFileError(str(path), "not a regular file")
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        return path.open("r", encoding="utf-8", newline="")
    except OSError as exc:
        raise DataFileError(str(path), exc.strerror or str(exc)) from None


_DECODE_ERRORS = (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error, OSError)
"""What reading a file that is not text (binary, a ``.gz`` that is not gzip, truncated) raises."""


def _undecodable(path: str | Path, exc: BaseException) -> DataFileError:
    if isinstance(exc, UnicodeDecodeError):
        problem = "is not UTF-8 text (a binary file?)"
    elif isinstance(exc, gzip.BadGzipFile | EOFError) or (
        isinstance(exc, OSError) and Path(path).suffix == ".gz"
    ):
        problem = "is not a readable gzip file"
    else:
        problem = f"cannot be read: {exc}"
    return DataFileError(str(path), problem)


def header_row(path: str | Path) -> list[str]:
    """The first row of a CSV file (``[]`` when the file is empty); a file that cannot be
    read as text is a :class:`DataFileError` saying why."""
    with _open_text(Path(path)) as fh:
        try:
            return next(csv.reader(fh), [])
        except _DECODE_ERRORS as exc:
            raise _undecodable(path, exc) from None


def wide_bar_symbols(path: str | Path) -> list[str]:
    """The symbols (price columns) of a wide bar file, from its header."""
    header = header_row(path)
    if not header:
        raise DataFileError(str(path), "is empty")
    if len(header) < 2:
        raise DataFileError(str(path), "needs a header: a time column, then one column per symbol")
    return [name.strip() for name in header[1:]]


DATE_SCAN_ROWS = 100_000
"""How many rows :func:`file_dates` reads to tell m/d/Y from d/m/Y."""


def file_dates(path: str | Path, date_format: str | None = None, column: int = 0) -> DateParser:
    """The parser of a CSV file's time column (``column``): ``date_format`` (a strftime
    pattern) when given, else the order of its year-last dates (m/d/Y or d/m/Y) detected from
    its first :data:`DATE_SCAN_ROWS` rows. Dates that fit both orders are a
    :class:`DataFileError` asking for ``--date-format``."""
    if date_format is not None:
        return DateParser(date_format)

    def cells() -> Iterator[str]:
        with _open_text(Path(path)) as fh:
            try:
                next(fh, None)
                for _, text in zip(range(DATE_SCAN_ROWS), fh, strict=False):
                    row = next(csv.reader((text,)), [])
                    if len(row) > column:
                        yield row[column]
            except _DECODE_ERRORS as exc:
                raise _undecodable(path, exc) from None

    try:
        order = detect_date_order(cells())
    except AmbiguousDatesError as exc:
        raise DataFileError(
            str(path),
            f"{exc}; give the pattern with --date-format (%m/%d/%Y or %d/%m/%Y, "
            "with %H:%M:%S if the values carry a time)",
        ) from None
    return DateParser(order=order)


def read_wide_bars(
    path: str | Path,
    rejects: Rejects | None = None,
    *,
    only: Collection[str] | None = None,
    date_format: str | None = None,
    drop_repeats: bool = False,
) -> Iterator[WideBar]:
    """Stream the bars of a wide bar file in file order.

    Unusable cells (empty, not a number, NaN, inf) are left out of ``prices`` and counted as
    ``bad_price``; rows with an unreadable time are skipped and counted as ``bad_timestamp``
    (logged with the line and the cell). ``only``: read just these columns; the others are
    ignored quietly (a file of 500 stocks replayed for one pair). Dates: see
    :func:`file_dates`.

    A row with the date of the row before is skipped and counted as ``duplicate_date`` (the
    first one stands), the same for every command. A row whose prices all repeat the row
    before exactly is marked ``repeat``; with ``drop_repeats`` it is skipped and counted as
    ``repeated_row``.
    """
    counts = rejects if rejects is not None else Rejects()
    file_path = Path(path)
    source = str(path)
    symbols = wide_bar_symbols(file_path)
    parse_date = file_dates(file_path, date_format)
    last_ts: int | None = None
    last_prices: dict[str, float] = {}
    columns = [(i, symbol) for i, symbol in enumerate(symbols, 1) if only is None or symbol in only]
    try:
        with _open_text(file_path) as fh:
            reader = csv.reader(fh)
            next(reader)
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    ts = parse_date(row[0])
                except ValueError:
                    counts.add("bad_timestamp", source, line=line, cell=row[0][:40])
                    continue
                if ts == last_ts:
                    counts.add("duplicate_date", source, line=line, cell=row[0][:40])
                    continue
                if len(row) < len(symbols) + 1:
                    counts.add("short_row", source, line=line)
                prices: dict[str, float] = {}
                for i, symbol in columns:
                    if i >= len(row):
                        break
                    try:
                        price = float(row[i])
                    except ValueError:
                        counts.add("bad_price", source, line=line, symbol=symbol, cell=row[i][:40])
                        continue
                    if math.isfinite(price):
                        prices[symbol] = price
                    else:
                        counts.add("bad_price", source, line=line, symbol=symbol, cell=row[i][:40])
                repeat = bool(prices) and prices == last_prices
                last_ts, last_prices = ts, prices
                if repeat and drop_repeats:
                    counts.add("repeated_row", source, line=line, cell=row[0][:40])
                    continue
                yield WideBar(ts, row[0].strip(), prices, repeat)
    except _DECODE_ERRORS as exc:
        raise _undecodable(path, exc) from None


# --- long tick files (CSV and JSON Lines) -------------------------------------------------


def _cell_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


TickFields = tuple[int, str, float, float | None]
"""ts (ns), symbol, price, size: a parsed tick row before it becomes a :class:`Tick`."""


def parse_tick_row(
    row: list[str], parse_ts: TimestampParser, has_size: bool
) -> TickFields | tuple[str, str]:
    """One CSV row of a long tick file to its fields, or ``(reason, detail)`` when it cannot
    be read: ``short_row``, ``bad_timestamp``, ``bad_price``. Shared by the streaming reader
    and the compiled fast path (for the rows it hands back), so both read rows alike."""
    if len(row) < 3:
        return ("short_row", "")
    try:
        ts = parse_ts(row[0])
    except ValueError:
        return ("bad_timestamp", row[0][:40])
    price = _cell_float(row[2])
    if price is None:
        return ("bad_price", row[2][:40])
    size = _cell_float(row[3]) if has_size and len(row) > 3 and row[3] else None
    return ts, row[1].strip(), price, size


def tick_csv_header(path: str | Path) -> bool:
    """Check a long tick CSV's header; returns whether it has a ``size`` column."""
    header = [h.strip().lower() for h in header_row(path)]
    if not header:
        raise DataFileError(str(path), "is empty")
    if header[:3] != ["ts", "symbol", "price"]:
        raise DataFileError(str(path), f"expected header ts,symbol,price[,size], got {header}")
    return len(header) > 3 and header[3] == "size"


def read_tick_csv(
    path: str | Path,
    rejects: Rejects,
    *,
    ts_unit: str = "auto",
    venue: str = "file",
    date_format: str | None = None,
) -> Iterator[Tick]:
    """Stream the ticks of a long tick CSV with header ``ts,symbol,price[,size]``.

    Rows that cannot be read (bad time, price or size, too few cells) are counted in
    ``rejects`` by reason and skipped; price validity (NaN, <= 0) is judged downstream, where
    every source is treated alike.
    """
    source = str(path)
    has_size = tick_csv_header(path)
    dates = file_dates(path, date_format) if ts_unit in ("auto", "iso") else None
    parse_ts = TimestampParser(ts_unit, dates)
    with _open_text(Path(path)) as fh:
        try:
            next(fh)
            # Each physical line is one row: a stray quote cannot swallow the lines after it.
            for line, text in enumerate(fh, start=2):
                row = next(csv.reader((text,)), [])
                if not row:
                    continue
                fields = parse_tick_row(row, parse_ts, has_size)
                if len(fields) == 2:
                    rejects.add(fields[0], source, line=line, cell=fields[1])
                    continue
                ts, symbol, price, size = fields
                yield Tick(symbol, price, ts, ts, size, venue)
        except _DECODE_ERRORS as exc:
            raise _undecodable(path, exc) from None


def read_tick_jsonl(
    path: str | Path,
    rejects: Rejects,
    *,
    ts_unit: str = "auto",
    venue: str = "file",
    date_format: str | None = None,
) -> Iterator[Tick]:
    """Stream ticks from JSON Lines: ``{"ts": .., "symbol": .., "price": .., "size": ..}`` per
    line (``ts`` a number or an ISO string); a quote may give ``bid`` and ``ask`` instead of
    ``price`` and becomes a quote tick at the mid. Text dates: ISO, year-first, or
    ``date_format`` (the order of year-last dates is not guessed in JSON Lines)."""
    parse_ts = TimestampParser(ts_unit, DateParser(date_format) if date_format else None)
    with _open_text(Path(path)) as fh:
        try:
            for line in fh:
                if not line.strip():
                    continue
                tick = _json_tick(line, parse_ts, venue, rejects, str(path))
                if tick is not None:
                    yield tick
        except _DECODE_ERRORS as exc:
            raise _undecodable(path, exc) from None


def _json_tick(
    line: str, parse_ts: TimestampParser, venue: str, rejects: Rejects, source: str
) -> Tick | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        rejects.add("malformed", source)
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("symbol"), str):
        rejects.add("malformed", source)
        return None
    try:
        ts = parse_ts(obj["ts"])
    except (KeyError, ValueError, TypeError):
        rejects.add("bad_timestamp", source)
        return None
    kind = TickKind.TRADE
    price = obj.get("price")
    if price is None and "bid" in obj and "ask" in obj:
        bid, ask = _json_number(obj["bid"]), _json_number(obj["ask"])
        price = None if bid is None or ask is None else (bid + ask) / 2.0
        kind = TickKind.QUOTE
    else:
        price = _json_number(price)
    if price is None:
        rejects.add("bad_price", source)
        return None
    size = _json_number(obj.get("size"))
    return Tick(obj["symbol"], price, ts, ts, size, venue, kind)


def _json_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return _cell_float(value)
    return None


def read_wide_ticks(
    path: str | Path,
    rejects: Rejects,
    *,
    venue: str = "file",
    symbols: Collection[str] | None = None,
    date_format: str | None = None,
    drop_repeats: bool = False,
) -> Iterator[Tick]:
    """Stream a wide bar file as ticks: one tick per symbol per row, at the row's time
    (``symbols``: only those columns; the others are not read)."""
    bars = read_wide_bars(
        path, rejects, only=symbols, date_format=date_format, drop_repeats=drop_repeats
    )
    for bar in bars:
        for symbol, price in bar.prices.items():
            yield Tick(symbol, price, bar.ts, bar.ts, None, venue)


def file_layout(path: str | Path) -> str:
    """``"jsonl"``, ``"ticks"`` (long tick CSV) or ``"wide"`` (wide bar CSV), from the name
    and the header."""
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    header = header_row(path)
    if not header:
        raise DataFileError(str(path), "is empty")
    if [h.strip().lower() for h in header[:3]] == ["ts", "symbol", "price"]:
        return "ticks"
    return "wide"


def read_ticks(
    path: str | Path,
    rejects: Rejects,
    *,
    ts_unit: str = "auto",
    venue: str = "file",
    symbols: Collection[str] | None = None,
    date_format: str | None = None,
    drop_repeats: bool = False,
) -> Iterator[Tick]:
    """Stream the ticks of any supported file, its layout detected by :func:`file_layout`.
    ``drop_repeats``: drop the rows of a wide file that repeat the row before exactly.
    ``date_format``: a strftime pattern of text times (see :func:`file_dates`).
    ``symbols``: the columns of a wide file to read (the others are ignored quietly); tick
    files give every row, and the pipeline counts a symbol it does not run."""
    layout = file_layout(path)
    if layout == "jsonl":
        return read_tick_jsonl(path, rejects, ts_unit=ts_unit, venue=venue, date_format=date_format)
    if layout == "ticks":
        return read_tick_csv(path, rejects, ts_unit=ts_unit, venue=venue, date_format=date_format)
    return read_wide_ticks(
        path,
        rejects,
        venue=venue,
        symbols=symbols,
        date_format=date_format,
        drop_repeats=drop_repeats,
    )


def file_symbols(path: str | Path, wanted: Collection[str] = ()) -> tuple[set[str], bool]:
    """The symbols of a file: a wide file's columns, or the symbols of a tick file's rows,
    read until every symbol of ``wanted`` has been seen (so a file that has them all is read
    only as far as needed). Returns (symbols seen, whether the whole file was read)."""
    layout = file_layout(path)
    if layout == "wide":
        return set(wide_bar_symbols(path)), True
    missing = set(wanted)
    seen: set[str] = set()
    with _open_text(Path(path)) as fh:
        try:
            if layout == "ticks":
                next(fh)
            for text in fh:
                symbol = _row_symbol(text, layout)
                if symbol is None or symbol in seen:
                    continue
                seen.add(symbol)
                missing.discard(symbol)
                if wanted and not missing:
                    return seen, False
        except _DECODE_ERRORS as exc:
            raise _undecodable(path, exc) from None
    return seen, True


def _row_symbol(text: str, layout: str) -> str | None:
    if layout == "ticks":
        row = next(csv.reader((text,)), [])
        return row[1].strip() if len(row) > 1 else None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    symbol = obj.get("symbol") if isinstance(obj, dict) else None
    return symbol if isinstance(symbol, str) else None
