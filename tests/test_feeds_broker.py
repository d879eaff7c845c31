"""The one broker-URL parser and its redaction: schemes, default ports, credentials
percent-decoded, bad URLs refused with the password never in the message, and no password in
what the config, the CLI or a transport prints or logs."""

from __future__ import annotations

import argparse
import asyncio
import io
import ssl
from typing import Any

import pytest

from feeds.broker import BrokerUrl, broker_address, parse_broker_url, redact_url
from feeds.mqtt import MqttTickFeed
from hedger.config.daemon import daemon_config
from hedger.errors import ConfigError, TransportError
from hedger.runtime.bridges.mqtt import MqttBridge
from tests.mosquitto import MosquittoBroker
from tests.waiting import eventually

SECRET = "hunter2"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker", BrokerUrl("mqtt", "broker", 1883, None, None)),
        ("mqtts://broker", BrokerUrl("mqtts", "broker", 8883, None, None)),
        ("MQTT://Broker:1999/", BrokerUrl("mqtt", "broker", 1999, None, None)),
        ("mqtts://u@10.0.0.1:8884", BrokerUrl("mqtts", "10.0.0.1", 8884, "u", None)),
        ("mqtt://[::1]:1884", BrokerUrl("mqtt", "::1", 1884, None, None)),
        (
            "mqtt://tr%40der:p%3Ass%2Fw%40rd@broker:1883",
            BrokerUrl("mqtt", "broker", 1883, "tr@der", "p:ss/w@rd"),
        ),
    ],
)
def test_accepted_urls(url: str, expected: BrokerUrl) -> None:
    parsed = parse_broker_url(url)
    assert parsed == expected
    assert parsed.tls == (expected.scheme == "mqtts")


@pytest.mark.parametrize(
    "url",
    [
        f"http://u:{SECRET}@broker:1883",
        f"tcp://u:{SECRET}@broker",  # one set of schemes everywhere: mqtt and mqtts only
        f"ssl://u:{SECRET}@broker",
        f"ws://u:{SECRET}@broker",
        f"u:{SECRET}@broker:1883",
        f"mqtt://u:{SECRET}@",
        f"mqtt://u:{SECRET}@broker:0",
        f"mqtt://u:{SECRET}@broker:notaport",
        f"mqtt://u:{SECRET}@broker:70000",
        f"mqtt://u:{SECRET}@broker:1883/some/path",
        f"mqtt://u:{SECRET}@broker:1883?x=1",
        f"mqtt://u:{SECRET}@[::1",
    ],
)
def test_refused_urls_never_show_the_password(url: str) -> None:
    with pytest.raises(TransportError) as caught:
        parse_broker_url(url)
    error = caught.value
    assert error.transport == "mqtt" and error.problem
    assert SECRET not in str(error) and SECRET not in error.address
    assert "***" in error.address


def test_redaction() -> None:
    assert redact_url(f"mqtt://bob:{SECRET}@host:1883") == "mqtt://bob:***@host:1883"
    assert redact_url(f"mqtts://bob:{SECRET}@host/x?y#z") == "mqtts://bob:***@host/x?y#z"
    assert redact_url("mqtt://bob@host") == "mqtt://bob@host"  # no password: nothing to hide
    assert redact_url("mqtt://host:1883") == "mqtt://host:1883"
    assert redact_url(f"wss://a:{SECRET}@venue/ws") == "wss://a:***@venue/ws"
    assert redact_url(f"x://a:b@c:{SECRET}@host") == "x://a:***@host"  # the last @ ends it
    assert redact_url("not a url") == "not a url"
    assert redact_url(f"bob:{SECRET}@host:1883") == "bob:***@host:1883"  # no scheme either
    assert SECRET not in redact_url(f"[::1:{SECRET}@")


@pytest.mark.parametrize("mark", ["/", "#", "?", "@", ":"])
def test_an_unquoted_mark_in_the_password_does_not_reveal_it(mark: str) -> None:
    secret = f"s3{mark}cr{mark}{SECRET}"
    url = f"mqtt://bob:{secret}@broker:1883"
    assert redact_url(url) == "mqtt://bob:***@broker:1883"
    try:
        parse_broker_url(url)
    except TransportError as error:
        assert SECRET not in str(error) and SECRET not in error.address
    with pytest.raises(ConfigError) as caught:
        daemon_config({"bus": {"mqtt": {"url": url + "x"}}, "pairs": {"A/B": {}}})
    assert SECRET not in str(caught.value)
    parsed = parse_broker_url(f"mqtt://bob%40desk:{SECRET}@host")
    assert parsed.redacted == "mqtt://bob%40desk:***@host:1883"


def test_explicit_options_and_tls() -> None:
    address = broker_address(f"mqtt://bob:{SECRET}@host", username="amy", password="pw")
    assert (address.username, address.password, address.port) == ("amy", "pw", 1883)
    assert address.tls_context is None and address.redacted == "mqtt://amy:***@host:1883"
    secure = broker_address("mqtt://host", tls=True)  # TLS asked for: the TLS default port
    assert secure.port == 8883 and isinstance(secure.tls_context, ssl.SSLContext)
    assert secure.redacted == "mqtts://host:8883"
    assert broker_address("mqtt://host:1999", tls=True).port == 1999
    context = ssl.create_default_context()
    assert broker_address("mqtts://host", tls=context).tls_context is context


def test_the_config_and_the_cli_refuse_with_the_password_hidden() -> None:
    bad = f"tcp://u:{SECRET}@broker"
    with pytest.raises(ConfigError) as caught:
        daemon_config(
            {"pairs": {"A/B": {}}, "feeds": [{"kind": "synthetic"}], "bus": {"mqtt": {"url": bad}}}
        )
    assert caught.value.key == "bus.mqtt.url"
    assert SECRET not in str(caught.value) and "must look like mqtt://" in str(caught.value)

    from hedger.cli import subscribe  # noqa: PLC0415

    args = argparse.Namespace(broker=bad, root="hedger", pairs=[], json=True, count=1)
    with pytest.raises(ConfigError) as refused:
        subscribe.run(args)
    assert SECRET not in str(refused.value)
    assert str(refused.value).startswith("broker: must look like mqtt://host:port")


class Recorder:
    """A structlog-style logger that keeps every call."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.records.append((event, kw))


async def test_transports_log_no_password(mosquitto: MosquittoBroker) -> None:
    url = f"mqtt://bob:{SECRET}@{mosquitto.host}:{mosquitto.port}"
    feed_log, bridge_log = Recorder(), Recorder()
    feed = MqttTickFeed(url, ["t/#"], logger=feed_log)
    bridge = MqttBridge(url, root="redact", logger=bridge_log)
    assert SECRET not in feed.url and SECRET not in bridge.url
    async with feed, bridge:
        await eventually(lambda: feed.connected and bridge.connected)
    for log in (feed_log, bridge_log):
        assert log.records, "connects are logged"
        assert any(
            kw.get("url") == f"mqtt://bob:***@127.0.0.1:{mosquitto.port}" for _, kw in log.records
        )
        assert SECRET not in repr(log.records)


async def test_subscribe_prints_no_password(mosquitto: MosquittoBroker) -> None:
    from hedger.cli.subscribe import run_subscribe  # noqa: PLC0415

    url = f"mqtt://bob:{SECRET}@{mosquitto.host}:{mosquitto.port}"
    out, err = io.StringIO(), io.StringIO()
    task = asyncio.create_task(run_subscribe(url, "redact", [], as_json=True, out=out, err=err))
    await eventually(lambda: "connected" in err.getvalue())
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert f"mqtt://bob:***@127.0.0.1:{mosquitto.port} connected" in err.getvalue()
    assert SECRET not in err.getvalue() + out.getvalue()
