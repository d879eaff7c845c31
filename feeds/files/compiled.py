"""A compiled reader for long tick CSV files (``ts,symbol,price[,size]``, numeric epoch times):
the replay fast path. It reads a file in blocks of bytes and parses every plain line in one
compiled pass into arrays; any line it is not sure about (quotes, spaces, signs, exponents too
large for an exact conversion, non-ASCII bytes, ``nan``) it hands back to the same row parser
the streaming reader uses (:func:`feeds.files.readers.parse_tick_row`), so both paths read every
line
alike. Prices are converted exactly: a decimal with at most 15 significant digits and a power
of ten up to 22 is one correctly rounded IEEE operation, the value ``float()`` gives.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import numba
import numpy as np

from feeds.files.readers import parse_tick_row, tick_csv_header
from feeds.files.timestamps import TS_UNITS_NS, TimestampParser
from hedger.errors import DataFileError

F = TypeVar("F", bound=Callable[..., Any])


def compiled(fn: F) -> F:
    """Compile ``fn`` like the engine's kernels (nopython, cached on disk); feeds do not import
    the engine, so the decorator is restated here."""
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy")(fn))


OK = 0
EMPTY = 1
SHORT_ROW = 2
BAD_TIMESTAMP = 3
BAD_PRICE = 4
SLOW = 5
STATUS_REASONS = {SHORT_ROW: "short_row", BAD_TIMESTAMP: "bad_timestamp", BAD_PRICE: "bad_price"}

_BLOCK = 1 << 22
_POW10 = np.array([10.0**k for k in range(23)])
_MAX_EXACT = 2**53
_WHOLE_LIMIT = (2**63 - 1) // 10 - 1_000_000_000
_MANTISSA_LIMIT = 10**17


@dataclass(slots=True)
class TickArrays:
    """One block of parsed lines (n lines). status: OK, EMPTY, SHORT_ROW, BAD_TIMESTAMP,
    BAD_PRICE per line. sym: index into the symbol table, -1 for an unknown symbol. size: NaN
    where the line has no size (``has_size`` False) or an unusable one."""

    ts: np.ndarray
    sym: np.ndarray
    price: np.ndarray
    size: np.ndarray
    has_size: np.ndarray
    status: np.ndarray
    unknown: list[str]


@compiled
def _parse_decimal(buf: np.ndarray, a: int, b: int, pow10: np.ndarray) -> tuple[bool, float]:
    """Exact parse of ``[+-]?digits[.digits]([eE][+-]?digits)?`` in buf[a:b]; (ok, value).
    Not ok means: let Python's float() decide."""
    if a >= b:
        return False, 0.0
    i = a
    negative = False
    if buf[i] == 45 or buf[i] == 43:
        negative = buf[i] == 45
        i += 1
    mantissa = 0
    scale = 0
    seen_digit = False
    while i < b and 48 <= buf[i] <= 57:
        if mantissa < _MANTISSA_LIMIT:
            mantissa = mantissa * 10 + (buf[i] - 48)
        else:
            return False, 0.0
        seen_digit = True
        i += 1
    if i < b and buf[i] == 46:
        i += 1
        while i < b and 48 <= buf[i] <= 57:
            if mantissa < _MANTISSA_LIMIT:
                mantissa = mantissa * 10 + (buf[i] - 48)
                scale -= 1
            else:
                return False, 0.0
            seen_digit = True
            i += 1
    if not seen_digit:
        return False, 0.0
    if i < b and (buf[i] == 101 or buf[i] == 69):
        i += 1
        exp_negative = False
        if i < b and (buf[i] == 45 or buf[i] == 43):
            exp_negative = buf[i] == 45
            i += 1
        if i >= b:
            return False, 0.0
        exponent = 0
        while i < b and 48 <= buf[i] <= 57:
            exponent = exponent * 10 + (buf[i] - 48)
            if exponent > 400:
                return False, 0.0
            i += 1
        scale += -exponent if exp_negative else exponent
    if i != b or mantissa >= _MAX_EXACT:
        return False, 0.0
    if scale < -22 or scale > 22:
        return False, 0.0
    value = float(mantissa) / pow10[-scale] if scale < 0 else float(mantissa) * pow10[scale]
    if scale > 0 and value >= _MAX_EXACT:
        return False, 0.0
    return True, -value if negative else value


_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)


@compiled
def _fnv1a(data: np.ndarray, a: int, b: int) -> int:
    """FNV-1a hash of the bytes data[a:b], as a non-negative int."""
    h = _FNV_OFFSET
    for i in range(a, b):
        h = (h ^ np.uint64(data[i])) * _FNV_PRIME
    return int(h >> np.uint64(1))


@compiled
def _symbol_slots(symbols: np.ndarray, symbol_lengths: np.ndarray, n_slots: int) -> np.ndarray:
    """An open-addressing table (``n_slots``, a power of two) of symbol indexes by the hash
    of their bytes (-1: empty): the parser finds a row's symbol in O(1), not by a scan."""
    slots = np.full(n_slots, -1, dtype=np.int64)
    mask = n_slots - 1
    for s in range(symbols.shape[0]):
        k = _fnv1a(symbols[s], 0, symbol_lengths[s]) & mask
        while slots[k] >= 0:
            k = (k + 1) & mask
        slots[k] = s
    return slots


@compiled
def _parse_block(
    buf: np.ndarray,
    n_bytes: int,
    symbols: np.ndarray,
    symbol_lengths: np.ndarray,
    slots: np.ndarray,
    ts_scale: int,
    ts_digits: int,
    has_size_column: bool,
    pow10: np.ndarray,
    out_ts: np.ndarray,
    out_sym: np.ndarray,
    out_price: np.ndarray,
    out_size: np.ndarray,
    out_has_size: np.ndarray,
    out_status: np.ndarray,
    out_start: np.ndarray,
    out_stop: np.ndarray,
) -> int:
    """Parse the complete lines of buf[:n_bytes] (which ends with a newline); returns how many
    lines were written to the outputs."""
    n = 0
    pos = 0
    mask = slots.shape[0] - 1
    whole_limit = _WHOLE_LIMIT // ts_scale
    while pos < n_bytes:
        # a line ends at \n, \r or \r\n, as in Python's universal newlines
        start = pos
        while pos < n_bytes and buf[pos] != 10 and buf[pos] != 13:
            pos += 1
        stop = pos
        if pos + 1 < n_bytes and buf[pos] == 13 and buf[pos + 1] == 10:
            pos += 1
        pos += 1
        out_start[n] = start
        out_stop[n] = pos
        out_size[n] = np.nan
        out_has_size[n] = False
        out_sym[n] = -1
        if stop == start:
            out_status[n] = EMPTY
            n += 1
            continue
        commas = 0
        c0 = c1 = c2 = c3 = stop
        plain = True
        for i in range(start, stop):
            ch = buf[i]
            if ch == 44:
                if commas == 0:
                    c0 = i
                elif commas == 1:
                    c1 = i
                elif commas == 2:
                    c2 = i
                elif commas == 3:
                    c3 = i
                commas += 1
            elif ch == 34 or ch == 32 or ch == 9 or ch >= 128:
                plain = False  # quotes, blanks, non-ASCII: csv and strip() semantics decide
            elif (ch == 45 or ch == 43) and commas < 1:
                plain = False  # a signed time: int() semantics decide
        if not plain:
            out_status[n] = SLOW
            n += 1
            continue
        if commas < 2:
            out_status[n] = SHORT_ROW
            n += 1
            continue
        # ts: digits[.digits], truncated to the unit's resolution
        whole = 0
        i = start
        ok = i < c0
        while i < c0 and 48 <= buf[i] <= 57:
            if whole > whole_limit:
                ok = False  # beyond int64 ns: Python's integers take it
                break
            whole = whole * 10 + (buf[i] - 48)
            i += 1
        frac = 0
        if i == start:
            ok = False  # no digit before the point: int("") fails, so let Python say so
        if ok and i < c0 and buf[i] == 46:
            i += 1
            taken = 0
            while i < c0 and 48 <= buf[i] <= 57:
                if taken < ts_digits:
                    frac = frac * 10 + (buf[i] - 48)
                    taken += 1
                i += 1
            while taken < ts_digits:
                frac *= 10
                taken += 1
        if not ok or i != c0:
            out_status[n] = SLOW
            n += 1
            continue
        out_ts[n] = whole * ts_scale + frac
        # symbol
        length = c1 - c0 - 1
        found = -1
        k = _fnv1a(buf, c0 + 1, c1) & mask
        while slots[k] >= 0:
            s = slots[k]
            if symbol_lengths[s] == length:
                same = True
                for j in range(length):
                    if symbols[s, j] != buf[c0 + 1 + j]:
                        same = False
                        break
                if same:
                    found = s
                    break
            k = (k + 1) & mask
        out_sym[n] = found
        ok, price = _parse_decimal(buf, c1 + 1, c2, pow10)
        if not ok:
            out_status[n] = SLOW
            n += 1
            continue
        out_price[n] = price
        if has_size_column and commas >= 3 and c3 > c2 + 1:
            ok, size = _parse_decimal(buf, c2 + 1, c3, pow10)
            if not ok:
                out_status[n] = SLOW
                n += 1
                continue
            out_size[n] = size
            out_has_size[n] = True
        out_status[n] = OK
        n += 1
    return n


def _open_binary(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def _header_length(path: Path) -> int:
    """Bytes up to and including the header's line end (\n, \r or \r\n)."""
    with _open_binary(path) as fh:
        head = fh.read(1 << 16)
    for i, byte in enumerate(head):
        if byte == 10:
            return i + 1
        if byte == 13:
            return i + 2 if head[i + 1 : i + 2] == b"\n" else i + 1
    return len(head)


def fast_path_unit(path: str | Path, ts_unit: str) -> str | None:
    """The numeric unit the fast reader will use for this file, or None when the file needs
    the streaming reader (ISO timestamps, or no data line with a readable time)."""
    if ts_unit == "iso":
        return None
    if ts_unit != "auto":
        return ts_unit
    parser = TimestampParser("auto")
    with _open_binary(Path(path)) as fh, io.TextIOWrapper(fh, encoding="utf-8", newline="") as text:
        next(text, None)
        for _, line in zip(range(1000), text, strict=False):
            row = next(csv.reader((line,)), [])
            if len(row) >= 3:  # as parse_tick_row: a short row never reaches the time parser
                try:
                    parser(row[0])
                except ValueError:
                    continue
                return None if parser.unit == "iso" else parser.unit
    return None


def read_tick_blocks(path: str | Path, symbols: Sequence[str], unit: str) -> Iterator[TickArrays]:
    """Parse a long tick CSV block by block (constant memory) into :class:`TickArrays`, with
    ``sym`` indexing ``symbols``; ``unit`` is the numeric unit of its times."""
    file_path = Path(path)
    has_size_column = tick_csv_header(file_path)
    index = {name: i for i, name in enumerate(symbols)}
    encoded = [name.encode() for name in symbols]
    width = max((len(e) for e in encoded), default=1)
    table = np.zeros((len(encoded), max(width, 1)), dtype=np.uint8)
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    for i, e in enumerate(encoded):
        table[i, : len(e)] = np.frombuffer(e, dtype=np.uint8)
    slots = _symbol_slots(table, lengths, 1 << (2 * len(encoded) + 1).bit_length())
    scale = TS_UNITS_NS[unit]
    digits = len(str(scale)) - 1
    parser = TimestampParser(unit)
    header_bytes = _header_length(file_path)
    carry = b""
    try:
        with _open_binary(file_path) as fh:
            fh.read(header_bytes)
            while True:
                data = fh.read(_BLOCK)
                if not data and not carry:
                    break
                block = carry + data
                # cut after the last line end (\r too: a file of \r-only lines still streams);
                # a \r\n split by the cut leaves an empty line, which both readers skip
                cut = max(block.rfind(b"\n"), block.rfind(b"\r")) + 1 if data else len(block)
                if cut == 0:
                    carry = block
                    continue
                carry = block[cut:]
                ends = block[cut - 1 : cut] in (b"\n", b"\r")
                chunk = block[:cut] if ends else block[:cut] + b"\n"
                yield _parse(
                    chunk, table, lengths, slots, scale, digits, has_size_column, parser, index
                )
    except (gzip.BadGzipFile, EOFError) as exc:
        raise DataFileError(str(path), f"cannot be decoded: {exc}") from None


def _parse(
    chunk: bytes,
    table: np.ndarray,
    lengths: np.ndarray,
    slots: np.ndarray,
    scale: int,
    digits: int,
    has_size_column: bool,
    parser: TimestampParser,
    index: dict[str, int],
) -> TickArrays:
    buf = np.frombuffer(chunk, dtype=np.uint8)
    cap = chunk.count(b"\n") + chunk.count(b"\r") + 1  # every possible line end
    ts = np.empty(cap, dtype=np.int64)
    sym = np.empty(cap, dtype=np.int64)
    price = np.empty(cap)
    size = np.empty(cap)
    has_size = np.empty(cap, dtype=np.bool_)
    status = np.empty(cap, dtype=np.int64)
    start = np.empty(cap, dtype=np.int64)
    stop = np.empty(cap, dtype=np.int64)
    n = _parse_block(
        buf, len(chunk), table, lengths, slots, scale, digits, has_size_column, _POW10,
        ts, sym, price, size, has_size, status, start, stop,
    )  # fmt: skip
    unknown: list[str] = []
    for i in np.flatnonzero(status[:n] == SLOW).tolist():
        _parse_slowly(
            chunk[start[i] : stop[i]],
            i,
            parser,
            has_size_column,
            index,
            ts,
            sym,
            price,
            size,
            has_size,
            status,
        )
    for i in np.flatnonzero((status[:n] == OK) & (sym[:n] < 0))[:10].tolist():
        line = chunk[start[i] : stop[i]].decode("utf-8")
        unknown.append(next(csv.reader((line,)))[1].strip())
    return TickArrays(ts[:n], sym[:n], price[:n], size[:n], has_size[:n], status[:n], unknown)


def _parse_slowly(
    raw: bytes,
    i: int,
    parser: TimestampParser,
    has_size_column: bool,
    index: dict[str, int],
    ts: np.ndarray,
    sym: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
    has_size: np.ndarray,
    status: np.ndarray,
) -> None:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFileError("tick file", f"cannot be decoded: {exc}") from None
    try:
        row = next(csv.reader((line,)), [])
    except csv.Error as exc:
        raise DataFileError("tick file", f"cannot be decoded: {exc}") from None
    if not row:
        status[i] = EMPTY
        return
    fields = parse_tick_row(row, parser, has_size_column)
    if len(fields) == 2:
        status[i] = {"short_row": SHORT_ROW, "bad_timestamp": BAD_TIMESTAMP}.get(
            fields[0], BAD_PRICE
        )
        return
    t, symbol, p, s = fields
    ts[i] = t
    sym[i] = index.get(symbol, -1)
    price[i] = p
    size[i] = math.nan if s is None else s
    has_size[i] = s is not None
    status[i] = OK
