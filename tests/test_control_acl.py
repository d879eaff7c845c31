"""The shipped broker ACL for control (``deploy/mosquitto-control.acl``) on a real mosquitto with
accounts: the operators' account changes a running daemon's pairs, any other account's request
never reaches the daemon, and no other account can read the requests."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import orjson
import pytest

from hedger.core.topics import control_reply_topic, control_topic
from hedger.runtime.bridges.mqtt import MqttBridge
from tests.mosquitto import MosquittoBroker
from tests.test_clock import Running, daemon_text
from tests.test_control_ws import feed_bars, prices
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS = {"hedger": "daemon-pw", "hedger-ops": "ops-pw", "desk": "desk-pw"}


class AccountsBroker(MosquittoBroker):
    """mosquitto with accounts (no anonymous access) and the shipped control ACL."""

    def _config(self) -> str:
        passwd = self._dir / "passwd"
        passwd.touch()
        for user, password in ACCOUNTS.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
        acl = self._dir / "control.acl"
        acl.write_text((ROOT / "deploy" / "mosquitto-control.acl").read_text())
        for path in (passwd, acl):
            path.chmod(0o644)
        text = super()._config().replace("allow_anonymous true", "allow_anonymous false")
        return text + f"password_file {passwd}\nacl_file {acl}\n"


@pytest.fixture
def broker() -> Iterator[AccountsBroker]:
    with AccountsBroker() as started:
        yield started


@pytest.fixture
async def running(broker: AccountsBroker) -> AsyncIterator[Running]:
    text = daemon_text("YYY/XXX") + (
        f'[bus.mqtt]\nurl = "{broker.url}"\nusername = "hedger"\npassword = "daemon-pw"\n'
        "[control]\n"
    )
    run = Running(text)
    await run.start()
    bridge = next(b for b in run.node.bridges if isinstance(b, MqttBridge))
    await eventually(lambda: bridge.connected, what="the daemon's bridge connected")
    yield run
    await run.shutdown()


def client(broker: AccountsBroker, user: str) -> aiomqtt.Client:
    return aiomqtt.Client(broker.host, broker.port, username=user, password=ACCOUNTS[user])


async def test_only_the_operators_account_reaches_the_daemon(
    running: Running, broker: AccountsBroker
) -> None:
    request = {"action": "add_pair", "pair": "ZZZ/XXX"}
    async with client(broker, "hedger-ops") as ops, client(broker, "desk") as desk:
        await ops.subscribe(control_reply_topic("hedger"), qos=1)
        await desk.subscribe("hedger/v1/#", qos=1)
        # the desk's request is dropped by the broker (its PUBACK comes all the same) ...
        await desk.publish(control_topic("hedger"), orjson.dumps({**request, "id": "desk"}), qos=1)
        # ... so the operators' request, published after it, is the first the daemon answers
        await ops.publish(control_topic("hedger"), orjson.dumps({**request, "id": "ops"}), qos=1)
        async for message in ops.messages:
            reply = orjson.loads(bytes(message.payload))
            break
        assert reply["id"] == "ops" and reply["ok"] is True
        await feed_bars(running, prices(1), 0)  # a ratio event, published after all of it
        async for message in desk.messages:
            # the desk reads events and status, never a request or a reply
            assert "/v1/control" not in str(message.topic)
            if "/v1/ratio/" in str(message.topic):
                break
    assert [a.pair_id for a in running.node.pipeline.actors] == ["YYY/XXX", "ZZZ/XXX"]
    assert running.node.metrics()["control_requests"] >= 1
