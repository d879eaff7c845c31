"""Recorded files: wide bar CSV (one row per bar, one column of closes per symbol).

The common layout of daily-price files::

    date,SP500,NASDAQ
    1999-01-04,1228.099976,2208.050049

The first column is a date or timestamp (ISO-8601; a date alone means midnight UTC); the others
are prices. Files may be gzip-compressed (``.gz``). Rows are streamed, never loaded whole.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

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


@dataclass
class RejectCounts:
    """Rejected rows or cells by reason (``bad_timestamp``, ``bad_price``, ``short_row``)."""

    by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """All rejects."""
        return sum(self.by_reason.values())


def parse_timestamp_ns(text: str) -> int:
    """ISO-8601 date or date-time to integer ns since the epoch, UTC (naive means UTC)."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


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


def wide_bar_symbols(path: str | Path) -> list[str]:
    """The symbols (price columns) of a wide bar file, from its header."""
    with _open_text(Path(path)) as fh:
        header = next(csv.reader(fh), None)
    if not header or len(header) < 2:
        raise DataFileError(str(path), "needs a header: a time column, then one column per symbol")
    return [name.strip() for name in header[1:]]


def read_wide_bars(path: str | Path, rejects: RejectCounts | None = None) -> Iterator[WideBar]:
    """Stream the bars of a wide bar file in file order.

    Unusable cells (empty, not a number, NaN, inf) are left out of ``prices`` and counted as
    ``bad_price``; rows with an unreadable time are skipped and counted as ``bad_timestamp``.
    """
    counts = rejects if rejects is not None else RejectCounts()
    file_path = Path(path)
    symbols = wide_bar_symbols(file_path)
    try:
        with _open_text(file_path) as fh:
            reader = csv.reader(fh)
            next(reader)
            for row in reader:
                if not row:
                    continue
                try:
                    ts = parse_timestamp_ns(row[0])
                except ValueError:
                    counts.by_reason["bad_timestamp"] += 1
                    continue
                if len(row) < len(symbols) + 1:
                    counts.by_reason["short_row"] += 1
                prices: dict[str, float] = {}
                for symbol, cell in zip(symbols, row[1:], strict=False):
                    try:
                        price = float(cell)
                    except ValueError:
                        counts.by_reason["bad_price"] += 1
                        continue
                    if math.isfinite(price):
                        prices[symbol] = price
                    else:
                        counts.by_reason["bad_price"] += 1
                yield WideBar(ts, row[0].strip(), prices)
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise DataFileError(str(path), f"cannot be decoded: {exc}") from None
