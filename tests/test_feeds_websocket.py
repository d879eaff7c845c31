"""The reconnecting websocket feed's lifecycle against a real local websockets server."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Sequence

import pytest
from websockets.asyncio.server import ServerConnection, serve

from feeds.reconnect import Backoff
from feeds.websocket import WebSocketFeed
from hedger.core.lifecycle import Lifecycle, State
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick
from tests.waiting import eventually


def state_of(component: Lifecycle) -> State:
    """The component's state now (a call, so that mypy does not narrow it between steps)."""
    return component.state


class EchoVenue:
    """Every text message 'SYMBOL PRICE' is a tick; 'boom' breaks the parse contract."""

    name = "echo"

    def subscribe_messages(self) -> Sequence[str]:
        return ["hello"]

    def parse(self, message: str | bytes, ts_recv: int, rejects: Rejects) -> list[Tick]:
        text = message if isinstance(message, str) else message.decode()
        if text == "boom":
            raise RuntimeError("adapter bug")
        symbol, price = text.split()
        return [Tick(symbol, float(price), ts_recv, ts_recv, None, self.name)]


async def test_adapter_failure_reaches_the_consumer() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("A 1.5")
        await ws.send("boom")
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        feed = WebSocketFeed(f"ws://127.0.0.1:{port}", EchoVenue())
        got: list[Tick] = []
        with pytest.raises(RuntimeError, match="adapter bug"):
            async with asyncio.timeout(5), feed:
                async for tick in feed:
                    got.append(tick)
        assert [t.price for t in got] == [1.5]


async def test_iteration_ends_after_close() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("A 2.0")
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        feed = WebSocketFeed(f"ws://127.0.0.1:{port}", EchoVenue())
        async with asyncio.timeout(5), feed:
            iterator = aiter(feed)
            assert (await anext(iterator)).price == 2.0
            await feed.close()
            await feed.close()  # idempotent
            with pytest.raises(StopAsyncIteration):
                await anext(iterator)


async def no_wait(delay: float) -> None:
    """A backoff sleep that returns at once: the test reads the delays, not the clock."""
    await asyncio.sleep(0)


@pytest.mark.parametrize(("greeting", "expected"), [(None, "growing"), ("A 1.0", "reset")])
async def test_only_a_connection_that_delivered_resets_the_backoff(
    greeting: str | None, expected: str
) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        if greeting is not None:
            await ws.send(greeting)
        await ws.close()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        states: list[State] = []
        feed = WebSocketFeed(
            f"ws://127.0.0.1:{port}",
            EchoVenue(),
            backoff=Backoff(initial=0.01, maximum=0.08, jitter=0.0),
            on_state=states.append,
        )
        feed.reconnector.sleep = no_wait
        async with feed:
            await eventually(lambda: feed.reconnects >= 6)
        delays = list(feed.reconnector.delays)[:6]
    if expected == "growing":
        # a venue that accepts and hangs up (bad auth) is retried ever more slowly, capped
        assert delays == [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]
    else:
        assert delays == [0.01] * 6
    assert states[:3] == [State.RUNNING, State.DEGRADED, State.RUNNING]
    assert states[-2:] == [State.STOPPING, State.STOPPED]
    assert state_of(feed) is State.STOPPED


async def test_an_unreachable_venue_is_degraded_until_closed() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again: nothing listens there
    feed = WebSocketFeed(f"ws://127.0.0.1:{port}", EchoVenue(), backoff=Backoff(jitter=0.0))
    feed.reconnector.sleep = no_wait
    assert state_of(feed) is State.STARTING
    async with feed:
        await eventually(lambda: feed.reconnects >= 3)
        assert state_of(feed) is State.DEGRADED and not feed.connected
    assert state_of(feed) is State.STOPPED
    assert list(feed.reconnector.delays)[:3] == [0.1, 0.2, 0.4]


def test_backoff_grows_and_caps() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, factor=2.0, jitter=0.0)
    rng = random.Random(0)
    assert [backoff.delay(a, rng) for a in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    jittered = Backoff(initial=1.0, jitter=0.5)
    assert all(0.5 <= jittered.delay(0, rng) <= 1.0 for _ in range(100))


async def test_the_end_of_the_stream_is_not_lost_on_a_full_queue() -> None:
    """The venue sends more than the queue holds; the feed is closed (and, in the second
    round, fails) while the queue is full: the consumer gets what was buffered, then the end
    (or the error), instead of waiting for a marker that had no room."""

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        for i in range(10):
            await ws.send(f"A {i + 1}.0")
        await ws.send("boom")
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        for closed_by_consumer in (True, False):
            feed = WebSocketFeed(f"ws://127.0.0.1:{port}", EchoVenue(), queue_size=3)
            got: list[float] = []
            async with asyncio.timeout(10), feed:
                queue = feed._queue
                await eventually(queue.full, what="queue full")
                if closed_by_consumer:
                    await feed.close()
                    async for tick in feed:
                        got.append(tick.price)
                    assert got == [1.0, 2.0, 3.0]
                else:
                    with pytest.raises(RuntimeError, match="adapter bug"):
                        async for tick in feed:
                            got.append(tick.price)
                    assert got == [float(i + 1) for i in range(10)]
