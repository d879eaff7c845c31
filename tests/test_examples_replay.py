"""``hedger replay`` on the three shipped example files writes exactly what it wrote before
hedger was split into its layers (the hashes were recorded on the flat layout, commit 309936e,
with ``hedger replay FILE ARGS --out events.jsonl``), once the two things added since are taken
out: the innovation gate (off here, ``outlier_z = false``) and the events' ``outlier`` key
(dropped before hashing; with the gate off it is always false)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from tests.conftest import run_hedger

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

RECORDED = [
    (
        ["sp500_nasdaq_daily.csv", "--pair", "SP500/NASDAQ", "--bar", "1d", "--delta", "1e-7"],
        "f352f33c1c003f7f56a3706757822714ad5b2a0394c9dfb064cff8c3b19f9e0f",
    ),
    (
        [
            "ishares_factors_daily.csv",
            *("--pair", "VLUE/SIZE", "--pair", "MTUM/QUAL+USMV"),
            *("--bar", "1d", "--mode", "returns"),
        ],
        "d446cae99bbd450197a7b3010352642073836f5b7db056728b220fe34d8098f9",
    ),
    (
        [
            "sp500_stocks_daily.csv.gz",
            *("--pair", "AAPL/MSFT", "--pair", "XOM/CVX", "--pair", "KO/PEP"),
            *("--bar", "1d", "--mode", "log"),
        ],
        "6870137ca9a836dc8645aae72e0426caf38909c31426de0b050045d71d9d7d35",
    ),
]


@pytest.mark.parametrize(("args", "sha256"), RECORDED, ids=["sp500-nasdaq", "ishares", "stocks"])
def test_example_replays_are_byte_identical_to_the_recorded_ones(
    tmp_path: Path, args: list[str], sha256: str
) -> None:
    out = tmp_path / "events.jsonl"
    config = tmp_path / "no-gate.toml"
    config.write_text("[filter]\noutlier_z = false\n")
    result = run_hedger(
        "replay", str(EXAMPLES / args[0]), *args[1:], "--config", str(config), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    lines = []
    for line in out.read_bytes().splitlines():
        event = orjson.loads(line)
        assert event.pop("outlier") is False
        lines.append(orjson.dumps(event))
    assert hashlib.sha256(b"\n".join(lines) + b"\n").hexdigest() == sha256
