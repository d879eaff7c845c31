"""TOML configuration shared by ``hedger replay`` and the daemon, validated at load into
frozen dataclasses. Unknown keys are errors; every error names its key.

```toml
[bars]
length = "1s"          # 250ms, 1s, 1min, 1h, 1d
max_age = "5s"         # a leg older than this at a bar close is stale (default: the length)
source = "trade"       # "trade" or "mid"

[filter]               # defaults for every pair
mode = "levels"        # levels, log, changes, returns
delta = 1e-4           # or trans_cov = [[..], [..]]
obs_cov = 1e-3
adaptive_r = 0.99      # forgetting factor, or false for a fixed R
init = "ols"           # "ols", "diffuse", or "given" with mean = [..] and cov = [[..]]
warmup = 20            # observations of the OLS warm-up (or before a diffuse start is warm)
intercept = true       # default: the mode's

[pairs."AAPL/SPY"]     # one table per pair; keys as in [filter] override the defaults
delta = 1e-5
```
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hedger.core.actors import PairSpec
from hedger.core.bars import parse_duration_ns
from hedger.core.ticks import TickKind
from hedger.core.topics import PairId
from hedger.engine import DiffuseInit, FilterParams, GivenInit, OlsWarmupInit
from hedger.errors import ConfigError

FILTER_KEYS = frozenset(
    {
        "mode",
        "delta",
        "trans_cov",
        "obs_cov",
        "adaptive_r",
        "init",
        "warmup",
        "intercept",
        "mean",
        "cov",
        "diffuse_variance",
    }
)
BAR_KEYS = frozenset({"length", "max_age", "source"})
DOCUMENT_SECTIONS = frozenset(
    {"bars", "filter", "pairs", "feeds", "bus", "daemon", "logging", "matrix", "refit"}
)
"""Every top-level table of a config file: the pipeline's and the daemon's, so one file serves
replay and daemon."""


@dataclass(frozen=True, slots=True)
class BarSettings:
    """Bar length and staleness, in ns, and the price source."""

    length_ns: int = 1_000_000_000
    max_age_ns: int = 1_000_000_000
    source: TickKind = TickKind.TRADE


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """What a replay or a daemon runs: bars and pairs."""

    bars: BarSettings
    pairs: tuple[PairSpec, ...]


def _unknown(section: str, table: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"{section}.{key}", f"unknown key (known: {', '.join(sorted(allowed))})"
            )


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"must be a number, got {value!r}")
    return float(value)


def filter_params(settings: Mapping[str, Any], n_legs: int, section: str) -> FilterParams:
    """Build :class:`FilterParams` from a ``[filter]``-style table (already merged)."""
    _unknown(section, settings, FILTER_KEYS)
    kwargs: dict[str, Any] = {"n_legs": n_legs}
    if "mode" in settings:
        kwargs["mode"] = settings["mode"]
    if "delta" in settings:
        kwargs["delta"] = _number(f"{section}.delta", settings["delta"])
    if "trans_cov" in settings:
        kwargs["trans_cov"] = tuple(tuple(row) for row in settings["trans_cov"])
    if "obs_cov" in settings:
        kwargs["obs_cov"] = _number(f"{section}.obs_cov", settings["obs_cov"])
    if "adaptive_r" in settings:
        value = settings["adaptive_r"]
        kwargs["adaptive_r"] = None if value is False else _number(f"{section}.adaptive_r", value)
    if "intercept" in settings:
        if not isinstance(settings["intercept"], bool):
            raise ConfigError(f"{section}.intercept", "must be true or false")
        kwargs["intercept"] = settings["intercept"]
    kwargs["init"] = _init(settings, section)
    try:
        return FilterParams(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{section}.{exc.key}", exc.problem) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(section, str(exc)) from None


def _init(settings: Mapping[str, Any], section: str) -> GivenInit | DiffuseInit | OlsWarmupInit:
    kind = settings.get("init", "ols")
    warmup = settings.get("warmup")
    if warmup is not None and (
        isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0
    ):
        raise ConfigError(f"{section}.warmup", f"must be an integer >= 0, got {warmup!r}")
    if kind == "ols":
        variance = _number(f"{section}.diffuse_variance", settings.get("diffuse_variance", 1e6))
        return OlsWarmupInit(n_obs=20 if warmup is None else warmup, diffuse_variance=variance)
    if kind == "diffuse":
        variance = _number(f"{section}.diffuse_variance", settings.get("diffuse_variance", 1e6))
        return DiffuseInit(variance=variance, warmup_steps=warmup)
    if kind == "given":
        if "mean" not in settings or "cov" not in settings:
            raise ConfigError(f"{section}.init", "init = 'given' needs mean and cov")
        return GivenInit(
            mean=tuple(settings["mean"]),
            cov=tuple(tuple(row) for row in settings["cov"]),
            warmup_steps=0 if warmup is None else warmup,
        )
    raise ConfigError(f"{section}.init", f"must be ols, diffuse or given, got {kind!r}")


def bar_settings(table: Mapping[str, Any]) -> BarSettings:
    """Build :class:`BarSettings` from a ``[bars]`` table."""
    _unknown("bars", table, BAR_KEYS)
    length = parse_duration_ns(str(table.get("length", "1s")), "bars.length")
    max_age = (
        parse_duration_ns(str(table["max_age"]), "bars.max_age") if "max_age" in table else length
    )
    source_name = table.get("source", "trade")
    if source_name not in ("trade", "mid"):
        raise ConfigError("bars.source", f"must be trade or mid, got {source_name!r}")
    source = TickKind.TRADE if source_name == "trade" else TickKind.QUOTE
    return BarSettings(length, max_age, source)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing or malformed file is a :class:`ConfigError`."""
    try:
        with Path(path).open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config", f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path}: {exc}") from None


def pipeline_config(
    document: Mapping[str, Any],
    *,
    extra_pairs: tuple[str, ...] = (),
    filter_overrides: Mapping[str, Any] | None = None,
    bar_overrides: Mapping[str, Any] | None = None,
    allowed_sections: frozenset[str] = DOCUMENT_SECTIONS,
) -> PipelineConfig:
    """Build the pipeline's configuration from a TOML document plus command-line additions
    (pairs named on the command line, and overrides of [filter] and [bars] keys). The
    daemon's own sections ([feeds], [bus], [daemon], [logging], [refit], [matrix]) are allowed
    and left to :mod:`hedger.config.daemon`, so one file serves replay and daemon."""
    _unknown("config", {k: v for k, v in document.items()}, allowed_sections)
    bars = bar_settings({**document.get("bars", {}), **(bar_overrides or {})})
    defaults = {**document.get("filter", {}), **(filter_overrides or {})}
    _unknown("filter", defaults, FILTER_KEYS)
    tables: dict[str, dict[str, Any]] = {}
    pairs_doc = document.get("pairs", {})
    if not isinstance(pairs_doc, dict):
        raise ConfigError("pairs", "must be a table of pair tables")
    for name, table in pairs_doc.items():
        if not isinstance(table, dict):
            raise ConfigError(f"pairs.{name}", "must be a table")
        tables[name] = {**defaults, **table, **(filter_overrides or {})}
    for name in extra_pairs:
        tables.setdefault(name, dict(defaults))
    specs = []
    for name, settings in tables.items():
        pair = PairId.parse(name)
        specs.append(PairSpec(pair, filter_params(settings, len(pair.xs), f"pairs.{name}")))
    if not specs:
        raise ConfigError("pairs", 'no pair given (use --pair Y/X or a [pairs."Y/X"] table)')
    if bars.max_age_ns < 0 or not math.isfinite(bars.max_age_ns):
        raise ConfigError("bars.max_age", "must be >= 0")
    return PipelineConfig(bars, tuple(specs))
