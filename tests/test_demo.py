"""``hedger demo``: the summary's betas are rows of its table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hedger.cli.demo import table_rows
from tests.conftest import run_hedger


def _table_and_summary(stdout: str) -> tuple[list[list[str]], tuple[str, str]]:
    rows = [line.split() for line in stdout.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]
    match = re.search(r"dynamic beta\s+first (\S+), last (\S+),", stdout)
    assert match is not None, stdout
    return rows, (match.group(1), match.group(2))


@pytest.mark.parametrize("mode", ["levels", "returns"])
@pytest.mark.parametrize("lines", ["2", "7"])
def test_the_first_beta_of_the_summary_is_the_tables_first_warm_row(mode: str, lines: str) -> None:
    result = run_hedger("demo", "--mode", mode, "--rows", lines)
    assert result.returncode == 0, result.stderr
    rows, (first, last) = _table_and_summary(result.stdout)
    warm = [row for row in rows if row[-1] == "yes"]
    assert rows[0][-1] == "no", "the first row of the file is not warm"
    assert warm[0][3] == first  # the beta column
    assert rows[-1][3] == last
    assert len(rows) == int(lines) + 1  # the first warm row is not one of the evenly spread


def test_a_file_that_warms_up_late_shows_that_row(tmp_path: Path) -> None:
    """Unusable prices early on delay the warm-up; the table still shows where it ends."""
    data = tmp_path / "late.csv"
    rows = [f"2020-01-{d:02d},nan,{20 + d}\n" for d in range(1, 31)]
    rows += [
        f"2020-{m:02d}-{d:02d},{10 + 0.3 * d + m + (d % 3) * 0.05},{20 + 0.6 * d + 2 * m}\n"
        for m in range(2, 8)
        for d in range(1, 29)
    ]
    data.write_text("date,A,B\n" + "".join(rows))
    result = run_hedger("demo", "--file", str(data), "--rows", "3", "--delta", "1e-4")
    assert result.returncode == 0, result.stderr
    table, (first, _) = _table_and_summary(result.stdout)
    warm = [row for row in table if row[-1] == "yes"]
    assert warm[0][0].startswith("2020-02"), table  # after the 30 bars without A
    assert warm[0][3] == first


@given(
    n_rows=st.integers(1, 5_000),
    n_lines=st.integers(2, 60),
    first=st.none() | st.integers(0, 4_999),
)
def test_table_rows_keep_both_ends_and_the_first_warm_row(
    n_rows: int, n_lines: int, first: int | None
) -> None:
    first_warm = None if first is None else first % n_rows
    picks = table_rows(n_rows, n_lines, first_warm)
    assert picks == sorted(set(picks))
    assert picks[0] == 0 and picks[-1] == n_rows - 1
    assert len(picks) <= n_lines + 1
    if first_warm is not None:
        assert first_warm in picks
