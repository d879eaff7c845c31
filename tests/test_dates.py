"""Dates as people write them: ISO, Y/m/d, m/d/Y and d/m/Y (with or without a time) are read,
the order of m/d/Y and d/m/Y is told from the values, and an ambiguous column asks for
``--date-format``."""

from __future__ import annotations

from pathlib import Path

import pytest

from feeds.files.readers import read_ticks, read_wide_bars
from feeds.files.timestamps import (
    AmbiguousDatesError,
    DateParser,
    detect_date_order,
    parse_timestamp_ns,
)
from hedger.core.rejects import Rejects
from hedger.errors import DataFileError
from hedger.research.prices import load_prices
from tests.conftest import run_hedger

JAN31 = parse_timestamp_ns("2024-01-31")
JAN31_1630 = parse_timestamp_ns("2024-01-31T16:30:00")


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("2024-01-31", None, JAN31),
        ("2024-01-31 16:30:00", None, JAN31_1630),
        ("2024-01-31T16:30", None, JAN31_1630),
        ("2024/01/31", None, JAN31),
        ("2024/01/31 16:30", None, JAN31_1630),
        ("01/31/2024", "mdy", JAN31),
        ("1/31/2024 16:30:00", "mdy", JAN31_1630),
        ("31/01/2024", "dmy", JAN31),
        ("31.01.2024 16:30", "dmy", JAN31_1630),
        ("31-01-2024", "dmy", JAN31),
    ],
)
def test_the_common_forms_are_read(text: str, order: str | None, expected: int) -> None:
    assert DateParser(order=order)(text) == expected


def test_the_order_is_told_from_a_day_above_12() -> None:
    assert detect_date_order(["01/02/2024", "01/13/2024"]) == "mdy"
    assert detect_date_order(["01/02/2024", "13/01/2024 09:30"]) == "dmy"
    assert detect_date_order(["2024-01-02", "1700000000"]) is None


def test_an_ambiguous_column_is_an_error() -> None:
    with pytest.raises(AmbiguousDatesError, match="fit both"):
        detect_date_order(["01/02/2024", "02/03/2024"])


def test_after_the_order_is_settled_a_row_that_does_not_fit_is_a_bad_row(tmp_path: Path) -> None:
    path = _wide(tmp_path / "mixed.csv", ["01/13/2024", "01/14/2024", "15/01/2024"])
    rejects = Rejects()
    assert len(list(read_wide_bars(path, rejects))) == 2
    assert rejects.counts == {"bad_timestamp": 1}


def test_a_strftime_pattern_reads_what_it_says() -> None:
    assert DateParser("%d/%m/%Y %H:%M")("31/01/2024 16:30") == JAN31_1630
    with pytest.raises(ValueError):
        DateParser("%d/%m/%Y")("2024-01-31")


def _wide(path: Path, dates: list[str]) -> Path:
    lines = ["date,A,B"] + [f"{d},{100 + i},{50 + i}" for i, d in enumerate(dates)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_wide_file_in_m_d_y_is_read_without_a_flag(tmp_path: Path) -> None:
    path = _wide(tmp_path / "mdy.csv", [f"01/{d:02d}/2024" for d in range(1, 29)])
    rejects = Rejects()
    bars = list(read_wide_bars(path, rejects))
    assert len(bars) == 28 and not rejects.counts
    assert bars[-1].ts == parse_timestamp_ns("2024-01-28")
    assert load_prices(path).labels[0] == "01/01/2024"


def test_an_ambiguous_file_asks_for_date_format_and_reads_with_it(tmp_path: Path) -> None:
    path = _wide(tmp_path / "amb.csv", ["01/02/2024", "02/03/2024", "03/04/2024"])
    with pytest.raises(DataFileError, match="--date-format"):
        list(read_wide_bars(path))
    bars = list(read_wide_bars(path, date_format="%d/%m/%Y"))
    assert bars[1].ts == parse_timestamp_ns("2024-03-02")


def test_a_tick_file_with_d_m_y_times_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    rows = ["ts,symbol,price"]
    for s in range(3):
        rows += [f"13/01/2024 09:30:0{s},A,{100 + s}", f"13/01/2024 09:30:0{s},B,{50 + s}"]
    path.write_text("\n".join(rows) + "\n")
    rejects = Rejects()
    ticks = list(read_ticks(path, rejects))
    assert len(ticks) == 6 and not rejects.counts
    assert ticks[0].ts_event == parse_timestamp_ns("2024-01-13T09:30:00")


def test_every_command_reads_m_d_y_and_refuses_an_ambiguous_file(tmp_path: Path) -> None:
    days = [f"{m:02d}/{d:02d}/2024" for m in range(1, 4) for d in range(1, 29)]
    lines = ["date,A,B"] + [
        f"{day},{150 + 3 * (i % 7) + 0.1 * i:.2f},{100 + 2 * (i % 7) + 0.07 * i:.2f}"
        for i, day in enumerate(days)
    ]
    good = tmp_path / "mdy.csv"
    good.write_text("\n".join(lines) + "\n")
    assert run_hedger("demo", "--file", str(good), "--rows", "2").returncode == 0
    replay = run_hedger("replay", str(good), "--pair", "A/B")
    assert replay.returncode == 0 and "rejected: 0" in replay.stderr
    ambiguous = _wide(tmp_path / "amb.csv", ["01/02/2024", "02/03/2024", "03/04/2024"])
    result = run_hedger("matrix", str(ambiguous))
    assert result.returncode == 2 and "--date-format" in result.stderr
