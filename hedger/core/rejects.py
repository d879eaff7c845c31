"""Counting and logging bad input without letting it flood the log or stop the pipeline."""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol


class Logger(Protocol):
    """The slice of a structlog logger that components use."""

    def warning(self, event: str, **kw: Any) -> Any: ...

    def info(self, event: str, **kw: Any) -> Any: ...


class Rejects:
    """Counts rejected input by reason and logs a bounded sample of it.

    Each reason is logged on its first ``first`` occurrences, then only when its count reaches
    a power of ten (100, 1000, ...), so a feed sending garbage at 1M messages/s writes a
    handful of lines, and the same input always logs the same lines (no clock involved).
    """

    def __init__(self, logger: Logger | None = None, first: int = 5) -> None:
        self.counts: Counter[str] = Counter()
        self._logger = logger
        self._first = first

    def add(self, reason: str, source: str = "", **detail: Any) -> None:
        """Count one reject; log it if it is in the sample."""
        n = self.counts[reason] + 1
        self.counts[reason] = n
        if self._logger is not None and in_log_sample(n, self._first):
            self._logger.warning("rejected", reason=reason, source=source, count=n, **detail)

    def add_many(self, reason: str, count: int, source: str = "") -> None:
        """Count ``count`` rejects of one reason found together (a compiled pass); logs once."""
        if count <= 0:
            return
        self.counts[reason] += count
        if self._logger is not None:
            self._logger.warning("rejected", reason=reason, source=source, count=count)

    @property
    def total(self) -> int:
        """All rejects so far."""
        return sum(self.counts.values())

    def summary(self) -> dict[str, int]:
        """Counts by reason, sorted by reason."""
        return dict(sorted(self.counts.items()))


def in_log_sample(n: int, first: int = 5) -> bool:
    """Whether the ``n``-th occurrence (from 1) of something is logged: the first ``first``,
    then each power of ten."""
    return n <= first or _is_power_of_ten(n)


def _is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1
