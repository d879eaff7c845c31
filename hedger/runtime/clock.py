"""The daemon's only source of time: a live clock, and a test clock the tests advance.

A clock gives wall time (integer ns since the epoch, UTC: what closes bars), monotonic time
(integer ns from an arbitrary origin: what measures intervals and uptime), and sleeping until a
wall time or for an interval. The :class:`TestClock` never sleeps for real: its time stands
still until a test calls :meth:`TestClock.advance_ns` or :meth:`TestClock.advance_to`, which
wake the sleepers whose time has come, earliest first.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import Any, TypeVar

_T = TypeVar("_T")

_NS = 1_000_000_000

_Sleeper = tuple[int, int, "asyncio.Future[None]", "asyncio.Task[Any] | None"]
"""(wake time ns, call order, the future it waits on, its task)"""


class Clock(ABC):
    """What the daemon needs of time."""

    @abstractmethod
    def time_ns(self) -> int:
        """Wall time, ns since the epoch (UTC)."""

    @abstractmethod
    def monotonic_ns(self) -> int:
        """Monotonic time, ns from an arbitrary origin (for intervals only)."""

    @abstractmethod
    async def sleep_until_ns(self, ts_ns: int) -> None:
        """Return once the wall time is at or past ``ts_ns`` (ns since the epoch)."""

    @abstractmethod
    async def sleep_ns(self, interval_ns: int) -> None:
        """Return after ``interval_ns`` of monotonic time."""

    async def sleep_s(self, seconds: float) -> None:
        """:meth:`sleep_ns` for an interval in seconds."""
        await self.sleep_ns(round(seconds * _NS))

    async def within(self, seconds: float, awaitable: Awaitable[_T]) -> tuple[bool, _T | None]:
        """Await ``awaitable`` for at most ``seconds`` of this clock's time: ``(True, result)``
        if it finished in time, else ``(False, None)`` after cancelling it."""
        work = asyncio.ensure_future(awaitable)
        timer = asyncio.ensure_future(self.sleep_s(seconds))
        try:
            await asyncio.wait((work, timer), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            timer.cancel()
        if work.done():
            return True, work.result()
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        return False, None


class LiveClock(Clock):
    """The host's clocks: ``time.time_ns``, ``time.monotonic_ns`` and the event loop's sleep."""

    def time_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep_until_ns(self, ts_ns: int) -> None:
        # The loop sleeps on monotonic time, which may run a little apart from wall time:
        # sleep again until the wall clock agrees.
        while (left := ts_ns - time.time_ns()) > 0:
            await asyncio.sleep(left / _NS)

    async def sleep_ns(self, interval_ns: int) -> None:
        await asyncio.sleep(max(0, interval_ns) / _NS)


class TestClock(Clock):
    """A clock that moves only when told to; wall and monotonic time move together.

    ``start_ns``: the wall time it starts at (ns since the epoch); monotonic time starts at 0.
    Advancing wakes the sleepers whose time has come in order of their wake time (then of
    their call), one wake time at a time: the clock reads that wake time while they run, and
    each gets the event loop until it sleeps on the clock again or finishes before the next
    wake time is served.
    """

    __test__ = False  # not a pytest test class

    _SETTLE_ROUNDS = 100
    """Loop turns a woken task may take to get back to the clock (it may be blocked
    elsewhere, say on a full queue; then the clock moves on without it)."""

    def __init__(self, start_ns: int = 1_700_000_000 * _NS) -> None:
        self._now = start_ns
        self._origin = start_ns
        self._order = itertools.count()
        self._sleepers: list[_Sleeper] = []

    def time_ns(self) -> int:
        return self._now

    def monotonic_ns(self) -> int:
        return self._now - self._origin

    def pending(self) -> list[int]:
        """The wall times (ns) the current sleepers wake at, earliest first."""
        return sorted(ts for ts, _, _, _ in self._sleepers)

    async def sleep_until_ns(self, ts_ns: int) -> None:
        if ts_ns <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (ts_ns, next(self._order), future, asyncio.current_task())
        heapq.heappush(self._sleepers, entry)
        try:
            await future
        finally:
            if entry in self._sleepers:  # cancelled before its time: forget it
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    async def sleep_ns(self, interval_ns: int) -> None:
        await self.sleep_until_ns(self._now + max(0, interval_ns))

    async def advance_ns(self, interval_ns: int) -> None:
        """Move time forward by ``interval_ns`` (see :meth:`advance_to`)."""
        await self.advance_to(self._now + interval_ns)

    async def advance_to(self, ts_ns: int) -> None:
        """Move wall time to ``ts_ns`` (never backwards), waking every sleeper due by then."""
        if ts_ns < self._now:
            raise ValueError(f"a clock does not go back: {ts_ns} < {self._now}")
        sleepers = self._sleepers
        while sleepers and sleepers[0][0] <= ts_ns:
            due = sleepers[0][0]
            self._now = due
            woken: list[asyncio.Task[Any]] = []
            while sleepers and sleepers[0][0] == due:
                _, _, future, task = heapq.heappop(sleepers)
                if not future.done():
                    future.set_result(None)
                    if task is not None:
                        woken.append(task)
            await self._settle(woken)
        self._now = ts_ns

    async def _settle(self, woken: list[asyncio.Task[Any]]) -> None:
        for _ in range(self._SETTLE_ROUNDS):
            await asyncio.sleep(0)
            waiting = {id(task) for _, _, _, task in self._sleepers}
            if all(task.done() or id(task) in waiting for task in woken):
                return
