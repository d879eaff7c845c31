"""The one reconnect loop (:class:`feeds.reconnect.Reconnector`) and the one lifecycle
(:mod:`hedger.core.lifecycle`), without I/O: attempts, delays (read through an injected
sleep, never the clock), resets, errors retried or not, states."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from feeds.reconnect import Backoff, ReconnectingStream, Reconnector
from hedger.core.lifecycle import Lifecycle, State
from tests.waiting import eventually

STEADY = Backoff(initial=1.0, maximum=8.0, factor=2.0, jitter=0.0)


class Script:
    """Attempts that follow a script: ``"fail"`` raises OSError, ``"up"`` is a healthy
    connection that then drops, ``"bug"`` raises an error that is not retried."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.done = 0
        self.waited: list[float] = []
        self.drops: list[str] = []

    async def attempt(self, healthy: Callable[[], None]) -> None:
        step = self.steps[self.done]
        self.done += 1
        if step == "fail":
            raise OSError("refused")
        if step == "bug":
            raise KeyError("bug")
        healthy()

    async def sleep(self, delay: float) -> None:
        self.waited.append(delay)

    def stopped(self) -> bool:
        return self.done >= len(self.steps)

    def on_drop(self, error: BaseException | None) -> None:
        self.drops.append("clean" if error is None else type(error).__name__)


async def test_delays_grow_while_failing_and_reset_after_a_healthy_connection() -> None:
    script = Script(["fail", "fail", "fail", "up", "fail", "fail", "fail", "fail", "fail"])
    reconnector = Reconnector(STEADY, sleep=script.sleep)
    await reconnector.run(script.attempt, stopped=script.stopped, on_drop=script.on_drop)
    assert script.waited == [1.0, 2.0, 4.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert list(reconnector.delays) == script.waited
    assert (reconnector.attempts, reconnector.retries) == (9, 8)
    assert script.drops == ["OSError"] * 3 + ["clean"] + ["OSError"] * 5


async def test_an_error_not_retried_ends_the_loop() -> None:
    script = Script(["fail", "bug", "up"])
    reconnector = Reconnector(STEADY, sleep=script.sleep)
    with pytest.raises(KeyError):
        await reconnector.run(script.attempt, stopped=script.stopped, on_drop=script.on_drop)
    assert (script.done, script.waited, script.drops) == (2, [1.0], ["OSError"])


async def test_a_wait_given_to_run_replaces_the_sleep() -> None:
    script = Script(["fail", "fail"])
    other: list[float] = []

    async def wait(delay: float) -> None:
        other.append(delay)

    reconnector = Reconnector(STEADY, sleep=script.sleep)
    await reconnector.run(script.attempt, stopped=script.stopped, on_drop=script.on_drop, wait=wait)
    assert (other, script.waited) == ([1.0], [])


def test_jitter_is_seeded() -> None:
    jittery = Backoff(initial=1.0, jitter=0.5)
    one, two = Reconnector(jittery, seed=7), Reconnector(jittery, seed=7)
    assert [jittery.delay(0, one._rng) for _ in range(5)] == [
        jittery.delay(0, two._rng) for _ in range(5)
    ]


class Numbers(ReconnectingStream[int]):
    """A stream whose connections each deliver the next three numbers, then drop."""

    def __init__(self, reconnector: Reconnector) -> None:
        super().__init__(reconnector, name="numbers", queue_size=100)
        self.next = 0
        self.dropped: list[BaseException | None] = []

    async def _session(self, healthy: Callable[[], None]) -> None:
        self._up()
        healthy()
        for _ in range(3):
            self.next += 1
            await self._put(self.next)

    def _dropped(self, error: BaseException | None) -> None:
        self.dropped.append(error)


async def test_a_stream_reconnects_and_ends_after_close() -> None:
    states: list[State] = []
    passes = asyncio.Semaphore(0)  # the test lets one reconnect through at a time
    slept: list[float] = []

    async def held(delay: float) -> None:
        slept.append(delay)
        await passes.acquire()

    stream = Numbers(Reconnector(STEADY, sleep=held))
    stream._on_state = states.append
    async with asyncio.timeout(5):
        async with stream:
            items = aiter(stream)
            assert [await anext(items) for _ in range(3)] == [1, 2, 3]
            passes.release()
            assert [await anext(items) for _ in range(3)] == [4, 5, 6]
            while len(slept) < 2:  # the next backoff delay, which never ends by itself
                await asyncio.sleep(0)
        # closing cancelled it; iteration ends, nothing was lost or made up
        assert [item async for item in items] == []
    assert stream.next == 6 and slept == [1.0, 1.0]  # each connection reset the delays
    assert stream.reconnects == 2
    assert states[:3] == [State.RUNNING, State.DEGRADED, State.RUNNING]
    assert states[-2:] == [State.STOPPING, State.STOPPED]
    await stream.close()  # idempotent
    await stream.wait_closed()
    assert stream.dropped[0] is None


class Plain(Lifecycle):
    def __init__(self) -> None:
        super().__init__()
        self.closes = 0

    async def _open(self) -> None:
        self._set_state(State.RUNNING)

    async def close(self) -> None:
        self.closes += 1
        self._set_state(State.STOPPING)
        self._set_state(State.STOPPED)


async def test_lifecycle_states_move_one_way() -> None:
    heard: list[State] = []
    component = Plain()
    component._on_state = heard.append
    assert component.state is State.STARTING and not component.closing
    async with component as entered:
        assert entered is component
        component._set_state(State.DEGRADED)
        component._set_state(State.RUNNING)
    assert component.closing
    component._set_state(State.RUNNING)  # nothing leaves STOPPED
    await component.wait_closed()
    assert heard == [
        State.RUNNING,
        State.DEGRADED,
        State.RUNNING,
        State.STOPPING,
        State.STOPPED,
    ]


async def test_the_daemon_has_the_same_states() -> None:
    import tomllib  # noqa: PLC0415

    from hedger.config.daemon import daemon_config  # noqa: PLC0415
    from hedger.logs import get_logger  # noqa: PLC0415
    from hedger.runtime.daemon import Daemon  # noqa: PLC0415

    config = daemon_config(tomllib.loads('[pairs."YYY/XXX"]\n[[feeds]]\nkind = "synthetic"\n'))
    daemon = Daemon(config, get_logger("test"))
    seen = [daemon.state]
    stop = asyncio.Event()
    runner = asyncio.create_task(daemon.run(stop))
    await eventually(lambda: daemon.state is not State.STARTING, what="the daemon to start")
    seen.append(daemon.state)
    stop.set()
    await asyncio.wait_for(runner, 10)
    seen.append(daemon.state)
    assert seen == [State.STARTING, State.RUNNING, State.STOPPED]
