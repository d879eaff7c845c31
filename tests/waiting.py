"""Waiting for a condition in a test: poll it until it holds, or fail at a deadline.

Tests never sleep a fixed time and hope; they poll what they wait for."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import pytest


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, what: str = ""
) -> None:
    """Return as soon as ``predicate()`` (a function, or a coroutine function) is true, polling
    every 10 ms; fail the test, naming ``what`` (or the predicate), after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if loop.time() >= deadline:
            name = what or getattr(predicate, "__qualname__", repr(predicate))
            pytest.fail(f"not true within {timeout} s: {name}")
        await asyncio.sleep(0.01)
