"""The ``[control]`` section: its defaults with and without the table, one-line errors naming
the key, the token never shown, and one file still serving replay and daemon."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hedger.config.control import DEFAULT_HISTORY, ControlSettings, control_settings, pair_spec
from hedger.config.daemon import daemon_config
from hedger.config.pipeline import pipeline_config
from hedger.engine import InputMode
from hedger.errors import ConfigError

BASE = '[pairs."A/B"]\n[[feeds]]\nkind = "synthetic"\ny = "A"\nxs = ["B"]\n'


def config(extra: str) -> ControlSettings:
    return daemon_config(tomllib.loads(BASE + extra)).control


def test_without_the_table_control_is_websocket_only_with_the_default_history() -> None:
    settings = config('[filter]\ndelta = 1e-5\nmode = "log"\n')
    assert settings.enabled and not settings.mqtt and settings.token is None
    assert settings.history_bars == DEFAULT_HISTORY
    assert settings.filter_defaults == {"delta": 1e-5, "mode": "log"}


def test_the_table_turns_mqtt_control_on_unless_told_otherwise() -> None:
    assert config("[control]\n").mqtt
    assert not config("[control]\nmqtt = false\n").mqtt
    off = config("[control]\nenabled = false\n")
    assert not off.enabled and not off.mqtt
    assert config("[control]\nhistory = 0\n").history_bars == 0


def test_the_token_comes_from_the_file_or_the_environment_and_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTL_TOKEN", "from-the-env-s3cret")
    settings = config('[control]\ntoken_env = "CTL_TOKEN"\n')
    assert settings.token == "from-the-env-s3cret"
    assert "s3cret" not in repr(settings)
    monkeypatch.delenv("CTL_TOKEN")
    with pytest.raises(ConfigError) as err:
        config('[control]\ntoken_env = "CTL_TOKEN"\n')
    assert str(err.value) == "control.token_env: environment variable CTL_TOKEN is not set"
    with pytest.raises(ConfigError) as err:
        config('[control]\ntoken = ""\n')
    assert err.value.key == "control.token"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("colour = 1", "control.colour"),
        ("history = -1", "control.history"),
        ("history = 10000000", "control.history"),
        ('enabled = "yes"', "control.enabled"),
    ],
)
def test_bad_control_tables_name_the_key(table: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(f"[control]\n{table}\n")
    assert err.value.key == key
    assert "\n" not in str(err.value)


def test_a_daemon_file_with_control_still_serves_replay(tmp_path: Path) -> None:
    document = tomllib.loads(BASE + "[control]\nhistory = 10\n")
    assert [str(s.pair) for s in pipeline_config(document).pairs] == ["A/B"]


def test_a_run_time_pair_is_a_pairs_table_over_the_filter_defaults() -> None:
    spec = pair_spec("Y/X1+X2", {"obs_cov": 0.5}, {"mode": "returns", "delta": 1e-6})
    assert spec.params.n_legs == 2 and spec.params.mode is InputMode.RETURNS
    assert (spec.params.delta, spec.params.obs_cov) == (1e-6, 0.5)
    assert spec.params.outlier_z == 6.0  # the daemon's gate, as for the file's pairs
    with pytest.raises(ConfigError) as err:
        pair_spec("Y/X", {"warmup": -1}, {})
    assert err.value.key == "pairs.Y/X.warmup"
    with pytest.raises(ConfigError) as err:
        pair_spec("Y/X", {"mode": "levels"}, {"colour": 1})
    assert err.value.key.startswith("pairs.Y/X")


def test_control_settings_without_a_document_are_the_defaults() -> None:
    assert control_settings({}) == ControlSettings()


def test_a_run_time_pair_takes_a_position_and_the_lots_of_its_hedges() -> None:
    spec = pair_spec("Y/X1+X2", {}, {}, lots={"X2": 100}, position={"notional": 5e4})
    assert spec.lots == (1, 100)
    assert spec.position is not None and spec.position.notional == 5e4
    assert pair_spec("Y/X", {}, {}).position is None
    with pytest.raises(ConfigError) as err:
        pair_spec("Y/X", {}, {}, position=True)
    assert err.value.key == "positions.Y/X"
