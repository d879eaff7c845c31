"""TOML configuration shared by ``hedger replay`` and the daemon, validated at load into
frozen dataclasses. Unknown keys are errors; every error names its key.

```toml
[bars]
length = "1s"          # 250ms, 1s, 1min, 1h, 1d
max_age = "5s"         # a leg older than this at a bar close is stale (default: the length)
source = "trade"       # "trade" or "mid"
max_skew = "5s"        # a live tick stamped more than this after its receive time: `future`

[filter]               # defaults for every pair
mode = "levels"        # levels, log, changes, returns
delta = 1e-4           # or trans_cov = [[..], [..]]
obs_cov = 1e-3
adaptive_r = 0.99      # forgetting factor, or false for a fixed R
init = "ols"           # "ols", "diffuse", or "given" with mean = [..] and cov = [[..]]
warmup = 20            # observations of the OLS warm-up (or before a diffuse start is warm)
intercept = true       # default: the mode's
outlier_z = 6          # the innovation gate: refuse an observation with |z| above this, or false
outlier_run = 5        # this many outliers in a row are a new level: the pair starts again

[pairs."AAPL/SPY"]     # one table per pair; keys as in [filter] override the defaults
delta = 1e-5

[pairs."AAPL/SPY".combine]   # optional: hedge with a combination (hedger.config.combine)
rolling_window = 250

[positions]            # optional: shares of Y held (or { notional = ... }): events carry
"AAPL/SPY" = 1000      # hedge_qty, the integer shares of each X to hold against it

[lots]                 # lot size of a hedge symbol in shares (default 1)
SPY = 1
```
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from msgspec import Meta

from hedger.config.alarm import with_alarm
from hedger.config.combine import combine_spec
from hedger.config.positions import with_positions
from hedger.config.schema import (
    Duration,
    Table,
    check_keys,
    decode,
    duration_ns,
    known_keys,
    sub_table,
)
from hedger.core.actors import PairSpec
from hedger.core.bars import DEFAULT_MAX_SKEW_NS
from hedger.core.combined import CombineSpec
from hedger.core.ticks import TickKind
from hedger.core.topics import PairId
from hedger.engine import DiffuseInit, FilterParams, GivenInit, OlsWarmupInit
from hedger.errors import ConfigError

Matrix = Annotated[tuple[tuple[float, ...], ...], Meta(description="a matrix of numbers")]

DEFAULT_OUTLIER_Z = 6.0
"""The innovation gate of every pair a replay or the daemon runs, unless told otherwise: on the
shipped daily data it refused 0.01-0.18 % of warm bars, on the synthetic market none, while a
single print 10x off scores |z| in the thousands (``docs/reliability.md``)."""


class FilterTable(Table, frozen=True):
    """A ``[filter]``-style table as written (None: not given, the engine's default)."""

    mode: str | None = None
    delta: float | None = None
    trans_cov: Matrix | None = None
    obs_cov: float | None = None
    adaptive_r: Annotated[float | Literal[False], Meta(description="a number or false")] | None = (
        None
    )
    init: Literal["ols", "diffuse", "given"] = "ols"
    warmup: Annotated[int, Meta(ge=0)] | None = None
    intercept: bool | None = None
    mean: tuple[float, ...] | None = None
    cov: Matrix | None = None
    diffuse_variance: float = 1e6
    outlier_z: Annotated[float | Literal[False], Meta(description="a number >= 1 or false")] = (
        DEFAULT_OUTLIER_Z
    )
    outlier_run: Annotated[int, Meta(ge=1)] = 5


class BarsTable(Table, frozen=True):
    """The ``[bars]`` table as written."""

    length: Duration = "1s"
    max_age: Duration | None = None
    source: Literal["trade", "mid"] = "trade"
    max_skew: Duration = "5s"


FILTER_KEYS = known_keys(FilterTable)
DOCUMENT_SECTIONS = frozenset(
    {
        "bars", "filter", "pairs", "positions", "lots", "alarm",
        "feeds", "bus", "daemon", "logging", "matrix", "refit", "control", "state", "shard",
    }
)  # fmt: skip
"""Every top-level table of a config file: the pipeline's and the daemon's, so one file serves
replay and daemon."""


@dataclass(frozen=True, slots=True)
class BarSettings:
    """Bar length and staleness, in ns, the price source, and how far a live tick's event time
    may be ahead of its receive time (ns)."""

    length_ns: int = 1_000_000_000
    max_age_ns: int = 1_000_000_000
    source: TickKind = TickKind.TRADE
    max_skew_ns: int = DEFAULT_MAX_SKEW_NS


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """What a replay or a daemon runs: bars and pairs."""

    bars: BarSettings
    pairs: tuple[PairSpec, ...]


def filter_params(settings: Mapping[str, Any], n_legs: int, section: str) -> FilterParams:
    """Build :class:`FilterParams` from a ``[filter]``-style table (already merged)."""
    table = decode(settings, FilterTable, section)
    kwargs: dict[str, Any] = {"n_legs": n_legs, "init": _init(table, section)}
    for key in ("mode", "delta", "trans_cov", "obs_cov", "intercept"):
        if getattr(table, key) is not None:
            kwargs[key] = getattr(table, key)
    if table.adaptive_r is not None:
        kwargs["adaptive_r"] = None if table.adaptive_r is False else table.adaptive_r
    kwargs["outlier_z"] = None if table.outlier_z is False else table.outlier_z
    kwargs["outlier_run"] = table.outlier_run
    try:
        return FilterParams(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{section}.{exc.key}", exc.problem) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(section, str(exc)) from None


def _init(table: FilterTable, section: str) -> GivenInit | DiffuseInit | OlsWarmupInit:
    if table.init == "ols":
        n_obs = 20 if table.warmup is None else table.warmup
        return OlsWarmupInit(n_obs=n_obs, diffuse_variance=table.diffuse_variance)
    if table.init == "diffuse":
        return DiffuseInit(variance=table.diffuse_variance, warmup_steps=table.warmup)
    if table.mean is None or table.cov is None:
        raise ConfigError(f"{section}.init", "init = 'given' needs mean and cov")
    warmup = 0 if table.warmup is None else table.warmup
    return GivenInit(mean=table.mean, cov=table.cov, warmup_steps=warmup)


_INIT_KEYS = {
    "init.n_obs": "warmup",
    "init.warmup_steps": "warmup",
    "init.variance": "diffuse_variance",
}


def _where_from(
    exc: ConfigError, section: str, own: Mapping[str, Any], overrides: Mapping[str, Any]
) -> ConfigError:
    """``exc`` (raised for a pair's merged settings) named where the value came from: a
    command-line override as its option (``--warmup``), a value the pair's table does not set
    as ``filter.<key>``, else the pair's key as it was."""
    suffix = exc.key.removeprefix(section + ".")
    key = _INIT_KEYS.get(suffix, suffix.split(".")[0])
    if key in overrides:
        return ConfigError("--" + key.replace("_", "-"), exc.problem)
    if key in FILTER_KEYS and key not in own and suffix != exc.key:
        return ConfigError(f"filter.{key if suffix in _INIT_KEYS else suffix}", exc.problem)
    return exc


def _combination(
    pairs_doc: Mapping[str, Any], name: str, pair: PairId, params: FilterParams
) -> CombineSpec | None:
    """The pair's ``combine`` table, if it has one."""
    if name not in pairs_doc or "combine" not in pairs_doc[name]:
        return None
    section = f"pairs.{name}.combine"
    table = pairs_doc[name]["combine"]
    if not isinstance(table, dict):
        raise ConfigError(section, "must be a table")
    if len(pair.xs) != 1:
        raise ConfigError(section, "a combined hedge needs a pair (one hedge symbol)")
    return combine_spec(table, params, section)


def bar_settings(table: Mapping[str, Any]) -> BarSettings:
    """Build :class:`BarSettings` from a ``[bars]`` table."""
    bars = decode(table, BarsTable, "bars")
    length = duration_ns(bars.length, "bars.length")
    max_age = length if bars.max_age is None else duration_ns(bars.max_age, "bars.max_age")
    source = TickKind.TRADE if bars.source == "trade" else TickKind.QUOTE
    return BarSettings(length, max_age, source, duration_ns(bars.max_skew, "bars.max_skew"))


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing or malformed file is a :class:`ConfigError`."""
    try:
        with Path(path).open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config", f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError("config", f"{path}: is a directory, not a TOML file") from None
    except UnicodeDecodeError:
        raise ConfigError("config", f"{path}: is not UTF-8 text (a binary file?)") from None
    except OSError as exc:
        raise ConfigError("config", f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path}: not valid TOML: {exc}") from None


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
    check_keys("config", document, allowed_sections)
    bars = bar_settings({**sub_table(document, "bars"), **(bar_overrides or {})})
    defaults = {**sub_table(document, "filter"), **(filter_overrides or {})}
    # [filter]'s values are checked in each pair they reach, and named there
    check_keys("filter", defaults, FILTER_KEYS)
    # keyed by the pair's id, so that "BRK B/SPY" on the command line is the pair a
    # calibrate --write put in the file as [pairs."BRK%20B/SPY"]
    tables: dict[str, tuple[str, dict[str, Any]]] = {}
    pairs_doc = document.get("pairs", {})
    if not isinstance(pairs_doc, dict):
        raise ConfigError("pairs", "must be a table of pair tables")
    for name in pairs_doc:
        table = dict(sub_table(pairs_doc, name, "pairs"))
        table.pop("combine", None)  # the pair's combination, read below
        pair_key = str(PairId.parse(name))
        if pair_key in tables:
            raise ConfigError(f"pairs.{name}", f"the same pair as [pairs.{tables[pair_key][0]!r}]")
        tables[pair_key] = (name, {**defaults, **table, **(filter_overrides or {})})
    for name in extra_pairs:
        tables.setdefault(str(PairId.parse(name)), (name, dict(defaults)))
    specs = []
    for name, settings in tables.values():
        pair = PairId.parse(name)
        try:
            params = filter_params(settings, len(pair.xs), f"pairs.{name}")
        except ConfigError as exc:
            own = sub_table(pairs_doc, name, "pairs") if name in pairs_doc else {}
            raise _where_from(exc, f"pairs.{name}", own, filter_overrides or {}) from None
        specs.append(PairSpec(pair, params, combine=_combination(pairs_doc, name, pair, params)))
    if not specs:
        raise ConfigError("pairs", 'no pair given (use --pair Y/X or a [pairs."Y/X"] table)')
    return PipelineConfig(bars, tuple(with_alarm(document, with_positions(document, specs))))
