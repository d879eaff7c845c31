"""No password or token is ever printed: every command of the CLI, run as a real subprocess
with a planted secret in its config, its broker URL and its environment, and everything it
writes (stdout, stderr: the log included) searched for the secret.

The secret is planted as the MQTT password of [bus.mqtt] (in the URL), of MQTT feeds (in the
URL, and through ``password_env``), as the WebSocket token (``token_env``), in the environment
of every command, in bad configs next to the key that is wrong, and in the broker URL of
``hedger subscribe``. The MQTT parts run against a real mosquitto (anonymous access allowed,
so any password connects)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from hedger.core.bus import Message
from hedger.runtime.bridges.mqtt import MqttBridge
from tests.conftest import ROOT, SP500_NASDAQ
from tests.mosquitto import MosquittoBroker, free_port
from tests.waiting import eventually

SECRET = "Pl4nted-s3cret-7f3a"
ENV = {
    **os.environ,
    "HEDGER_TEST_MQTT_PASSWORD": SECRET,
    "HEDGER_TEST_WS_TOKEN": SECRET,
    "HEDGER_PASSWORD": SECRET,  # a secret the process merely has in its environment
}
EXAMPLES = ROOT / "examples"


class Command:
    """``hedger ARGS`` in a child process with the secret's environment; its output is
    collected as it comes (both streams)."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hedger.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=ENV,
            cwd=ROOT,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)

    @property
    def output(self) -> str:
        return "".join(self.out) + "".join(self.err)

    def finish(self, timeout: float = 120.0, sig: int | None = None) -> tuple[int, str]:
        """Signal it (if ``sig``), wait for its end (a hang guard); its status and output."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"hedger {' '.join(self.args)} did not end:\n{self.output[-2000:]}")
        for reader in self._readers:
            reader.join(timeout)
        return self.proc.returncode, self.output


def run(*args: str, timeout: float = 120.0) -> tuple[int, str]:
    return Command(*args).finish(timeout)


def assert_no_secret(output: str, what: str) -> None:
    assert output, f"{what}: printed nothing, so the search proves nothing"
    assert SECRET not in output, f"{what} printed the secret:\n{output[-3000:]}"


def good_config(broker: MosquittoBroker, root: str, dead_port: int) -> str:
    return f"""
[bars]
length = "250ms"
[pairs."YYY/XXX"]
[[feeds]]
kind = "synthetic"
rate = 40.0
[[feeds]]
kind = "mqtt"
url = "mqtt://feeder:{SECRET}@127.0.0.1:{broker.port}"
topics = ["{root}/ticks/#"]
[[feeds]]
kind = "mqtt"
url = "mqtt://127.0.0.1:{broker.port}"
username = "feeder"
password_env = "HEDGER_TEST_MQTT_PASSWORD"
topics = ["{root}/more/#"]
[[feeds]]
kind = "mqtt"
url = "mqtt://nobody:{SECRET}@127.0.0.1:{dead_port}"
topics = ["none/#"]
[bus]
root = "{root}"
[bus.mqtt]
url = "mqtt://daemon:{SECRET}@127.0.0.1:{broker.port}"
[bus.websocket]
port = 0
token_env = "HEDGER_TEST_WS_TOKEN"
[daemon]
shutdown_timeout = "2s"
metrics_interval = "250ms"
[logging]
level = "debug"
json = true
"""


async def _publish(broker: MosquittoBroker, root: str) -> None:
    """A retained ratio and a malformed tick (a counted, logged reject) on the broker."""
    bridge = MqttBridge(f"mqtt://pub:{SECRET}@127.0.0.1:{broker.port}", root=root)
    ratio = orjson.dumps(
        {"type": "hedge_ratio", "version": 1, "pair": "YYY/XXX", "seq": 1, "ts": 1,
         "beta": [1.5], "alpha": 0.0, "beta_std": [0.1], "warm": True, "stale": False}
    )  # fmt: skip
    async with bridge:
        await eventually(lambda: bridge.connected)
        bridge.outbox.put(Message(f"{root}/v1/ratio/YYY/XXX", ratio, retain=True))
        bridge.outbox.put(Message(f"{root}/ticks/YYY", f"not a tick {SECRET}".encode()))


@pytest.mark.slow
async def test_hedger_run_prints_no_secret(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    root = f"nosecret{os.getpid()}"
    config = tmp_path / "good.toml"
    config.write_text(good_config(mosquitto, root, free_port()))
    daemon = Command("run", "--config", str(config))
    await eventually(lambda: "websocket listening" in daemon.output, timeout=60)
    await eventually(lambda: daemon.output.count('"connected"') >= 2, timeout=30)
    await _publish(mosquitto, root)
    await eventually(lambda: "disconnected" in daemon.output, timeout=30)  # the dead broker
    status, output = daemon.finish(30, signal.SIGTERM)
    assert status == 0, output[-2000:]
    assert "mqtt://daemon:***@127.0.0.1" in output  # the URL is logged, redacted
    assert_no_secret(output, "hedger run")


BAD_TABLES = [
    f"[bus.mqtt]\nurl = 'tcp://u:{SECRET}@127.0.0.1'\n",
    f"[bus.mqtt]\nurl = 'mqtt://u:{SECRET}@127.0.0.1:notaport'\n",
    f"[bus.mqtt]\nurl = 'mqtt://u:{SECRET}@127.0.0.1/path'\n",
    f"[bus.mqtt]\npassword = ['{SECRET}']\n",
    f"[bus.mqtt]\npassword = '{SECRET}'\nqos = 7\n",
    f"[bus.mqtt]\npasword = '{SECRET}'\n",
    f"[bus.mqtt]\nurl = 'mqtt://u:{SECRET}@h'\nca_file = '/nonexistent/ca.pem'\n",
    "[bus.mqtt]\npassword_env = 'HEDGER_TEST_UNSET_VARIABLE'\n",
    f"[bus.websocket]\ntoken = {{ value = '{SECRET}' }}\n",
    f"[bus.websocket]\ntoken = '{SECRET}'\nport = 'x'\n",
    f"[[feeds]]\nkind = 'mqtt'\ntopics = ['t/#']\nurl = 'mqtt://u:{SECRET}@h:0'\n",
    f"[[feeds]]\nkind = 'mqtt'\ntopics = ['t/#']\npassword = 1\nurl = 'mqtt://u:{SECRET}@h'\n",
    f"[[feeds]]\nkind = 'polygon'\nsymbols = ['SPY']\napi_key = ['{SECRET}']\n",
    f"[[feeds]]\nkind = 'alpaca'\nsymbols = ['SPY']\nkey = 'k'\nsecret = 7\nx = '{SECRET}'\n",
    f"[bus.mqtt]\nurl = 'mqtt://u:{SECRET}@h'\n[bus]\nroot = '#'\n",
]


@pytest.mark.slow
def test_bad_configs_print_no_secret(tmp_path: Path) -> None:
    base = '[pairs."YYY/XXX"]\n[[feeds]]\nkind = "synthetic"\n'
    paths = []
    for i, table in enumerate(BAD_TABLES):
        config = tmp_path / f"bad{i}.toml"
        config.write_text(base + table)
        paths.append(config)
    broken = tmp_path / "broken.toml"
    broken.write_text(f'[bus.mqtt]\npassword = "{SECRET}\nurl = 1\n')  # not TOML
    paths.append(broken)
    for batch in range(0, len(paths), 4):  # a few at a time: each is a fresh interpreter
        started = [(path, Command("run", "--config", str(path))) for path in paths[batch:][:4]]
        for path, command in started:
            status, output = command.finish()
            assert status == 2, (path.read_text(), output[-2000:])
            assert output.count("\n") == 1, (path.read_text(), output)
            assert_no_secret(output, f"hedger run with {path.read_text()!r}")
    # replay reads only [bars], [filter] and [pairs] of a daemon config, quietly
    events = str(tmp_path / "events.jsonl")
    for path in (paths[0], paths[3]):
        _, output = run("replay", str(SP500_NASDAQ), "--bar", "1d", "--config", str(path),
                        "--out", events)  # fmt: skip
        assert_no_secret(output, f"hedger replay with {path.read_text()!r}")


async def test_hedger_subscribe_prints_no_secret(mosquitto: MosquittoBroker) -> None:
    root = f"subsecret{os.getpid()}"
    await _publish(mosquitto, root)
    url = f"mqtt://bob:{SECRET}@127.0.0.1:{mosquitto.port}"
    for extra in ([], ["--json"]):
        status, output = run("subscribe", "--broker", url, "--root", root, "--count", "1", *extra)
        assert status == 0, output[-2000:]
        assert "YYY/XXX" in output
        assert_no_secret(output, f"hedger subscribe {extra}")
    status, output = run(
        "subscribe", "--broker", f"mqtt://bob@127.0.0.1:{mosquitto.port}", "--root", root,
        "--password-env", "HEDGER_TEST_MQTT_PASSWORD", "--count", "1",
    )  # fmt: skip
    assert status == 0, output[-2000:]
    assert_no_secret(output, "hedger subscribe --password-env")
    # a broker that is not there: the drops are reported, the URL redacted
    down = Command("subscribe", "--broker", f"mqtt://bob:{SECRET}@127.0.0.1:{free_port()}")
    await eventually(lambda: "disconnected" in down.output or "error" in down.output, timeout=30)
    _, output = down.finish(30, signal.SIGINT)
    assert "mqtt://bob:***@127.0.0.1" in output
    assert_no_secret(output, "hedger subscribe to a dead broker")
    for bad in (f"tcp://bob:{SECRET}@h", f"mqtt://bob:{SECRET}@h:99999", f"bob:{SECRET}@h"):
        status, output = run("subscribe", "--broker", bad)
        assert status == 2
        assert_no_secret(output, f"hedger subscribe --broker {bad!r}")


@pytest.mark.slow
def test_the_offline_commands_print_no_secret(tmp_path: Path) -> None:
    # the daemon's config (secrets and all) is also a replay config
    config = tmp_path / "daemon.toml"
    config.write_text(
        '[pairs."SP500/NASDAQ"]\n[[feeds]]\nkind = "synthetic"\n'
        f"[bus.mqtt]\nurl = 'mqtt://u:{SECRET}@127.0.0.1'\n"
        "[bus.websocket]\ntoken_env = 'HEDGER_TEST_WS_TOKEN'\n"
    )
    factors = str(EXAMPLES / "ishares_factors_daily.csv")
    commands: list[list[str]] = [
        ["replay", str(SP500_NASDAQ), "--config", str(config), "--bar", "1d",
         "--log-level", "debug"],
        ["replay", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ", "--bar", "1d",
         "--out", str(tmp_path / "events.jsonl")],
        ["calibrate", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ", "--mode", "log",
         "--write", str(config)],
        ["calibrate", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ", "--mode", "log", "--json"],
        ["evaluate", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ"],
        ["matrix", factors, "--last", "--format", "csv"],
        ["demo", "--rows", "3"],
        ["demo", "--live", "--seconds", "1"],
    ]  # fmt: skip
    for command in commands:
        status, output = run(*command)
        assert status == 0, (command, output[-2000:])
        assert_no_secret(output, f"hedger {' '.join(command)}")
    assert SECRET in config.read_text()  # calibrate --write kept the file's secret, quietly
    # a bad --write target that holds the secret
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[bus.mqtt]\npassword = "{SECRET}"\n[pairs\n')
    status, output = run(
        "calibrate", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ", "--write", str(bad)
    )
    assert status == 2
    assert_no_secret(output, "hedger calibrate --write to a broken file")
