"""Reading the fields of venue messages: numbers, prices, sizes and times, each either a valid
value or ``None`` (the adapter then counts a reject). Shared by the websocket venue adapters."""

from __future__ import annotations

import math
import re

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
