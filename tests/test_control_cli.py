"""``hedger pairs`` in a subprocess against a daemon running in the test (a test clock, a
queue feed, its real WebSocket server and a real mosquitto): what it prints, its exit status,
one line on any failure, and never the token."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.mosquitto import free_port
from tests.test_clock import Running, daemon_text
from tests.test_control_ws import TOKEN, WS, feed_bars, prices, state, ws_url

if TYPE_CHECKING:
    from tests.mosquitto import MosquittoBroker

CONTROL_TOKEN = "cli-control-s3cret"


async def pairs(*args: str, token: str | None = None) -> tuple[int, str, str]:
    """Run ``hedger pairs ARGS`` (the token, if any, in ``$HEDGER_TOKEN``): status, out, err."""
    env = {k: v for k, v in os.environ.items() if k != "HEDGER_TOKEN"}
    if token is not None:
        env["HEDGER_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hedger.cli", "pairs", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def running(mosquitto: MosquittoBroker) -> AsyncIterator[Running]:
    text = (
        daemon_text("YYY/XXX", "ZZZ/XXX")
        + WS
        + f'[bus]\nroot = "cli"\n[bus.mqtt]\nurl = "{mosquitto.url}"\n'
        + f'[control]\ntoken = "{CONTROL_TOKEN}"\n'
    )
    run = Running(text)
    await run.start()
    yield run
    await run.shutdown()


async def test_add_list_update_and_remove_over_websocket(running: Running) -> None:
    await feed_bars(running, prices(12), 0)
    url = ws_url(running)
    status, out, err = await pairs("add", "ZZZ/YYY", "--mode", "log", "--url", url, token=TOKEN)
    assert (status, err) == (0, "")
    assert out == "added ZZZ/YYY (warmed on 12 held bars)\n"
    status, out, _ = await pairs("list", "--url", url, token=TOKEN)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("YYY/XXX  mode=levels  seq=12")
    assert lines[2].startswith("ZZZ/YYY  mode=log  seq=0")
    assert lines[-1] == "3 pair(s); 12 bars held"
    status, out, _ = await pairs("update", "ZZZ/YYY", "--mode", "log", "--delta", "1e-6",
                                 "--url", url, token=TOKEN)  # fmt: skip
    assert (status, out) == (0, "updated ZZZ/YYY (state kept, new noise)\n")
    status, out, _ = await pairs("remove", "ZZZ/XXX", "--url", url, token=TOKEN)
    assert (status, out) == (0, "removed ZZZ/XXX (after seq 12; retained topics cleared)\n")
    assert [a.pair_id for a in running.node.pipeline.actors] == ["YYY/XXX", "ZZZ/YYY"]


async def test_the_mqtt_path_with_the_control_token(running: Running) -> None:
    await feed_bars(running, prices(3), 0)
    bridge = next(b for b in running.node.bridges if b.name == "mqtt")
    broker = bridge.url  # type: ignore[attr-defined]
    status, out, err = await pairs("add", "ZZZ/YYY", "--broker", broker, "--root", "cli",
                                   token=CONTROL_TOKEN)  # fmt: skip
    assert (status, err) == (0, ""), err
    assert out == "added ZZZ/YYY (warmed on 3 held bars)\n"
    status, out, err = await pairs("list", "--broker", broker, "--root", "cli", token="wrong")
    assert status == 1 and out == ""
    assert err == "hedger pairs: refused: unauthorized: a valid token is needed\n"


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (["remove", "AAA/XXX"], TOKEN, "hedger pairs: refused: pairs.AAA/XXX: is not running\n"),
        (["add", "YYY/XXX"], TOKEN, "hedger pairs: refused: pairs.YYY/XXX: is already running\n"),
        (
            ["add", "AAA/XXX", "--delta", "3"],
            TOKEN,
            "hedger pairs: refused: pairs.AAA/XXX.delta: must be in [0, 1), got 3.0\n",
        ),
        (["list"], "not-the-token", "HTTP 401: wrong or missing token\n"),
        (["list"], None, "HTTP 401: wrong or missing token\n"),
    ],
)
async def test_refusals_are_one_line_and_exit_1_and_change_nothing(
    running: Running, args: list[str], token: str | None, message: str
) -> None:
    await feed_bars(running, prices(2), 0)
    before = state(running)
    status, out, err = await pairs(*args, "--url", ws_url(running), token=token)
    assert status == 1 and out == ""
    assert err.endswith(message) and err.count("\n") == 1
    assert TOKEN not in err and "not-the-token" not in err
    await running.settled()
    assert state(running) == before


async def test_no_daemon_and_a_daemon_that_never_replies_are_one_line_and_exit_1() -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    status, out, err = await pairs("list", "--url", url, token=TOKEN)
    assert status == 1 and out == ""
    assert err.startswith(f"hedger pairs: websocket {url}: cannot reach the daemon")
    assert err.count("\n") == 1

    async def silent(connection: ServerConnection) -> None:
        await connection.wait_closed()

    async with serve(silent, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        silent_url = f"ws://127.0.0.1:{port}/"
        status, out, err = await pairs("list", "--url", silent_url, "--timeout", "0.5", token=TOKEN)
    assert status == 1
    assert err == f"hedger pairs: websocket {silent_url}: no reply within 0.5 s\n"


async def test_bad_command_lines_are_refused_before_anything_is_sent() -> None:
    status, _, err = await pairs("add", "NOSLASH")
    assert status == 2 and "Y/X" in err
    status, _, err = await pairs("list", "--url", "ws://a/", "--broker", "mqtt://b")
    assert (status, err) == (2, "hedger pairs: --url: give --url or --broker, not both\n")
    status, _, err = await pairs("list", "--timeout", "0")
    assert (status, err) == (2, "hedger pairs: --timeout: must be > 0, got 0\n")


async def test_an_unreachable_broker_is_one_line_without_the_password() -> None:
    port = free_port()
    url = f"mqtt://ops:broker-s3cret@127.0.0.1:{port}"
    status, out, err = await pairs("list", "--broker", url, token="control-s3cret")
    assert status == 1 and out == ""
    assert err.startswith(f"hedger pairs: mqtt mqtt://ops:***@127.0.0.1:{port}: cannot reach")
    assert err.count("\n") == 1
    assert "s3cret" not in err
