"""Reconnecting, written once for every transport that reconnects (websocket feeds, the MQTT
tick feed, the subscriber, the MQTT bridge): the delays (:class:`Backoff`), the loop of
connect-and-serve attempts with those delays between them (:class:`Reconnector`), and a
lifecycle over it that hands what the connections receive to one consumer
(:class:`ReconnectingStream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from abc import abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from hedger.core.lifecycle import Lifecycle, State, StateListener

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
"""Waits a number of seconds (``asyncio.sleep``, or a test's recorder)."""

Attempt = Callable[[Callable[[], None]], Awaitable[None]]
"""One connect-and-serve attempt. It calls the function it is given once the connection is
healthy (which resets the backoff), and returns or raises when the connection ends."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: ``initial * factor**attempt`` capped at ``maximum`` seconds, each
    scaled by a random factor in [1 - jitter, 1] so that many clients do not reconnect in
    step."""

    initial: float = 0.1
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before reconnect number ``attempt`` (0-based), in seconds."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * rng.random())


class Reconnector:
    """Runs connect-and-serve attempts until told to stop, waiting a :class:`Backoff` delay
    before each retry; a healthy connection resets the delays to the first one.

    Args:
        backoff: the delays.
        retry_on: the errors of an attempt that are retried; any other ends :meth:`run`.
        seed: seeds the jitter.
        sleep: how a delay is waited (``asyncio.sleep``); tests pass a recorder.

    Counters: ``attempts`` (attempts started), ``retries`` (delays waited) and ``delays``
    (the latest delays, in seconds, oldest first).
    """

    def __init__(
        self,
        backoff: Backoff | None = None,
        *,
        retry_on: tuple[type[BaseException], ...] = (OSError,),
        seed: int | None = None,
        sleep: Sleep | None = None,
        history: int = 64,
    ) -> None:
        self.backoff = backoff or Backoff()
        self.retry_on = retry_on
        self.sleep: Sleep = sleep or asyncio.sleep
        self.attempts = 0
        self.retries = 0
        self.delays: deque[float] = deque(maxlen=history)
        self._rng = random.Random(seed)

    async def run(
        self,
        attempt: Attempt,
        *,
        stopped: Callable[[], bool],
        on_drop: Callable[[BaseException | None], None],
        wait: Sleep | None = None,
    ) -> None:
        """Attempt, and after each attempt that ended (``on_drop`` hears the error, or None
        for a connection that ended cleanly) wait and attempt again, until ``stopped()``.
        ``wait`` replaces :attr:`sleep` for the delays (one a close can cut short)."""
        failures = 0
        while not stopped():
            healthy = False

            def mark_healthy() -> None:
                nonlocal healthy
                healthy = True

            self.attempts += 1
            error: BaseException | None = None
            try:
                await attempt(mark_healthy)
            except asyncio.CancelledError:
                raise
            except self.retry_on as exc:
                error = exc
            on_drop(error)
            if stopped():
                return
            if healthy:
                failures = 0
            delay = self.backoff.delay(failures, self._rng)
            failures += 1
            self.retries += 1
            self.delays.append(delay)
            await (wait or self.sleep)(delay)


class ReconnectingStream(Lifecycle, Generic[T]):
    """A feed of items from connections that come and go: ``async with`` starts the
    :class:`Reconnector` in a task, :meth:`_session` (one connection) hands items to
    :meth:`_put`, and iterating gives them to the consumer. Iteration ends after
    :meth:`close`, once the buffered items are consumed; an error the reconnector does not
    retry ends it too, and is raised to the consumer.

    State: ``STARTING`` until the first connection is up, ``RUNNING`` while one is,
    ``DEGRADED`` between connections, ``STOPPING``/``STOPPED`` once closed.
    """

    def __init__(
        self,
        reconnector: Reconnector,
        *,
        name: str,
        queue_size: int,
        on_state: StateListener | None = None,
    ) -> None:
        super().__init__(on_state)
        self.reconnector = reconnector
        self._name = name
        self._queue: asyncio.Queue[T | None] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._failure: BaseException | None = None
        self._connected = asyncio.Event()

    @property
    def reconnects(self) -> int:
        """Retries after a connection ended or failed."""
        return self.reconnector.retries

    @property
    def connected(self) -> bool:
        """Whether a connection is up (and subscribed)."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Wait until a connection is up (and subscribed)."""
        await self._connected.wait()

    @abstractmethod
    async def _session(self, healthy: Callable[[], None]) -> None:
        """Connect and receive until the connection ends; call :meth:`_up` once it is up and
        ``healthy`` once it has proved itself."""

    @abstractmethod
    def _dropped(self, error: BaseException | None) -> None:
        """A connection ended (``error`` is None when it ended cleanly): log it."""

    async def _open(self) -> None:
        if self._task is None and not self.closing:
            self._task = asyncio.create_task(self._run(), name=self._name)
            self._task.add_done_callback(self._on_run_done)

    async def close(self) -> None:
        """Disconnect and stop receiving; idempotent."""
        if self.closing:
            await self.wait_closed()
            return
        self._set_state(State.STOPPING)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._connected.clear()
        self._end()
        self._set_state(State.STOPPED)

    def _up(self) -> None:
        """The connection is up: ``RUNNING``."""
        self._connected.set()
        self._set_state(State.RUNNING)

    async def _put(self, item: T) -> None:
        await self._queue.put(item)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def _items(self) -> AsyncIterator[T]:
        queue = self._queue
        while not (self._ended and queue.empty()):
            item = await queue.get()
            if item is None:
                break
            yield item
        if self._failure is not None:
            raise self._failure

    async def _run(self) -> None:
        await self.reconnector.run(self._session, stopped=lambda: self.closing, on_drop=self._drop)

    def _drop(self, error: BaseException | None) -> None:
        self._connected.clear()
        self._set_state(State.DEGRADED)
        self._dropped(error)

    def _on_run_done(self, task: asyncio.Task[None]) -> None:
        # however the loop ended (closed, or an error not retried), wake the consumer; the
        # error, if any, is raised to it once the buffered items are consumed
        if not task.cancelled():
            self._failure = task.exception()
        self._connected.clear()
        self._end()
        if self._failure is not None:
            self._set_state(State.STOPPED)

    def _end(self) -> None:
        # The marker only wakes a consumer waiting on an empty queue (where it always fits);
        # on a full queue the consumer is not waiting, and :meth:`_items` ends on ``_ended``
        # once it has taken what is buffered, so the end is never lost (tested on a full
        # queue in tests/test_feeds_websocket.py).
        self._ended = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
