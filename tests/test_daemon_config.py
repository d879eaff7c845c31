"""The daemon's configuration, and the daemon core fed by recorded files (no bridges)."""

from __future__ import annotations

import asyncio
import io
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.mqtt import MqttTickFeed
from feeds.synthetic import SyntheticFeed
from feeds.venues.alpaca import AlpacaStocks
from feeds.venues.binance import BinanceSpot
from feeds.websocket import WebSocketFeed
from hedger.config.daemon import daemon_config
from hedger.config.feeds import (
    FEED_KINDS,
    AlpacaFeedSettings,
    BinanceFeedSettings,
    FileFeedSettings,
    MqttFeedSettings,
    SyntheticFeedSettings,
)
from hedger.config.pipeline import load_toml, pipeline_config
from hedger.core.bus import Message
from hedger.errors import ConfigError
from hedger.logs import get_logger
from hedger.runtime.daemon import Daemon
from hedger.runtime.feeds import FileFeed, build_feed
from hedger.runtime.replay import replay
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """
[pairs."YYY/XXX"]
[[feeds]]
kind = "synthetic"
"""


def test_the_shipped_sample_configs_are_valid() -> None:
    config = daemon_config(load_toml(ROOT / "deploy" / "hedger.toml"))
    assert config.mqtt is not None and config.mqtt.qos == 1
    assert config.websocket is not None and config.websocket.host == "127.0.0.1"
    assert [f.kind for f in config.feeds] == ["synthetic"]
    compose = daemon_config(load_toml(ROOT / "deploy" / "compose-hedger.toml"))
    assert compose.mqtt is not None and compose.mqtt.url == "mqtt://mosquitto:1883"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("[bus]\ncolour = 1\n", "bus.colour"),
        ("[bus.mqtt]\nqos = 3\n", "bus.mqtt.qos"),
        ("[bus.mqtt]\nurl = 'http://x'\n", "bus.mqtt.url"),
        ("[bus.websocket]\nport = 70000\n", "bus.websocket.port"),
        ("[bus.websocket]\ntoken_env = 'HEDGER_TEST_UNSET_VARIABLE'\n", "bus.websocket.token_env"),
        ("[bus.websocket]\nmax_clients = 0\n", "bus.websocket.max_clients"),
        ("[bus.websocket]\nmax_pairs_per_client = 0\n", "bus.websocket.max_pairs_per_client"),
        ("[bus.mqtt]\npassword_env = 'HEDGER_TEST_UNSET_VARIABLE'\n", "bus.mqtt.password_env"),
        ("[bus.mqtt]\nca_file = '/nonexistent/ca.pem'\n", "bus.mqtt.ca_file"),
        ("[[feeds]]\nkind='mqtt'\ntopics=['t']\npassword_env='NO_VAR'\n", "feeds[1].password_env"),
        ("[daemon]\nshutdown_timeout = 'soon'\n", "daemon.shutdown_timeout"),
        ("[daemon]\nworkers = 4\n", "daemon.workers"),
        ("[logging]\nlevel = 'loud'\n", "logging.level"),
        ("[[feeds]]\nkind = 'carrier-pigeon'\n", "feeds[1].kind"),
        ("[[feeds]]\nkind = 'binance'\n", "feeds[1].symbols"),
        ("[[feeds]]\nkind = 'polygon'\nsymbols = ['SPY']\n", "feeds[1]"),
        ("[[feeds]]\nkind = 'synthetic'\nspeeed = 2\n", "feeds[1].speeed"),
        ("[[feeds]]\nkind = 'synthetic'\nxs = 'SPY'\n", "feeds[1].xs"),
        ("[[feeds]]\nkind = 'synthetic'\nspeed = -1\n", "feeds[1].speed"),
        ("[[feeds]]\nkind = 'file'\npaths = ['a.csv']\nspeed = 0\n", "feeds[1].speed"),
        ("[bus.mqtt]\nurl = 'mqtt://127.0.0.1:notaport'\n", "bus.mqtt.url"),
        ("[[feeds]]\nkind = 'mqtt'\ntopics = ['t/#']\nurl = 'tcp://x'\n", "feeds[1].url"),
        ("[[feeds]]\nkind = 'mqtt'\ntopics = ['t/#']\npersistent = true\n", "feeds[1].persistent"),
        ("[state]\ndir = 'x'\ncolour = 1\n", "state.colour"),
        ("[state]\ncheckpoint_bars = 5\n", "state.dir"),
        ("[state]\ndir = 'x'\ncheckpoint_interval = 'soon'\n", "state.checkpoint_interval"),
        ("[state]\ndir = 'x'\ncheckpoint_bars = -1\n", "state.checkpoint_bars"),
        ("[state]\ndir = 'x'\nsegment_mb = 0\n", "state.segment_mb"),
        ("[state]\ndir = 'x'\nretention = '0s'\n", "state.retention"),
    ],
)
def test_bad_daemon_configs_name_the_key(extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        daemon_config(_toml(MINIMAL + extra))
    assert err.value.key == key


HOUSE_STYLE = [
    ("[bus.mqtt]\nqos = 3\n", "bus.mqtt.qos", "must be 0, 1 or 2"),
    ("[bus]\noutbox = 0\n", "bus.outbox", "must be an integer >= 1, got 0"),
    ("[bus.websocket]\nport = 70000\n", "bus.websocket.port",
     "must be an integer from 0 to 65535, got 70000"),
    ("[logging]\nlevel = 'loud'\n", "logging.level",
     "must be debug, info, warning or error, got 'loud'"),
    ("[logging]\njson = 1\n", "logging.json", "must be true or false, got 1"),
    ("[daemon]\nworkers = 4\n", "daemon.workers",
     "unknown key (known: bar_grace, metrics_interval, shutdown_timeout, tick_queue)"),
    ("[[feeds]]\nkind = 'pigeon'\n", "feeds[1].kind",
     "must be one of synthetic, binance, coinbase, alpaca, polygon, mqtt, file, got 'pigeon'"),
    ("[[feeds]]\nkind = 'binance'\n", "feeds[1].symbols", "must be a non-empty list of symbols"),
    ("[[feeds]]\nkind = 'coinbase'\nsymbols = ['BTC-USD', '']\n", "feeds[1].symbols",
     "must be a non-empty list of symbols, got ['BTC-USD', '']"),
    ("[[feeds]]\nkind = 'synthetic'\nxs = 'SPY'\n", "feeds[1].xs",
     "must be a non-empty list of symbols, got 'SPY'"),
    ("[[feeds]]\nkind = 'file'\npaths = ['a.csv']\nspeed = 0\n", "feeds[1].speed",
     "must be a number > 0 (times real time) or false, got 0"),
    ("[[feeds]]\nkind = 'file'\npaths = ['a.csv']\nts_unit = 'weeks'\n", "feeds[1].ts_unit",
     "must be auto, iso, s, ms, us or ns, got 'weeks'"),
    ("[[feeds]]\nkind = 'mqtt'\n", "feeds[1].topics", "must be a list of topic filters"),
    ("[refit]\nevery = true\n", "refit.every",
     "must be an integer >= 1 (bars) or a duration like 4h, got True"),
    ("[filter]\ndelta = 'big'\n", "filter.delta", "must be a number, got 'big'"),
    ("[filter]\nwarmup = -1\n", "filter.warmup", "must be an integer >= 0, got -1"),
    ("[filter]\ntrans_cov = [[1.0, 'x'], [0.0, 1.0]]\n", "filter.trans_cov",
     "must be a matrix of numbers, got [[1.0, 'x'], [0.0, 1.0]]"),
    ("[bus]\nmqtt = 5\n", "bus.mqtt", "must be a table, got 5"),
    ("[filter]\nadaptive_r = 0\n", "filter.adaptive_r",
     "must be in (0, 1) or None, got 0.0"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "key", "problem"), HOUSE_STYLE)
def test_bad_daemon_configs_are_one_line_in_the_house_style(
    extra: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        daemon_config(_toml(MINIMAL + extra))
    assert (err.value.key, err.value.problem) == (key, problem)
    assert str(err.value) == f"{key}: {problem}"


@pytest.mark.parametrize(
    "extra",
    [
        "[bus.mqtt]\npassword = ['hunter2']\n",
        "[bus.mqtt]\nurl = 'mqtt://me:hunter2@127.0.0.1:notaport'\n",
        "[bus.mqtt]\nurl = 'tcp://me:hunter2@127.0.0.1:1883'\n",
        "[bus.websocket]\ntoken = ['hunter2']\n",
        "[[feeds]]\nkind = 'alpaca'\nsymbols = ['SPY']\nkey = 'me'\nsecret = ['hunter2']\n",
        "[[feeds]]\nkind = 'polygon'\nsymbols = ['SPY']\napi_key = ['hunter2']\n",
        "[[feeds]]\nkind = 'mqtt'\ntopics = ['t/#']\npassword = {x = 'hunter2'}\n",
        "[[feeds]]\nkind = 'mqtt'\ntopics = ['t/#']\nurl = 'mqtt://me:hunter2@h:0'\n",
    ],
)
def test_a_secret_is_never_in_an_error_message(extra: str) -> None:
    with pytest.raises(ConfigError) as err:
        daemon_config(_toml(MINIMAL + extra))
    assert "hunter2" not in str(err.value) and "\n" not in str(err.value)
    assert err.value.key.split(".")[0] in ("bus", "feeds[1]")


def test_mqtt_passwords_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEDGER_TEST_MQTT_PASSWORD", "s3cret")
    config = daemon_config(
        _toml(
            MINIMAL
            + "[[feeds]]\nkind = 'mqtt'\ntopics = ['t/#']\n"
            + "password_env = 'HEDGER_TEST_MQTT_PASSWORD'\n"
            + "[bus.mqtt]\nusername = 'me'\npassword_env = 'HEDGER_TEST_MQTT_PASSWORD'\n"
        )
    )
    assert config.mqtt is not None and config.mqtt.password == "s3cret"
    feed = config.feeds[1]
    assert isinstance(feed, MqttFeedSettings) and feed.password == "s3cret"
    assert isinstance(build_feed(feed, None), MqttTickFeed)
    # the file's value comes first, as for token / token_env
    config = daemon_config(
        _toml(MINIMAL + "[bus.mqtt]\npassword = 'x'\npassword_env = 'HEDGER_TEST_MQTT_PASSWORD'\n")
    )
    assert config.mqtt is not None and config.mqtt.password == "x"


def test_feeds_are_typed_frozen_settings_per_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEDGER_TEST_ALPACA_SECRET", "s3cret")
    text = (
        MINIMAL
        + """
xs = ["QQQ", "IWM"]
beta0 = [1.0, 2.0]
speed = false
[[feeds]]
kind = "binance"
symbols = ["BTCUSDT"]
streams = ["trade"]
[[feeds]]
kind = "alpaca"
symbols = ["SPY"]
key = "k"
secret_env = "HEDGER_TEST_ALPACA_SECRET"
[[feeds]]
kind = "mqtt"
topics = ["ticks/#"]
qos = 0
[[feeds]]
kind = "file"
paths = ["a.csv"]
"""
    )
    synthetic, binance, alpaca, mqtt, files = daemon_config(_toml(text)).feeds
    assert synthetic == SyntheticFeedSettings(xs=("QQQ", "IWM"), beta0=(1.0, 2.0), speed=False)
    assert binance == BinanceFeedSettings(symbols=("BTCUSDT",), streams=("trade",))
    assert isinstance(alpaca, AlpacaFeedSettings) and alpaca.secret == "s3cret"
    assert mqtt == MqttFeedSettings(topics=("ticks/#",), qos=0)
    assert files == FileFeedSettings(paths=("a.csv",), bar_ns=1_000_000_000)  # [bars] length
    assert [f.kind for f in (synthetic, binance, alpaca, mqtt, files)] == [
        "synthetic", "binance", "alpaca", "mqtt", "file"
    ]  # fmt: skip
    with pytest.raises(AttributeError):
        synthetic.seed = 3  # type: ignore[misc]
    feed = build_feed(synthetic, None)
    assert isinstance(feed, SyntheticFeed) and feed.market.spec.xs == ("QQQ", "IWM")
    assert feed.market.spec.beta0 == (1.0, 2.0) and feed.market.spec.x0 == (100.0, 100.0)
    assert feed._speed is None
    venue = build_feed(binance, None)
    assert isinstance(venue, WebSocketFeed) and isinstance(venue.venue, BinanceSpot)
    assert venue.venue.streams == ["trade"] and venue.venue.symbols == ["btcusdt"]
    stocks = build_feed(alpaca, None)
    assert isinstance(stocks, WebSocketFeed) and isinstance(stocks.venue, AlpacaStocks)
    ticks = build_feed(mqtt, None)
    assert isinstance(ticks, MqttTickFeed) and ticks.topics == ["ticks/#"] and ticks.qos == 0
    assert isinstance(build_feed(files, None), FileFeed)
    with pytest.raises(ConfigError, match=r"^feeds\.synthetic: "):
        build_feed(msgspec.structs.replace(synthetic, x0=(-1.0,)), None)


SECRET = "hunter2"
_KEYS = [
    "kind", "symbols", "xs", "speed", "qos", "topics", "token_env", "paths", "ts_unit", "port",
    "level", "json", "every", "window", "delta", "mode", "init", "warmup", "trans_cov", "length",
    "max_age", "source", "root", "shutdown_timeout", "beta0", "colour",
]  # fmt: skip
_VALUES = st.recursive(
    st.booleans()
    | st.integers(-3, 70_000)
    | st.floats(allow_nan=True)
    | st.sampled_from(["", "1s", "soon", "synthetic", "mqtt", "file", "alpaca", "ops", "given"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner),
    max_leaves=8,
)
_SECRETS = st.dictionaries(
    st.sampled_from(["password", "token", "key", "secret", "api_key"]),
    st.sampled_from([SECRET, [SECRET], {"x": SECRET}, 5, ""]),
    max_size=2,
)
_URLS = st.dictionaries(
    st.just("url"),
    st.sampled_from(
        ["mqtt://h:1", f"mqtt://u:{SECRET}@h:x", f"tcp://u:{SECRET}@h:1", f"mqtt://u:{SECRET}@h:0"]
    ),
)
_TABLES = st.builds(
    lambda plain, secrets, url: {**url, **secrets, **plain},
    st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=3),
    _SECRETS,
    _URLS,
)


_PLACES = [
    "bus", "bus.mqtt", "bus.websocket", "daemon", "logging", "refit", "filter", "bars", "matrix",
    *(f"feeds:{kind}" for kind in FEED_KINDS),
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(place=st.sampled_from(_PLACES), table=_TABLES)
def test_any_bad_table_is_one_config_error_line_without_secrets(
    place: str, table: dict[str, Any]
) -> None:
    """A random table (secrets in the secret keys and in broker URLs) at one place of an
    otherwise valid document loads or is one ConfigError line that shows no secret."""
    document: dict[str, Any] = {"pairs": {"A/B": {}}, "feeds": [{"kind": "synthetic"}]}
    if place.startswith("feeds:"):
        document["feeds"].append({"kind": place.partition(":")[2], **table})
    elif place.startswith("bus."):
        document["bus"] = {place.partition(".")[2]: table}
    else:
        document[place] = table
    try:
        daemon_config(document)
    except ConfigError as err:
        assert err.key and "\n" not in str(err) and SECRET not in str(err), str(err)


def test_a_daemon_needs_feeds() -> None:
    with pytest.raises(ConfigError, match="feeds"):
        daemon_config(_toml('[pairs."A/B"]\n'))


def _toml(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


async def test_daemon_core_on_recorded_files_equals_replay(tmp_path: Path) -> None:
    """The daemon's path (feeds -> tick queue -> pipeline -> bus) with a file feed and its
    data clock publishes exactly the events a replay writes."""
    data = ROOT / "examples" / "sp500_nasdaq_daily.csv"
    text = f"""
[bars]
length = "1d"
[filter]
delta = 1e-7
[pairs."SP500/NASDAQ"]
[positions]
"SP500/NASDAQ" = {{ notional = 1e6 }}
[lots]
NASDAQ = 5
[[feeds]]
kind = "file"
paths = ["{data}"]
[daemon]
metrics_interval = "1h"
"""
    config = daemon_config(_toml(text))
    node = Daemon(config, get_logger("test"))
    received: list[Message] = []
    node.bus.subscribe(received.append)
    stop = asyncio.Event()
    runner = asyncio.create_task(node.run(stop))
    bars = 5031
    await eventually(lambda: node.pipeline.actors[0].seq == bars, timeout=60.0, what="every bar")
    stop.set()
    await runner
    events = [m.payload for m in received if m.kind in ("ratio", "spread", "alarm") and m.payload]
    out = io.BytesIO()
    replay([data], config.pipeline, out)
    assert b"\n".join(events) + b"\n" == out.getvalue()
    actor = node.pipeline.actors[0]
    # two events a bar, and each alarm raised once and cleared once unless still active
    raised = node.pipeline.stats.alarms_raised
    assert len(events) == 2 * bars + 2 * raised - len(actor.active_alarms)
    ratios = [m for m in received if m.kind == "ratio"]
    assert {m.topic for m in ratios} == {"hedger/v1/ratio/SP500/NASDAQ"} and ratios[-1].retain
    last = orjson.loads(ratios[-1].payload)
    assert last["hedge_qty"] % 5 == 0 and last["hedge_qty"] < 0  # short NASDAQ against SP500
    assert last["position"] == pytest.approx(1e6 / last["prices"]["SP500"])
    metrics = [m for m in received if m.topic == "hedger/v1/metrics"]
    assert metrics, "a final metrics snapshot is published at shutdown"
    final = orjson.loads(metrics[-1].payload)
    assert final["alarms_raised"] == raised > 0  # the history has its breaks
    assert final["alarms_active"] == int(bool(actor.active_alarms))


def test_the_readme_configuration_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TOML a newcomer copies from the README's Configuration section loads, for replay
    and (with a feed added) for the daemon, [matrix], [refit] and [control] included (the
    control token from the environment the file names)."""
    monkeypatch.setenv("HEDGER_CONTROL_TOKEN", "control-secret")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    document = tomllib.loads(block)
    pipeline = pipeline_config(document)
    assert [str(spec.pair) for spec in pipeline.pairs] == ["AAPL/SPY"]
    config = daemon_config({**document, "feeds": [{"kind": "synthetic"}]})
    assert config.matrix is not None and config.matrix.symbols == ("SPY", "QQQ", "IWM", "TLT")
    assert config.matrix.params.mode.value == "returns"
    assert config.refit is not None and config.refit.every_bars == 500
    assert config.control.token == "control-secret" and config.control.history_bars == 2000


def test_the_readme_transport_configuration_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's [bus.mqtt] / [bus.websocket] sample loads, its secrets from the
    environment."""
    monkeypatch.setenv("HEDGER_MQTT_PASSWORD", "pw")
    monkeypatch.setenv("HEDGER_WS_TOKEN", "tok")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Transports, secrets and limits", 1)[1]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    config = daemon_config(_toml(MINIMAL + block))
    assert config.mqtt is not None and config.mqtt.password == "pw"
    assert config.websocket is not None and config.websocket.token == "tok"
    assert (config.websocket.max_clients, config.websocket.max_pairs_per_client) == (256, 1000)
