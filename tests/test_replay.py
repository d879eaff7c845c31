"""Recorded files through the replay path: every layout, determinism, bad input."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.files.readers import read_ticks
from feeds.files.timestamps import TimestampParser
from feeds.synthetic import SyntheticMarket, SyntheticSpec
from hedger.config.pipeline import PipelineConfig, load_toml, pipeline_config
from hedger.core.rejects import Rejects
from hedger.errors import ConfigError, DataFileError
from hedger.runtime.replay import replay

S = 1_000_000_000


def synthetic_rows(seconds: float = 300.0, seed: int = 3) -> list[tuple[int, str, float]]:
    market = SyntheticMarket(SyntheticSpec(y="YYY", xs=("XXX",), rate=4.0), seed=seed)
    return [(t.ts_event, t.symbol, t.price) for t in market.ticks(seconds)]


def write_tick_csv(path: Path, rows: list[tuple[int, str, float]], ts_format: str = "ns") -> None:
    lines = ["ts,symbol,price,size"]
    for ts, symbol, price in rows:
        if ts_format == "iso":
            seconds, ns = divmod(ts, S)
            stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            cell = f"{stamp}.{ns // 1000:06d}Z"
        elif ts_format == "s":
            cell = f"{ts // S}.{ts % S:09d}"
        elif ts_format == "ms":
            cell = str(ts // 1_000_000)
        elif ts_format == "us":
            cell = str(ts // 1_000)
        else:
            cell = str(ts)
        lines.append(f"{cell},{symbol},{price!r},100")
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def config(pair: str = "YYY/XXX", bar: str = "1s", **filter_keys: object) -> PipelineConfig:
    return pipeline_config(
        {}, extra_pairs=(pair,), filter_overrides=filter_keys, bar_overrides={"length": bar}
    )


def run(
    paths: list[Path], cfg: PipelineConfig, ts_unit: str = "auto"
) -> tuple[bytes, dict[str, int]]:
    out = io.BytesIO()
    summary = replay(paths, cfg, out, ts_unit=ts_unit)
    return out.getvalue(), summary.rejects


@pytest.mark.parametrize("ts_format", ["ns", "us", "ms", "s", "iso"])
def test_timestamp_formats_give_the_same_events(tmp_path: Path, ts_format: str) -> None:
    rows = [(ts - ts % 1000, sym, p) for ts, sym, p in synthetic_rows(120)]  # us resolution
    if ts_format == "ms":
        rows = [(ts - ts % 1_000_000, sym, p) for ts, sym, p in rows]
    reference = tmp_path / "ref.csv"
    write_tick_csv(reference, rows, "ns")
    variant = tmp_path / f"ticks_{ts_format}.csv.gz"
    write_tick_csv(variant, rows, ts_format)
    assert run([variant], config()) == run([reference], config())


def test_ts_unit_override(tmp_path: Path) -> None:
    rows = synthetic_rows(60)
    path = tmp_path / "ticks.csv"
    write_tick_csv(path, [(ts // 1000, s, p) for ts, s, p in rows], "ns")  # really microseconds
    events, _ = run([path], config(), ts_unit="us")
    reference = tmp_path / "ref.csv"
    write_tick_csv(reference, [(ts - ts % 1000, s, p) for ts, s, p in rows], "ns")
    assert events == run([reference], config())[0]


def test_tick_csv_jsonl_and_per_symbol_files_agree(tmp_path: Path) -> None:
    rows = synthetic_rows(200)
    csv_path = tmp_path / "all.csv"
    write_tick_csv(csv_path, rows)
    jsonl = tmp_path / "all.jsonl.gz"
    jsonl.write_bytes(
        gzip.compress(
            b"".join(
                orjson.dumps({"ts": ts, "symbol": s, "price": p, "size": 100}) + b"\n"
                for ts, s, p in rows
            )
        )
    )
    per_symbol = []
    for symbol in ("XXX", "YYY"):
        path = tmp_path / f"{symbol}.csv"
        write_tick_csv(path, [r for r in rows if r[1] == symbol])
        per_symbol.append(path)
    reference = run([csv_path], config())
    assert reference[0].count(b"\n") > 300
    assert run([jsonl], config()) == reference
    assert run(per_symbol, config()) == reference


def test_wide_bar_file_replays_daily_bars() -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "sp500_nasdaq_daily.csv"
    events, rejects = run([path], config("SP500/NASDAQ", "1d", delta=1e-7))
    lines = [line for line in events.splitlines() if b'"type":"alarm"' not in line]
    assert len(lines) == 2 * 5031 and rejects == {}
    last = orjson.loads(lines[-2])
    assert last["type"] == "hedge_ratio" and last["seq"] == 5031
    assert last["ts"] == int(datetime(2019, 1, 1, tzinfo=UTC).timestamp()) * S


def test_replay_is_byte_identical_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    write_tick_csv(path, synthetic_rows(600))
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "hedger.cli",
                "replay",
                str(path),
                "--pair",
                "YYY/XXX",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "rejected: 0" in result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and len(outputs[0]) > 10_000


HANDWRITTEN_BAD_LINES = [
    "garbage",
    ",,,",
    "not-a-time,XXX,10.0,1",
    "2023-13-45T99:00:00Z,XXX,10.0,1",
    "1700000100000000000,XXX,abc,1",
    "1700000100000000000,XXX,nan,1",
    "1700000100000000000,XXX,inf,1",
    "1700000100000000000,XXX,-inf,1",
    "1700000100000000000,XXX,0,1",
    "1700000100000000000,XXX,-12.5,1",
    "1700000100000000000,ZZZ,10.0,1",
    "1700000100000000000,XXX",
    "1700000100000000000,XXX,1e400,1",
    '"1700000100000000000","XXX","1,0",1',
    "\x00\x01\x02",
]


NON_POSITIVE_LINES = {"1700000100000000000,XXX,0,1", "1700000100000000000,XXX,-12.5,1"}


@pytest.mark.parametrize("mode", ["returns", "levels"])
def test_bad_lines_are_counted_and_change_no_event(tmp_path: Path, mode: str) -> None:
    # prices <= 0 are bad only for the log modes (levels of a spread may be <= 0)
    bad_lines = [
        line
        for line in HANDWRITTEN_BAD_LINES
        if mode == "returns" or line not in NON_POSITIVE_LINES
    ]
    rows = synthetic_rows(300)
    clean = tmp_path / "clean.csv"
    write_tick_csv(clean, rows)
    lines = clean.read_text().splitlines()
    dirty_lines = lines[:1]
    for i, line in enumerate(lines[1:]):
        dirty_lines.append(line)
        if i % 50 == 7:
            dirty_lines.append(bad_lines[(i // 50) % len(bad_lines)])
    dirty = tmp_path / "dirty.csv"
    dirty.write_text("\n".join(dirty_lines) + "\n")
    clean_events, clean_rejects = run([clean], config(mode=mode))
    dirty_events, dirty_rejects = run([dirty], config(mode=mode))
    assert clean_rejects == {}
    assert sum(dirty_rejects.values()) == len(dirty_lines) - len(lines)
    assert set(dirty_rejects) == {"short_row", "bad_timestamp", "bad_price", "unknown_symbol"}
    assert dirty_events == clean_events


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    garbage=st.lists(
        st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40), max_size=30
    )
)
def test_random_garbage_never_crashes_a_replay(tmp_path: Path, garbage: list[str]) -> None:
    rows = synthetic_rows(30, seed=9)
    path = tmp_path / "fuzz.csv"
    write_tick_csv(path, rows)
    lines = path.read_text().splitlines()
    for i, junk in enumerate(garbage):
        lines.insert(1 + (i * 7919) % len(lines), junk.replace("\n", " ").replace("\r", " "))
    path.write_text("\n".join(lines) + "\n")
    events, _ = run([path], config())
    for line in events.splitlines():
        assert orjson.loads(line)["type"] in ("hedge_ratio", "spread")


def test_unreadable_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such file"):
        run([tmp_path / "missing.csv"], config())
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"this is not gzip")
    with pytest.raises(DataFileError, match="not a readable gzip file"):
        run([broken], config())
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataFileError):
        run([empty], config())


def test_timestamp_parser() -> None:
    assert TimestampParser()("1700000000.5") == 1_700_000_000_500_000_000
    assert TimestampParser()("1700000000500") == 1_700_000_000_500_000_000
    assert TimestampParser()("2023-11-14T22:13:20.123456Z") == 1_700_000_000_123_456_000
    assert TimestampParser()("2023-11-14T22:13:20.123456789Z") == 1_700_000_000_123_456_789
    assert TimestampParser()("2023-11-14T23:13:20.5+01:00") == 1_700_000_000_500_000_000
    assert TimestampParser()("2023-11-14") == 1_699_920_000 * S
    assert TimestampParser("ns")(17) == 17
    with pytest.raises(ValueError):
        TimestampParser("weeks")


def test_config_file_and_errors(tmp_path: Path) -> None:
    toml = tmp_path / "hedger.toml"
    toml.write_text(
        '[bars]\nlength = "1s"\nmax_age = "3s"\n\n[filter]\ndelta = 1e-5\nadaptive_r = false\n\n'
        '[pairs."YYY/XXX"]\nmode = "log"\n'
    )
    cfg = pipeline_config(load_toml(toml))
    assert cfg.bars.max_age_ns == 3 * S
    (spec,) = cfg.pairs
    assert (
        spec.params.mode == "log" and spec.params.delta == 1e-5 and spec.params.adaptive_r is None
    )
    for text, key in [
        ("[bars]\nlenght = '1s'\n", "bars.lenght"),
        ("[filter]\ndelta = 'big'\n[pairs.'A/B']\n", "filter.delta"),
        ("[pairs.'A/B']\nmode = 'prices'\n", "pairs.A/B.mode"),
        ("[pairs.'A/B']\ncolour = 'red'\n", "pairs.A/B.colour"),
        ("[surprise]\n", "config.surprise"),
        ("[bars]\nlength = 'soon'\n", "bars.length"),
    ]:
        toml.write_text(text)
        with pytest.raises(ConfigError) as err:
            pipeline_config(load_toml(toml))
        assert err.value.key == key, text
    toml.write_text("this is = not toml = at all")
    with pytest.raises(ConfigError, match=r"hedger\.toml"):
        load_toml(toml)


def test_read_ticks_is_lazy(tmp_path: Path) -> None:
    """A generator, not a list: the first tick arrives before the file is consumed (the
    constant-memory figures are in bench/README.md)."""
    path = tmp_path / "ticks.csv"
    write_tick_csv(path, synthetic_rows(60))
    stream = read_ticks(path, Rejects())
    first = next(iter(stream))
    assert first.symbol in ("XXX", "YYY")


def test_replay_command_line_errors(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hedger.cli", "replay", *args],
            capture_output=True,
            text=True,
            check=False,
        )

    path = tmp_path / "t.csv"
    write_tick_csv(path, synthetic_rows(10))
    for args, message in [
        ((str(path),), "no pair given"),
        ((str(path), "--pair", "YYY"), "must look like Y/X"),
        ((str(path), "--pair", "YYY/XXX", "--bar", "fast"), "bars.length"),
        ((str(path), "--pair", "YYY/XXX", "--speed", "0"), "speed"),
        ((str(tmp_path / "nope.csv"), "--pair", "YYY/XXX"), "no such file"),
        ((str(path), "--pair", "YYY/XXX", "--config", str(tmp_path / "none.toml")), "no such file"),
    ]:
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def both_paths(path: Path, cfg: PipelineConfig, ts_unit: str = "auto") -> None:
    """The compiled and the streaming replay agree on every byte and every count."""
    results = []
    for compiled in (True, False):
        out = io.BytesIO()
        summary = replay([path], cfg, out, ts_unit=ts_unit, compiled=compiled)
        results.append(
            (out.getvalue(), summary.rejects, summary.ticks, summary.bars, summary.duplicates)
        )
    assert results[0] == results[1]


EDGE_LINES = [
    "1700000050000000000,XXX,1e2,1",
    "1700000050100000000,XXX,+101.5,1",
    "1700000050200000000,XXX,1_000,1",
    "1700000050300000000,XXX,101.25,",
    "1700000050400000000,XXX,101.25,abc",
    "1700000050500000000,XXX,101.30,1\r",
    "1700000050600000000, XXX ,101.35,1",
    '"1700000050700000000","XXX","101.4","1"',
    "1700000050800000000,XXX,101.40000000000000000001,1",
    "1700000050900000000,XXX,1.0140e2,2",
    "1700000051000000000,XXX,0.00000000000000000000000101,1",
    "1700000051100000000,XÄX,101.5,1",
    "-1700000051200000000,XXX,101.5,1",
    "1700000051300000000.5,XXX,101.5,1",
    "17000000513000000000000,XXX,101.5,1",
    "1700000051400000000,XXX,NaN,1",
    "1700000051500000000,XXX,-inf,1",
    "",
    "1700000051600000000,YYY,151.0,5",
    "1700000051600000000,YYY,151.0,5",
    "1700000051600000000,YYY,151.0,6",
    "1700000051500000000,YYY,151.0,5",
    "1700000030000000000,XXX,99.0,1",
]


def test_compiled_and_streaming_paths_agree_on_clean_and_dirty_files(tmp_path: Path) -> None:
    rows = synthetic_rows(200)
    clean = tmp_path / "clean.csv.gz"
    write_tick_csv(clean, rows)
    both_paths(clean, config())
    lines = gzip.decompress(clean.read_bytes()).decode().splitlines()
    cut = next(i for i, line in enumerate(lines) if line.startswith("17000000505"))
    dirty = tmp_path / "dirty.csv"
    body = lines[:cut] + EDGE_LINES + HANDWRITTEN_BAD_LINES + lines[cut:]
    dirty.write_text("\n".join(body) + "\n")
    both_paths(dirty, config())
    old_mac = tmp_path / "cr.csv"
    old_mac.write_bytes("\r".join(body).encode() + b"\r")
    both_paths(old_mac, config())
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(
        b"\n".join(line.encode() + (b"\r" if i % 3 == 0 else b"") for i, line in enumerate(body))
    )
    both_paths(mixed, config())
    seconds = tmp_path / "seconds.csv"
    write_tick_csv(seconds, rows, "s")
    both_paths(seconds, config())
    both_paths(seconds, config(), ts_unit="s")


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    junk=st.lists(
        st.text(alphabet=st.sampled_from(list('0123456789.,-+eE_XY "\tnaif\r')), max_size=30),
        max_size=25,
    )
)
def test_compiled_path_reads_junk_exactly_like_the_streaming_path(
    tmp_path: Path, junk: list[str]
) -> None:
    rows = synthetic_rows(20, seed=11)
    path = tmp_path / "junk.csv"
    write_tick_csv(path, rows)
    lines = path.read_text().splitlines()
    for i, text in enumerate(junk):
        lines.insert(1 + (i * 31) % len(lines), text.replace("\r", ""))
    path.write_text("\n".join(lines) + "\n")
    both_paths(
        path, pipeline_config({}, extra_pairs=("YYY/XXX", "XX/YY"), bar_overrides={"length": "1s"})
    )
