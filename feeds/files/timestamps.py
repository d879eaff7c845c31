"""Timestamps of recorded files and MQTT ticks: ISO-8601 text or epoch numbers in s, ms, us or
ns (the unit detected from the first value, or given), to integer ns since the epoch, UTC.

Dates as people write them are read too, with or without a time (``HH:MM[:SS[.fff]]``, after
a space or a ``T``): ISO ``2024-01-31``, ``2024/01/31`` (year first), and the year-last forms
``01/31/2024`` (m/d/Y) and ``31/01/2024`` (d/m/Y), with ``/``, ``.`` or ``-``. Which of m/d/Y
and d/m/Y a column uses is decided by :func:`detect_date_order` from its values (a day above 12
settles it); a column whose values fit both needs an explicit strftime pattern
(``date_format``, the CLI's ``--date-format``). Times without a zone are UTC."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
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


_DATE = re.compile(
    r"^(\d{1,4})([/.-])(\d{1,2})\2(\d{1,4})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(?:Z|UTC)?$"
)
DATE_ORDERS = ("mdy", "dmy")
"""The year-last orders a column may use: m/d/Y and d/m/Y."""


class AmbiguousDatesError(ValueError):
    """A column's year-last dates fit both m/d/Y and d/m/Y.

    Attributes:
        example: a value that fits both.
    """

    def __init__(self, example: str, problem: str) -> None:
        super().__init__(problem)
        self.example = example


def _year_last_orders(text: str) -> tuple[str, ...] | None:
    """The orders (of ``mdy``, ``dmy``) a year-last date fits; None if ``text`` is not one."""
    match = _DATE.match(text.strip())
    if match is None or len(match.group(1)) == 4 or len(match.group(4)) != 4:
        return None
    a, b = int(match.group(1)), int(match.group(3))
    orders = []
    if 1 <= a <= 12 and 1 <= b <= 31:
        orders.append("mdy")
    if 1 <= b <= 12 and 1 <= a <= 31:
        orders.append("dmy")
    return tuple(orders)


def detect_date_order(cells: Iterable[str]) -> str | None:
    """The order (``"mdy"`` or ``"dmy"``) of a column's year-last dates, from its values;
    ``None`` when it has none (ISO or year-first dates, epoch numbers). Stops at the first
    value that settles it (a later value that does not fit is a bad row). Raises
    :class:`AmbiguousDatesError` when every value fits both orders."""
    possible = set(DATE_ORDERS)
    example = ""
    for cell in cells:
        orders = _year_last_orders(cell)
        if not orders:
            continue
        example = example or cell.strip()
        possible &= set(orders)
        if len(possible) == 1:
            return possible.pop()
    if not example:
        return None
    raise AmbiguousDatesError(example, f"dates such as {example!r} fit both m/d/Y and d/m/Y")


class DateParser:
    """Text dates and date-times to integer ns since the epoch, UTC.

    ``date_format``: a strftime pattern every cell must follow (``"%d/%m/%Y %H:%M"``);
    otherwise ISO-8601, year-first ``Y/m/d``, and year-last dates in ``order`` (``"mdy"``,
    ``"dmy"``, or ``None`` to refuse year-last dates). Raises ``ValueError`` on a cell it
    cannot read.
    """

    def __init__(self, date_format: str | None = None, order: str | None = None) -> None:
        if order is not None and order not in DATE_ORDERS:
            raise ValueError(f"date order must be mdy or dmy, got {order!r}")
        self.date_format = date_format
        self.order = order

    def __call__(self, text: str) -> int:
        text = text.strip()
        if self.date_format is not None:
            moment = datetime.strptime(text, self.date_format)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return _ns_of(moment)
        if _looks_iso(text):
            return parse_timestamp_ns(text)
        match = _DATE.match(text)
        if match is None:
            raise ValueError(f"not a date: {text!r}")
        first, _, second, last, hour, minute, sec, frac = match.groups()
        if len(first) == 4:
            year, month, day = int(first), int(second), int(last)
        elif len(last) == 4 and self.order is not None:
            year = int(last)
            month, day = (
                (int(first), int(second)) if self.order == "mdy" else (int(second), int(first))
            )
        else:
            raise ValueError(f"not a date in a known order: {text!r}")
        moment = datetime(
            year, month, day, int(hour or 0), int(minute or 0), int(sec or 0), tzinfo=UTC
        )
        extra = int((frac or "").ljust(9, "0")) if frac else 0
        return _ns_of(moment) + extra


DATE_PATTERN = "a strftime pattern such as %d/%m/%Y"
"""What ``--date-format`` and ``date_format`` take (one directive at least), in the words of
their error messages."""


def is_date_pattern(text: str) -> bool:
    """Can ``text`` be a strftime pattern of dates: it has a directive (``%``)."""
    return "%" in text


def looks_like_date(text: str) -> bool:
    """Whether ``text`` is a text date (ISO, or with ``/`` or ``.``), not an epoch number."""
    text = text.strip()
    return _looks_iso(text) or _DATE.match(text) is not None


def _ns_of(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


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

    def __init__(self, unit: str = "auto", dates: DateParser | None = None) -> None:
        if unit not in ("auto", "iso", *TS_UNITS_NS):
            raise ValueError(f"ts unit must be auto, iso, s, ms, us or ns, got {unit!r}")
        self.unit = "iso" if dates is not None and dates.date_format is not None else unit
        self._dates = dates if dates is not None else DateParser()

    def __call__(self, cell: str | float | int) -> int:
        unit = self.unit
        if isinstance(cell, bool):
            raise ValueError("a boolean is not a timestamp")
        if isinstance(cell, str):
            text = cell.strip()
            if unit == "auto":
                unit = "iso" if looks_like_date(text) else _detect_numeric(text)
            value = self._dates(text) if unit == "iso" else _scaled(text, unit)
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
