"""MQTT over TLS with a private certificate authority (``ca_file``) and a client certificate
(``cert_file``/``key_file``), against a real mosquitto with a TLS listener; the throwaway CA
and certificates are made by the ``openssl`` command line in the test. A TLS file that is
missing or unusable is a one-line config error naming its key."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from feeds.mqtt import MqttTickFeed
from hedger.cli.subscribe import run_subscribe
from hedger.config.daemon import daemon_config
from hedger.config.feeds import MqttFeedSettings
from hedger.core.bus import Message
from hedger.errors import ConfigError, TransportError
from hedger.runtime.bridges.mqtt import MqttBridge
from hedger.runtime.feeds import build_feed
from tests.mosquitto import MosquittoBroker, find_mosquitto
from tests.waiting import eventually


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the
    CA (EC P-256 keys: quick to make)."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command line is needed to make test certificates")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=hedger test CA", cwd=directory)  # fmt: skip
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=hedger test {name}", cwd=directory)  # fmt: skip
        extra = ["-extfile", "server.ext"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *extra,
                 cwd=directory)  # fmt: skip
    for path in directory.iterdir():
        path.chmod(0o644)  # mosquitto started as root reads them as its own user
    return {p.stem + "_" + p.suffix[1:]: p for p in directory.iterdir()}


class TlsMosquitto(MosquittoBroker):
    """A mosquitto whose one listener speaks TLS and wants a client certificate."""

    def __init__(self, pki: dict[str, Path]) -> None:
        self.pki = pki
        super().__init__(binary=find_mosquitto())

    def _config(self) -> str:
        return "\n".join(
            [
                f"listener {self.port} {self.host}",
                "allow_anonymous true",
                "persistence false",
                f"cafile {self.pki['ca_crt']}",
                f"certfile {self.pki['server_crt']}",
                f"keyfile {self.pki['server_key']}",
                "require_certificate true",
                "log_dest stderr",
                "log_type all",
                "",
            ]
        )


@pytest.fixture
def pki() -> Iterator[dict[str, Path]]:
    # not below pytest's tmp_path (0700): mosquitto started as root reads as its own user
    directory = Path(tempfile.mkdtemp(prefix="hedger-pki-"))
    directory.chmod(0o755)
    try:
        yield make_pki(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def tls_broker(pki: dict[str, Path]) -> Iterator[TlsMosquitto]:
    with TlsMosquitto(pki) as broker:
        yield broker


async def test_bridge_and_feed_over_tls_with_a_private_ca_and_client_cert(
    tls_broker: TlsMosquitto, pki: dict[str, Path]
) -> None:
    url = f"mqtt://127.0.0.1:{tls_broker.port}"
    ca, cert, key = str(pki["ca_crt"]), str(pki["client_crt"]), str(pki["client_key"])
    settings = MqttFeedSettings(
        topics=("tls/ticks/#",), url=url, ca_file=ca, cert_file=cert, key_file=key
    )
    feed = build_feed(settings, None)
    assert isinstance(feed, MqttTickFeed) and feed.url.startswith("mqtts://")
    bridge = MqttBridge(url, root="tls", ca_file=ca, cert_file=cert, key_file=key)
    assert bridge.url == f"mqtts://127.0.0.1:{tls_broker.port}"
    tick = orjson.dumps({"ts": 1_700_000_000.5, "symbol": "AAA", "price": 10.5})
    got = []

    async def take() -> None:
        async for item in feed:
            got.append(item)
            return

    async with feed, bridge:
        await eventually(lambda: feed.connected and bridge.connected, what="TLS connects")
        reader = asyncio.create_task(take())
        bridge.outbox.put(Message("tls/ticks/AAA", tick))
        await asyncio.wait_for(reader, 10)
    assert got[0].symbol == "AAA" and got[0].price == 10.5


async def test_without_the_private_ca_the_broker_is_not_trusted(
    tls_broker: TlsMosquitto, pki: dict[str, Path]
) -> None:
    seen: list[str] = []

    class Log:
        def __getattr__(self, level: str):  # type: ignore[no-untyped-def]
            return lambda event, **kw: seen.append(f"{event} {kw.get('error', '')}")

    # the system's trust store does not know the test CA: the handshake fails, retried
    bridge = MqttBridge(f"mqtts://127.0.0.1:{tls_broker.port}", root="tls", logger=Log())
    async with bridge:
        await eventually(lambda: any("disconnected" in line for line in seen))
        assert not bridge.connected
    assert any("certificate" in line.lower() for line in seen), seen


def _config(mqtt: str) -> dict[str, object]:
    import tomllib  # noqa: PLC0415

    text = f'[pairs."A/B"]\n[[feeds]]\nkind = "synthetic"\n[bus.mqtt]\n{mqtt}\n'
    return tomllib.loads(text)


def test_tls_files_in_the_config(pki: dict[str, Path], tmp_path: Path) -> None:
    ca, cert, key = pki["ca_crt"], pki["client_crt"], pki["client_key"]
    config = daemon_config(_config(f"ca_file = '{ca}'\ncert_file = '{cert}'\nkey_file = '{key}'"))
    assert config.mqtt is not None and config.mqtt.ca_file == str(ca)
    missing = tmp_path / "nowhere.pem"
    not_pem = tmp_path / "junk.pem"
    not_pem.write_text("not a certificate\n")
    cases = [
        (f"ca_file = '{missing}'", "bus.mqtt.ca_file", "cannot be read: No such file"),
        (f"ca_file = '{tmp_path}'", "bus.mqtt.ca_file", "cannot be read: Is a directory"),
        (f"ca_file = '{not_pem}'", "bus.mqtt.ca_file", "not a PEM file of certificates"),
        (f"cert_file = '{missing}'", "bus.mqtt.cert_file", "cannot be read"),
        (f"cert_file = '{cert}'\nkey_file = '{missing}'", "bus.mqtt.key_file", "cannot be read"),
        (f"cert_file = '{cert}'\nkey_file = '{ca}'", "bus.mqtt.cert_file", "with key_file"),
        (f"key_file = '{key}'", "bus.mqtt.key_file", "needs cert_file"),
    ]
    for table, key_name, words in cases:
        with pytest.raises(ConfigError) as caught:
            daemon_config(_config(table))
        message = str(caught.value)
        assert caught.value.key == key_name, message
        assert words in message and "\n" not in message, message
    feed = {
        "pairs": {"A/B": {}},
        "feeds": [{"kind": "mqtt", "topics": ["t/#"], "ca_file": str(missing)}],
    }
    with pytest.raises(ConfigError) as caught:
        daemon_config(feed)
    assert caught.value.key == "feeds[0].ca_file"
    with pytest.raises(TransportError, match=r"ca_file .* cannot be read"):
        MqttBridge("mqtt://127.0.0.1", ca_file=str(missing))
    with pytest.raises(TransportError, match="key_file needs cert_file"):
        MqttBridge("mqtt://127.0.0.1", key_file=str(pki["client_key"]))


async def test_subscribe_over_tls(tls_broker: TlsMosquitto, pki: dict[str, Path]) -> None:
    ca, cert, key = str(pki["ca_crt"]), str(pki["client_crt"]), str(pki["client_key"])
    url = f"mqtt://127.0.0.1:{tls_broker.port}"
    ratio = orjson.dumps({"type": "hedge_ratio", "pair": "A/B", "seq": 1, "ts": 1, "beta": 1.5})
    async with MqttBridge(url, root="tlssub", ca_file=ca, cert_file=cert, key_file=key) as bridge:
        await eventually(lambda: bridge.connected)
        bridge.outbox.put(Message("tlssub/v1/ratio/A/B", ratio, retain=True))
    out, err = io.StringIO(), io.StringIO()
    status = await asyncio.wait_for(
        run_subscribe(
            url,
            "tlssub",
            [],
            as_json=True,
            out=out,
            err=err,
            max_messages=1,
            ca_file=ca,
            cert_file=cert,
            key_file=key,
        ),
        30,
    )
    assert status == 0 and '"pair":"A/B"' in out.getvalue()
    assert f"mqtts://127.0.0.1:{tls_broker.port} connected" in err.getvalue()


def test_subscribe_refuses_a_bad_tls_file_in_one_line(tmp_path: Path) -> None:
    from tests.conftest import run_hedger  # noqa: PLC0415

    result = run_hedger("subscribe", "--ca-file", str(tmp_path / "none.pem"))
    assert result.returncode == 2
    assert result.stderr.startswith("hedger subscribe: ca-file: ") and "cannot be read" in (
        result.stderr
    )
    assert result.stderr.count("\n") == 1
