"""The live matrix in the daemon: the [matrix] section, one snapshot per bar on
``<root>/v1/matrix`` (embedded bus and a real mosquitto), per-pair topics unchanged."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pytest

from hedger.config.daemon import daemon_config
from hedger.core.bus import Message
from hedger.core.events import decode
from hedger.engine import FilterParams, InputMode
from hedger.engine.matrix import filter_matrix
from hedger.errors import ConfigError
from hedger.logs import get_logger
from hedger.research.prices import load_prices
from hedger.runtime.daemon import Daemon
from tests.test_daemon import SYNTHETIC_FEEDS, DaemonProcess, collect, daemon_factory, start
from tests.waiting import eventually

if TYPE_CHECKING:
    from tests.mosquitto import MosquittoBroker

__all__ = ["daemon_factory"]  # the fixture, re-used from the daemon tests

ROOT = Path(__file__).resolve().parents[1]
ISHARES = ROOT / "examples" / "ishares_factors_daily.csv"
FEED = '[[feeds]]\nkind = "synthetic"\ny = "A"\nxs = ["B"]\n'


def _config(text: str) -> Any:
    return daemon_config(tomllib.loads(text))


def test_matrix_section_is_validated_and_overrides_filter() -> None:
    config = _config(
        f'[filter]\ndelta = 1e-5\nmode = "log"\n[matrix]\nsymbols = ["A", "B", "C"]\n'
        f"delta = 1e-3\n{FEED}"
    )
    assert config.matrix is not None
    assert config.matrix.symbols == ("A", "B", "C")
    assert config.matrix.params.delta == 1e-3
    assert config.matrix.params.mode is InputMode.LOG
    assert config.pipeline.pairs == ()  # the matrix alone needs no pair
    with_pair = _config(f'[pairs."A/B"]\n[matrix]\nsymbols = ["A", "C"]\n{FEED}')
    assert [str(s.pair) for s in with_pair.pipeline.pairs] == ["A/B"]
    assert _config(f'[pairs."A/B"]\n{FEED}').matrix is None


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('symbols = ["A", "B"]\nsymbol = "C"', "matrix.symbol"),
        ('symbols = ["A"]', "matrix.symbols"),
        ('symbols = ["A", "A"]', "matrix.symbols"),
        ('symbols = "A,B"', "matrix.symbols"),
        ("", "matrix.symbols"),
        ('symbols = ["A", "B"]\ndelta = 2.0', "matrix.delta"),
        ('symbols = ["A", "B"]\nmode = "prices"', "matrix.mode"),
    ],
)
def test_bad_matrix_sections_name_the_key(table: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _config(f"[matrix]\n{table}\n{FEED}")
    assert err.value.key == key


def test_a_bad_section_is_still_an_error_with_the_matrix_alone() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        _config(f'[matrix]\nsymbols = ["A", "B"]\n[matrx]\n{FEED}')
    with pytest.raises(ConfigError) as err:
        _config(f'[matrix]\nsymbols = ["A", "B"]\n[bars]\nlength = "soon"\n{FEED}')
    assert err.value.key == "bars.length"


# Run in a fresh interpreter: in this one, earlier tests have already compiled the kernel.
_PRELOAD_CHECK = """
from hedger.core.bars import LegPrice
from hedger.engine import FilterParams, InputMode
from hedger.engine.kernels.matrix import matrix_advance
from hedger.core.matrix_actor import MatrixActor

assert not matrix_advance.signatures, "compiled before any matrix existed"
events = []
actor = MatrixActor(["A", "B", "C"], FilterParams(mode=InputMode.LOG), 10**9, events.append)
assert len(matrix_advance.signatures) == 1, "the actor did not load the kernel"
prices = {"A": LegPrice(10.0, 5, True), "B": LegPrice(20.0, 5, True)}
actor.handle_bar(10, prices, frozenset(prices))
assert len(events) == 1 and events[0].stale == ("C",)
assert len(matrix_advance.signatures) == 1, "a live bar needed another compile"
"""


def test_the_matrix_actor_loads_the_kernel_before_the_first_bar() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PRELOAD_CHECK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


async def test_daemon_matrix_on_recorded_file_equals_the_offline_matrix() -> None:
    """A file feed through the daemon's path (ticks, bars, the matrix actor, the bus): one
    matrix message per bar, contiguous seq, and the last equals the offline matrix."""
    text = f"""
[bars]
length = "1d"
[pairs."MTUM/QUAL"]
[matrix]
symbols = ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"]
mode = "log"
[[feeds]]
kind = "file"
paths = ["{ISHARES}"]
[daemon]
metrics_interval = "1h"
"""
    config = daemon_config(tomllib.loads(text))
    node = Daemon(config, get_logger("test"))
    received: list[Message] = []
    node.bus.subscribe(received.append)
    stop = asyncio.Event()
    runner = asyncio.create_task(node.run(stop))
    table = load_prices(ISHARES)
    n_bars = len(table.ts)
    matrix = node.matrix
    assert matrix is not None
    await eventually(lambda: matrix.seq == n_bars, timeout=60.0, what="every bar's matrix")
    stop.set()
    await runner
    snapshots = [m for m in received if m.topic == "hedger/v1/matrix"]
    assert len(snapshots) == n_bars
    assert all(m.retain for m in snapshots)
    events = [decode(m.payload) for m in snapshots]
    assert [e["seq"] for e in events] == list(range(1, n_bars + 1))
    assert [e["ts"] for e in events] == [int(t) + 86_400_000_000_000 for t in table.ts]
    last = events[-1]
    assert last["type"] == "matrix" and last["version"] == 1
    assert last["symbols"] == list(table.symbols) and last["stale"] == []
    want = filter_matrix(table.prices, FilterParams(mode=InputMode.LOG))
    for key, expected in (("beta", want.beta), ("beta_std", want.beta_se)):
        got = np.array([[np.nan if v is None else v for v in row] for row in last[key]])
        assert np.array_equal(got, expected, equal_nan=True), key
    assert last["warm"][0][1] is True and last["warm"][0][0] is False
    # the pair's own topics carry on as configured
    ratios = [m for m in received if m.topic == "hedger/v1/ratio/MTUM/QUAL"]
    assert len(ratios) == n_bars
    assert node.metrics()["matrix_bars"] == n_bars


@pytest.mark.slow
async def test_daemon_publishes_one_matrix_message_per_bar_on_mqtt(
    mosquitto: MosquittoBroker, tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    root = f"mx{os.getpid()}"
    text = f"""
[bars]
length = "250ms"
max_age = "1s"
[pairs."YYY/XXX"]
[matrix]
symbols = ["XXX", "YYY", "ZZZ", "NONE"]
{SYNTHETIC_FEEDS}
[bus]
root = "{root}"
[bus.mqtt]
url = "{mosquitto.url}"
[bus.websocket]
port = 0
[daemon]
shutdown_timeout = "5s"
bar_grace = "50ms"
"""
    daemon = start(tmp_path, text, daemon_factory)
    messages = await collect(mosquitto.url, f"{root}/v1/matrix", 6)
    assert {topic for topic, _ in messages} == {f"{root}/v1/matrix"}
    events = [orjson.loads(payload) for _, payload in messages]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for event in events:
        assert event["type"] == "matrix"
        assert event["symbols"] == ["XXX", "YYY", "ZZZ", "NONE"]
        assert "NONE" in event["stale"]  # a symbol no feed prices: its pairs only predict
        beta = event["beta"]
        assert len(beta) == 4 and all(len(row) == 4 for row in beta)
        assert all(beta[i][i] is None for i in range(4))
        assert all(event["zscore"][3][j] is None for j in range(4))
    # a late subscriber gets the retained matrix at once; per-pair ratios still flow
    late = await collect(mosquitto.url, f"{root}/v1/matrix", 1, timeout=2.0)
    assert orjson.loads(late[0][1])["type"] == "matrix"
    ratios = await collect(mosquitto.url, f"{root}/v1/ratio/#", 2, timeout=5.0)
    assert {orjson.loads(p)["pair"] for _, p in ratios} == {"YYY/XXX"}
    code, err = await asyncio.to_thread(daemon.stop)
    assert code == 0, err[-3000:]


@pytest.mark.parametrize(("mode", "refused"), [("returns", 1), ("levels", 0)])
def test_a_log_mode_matrix_refuses_prices_at_or_below_zero(mode: str, refused: int) -> None:
    text = f"""
[[feeds]]
kind = "synthetic"
[matrix]
symbols = ["AAA", "BBB"]
mode = "{mode}"
"""
    daemon = Daemon(daemon_config(tomllib.loads(text)), get_logger("test"))
    assert daemon.pipeline.positive_symbols == (frozenset({"AAA", "BBB"}) if refused else set())
    pipeline = daemon.pipeline
    from hedger.core.ticks import Tick  # noqa: PLC0415

    pipeline.on_tick(Tick("AAA", 10.0, 1_000, 1_000))
    pipeline.on_tick(Tick("AAA", -1.0, 2_000, 2_000))
    assert pipeline.rejects.counts.get("bad_price", 0) == refused
