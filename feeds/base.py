"""The shared feed protocol and the reconnecting websocket feed that venue adapters build on.

Every feed is an async context manager and an async iterator of :class:`~hedger.ticks.Tick`.
Parsing is sans-I/O: a venue adapter is a :class:`VenueProtocol` (subscription messages out,
raw messages in, ticks and rejects out), so it is tested on messages alone; the I/O layer
(:class:`WebSocketFeed`) only connects, subscribes, receives and reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import websockets
from websockets.asyncio.client import ClientConnection, connect

from hedger.rejects import Logger, Rejects
from hedger.ticks import Tick


class Feed(Protocol):
    """What the pipeline needs of a feed."""

    rejects: Rejects

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[Tick]: ...


class VenueProtocol(Protocol):
    """A venue's message format, without I/O.

    ``name``: the venue's name on ticks. ``subscribe_messages``: what to send after connecting
    (auth first where the venue needs it). ``parse``: one raw message (text or bytes) received
    at ``ts_recv`` (ns) into ticks; control messages (acks, heartbeats, status) give no ticks;
    anything malformed is counted in ``rejects`` and gives no ticks. ``parse`` never raises.
    """

    name: str

    def subscribe_messages(self) -> Sequence[str]: ...

    def parse(self, message: str | bytes, ts_recv: int, rejects: Rejects) -> list[Tick]: ...


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


class WebSocketFeed:
    """Ticks from a websocket venue: connect, send the subscription, parse every message,
    reconnect with backoff when the connection drops, until closed.

    Args:
        url: the venue's websocket URL (tests point it at a local server).
        venue: the message format.
        backoff: reconnect delays.
        logger: a structlog-style logger for connects, drops and sampled rejects.
        queue_size: ticks buffered between the socket and the consumer; when full, the
            receive loop waits (the socket's own flow control then slows the venue down).
    """

    def __init__(
        self,
        url: str,
        venue: VenueProtocol,
        *,
        backoff: Backoff | None = None,
        logger: Logger | None = None,
        queue_size: int = 10_000,
        seed: int | None = None,
    ) -> None:
        self.url = url
        self.venue = venue
        self.rejects = Rejects(logger)
        self.reconnects = 0
        self.messages = 0
        self._backoff = backoff or Backoff()
        self._logger = logger
        self._queue: asyncio.Queue[Tick | None] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._connected = asyncio.Event()
        self._rng = random.Random(seed)
        self._failure: BaseException | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name=f"feed-{self.venue.name}")
        self._task.add_done_callback(self._on_run_done)
        return self

    def _on_run_done(self, task: asyncio.Task[None]) -> None:
        # Wake the consumer however the receive loop ended (closed, or failed): a None in the
        # queue ends iteration, and the loop's exception, if any, is raised to the consumer.
        self._failure = None if task.cancelled() else task.exception()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop receiving; idempotent."""
        self._closed.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_connected(self) -> None:
        """Wait until a connection is up and subscribed."""
        await self._connected.wait()

    def __aiter__(self) -> AsyncIterator[Tick]:
        return self._ticks()

    async def _ticks(self) -> AsyncIterator[Tick]:
        while True:
            tick = await self._queue.get()
            if tick is None:
                if self._failure is not None:
                    raise self._failure
                return
            yield tick

    async def _run(self) -> None:
        attempt = 0
        while not self._closed.is_set():
            try:
                async with connect(self.url, open_timeout=10, max_size=2**22) as ws:
                    await self._subscribe(ws)
                    self._connected.set()
                    self._log("info", "connected", url=self.url)
                    if await self._receive(ws):
                        # Only a connection that delivered ticks resets the backoff: a venue
                        # that accepts and hangs up (bad auth) is retried ever more slowly.
                        attempt = 0
                self._log("warning", "disconnected", url=self.url, error="closed by the server")
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                self._log(
                    "warning", "disconnected", url=self.url, error=str(exc) or type(exc).__name__
                )
            self._connected.clear()
            if self._closed.is_set():
                break
            self.reconnects += 1
            await asyncio.sleep(self._backoff.delay(attempt, self._rng))
            attempt += 1

    async def _subscribe(self, ws: ClientConnection) -> None:
        for message in self.venue.subscribe_messages():
            await ws.send(message)

    async def _receive(self, ws: ClientConnection) -> bool:
        """Receive until the connection ends; returns whether any tick arrived."""
        parse, rejects, put = self.venue.parse, self.rejects, self._queue.put
        delivered = False
        async for message in ws:
            self.messages += 1
            for tick in parse(message, time.time_ns(), rejects):
                delivered = True
                await put(tick)
        return delivered

    def _log(self, level: str, event: str, **kw: Any) -> None:
        if self._logger is not None:
            getattr(self._logger, level)(event, venue=self.venue.name, **kw)


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


class PacedFeed(ABC):
    """A feed over a synchronous tick source (a generator, a file reader), paced by
    :func:`paced`. Subclasses give the source in :meth:`source`."""

    def __init__(self, speed: float | None) -> None:
        self.rejects = Rejects()
        self._speed = speed

    @abstractmethod
    def source(self) -> Iterator[Tick]:
        """The ticks, in event-time order."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __aiter__(self) -> AsyncIterator[Tick]:
        return paced(self.source(), self._speed)
