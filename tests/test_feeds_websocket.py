"""The reconnecting websocket feed's lifecycle against a real local websockets server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest
from websockets.asyncio.server import ServerConnection, serve

from feeds.reconnect import Backoff
from feeds.websocket import WebSocketFeed
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick


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


async def test_a_venue_that_hangs_up_is_retried_ever_more_slowly() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        feed = WebSocketFeed(
            f"ws://127.0.0.1:{port}", EchoVenue(), backoff=Backoff(initial=0.01, jitter=0.0)
        )
        async with feed:
            await asyncio.sleep(0.6)
        # 0.01 + 0.02 + 0.04 + 0.08 + 0.16 + 0.32 > 0.6: at most 6 reconnects, not 60
        assert 2 <= feed.reconnects <= 7


def test_backoff_grows_and_caps() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, factor=2.0, jitter=0.0)
    rng = random.Random(0)
    assert [backoff.delay(a, rng) for a in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    jittered = Backoff(initial=1.0, jitter=0.5)
    assert all(0.5 <= jittered.delay(0, rng) <= 1.0 for _ in range(100))
