"""Files the daemon and the offline tools read judge rows from the future as ``hedger
replay`` does (one rule, :func:`hedger.core.bars.without_future`): the daemon's ``file`` feed
and the offline price table; and a ``file`` feed takes ``date_format`` as the commands take
``--date-format``."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import numpy as np
import orjson
import pytest

from hedger.config.daemon import daemon_config
from hedger.config.feeds import FileFeedSettings
from hedger.core.bus import Message
from hedger.logs import get_logger
from hedger.research.prices import load_prices
from hedger.runtime.daemon import Daemon
from tests.conftest import run_hedger
from tests.test_skew import market, with_future_rows, write_ticks
from tests.waiting import eventually

DAY = 86_400


def _days(n: int) -> list[str]:
    """``n`` weekdays from 2 January 2023 (weekends skipped), as ISO dates."""
    days: list[str] = []
    day = np.datetime64("2023-01-02")
    while len(days) < n:
        if np.is_busday(day):
            days.append(str(day))
        day += np.timedelta64(1, "D")
    return days


def _daily_rows(n: int) -> list[str]:
    return [
        f"{day},{150 + 3 * np.sin(i / 7) + 0.1 * i:.4f},{100 + 2 * np.sin(i / 7) + 0.05 * i:.4f}"
        for i, day in enumerate(_days(n))
    ]


def _with_bad_rows(rows: list[str]) -> list[str]:
    """``rows`` with added rows from the future: a mistyped year a quarter in, two in a row
    (the second later) half-way, and one as the last row."""

    def typo(row: str, year: str) -> str:
        return year + row[4:]

    a, b = len(rows) // 4, len(rows) // 2
    return [
        *rows[: a + 1], typo(rows[a], "2100"),
        *rows[a + 1 : b + 1], typo(rows[b], "2099"), typo(rows[b], "2100"),
        *rows[b + 1 :], typo(rows[-1], "2100"),
    ]  # fmt: skip


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("date,A,B\n" + "\n".join(rows) + "\n")
    return path


def _daemon_toml(data: Path, extra: str = "", pair: str = "A/B", bar: str = "1d") -> str:
    return f"""
[bars]
length = "{bar}"
[pairs."{pair}"]
delta = 1e-4
[[feeds]]
kind = "file"
paths = ["{data}"]
{extra}
[daemon]
metrics_interval = "1h"
"""


async def _run_daemon(text: str, pair: str = "A/B") -> tuple[list[bytes], dict[str, int], Daemon]:
    """The daemon over its file feed to the end of the file: the pair's ratio payloads and
    the feed's rejects."""
    node = Daemon(daemon_config(tomllib.loads(text)), get_logger("test"))
    received: list[Message] = []
    node.bus.subscribe(received.append)
    stop = asyncio.Event()
    runner = asyncio.create_task(node.run(stop))
    await eventually(lambda: 0 in node._finished, timeout=60.0, what="the file read to its end")
    stop.set()
    await runner
    ratios = [m.payload for m in received if m.topic.endswith(f"ratio/{pair}")]
    return ratios, dict(node.feeds[0].rejects.counts), node


async def test_the_daemons_file_feed_refuses_rows_from_the_future_and_loses_no_valid_row(
    tmp_path: Path,
) -> None:
    rows = _daily_rows(300)
    clean = _write(tmp_path / "clean.csv", rows)
    planted = _write(tmp_path / "planted.csv", _with_bad_rows(rows))
    clean_ratios, clean_rejects, _ = await _run_daemon(_daemon_toml(clean))
    ratios, rejects, node = await _run_daemon(_daemon_toml(planted))
    assert len(clean_ratios) == 300 and clean_rejects == {}
    assert rejects == {"future": 8}  # four rows of two prices
    assert ratios == clean_ratios
    assert not node.rejects.counts  # no valid row late or backwards behind them


async def test_a_file_feed_of_ticks_refuses_the_rows_from_the_future(tmp_path: Path) -> None:
    rows = market(3_000)
    last = (rows[-1][0] + 600 * 10**9, *rows[-1][1:])  # a last row 10 min on
    clean = write_ticks(tmp_path / "clean.csv", rows)
    planted = write_ticks(tmp_path / "planted.csv", [*with_future_rows(rows), last])
    pair = "YYY/XXX"
    clean_ratios, _, _ = await _run_daemon(_daemon_toml(clean, pair=pair, bar="1s"), pair)
    ratios, rejects, node = await _run_daemon(_daemon_toml(planted, pair=pair, bar="1s"), pair)
    assert rejects == {"future": 3}
    assert ratios == clean_ratios and len(ratios) > 20
    assert not node.rejects.counts


def test_the_price_table_skips_rows_from_the_future_of_wide_and_tick_files(
    tmp_path: Path,
) -> None:
    rows = _daily_rows(300)
    clean = load_prices(_write(tmp_path / "clean.csv", rows))
    table = load_prices(_write(tmp_path / "planted.csv", _with_bad_rows(rows)))
    assert table.rejects.counts == {"future": 8}
    assert table.labels == clean.labels
    np.testing.assert_array_equal(table.prices, clean.prices)
    ticks = market(3_000)
    last = (ticks[-1][0] + 600 * 10**9, *ticks[-1][1:])
    clean = load_prices(write_ticks(tmp_path / "ticks.csv", ticks), bar="1s")
    planted = write_ticks(tmp_path / "bad_ticks.csv", [*with_future_rows(ticks), last])
    table = load_prices(planted, bar="1s")
    assert table.rejects.counts == {"future": 3}
    np.testing.assert_array_equal(table.ts, clean.ts)
    np.testing.assert_array_equal(table.prices, clean.prices)


def test_the_offline_commands_read_a_daily_file_with_rows_from_the_future(tmp_path: Path) -> None:
    """Before, a row dated in 2100 mid-file made ``matrix`` refuse the whole file (a row not
    after the row before)."""
    planted = _write(tmp_path / "planted.csv", _with_bad_rows(_daily_rows(300)))
    result = run_hedger("matrix", str(planted), "--delta", "1e-4")
    assert result.returncode == 0, result.stderr
    assert "future 8" in result.stdout + result.stderr


def _ambiguous_rows() -> list[str]:
    """Daily rows dated d/m/Y with every day <= 12: they fit m/d/Y too."""
    return [
        f"{d:02d}/{m:02d}/2023,{150 + 3 * np.sin(i / 7) + 0.1 * i:.4f},{100 + 0.05 * i:.4f}"
        for i, (m, d) in enumerate((m, d) for m in range(1, 13) for d in range(1, 13))
    ]


def test_date_format_is_a_key_of_a_file_feed() -> None:
    text = _daemon_toml(Path("a.csv"), 'date_format = "%d/%m/%Y"')
    (feed,) = daemon_config(tomllib.loads(text)).feeds
    assert isinstance(feed, FileFeedSettings) and feed.date_format == "%d/%m/%Y"
    assert feed.bar_ns == DAY * 10**9


async def test_a_file_feed_reads_its_dates_with_date_format(tmp_path: Path) -> None:
    data = _write(tmp_path / "dmy.csv", _ambiguous_rows())
    ratios, rejects, _ = await _run_daemon(_daemon_toml(data, 'date_format = "%d/%m/%Y"'))
    assert len(ratios) == 144 and rejects == {}
    first, second = (orjson.loads(r) for r in ratios[:2])
    assert second["ts"] - first["ts"] == DAY * 10**9  # 02/01 is 2 January, a day after 1 January


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '"dd/mm/yyyy"',
            "feeds[0].date_format: must be a strftime pattern such as %d/%m/%Y, got 'dd/mm/yyyy'",
        ),
        ("5", "feeds[0].date_format:"),
        ('""', "feeds[0].date_format:"),
    ],
)
def test_a_bad_date_format_in_config_is_one_line_and_exit_2(
    tmp_path: Path, value: str, message: str
) -> None:
    data = _write(tmp_path / "dmy.csv", _ambiguous_rows())
    config = tmp_path / "bad.toml"
    config.write_text(_daemon_toml(data, f"date_format = {value}"))
    result = run_hedger("run", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bar_ns_is_not_a_key_of_a_file_feed(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(_daemon_toml(tmp_path / "a.csv", "bar_ns = 5"))
    result = run_hedger("run", "--config", str(config))
    assert result.returncode == 2 and "feeds[0].bar_ns: unknown key" in result.stderr
