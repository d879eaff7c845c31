"""``calibrate --write``'s edit of a config file: the pair's table goes in whatever form
``[pairs]`` is written in, and everything else (comments included) stays as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from hedger.config.edit import put_pair_table, write_pair_table
from hedger.config.pipeline import load_toml, pipeline_config
from hedger.engine import InputMode
from hedger.errors import ConfigError

TABLE = (
    '[pairs."A/B"]\n'
    "# hedger calibrate: prices.csv, 500 bars\n"
    'mode = "changes"\n'
    "intercept = false\n"
    "delta = 2.5e-06\n"
    "obs_cov = 0.0625\n"
    "adaptive_r = false\n"
    'init = "ols"\n'
    "warmup = 20\n"
)

FORMS = {
    "header": (
        '# keep: the file\'s own words\n[bars]\nlength = "1d"\n\n'
        '[pairs."A/B"]\ndelta = 1e-4\ntrans_cov = [[1e-4, 0.0], [0.0, 1e-4]]\n\n'
        '[pairs."C/D"]  # keep: after the header\nmode = "log"\n'
    ),
    "literal key": "[pairs.'A/B']  # replaced\ndelta = 1e-4\n\n# keep: between\n"
    "[pairs.'C/D']\nmode = 'log'\n",
    "dotted under [pairs]": (
        '[pairs]\n# keep: inside [pairs]\n"A/B".delta = 1e-4\n"C/D".mode = "log"  # keep: C/D\n'
        '"A/B".obs_cov = 1.0\n\n[bars]\nlength = "1d"\n'
    ),
    "inline under [pairs]": (
        '[pairs]\n"C/D" = {mode = "log"}  # keep: C/D\n"A/B" = {delta = 1e-4, mean = [0, 1]}\n'
        '"E/F" = {mode = "log"}\n# keep: the end\n'
    ),
    "dotted at the top": (
        '# keep: dotted from the top\npairs."A/B".delta = 1e-4\npairs."C/D".mode = "log"\n'
        '[bars]\nlength = "1d"\n'
    ),
    "inline at the top": 'pairs = {"A/B" = {delta = 1e-4}, "C/D" = {mode = "log"}}  # keep: top\n',
    "out of order": (
        '[pairs."A/B"]\ndelta = 1e-4\n\n[bars]  # keep: bars\nlength = "1d"\n\n'
        '[pairs."C/D"]\nmode = "log"\n'
    ),
    "new pair after others": '[pairs]\n"C/D" = {mode = "log"}  # keep: C/D\n',
    "new pair, dotted others": '[pairs]\n"C/D".mode = "log"  # keep: C/D\n',
}


@pytest.mark.parametrize("form", FORMS)
def test_the_pair_table_goes_into_any_form_of_pairs(form: str, tmp_path: Path) -> None:
    path = tmp_path / "hedger.toml"
    path.write_text(FORMS[form])
    write_pair_table(path, "A/B", TABLE)
    text = path.read_text()
    kept = [line.split("# keep", 1)[1] for line in FORMS[form].splitlines() if "# keep" in line]
    assert kept and all(f"# keep{rest}" in text for rest in kept), text
    config = pipeline_config(load_toml(path))
    params = {str(spec.pair): spec.params for spec in config.pairs}
    assert set(params) == {"A/B", "C/D"} | ({"E/F"} if "E/F" in FORMS[form] else set())
    new = params["A/B"]
    assert new.mode is InputMode.CHANGES and not new.has_intercept
    assert new.delta == 2.5e-06 and new.obs_cov == 0.0625 and new.adaptive_r is None
    assert params["C/D"].mode is InputMode.LOG
    if form != "inline at the top":  # an inline table holds no comment lines
        assert "# hedger calibrate: prices.csv, 500 bars" in text
    assert load_toml(path)["pairs"]["A/B"] == load_toml(_written(tmp_path, TABLE))["pairs"]["A/B"]


def _written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "expected.toml"
    path.write_text(text)
    return path


def test_a_header_table_is_replaced_where_it_stands() -> None:
    text = '[pairs."A/B"]\ndelta = 1e-4 # old\n\n[pairs."C/D"]\nmode = "log"\n'
    assert put_pair_table(text, "A/B", TABLE) == TABLE + '\n[pairs."C/D"]\nmode = "log"\n'
    assert put_pair_table("", "A/B", TABLE) == TABLE
    inline = put_pair_table('[pairs]\n"A/B" = {delta = 1e-4}\n"C/D" = {}\n', "A/B", TABLE)
    assert inline.splitlines()[1].startswith('"A/B" = {mode = "changes", intercept = false,')
    assert inline.splitlines()[1].endswith("} # hedger calibrate: prices.csv, 500 bars")


def test_a_file_that_is_not_toml_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "hedger.toml"
    path.write_text("this is = not toml\n")
    with pytest.raises(ConfigError, match="would not be valid TOML") as err:
        write_pair_table(path, "A/B", TABLE)
    assert err.value.key == "write" and str(path) in str(err.value)
    assert "\n" not in str(err.value)
    assert path.read_text() == "this is = not toml\n"
    assert [p.name for p in tmp_path.iterdir()] == ["hedger.toml"]
