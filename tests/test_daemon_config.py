"""The daemon's configuration, and the daemon core fed by recorded files (no bridges)."""

from __future__ import annotations

import asyncio
import io
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hedger.config.daemon import daemon_config
from hedger.config.pipeline import load_toml, pipeline_config
from hedger.core.bus import Message
from hedger.errors import ConfigError
from hedger.logs import get_logger
from hedger.runtime.daemon import Daemon
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
    ],
)
def test_bad_daemon_configs_name_the_key(extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        daemon_config(_toml(MINIMAL + extra))
    assert err.value.key == key


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
    stats = node.pipeline.stats
    await eventually(lambda: stats.events == 2 * 5031, timeout=60.0, what="every bar's events")
    stop.set()
    await runner
    events = [m.payload for m in received if m.event is not None]
    out = io.BytesIO()
    replay([data], config.pipeline, out)
    assert b"\n".join(events) + b"\n" == out.getvalue()
    ratio_topics = {m.topic for m in received if m.retain and m.event is not None}
    assert ratio_topics == {"hedger/v1/ratio/SP500/NASDAQ"}
    metrics = [m for m in received if m.topic == "hedger/v1/metrics"]
    assert metrics, "a final metrics snapshot is published at shutdown"


def test_the_readme_configuration_is_valid() -> None:
    """The TOML a newcomer copies from the README's Configuration section loads, for replay
    and (with a feed added) for the daemon, [matrix] and [refit] included."""
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
