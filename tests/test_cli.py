"""The ``hedger`` command line, run as a real subprocess."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from tests.conftest import SP500_NASDAQ, run_hedger


def test_help_lists_every_subcommand() -> None:
    result = run_hedger("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout


def test_demo_prints_a_table_and_a_summary() -> None:
    result = run_hedger("demo", "--rows", "5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("hedger demo: SP500/NASDAQ")
    table = [line for line in lines if line[:4].isdigit()]
    assert len(table) == 6  # five spread evenly, and the first warm row
    assert table[0].startswith("1999-01-04") and table[-1].startswith("2018-12-31")
    assert "5031 updates" in result.stdout
    assert "static beta (OLS)    0.3051" in result.stdout


def test_demo_is_deterministic_apart_from_timing() -> None:
    def without_speed(text: str) -> list[str]:
        return [line for line in text.splitlines() if "speed" not in line]

    first, second = run_hedger("demo", "--mode", "log"), run_hedger("demo", "--mode", "log")
    assert without_speed(first.stdout) == without_speed(second.stdout)


def test_demo_reads_gzip_and_chosen_pairs(tmp_path: Path) -> None:
    packed = tmp_path / "prices.csv.gz"
    packed.write_bytes(gzip.compress(SP500_NASDAQ.read_bytes()))
    result = run_hedger("demo", "--file", str(packed), "--pair", "NASDAQ/SP500", "--rows", "3")
    assert result.returncode == 0, result.stderr
    assert "NASDAQ hedged with SP500" in result.stdout


def test_demo_counts_bad_cells_instead_of_crashing(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(
        "date,A,B\n2020-01-01,10,20\nnot-a-date,1,2\n2020-01-02,nan,21\n2020-01-03,x,22\n"
        + "".join(f"2020-02-{d:02d},{10 + d * 0.1},{20 + d * 0.2}\n" for d in range(1, 29))
    )
    result = run_hedger("demo", "--file", str(data), "--rows", "3")
    assert result.returncode == 0, result.stderr
    assert "3 rejects" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("demo", "--file", "/no/such/file.csv"), "no such file"),
        (("demo", "--pair", "SP500"), "must look like Y/X"),
        (("demo", "--pair", "SP500/DAX"), "'DAX' is not a column"),
        (("demo", "--delta", "1.5"), "delta: must be in [0, 1)"),
        (("demo", "--mode", "prices"), "invalid choice"),
        (("launch",), "invalid choice"),
    ],
)
def test_bad_command_lines_are_one_clear_line(args: tuple[str, ...], message: str) -> None:
    result = run_hedger(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_live_demo_runs_the_daemon_path_and_stops_cleanly() -> None:
    result = run_hedger("demo", "--live", "--seconds", "3")
    assert result.returncode == 0, result.stderr
    assert "ws://127.0.0.1:" in result.stdout
    rows = [
        line.split()
        for line in result.stdout.splitlines()
        if re.match(r"^\s+\d+s\s+\d+\s+\d+\.\d{4}", line)
    ]
    assert len(rows) >= 2, result.stdout
    # time, seq, beta, 2 sd, true beta, error: the filter tracks the truth closely
    assert all(abs(float(row[5])) < 0.05 for row in rows), result.stdout
    assert "stopped cleanly" in result.stdout


def test_subscribe_rejects_a_bad_broker_url() -> None:
    result = run_hedger("subscribe", "--broker", "http://localhost:1883")
    assert result.returncode == 2
    assert "broker: must look like mqtt://host:port" in result.stderr


def test_a_negative_value_after_a_space_meets_the_range_check() -> None:
    result = run_hedger("replay", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ", "--delta", "-1e-4")
    assert result.returncode == 2
    assert result.stderr.strip() == "hedger replay: --delta: must be in [0, 1), got -0.0001"


def test_a_command_line_override_is_named_as_its_option() -> None:
    result = run_hedger("replay", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ", "--warmup", "0")
    assert result.returncode == 2
    assert result.stderr.startswith("hedger replay: --warmup: "), result.stderr


def test_a_bad_filter_value_is_named_under_filter(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[filter]\ndelta = "1e-4"\n')
    result = run_hedger(
        "replay", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ", "--config", str(config)
    )
    assert result.returncode == 2
    assert result.stderr.startswith("hedger replay: filter.delta: "), result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["replay", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ"],
        ["matrix", str(SP500_NASDAQ)],
        ["calibrate", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ"],
        ["evaluate", str(SP500_NASDAQ), "--pair", "SP500/NASDAQ"],
    ],
)
def test_every_command_checks_bar(command: list[str]) -> None:
    result = run_hedger(*command, "--bar", "7parsecs")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert re.match(r"hedger \w+: (--bar|bars\.length): must be a duration", line), line
