"""Timestamps of recorded files and MQTT ticks: ISO-8601 text or epoch numbers in s, ms, us or
ns (the unit detected from the first value, or given), to integer ns since the epoch, UTC."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

_FRACTION = re.compile(r"\.(\d+)")


def parse_timestamp_ns(text: str) -> int:
    """ISO-8601 date or date-time to integer ns since the epoch, UTC (naive means UTC); a
    fraction of a second keeps all its digits, down to nanoseconds."""
    text = text.strip()
    extra_ns = 0
    match = _FRACTION.search(text)
    if match and len(match.group(1)) > 6:
        digits = match.group(1)
        extra_ns = int(digits[6:9].ljust(3, "0"))
        text = text[: match.start(1)] + digits[:6] + text[match.end(1) :]
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    whole = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    return whole + extra_ns


TS_UNITS_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_NS_LIMIT = 2**63


def detect_ts_unit(value: float) -> str:
    """Epoch unit by magnitude: seconds below 1e11 (year 5138), then ms, us, ns."""
    magnitude = abs(value)
    if magnitude < 1e11:
        return "s"
    if magnitude < 1e14:
        return "ms"
    if magnitude < 1e17:
        return "us"
    return "ns"


class TimestampParser:
    """Turns a file's ``ts`` cells into integer ns since the epoch, UTC.

    ``unit``: ``"iso"``, ``"s"``, ``"ms"``, ``"us"``, ``"ns"``, or ``"auto"`` (the first
    parsable cell decides, and the rest of the file must follow it). Raises ``ValueError`` on
    a cell it cannot read.
    """

    def __init__(self, unit: str = "auto") -> None:
        if unit not in ("auto", "iso", *TS_UNITS_NS):
            raise ValueError(f"ts unit must be auto, iso, s, ms, us or ns, got {unit!r}")
        self.unit = unit

    def __call__(self, cell: str | float | int) -> int:
        unit = self.unit
        if isinstance(cell, bool):
            raise ValueError("a boolean is not a timestamp")
        if isinstance(cell, str):
            text = cell.strip()
            if unit == "auto":
                unit = "iso" if _looks_iso(text) else _detect_numeric(text)
            value = parse_timestamp_ns(text) if unit == "iso" else _scaled(text, unit)
        else:
            if unit == "auto":
                unit = detect_ts_unit(float(cell))
            if unit == "iso":
                raise ValueError(f"expected an ISO-8601 string, got {cell!r}")
            if isinstance(cell, int):
                value = cell * TS_UNITS_NS[unit]
            elif math.isfinite(cell):
                value = _scaled(repr(float(cell)), unit)
            else:
                raise ValueError(f"not a timestamp: {cell!r}")
        if not -_NS_LIMIT < value < _NS_LIMIT:
            raise ValueError(f"timestamp out of range: {cell!r}")
        # Only a cell that parsed fixes the unit of an "auto" parser.
        self.unit = unit
        return value


def _detect_numeric(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"not a timestamp: {text!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"not a timestamp: {text!r}")
    return detect_ts_unit(number)


def _looks_iso(text: str) -> bool:
    return len(text) >= 10 and text[4] == "-" and text[7] == "-"


def _scaled(text: str, unit: str) -> int:
    """Exact decimal scaling of an epoch number: ``"1700000000.123"`` s -> ns, no float
    rounding (a float has too few digits for ns since 1970)."""
    scale = TS_UNITS_NS[unit]
    whole, _, frac = text.partition(".")
    if not whole.lstrip("-").isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"not an epoch timestamp: {text!r}")
    digits = len(str(scale)) - 1
    frac_ns = int((frac + "0" * digits)[:digits]) if digits and frac else 0
    sign = -1 if whole.startswith("-") else 1
    return int(whole) * scale + sign * frac_ns
