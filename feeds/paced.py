"""Feeds over synchronous tick sources (a generator, a file reader), paced in event time."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator

from hedger.core.lifecycle import Lifecycle, State
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick


async def paced(ticks: Iterator[Tick], speed: float | None) -> AsyncIterator[Tick]:
    """Ticks from a synchronous source as an async stream: at ``speed`` times real time (event
    time drives the pace), or as fast as the consumer takes them (``None``), yielding to the
    event loop every few hundred ticks so a long file never starves the other tasks."""
    started = time.monotonic()
    first: int | None = None
    for n, tick in enumerate(ticks):
        if speed is not None:
            first = tick.ts_event if first is None else first
            delay = started + (tick.ts_event - first) / 1e9 / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif n % 512 == 0:
            await asyncio.sleep(0)
        yield tick


class PacedFeed(Lifecycle, ABC):
    """A feed over a synchronous tick source (a generator, a file reader), paced by
    :func:`paced`. Subclasses give the source in :meth:`source`. ``RUNNING`` once entered,
    ``STOPPED`` once closed (iteration does not stop at a close: the source has no
    connection to drop)."""

    def __init__(self, speed: float | None) -> None:
        super().__init__()
        self.rejects = Rejects()
        self._speed = speed

    @abstractmethod
    def source(self) -> Iterator[Tick]:
        """The ticks, in event-time order."""

    async def _open(self) -> None:
        self._set_state(State.RUNNING)

    async def close(self) -> None:
        """Nothing to release; idempotent."""
        self._set_state(State.STOPPING)
        self._set_state(State.STOPPED)

    def __aiter__(self) -> AsyncIterator[Tick]:
        return paced(self.source(), self._speed)
