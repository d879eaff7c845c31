"""Containing one component's failure: counted by pair and logged, so the others go on."""

from __future__ import annotations

import traceback
from collections import Counter
from typing import Any

from hedger.core.rejects import Logger, in_log_sample


class Failures:
    """Exceptions contained in actors, bar listeners and local bus subscribers.

    ``counts``: contained exceptions by pair id (or, where no pair is involved, by the
    listener's name or the message's topic). Each key's failures are logged with their
    traceback on the first few occurrences, then at each power of ten (as rejects are), so a
    subscriber that fails on every message cannot flood the log; at ``error`` level where the
    logger has one (structlog's do), else ``warning``.
    """

    def __init__(self, logger: Logger | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self._logger = logger

    def record(self, component: str, key: str, exc: Exception, **detail: Any) -> None:
        """Count one failure of ``component`` (``actor``, ``bar listener``, ``subscriber``)
        about ``key``, and log it if it is in the sample."""
        n = self.counts[key] + 1
        self.counts[key] = n
        if self._logger is not None and in_log_sample(n):
            log = getattr(self._logger, "error", self._logger.warning)
            log(
                f"{component} failed",
                pair=key,
                error=repr(exc),
                count=n,
                traceback="".join(traceback.format_exception(exc)),
                **detail,
            )

    @property
    def total(self) -> int:
        """All contained failures so far."""
        return sum(self.counts.values())
