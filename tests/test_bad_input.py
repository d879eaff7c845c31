"""Every bad input a new user might hand a command is one line on stderr and exit status 2,
never a traceback: the real CLI in a subprocess, over (command x bad input)."""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_hedger

BadMaker = Callable[[Path], Path]


def _directory(tmp: Path) -> Path:
    path = tmp / "a_directory.csv"
    path.mkdir()
    return path


def _binary(tmp: Path) -> Path:
    path = tmp / "binary.csv"
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _not_gzip(tmp: Path) -> Path:
    path = tmp / "plain.csv.gz"
    path.write_text("date,A,B\n2024-01-02,1,2\n")
    return path


def _empty(tmp: Path) -> Path:
    path = tmp / "empty.csv"
    path.write_text("")
    return path


def _header_only(tmp: Path) -> Path:
    path = tmp / "header.csv"
    path.write_text("date,A,B\n")
    return path


BAD: dict[str, BadMaker] = {
    "directory": _directory,
    "binary": _binary,
    "not-gzip": _not_gzip,
    "empty": _empty,
    "header-only": _header_only,
}


def good_file(tmp: Path, rows: int = 80) -> Path:
    """A small wide file with two cointegrated columns A and B."""
    path = tmp / "good.csv"
    lines = ["date,A,B"]
    for i in range(rows):
        b = 50.0 + 5.0 * math.sin(i / 7.0) + 0.1 * i
        a = 1.5 * b + 3.0 + 0.2 * math.cos(i * 1.7)
        lines.append(f"2024-{1 + i // 28:02d}-{1 + i % 28:02d},{a:.4f},{b:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


# (command line with BAD and GOOD placeholders, the bad inputs it refuses): an empty file is
# a valid (empty) TOML document, so it is no bad --config for replay nor a bad --write target;
# an existing file of any content is a fine --out (it is overwritten).
ALL = tuple(BAD)
CASES: list[tuple[str, tuple[str, ...]]] = [
    ("demo --file BAD --pair A/B", ALL),
    ("replay BAD --pair A/B", ALL),
    ("matrix BAD", ALL),
    ("calibrate BAD --pair A/B", ALL),
    ("evaluate BAD --pair A/B", ALL),
    ("run --config BAD", ALL),
    ("replay GOOD --pair A/B --config BAD", ("directory", "binary", "not-gzip", "header-only")),
    ("calibrate GOOD --pair A/B --write BAD", ("directory", "binary", "not-gzip", "header-only")),
    ("replay GOOD --pair A/B --out BAD", ("directory",)),
    ("matrix GOOD --out BAD", ("directory",)),
    ("evaluate GOOD --pair A/B --plot BAD", ("directory", "binary", "not-gzip", "header-only")),
]


@pytest.mark.parametrize(
    ("command", "bad"),
    [(command, bad) for command, bads in CASES for bad in bads],
    ids=[f"{command.split()[0]}:{command}:{bad}" for command, bads in CASES for bad in bads],
)
def test_a_bad_input_is_one_line_and_exit_2(tmp_path: Path, command: str, bad: str) -> None:
    bad_path = BAD[bad](tmp_path)
    good = good_file(tmp_path)
    args = [
        str(bad_path) if word == "BAD" else str(good) if word == "GOOD" else word
        for word in command.split()
    ]
    result = run_hedger(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"hedger {args[0]}: "), lines[0]
    if command.startswith("run") and bad == "empty":
        assert "no pair given" in lines[0]  # an empty TOML document is valid, and runs nothing
    else:
        assert bad_path.name in lines[0], lines[0]


def test_replay_of_a_symbol_not_in_the_file_names_it_and_the_files_symbols(
    tmp_path: Path,
) -> None:
    result = run_hedger("replay", str(good_file(tmp_path)), "--pair", "A/NOPE")
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "'NOPE'" in line and "'A', 'B'" in line, line


def test_replay_of_a_tick_file_without_the_symbol_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("ts,symbol,price\n")
        for i in range(50):
            fh.write(f"{1_700_000_000 + i},AAA,{100 + i}\n{1_700_000_000 + i},BBB,{50 + i}\n")
    result = run_hedger("replay", str(path), "--pair", "AAA/CCC")
    assert result.returncode == 2
    assert "'CCC'" in result.stderr and "'AAA', 'BBB'" in result.stderr


def test_replay_in_which_every_row_was_rejected_exits_2_with_the_first_bad_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad_rows.csv"
    path.write_text("date,A,B\nyesterday,1,2\nlast week,3,4\n")
    result = run_hedger("replay", str(path), "--pair", "A/B", "--log-level", "error")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "every row was rejected (bad_timestamp 2)" in line
    assert "line 2" in line and "'yesterday'" in line


def test_replay_ignores_the_columns_no_pair_uses(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    rows = ["date,A,B,JUNK"] + [f"2024-01-{d:02d},{100 + d},{50 + d},n/a" for d in range(1, 29)]
    path.write_text("\n".join(rows) + "\n")
    result = run_hedger("replay", str(path), "--pair", "A/B", "--log-level", "info")
    assert result.returncode == 0, result.stderr
    assert "rejected" not in result.stderr.replace("rejected: 0", "")


def test_drop_repeats_is_taken_by_every_command(tmp_path: Path) -> None:
    good = good_file(tmp_path, rows=200)
    lines = good.read_text().splitlines()
    # a holiday filled forward: the row of 2024-01-05 repeated on 2024-01-06
    lines[6] = "2024-01-06," + lines[5].split(",", 1)[1]
    good.write_text("\n".join(lines) + "\n")
    for command in (
        ["demo", "--file", str(good), "--pair", "A/B"],
        ["replay", str(good), "--pair", "A/B"],
        ["matrix", str(good)],
        ["calibrate", str(good), "--pair", "A/B", "--mode", "levels"],
        ["evaluate", str(good), "--pair", "A/B"],
    ):
        result = run_hedger(*command, "--drop-repeats")
        assert result.returncode == 0, (command, result.stderr)
    replay = run_hedger("replay", str(good), "--pair", "A/B", "--drop-repeats")
    assert "repeated_row 1" in replay.stderr
    matrix = run_hedger("matrix", str(good))
    assert "1 row(s) repeat the row before exactly" in matrix.stderr


def test_demo_counts_a_price_the_mode_cannot_use(tmp_path: Path) -> None:
    good = good_file(tmp_path)
    lines = good.read_text().splitlines()
    lines[40] = lines[40].rsplit(",", 1)[0] + ",-1"
    good.write_text("\n".join(lines) + "\n")
    result = run_hedger("demo", "--file", str(good), "--pair", "A/B", "--mode", "log")
    assert result.returncode == 0, result.stderr
    assert "1 rejects)" in result.stdout
