"""The one lifecycle of feeds, bridges and the daemon: a :class:`State` and the
``async with`` way in (:class:`Lifecycle`). No I/O here.

A component is ``STARTING`` from construction until it serves (a connection is up, a server
listens), ``RUNNING`` while it serves, ``DEGRADED`` while it is still alive but cannot serve
(a dropped connection being retried), ``STOPPING`` once :meth:`Lifecycle.close` has been
called and ``STOPPED`` when all of it has ended. ``close()`` is idempotent.
"""

from __future__ import annotations

import asyncio
import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self


class State(enum.Enum):
    """Where a component is in its life (see the module documentation)."""

    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    STOPPING = "stopping"
    STOPPED = "stopped"


StateListener = Callable[[State], None]
"""Hears every change of state, after it happened."""


class Lifecycle(ABC):
    """A component entered with ``async with`` (which calls :meth:`_open`) and left by
    :meth:`close` (idempotent). :attr:`state` tells where it is; ``on_state`` hears every
    change; :meth:`wait_closed` waits for ``STOPPED``."""

    def __init__(self, on_state: StateListener | None = None) -> None:
        self._state = State.STARTING
        self._on_state = on_state
        self._stopped = asyncio.Event()

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` has been called (``STOPPING`` or ``STOPPED``)."""
        return self._state in (State.STOPPING, State.STOPPED)

    def _set_state(self, state: State) -> None:
        """Move to ``state``; nothing moves a component out of ``STOPPED``, and only
        ``STOPPED`` follows ``STOPPING``."""
        current = self._state
        if state is current or current is State.STOPPED:
            return
        if current is State.STOPPING and state is not State.STOPPED:
            return
        self._state = state
        if state is State.STOPPED:
            self._stopped.set()
        if self._on_state is not None:
            self._on_state(state)

    async def wait_closed(self) -> None:
        """Wait until the component is ``STOPPED``."""
        await self._stopped.wait()

    @abstractmethod
    async def _open(self) -> None:
        """Start serving (or start trying to): called by ``async with``."""

    @abstractmethod
    def close(self) -> Awaitable[object]:
        """Stop, idempotently; the awaitable finishes once stopped."""

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
