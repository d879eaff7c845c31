"""The reconnecting websocket feed that venue adapters build on: it only connects, subscribes,
receives and reconnects with backoff; parsing is the venue's :class:`~feeds.protocol.VenueProtocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

import websockets
from websockets.asyncio.client import ClientConnection, connect

from feeds.protocol import VenueProtocol
from feeds.reconnect import Backoff
from hedger.core.rejects import Logger, Rejects
from hedger.core.ticks import Tick


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
