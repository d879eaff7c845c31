"""Sharding by rendezvous hashing (:mod:`hedger.core.shards`): every pair has exactly one
shard, computed from its id alone; going from N to N + 1 shards moves only the pairs the new
shard wins (about 1/(N + 1)); ``[shard]`` and ``hedger run --shard i/N`` run a daemon on its
part of the pairs; bad shards are one line."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedger.config.daemon import daemon_config, with_shard
from hedger.core.shards import Shard, owned, shard_of
from hedger.errors import ConfigError
from tests.conftest import run_hedger

PAIR_IDS = [f"S{i:04d}/H{(i * 7) % 97:02d}" for i in range(3000)]


def test_each_pair_has_one_shard_and_the_shards_share_the_pairs_about_evenly() -> None:
    for count in (1, 2, 3, 7):
        parts = [owned(PAIR_IDS, Shard(i, count)) for i in range(count)]
        assert sorted(p for part in parts for p in part) == sorted(PAIR_IDS)
        for part in parts:
            assert abs(len(part) - len(PAIR_IDS) / count) < 0.1 * len(PAIR_IDS) / count


def test_a_new_shard_takes_pairs_only_from_the_others_about_one_in_n_plus_one() -> None:
    for count in (2, 3, 5):
        before = {p: shard_of(p, count) for p in PAIR_IDS}
        after = {p: shard_of(p, count + 1) for p in PAIR_IDS}
        moved = [p for p in PAIR_IDS if before[p] != after[p]]
        assert all(after[p] == count for p in moved)  # only to the new shard
        share = len(moved) / len(PAIR_IDS)
        assert abs(share - 1 / (count + 1)) < 0.03, share


@settings(max_examples=200)
@given(pair=st.text(min_size=1, max_size=30), count=st.integers(1, 20))
def test_the_shard_of_a_pair_depends_on_its_id_alone_and_is_in_range(pair: str, count: int) -> None:
    shard = shard_of(pair, count)
    assert 0 <= shard < count and shard == shard_of(pair, count)
    assert Shard(shard, count).owns(pair)


def test_names_with_dots_and_spaces_hash_like_any_other() -> None:
    ids = ["BRK.B/SPY", "BRK B/SPY", "BRK%2EB/SPY"]
    assert len({shard_of(p, 1000) for p in ids}) == 3  # distinct ids, independent shards


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("3/3", "0 <= i < N"),
        ("1", "i/N such as 0/3"),
        ("-1/2", "i/N such as 0/3"),
        ("0/0", "i < N"),
    ],
)
def test_a_bad_shard_is_a_config_error(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Shard.parse(text)


CONFIG = """
[pairs."AAA/BBB"]
[pairs."CCC/BBB"]
[pairs."DDD/BBB"]
[pairs."EEE/BBB"]
[pairs."FFF/BBB"]
[pairs."GGG/BBB"]
[[feeds]]
kind = "synthetic"
"""


def test_the_shards_of_a_config_run_its_pairs_between_them_once_each() -> None:
    every = [str(spec.pair) for spec in daemon_config(tomllib.loads(CONFIG)).pipeline.pairs]
    parts: list[list[str]] = []
    for i in range(3):
        try:
            config = daemon_config(tomllib.loads(CONFIG + f"[shard]\nindex = {i}\ncount = 3\n"))
        except ConfigError as exc:  # a shard may own nothing of six pairs
            assert "runs none" in str(exc)
            parts.append([])
            continue
        assert config.shard == Shard(i, 3)
        parts.append([str(spec.pair) for spec in config.pipeline.pairs])
    assert sorted(p for part in parts for p in part) == sorted(every)
    assert parts == [owned(every, Shard(i, 3)) for i in range(3)]


def test_shard_tables_and_options_that_cannot_be_used_are_one_line(tmp_path: Path) -> None:
    for table, key in (
        ("[shard]\nindex = 3\ncount = 3\n", "shard.index"),
        ("[shard]\nindex = 0\ncount = 0\n", "shard.count"),
        ("[shard]\nindex = 0\n", "shard.count"),
        ("[shard]\nindex = 0\ncount = 2\nweight = 1\n", "shard.weight"),
    ):
        with pytest.raises(ConfigError) as err:
            daemon_config(tomllib.loads(CONFIG + table))
        assert err.value.key == key, table
    one = tomllib.loads('[pairs."AAA/BBB"]\n[[feeds]]\nkind = "synthetic"\n')
    config = daemon_config(one)
    lonely = next(i for i in range(2) if not Shard(i, 2).owns("AAA/BBB"))
    with pytest.raises(ConfigError, match="runs none of the 1 pair"):
        with_shard(config, Shard(lonely, 2))
    path = tmp_path / "hedger.toml"
    path.write_text(CONFIG)
    for bad in ("5/2", "two", "1/x"):
        result = run_hedger("run", "--config", str(path), "--shard", bad, timeout=60)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().startswith("hedger run: shard: "), result.stderr
        assert "Traceback" not in result.stderr
