"""Reading venue messages: JSON payloads, numbers, prices, sizes and times, each either a valid
value or ``None`` (the adapter then counts a reject), and the guard that keeps a bug in a parser
from costing more than one message. Shared by the websocket venue adapters."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date

import orjson

from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind

Parser = Callable[[str | bytes, int, Rejects, list[Tick]], None]
"""A venue's message parser: (message, ts_recv ns, rejects, ticks to append to)."""


def parse_guarded(
    parser: Parser, venue: str, message: str | bytes, ts_recv: int, rejects: Rejects
) -> list[Tick]:
    """The ticks ``parser`` finds in ``message``; never raises: an exception in the parser is
    counted as ``internal_error`` and costs this one message, not the feed."""
    ticks: list[Tick] = []
    try:
        parser(message, ts_recv, rejects, ticks)
    except Exception as exc:
        rejects.add("internal_error", venue, error=repr(exc)[:200])
    return ticks


def json_payload(
    message: str | bytes,
    venue: str,
    rejects: Rejects,
    kind: type[dict[str, object]] | type[list[object]],
) -> object | None:
    """``message`` decoded as JSON if it is a ``kind`` (``dict`` or ``list``); otherwise counted
    as ``malformed`` and ``None``."""
    try:
        payload = orjson.loads(message)
    except (orjson.JSONDecodeError, TypeError):
        payload = None
    if not isinstance(payload, kind):
        rejects.add("malformed", venue, message=snippet(message))
        return None
    return payload


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NS_PER_MS = 1_000_000
MAX_NS = 2**63 - 1


def number(value: object, *, strings: bool = False) -> float | None:
    """A finite float from a JSON number (never a bool), or with ``strings`` also from a plain
    decimal string (the encoding of Binance and Coinbase: no ``nan``, ``inf`` or ``1_000``)."""
    if isinstance(value, str):
        if not strings or _DECIMAL.fullmatch(value) is None:
            return None
        result = float(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            result = float(value)
        except OverflowError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def price(value: object, *, strings: bool = False) -> float | None:
    """A price: a finite number > 0."""
    result = number(value, strings=strings)
    return result if result is not None and result > 0.0 else None


def size(value: object, *, strings: bool = False) -> float | None:
    """A size: a finite number >= 0."""
    result = number(value, strings=strings)
    return result if result is not None and result >= 0.0 else None


def ms_to_ns(value: object) -> int | None:
    """Integer ms since the epoch (an integral JSON number) to ns, if in range."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    ns = value * _NS_PER_MS
    return ns if 0 < ns <= MAX_NS else None


def snippet(message: str | bytes) -> str:
    """The start of a message, for a log line."""
    return repr(message[:200])


_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NS_PER_S = 1_000_000_000


def parse_rfc3339_ns(text: str) -> int:
    """An RFC 3339 date-time (``2021-02-22T15:51:44.208123456Z``, or with an offset such as
    ``-05:00``) to integer ns since the epoch, UTC, without going through a float or a
    :class:`~datetime.datetime` (which stops at microseconds). Fraction digits past the ninth
    are truncated. Raises :class:`ValueError` on anything else, including leap seconds."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time: {text[:64]!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    days = date(year, month, day).toordinal() - _EPOCH_ORDINAL  # ValueError on a bad date
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"time of day out of range: {text[:64]!r}")
    fraction = match.group(7) or ""
    nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
    offset = 0
    if match.group(8) is None:
        off_hours, off_minutes = int(match.group(10)), int(match.group(11))
        if off_hours > 23 or off_minutes > 59:
            raise ValueError(f"offset out of range: {text[:64]!r}")
        offset = (off_hours * 3600 + off_minutes * 60) * (1 if match.group(9) == "+" else -1)
    seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
    return seconds * _NS_PER_S + nanos


def rfc3339_to_ns(value: object) -> int | None:
    """An RFC 3339 string (:func:`parse_rfc3339_ns`) to ns, if it is one and in range."""
    if not isinstance(value, str):
        return None
    try:
        ns = parse_rfc3339_ns(value)
    except ValueError:
        return None
    return ns if 0 < ns <= MAX_NS else None


def stock_tick(
    item: dict[str, object],
    kind: TickKind,
    ts_recv: int,
    rejects: Rejects,
    venue: str,
    *,
    symbol_key: str,
    type_key: str,
    time_ns: Callable[[object], int | None],
) -> Tick | None:
    """A trade (``p`` price, ``s`` size) or a quote (``bp``/``ap``: its mid) in the layout the
    stock venues share (Alpaca, Polygon); they differ in the symbol and type keys and in how
    ``t`` holds the time (``time_ns`` reads it). Anything unusable is counted, ``None``."""
    symbol = item.get(symbol_key)
    if not isinstance(symbol, str) or not symbol:
        rejects.add("malformed", venue, item=repr(item)[:200])
        return None
    size_value: float | None = None
    if kind is TickKind.TRADE:
        value = price(item.get("p"))
        size_value = size(item.get("s"))
    else:
        bid, ask = price(item.get("bp")), price(item.get("ap"))
        value = None if bid is None or ask is None else (bid + ask) / 2.0
    if value is None:
        rejects.add("bad_price", venue, symbol=symbol, type=item[type_key])
        return None
    ts_event = time_ns(item.get("t"))
    if ts_event is None:
        rejects.add("bad_timestamp", venue, symbol=symbol, t=repr(item.get("t"))[:64])
        return None
    return Tick(symbol, value, ts_event, ts_recv, size_value, venue, kind)
