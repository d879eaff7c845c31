"""What a feed is: an async context manager and an async iterator of
:class:`~hedger.core.ticks.Tick`, and, for websocket venues, the sans-I/O message format
(:class:`VenueProtocol`: subscription messages out, raw messages in, ticks and rejects out) that
is tested on messages alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Protocol, Self

from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick


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
