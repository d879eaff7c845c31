"""The reconnecting websocket feed that venue adapters build on: it only connects, subscribes,
receives and reconnects (:class:`~feeds.reconnect.ReconnectingStream`); parsing is the
venue's :class:`~feeds.protocol.VenueProtocol`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from feeds.broker import redact_url
from feeds.protocol import VenueProtocol
from feeds.reconnect import Backoff, ReconnectingStream, Reconnector
from hedger.core.lifecycle import StateListener
from hedger.core.rejects import Logger, Rejects
from hedger.core.ticks import Tick

_RETRIED = (OSError, TimeoutError, websockets.WebSocketException)


class WebSocketFeed(ReconnectingStream[Tick]):
    """Ticks from a websocket venue: connect, send the subscription, parse every message,
    reconnect with backoff when the connection drops, until closed. A connection resets the
    backoff only once it has delivered a tick, so a venue that accepts and hangs up (bad
    auth) is retried ever more slowly. An adapter that breaks the parse contract ends the
    feed, and its error reaches the consumer.

    Args:
        url: the venue's websocket URL (tests point it at a local server).
        venue: the message format.
        backoff: reconnect delays (s).
        logger: a structlog-style logger for connects, drops and sampled rejects.
        queue_size: ticks buffered between the socket and the consumer; when full, the
            receive loop waits (the socket's own flow control then slows the venue down).
        seed: seeds the backoff jitter.
        on_state: hears every change of :attr:`state`.
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
        on_state: StateListener | None = None,
    ) -> None:
        super().__init__(
            Reconnector(backoff, retry_on=_RETRIED, seed=seed),
            name=f"feed-{venue.name}",
            queue_size=queue_size,
            on_state=on_state,
        )
        self.url = url
        self.venue = venue
        self.rejects = Rejects(logger)
        self.messages = 0
        self._logger = logger

    async def _session(self, healthy: Callable[[], None]) -> None:
        async with connect(self.url, open_timeout=10, max_size=2**22) as ws:
            await self._subscribe(ws)
            self._up()
            self._log("info", "connected")
            await self._receive(ws, healthy)

    def _dropped(self, error: BaseException | None) -> None:
        why = "closed by the server" if error is None else str(error) or type(error).__name__
        self._log("warning", "disconnected", error=why)

    async def _subscribe(self, ws: ClientConnection) -> None:
        for message in self.venue.subscribe_messages():
            await ws.send(message)

    async def _receive(self, ws: ClientConnection, healthy: Callable[[], None]) -> None:
        parse, rejects, put = self.venue.parse, self.rejects, self._put
        async for message in ws:
            self.messages += 1
            ticks = parse(message, time.time_ns(), rejects)
            if ticks:
                healthy()
            for tick in ticks:
                await put(tick)

    def _log(self, level: str, event: str, **kw: Any) -> None:
        if self._logger is not None:
            getattr(self._logger, level)(
                event, venue=self.venue.name, url=redact_url(self.url), **kw
            )
