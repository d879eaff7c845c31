"""A pair's ``combine`` table: hedge it with a combination of hedges (``hedger.core.combined``).

```toml
[pairs."VLUE/SIZE"]                # the pair's own filter: member "self"
mode = "returns"
delta = 0.00038
obs_cov = 2.5e-05

[pairs."VLUE/SIZE".combine]
members = ["self", "seed", "chan", "rolling"]   # the default: what hedger evaluate recommends
rolling_window = 250     # bars of rolling OLS on price changes (needed with "rolling")
weighting = "minvar"     # or "equal"
half_life = 500          # bars: how fast old hedged P&L is forgotten by the weights
shrink = 1.0             # towards equal weights (0: plain minimum variance)
long_only = true         # no negative weight
min_obs = 20             # bars of every member's P&L before the weights move from equal
```

``seed`` is the seed article's filter (Q = I, R = 1, prior N(0, I)) and ``chan`` Chan's
(delta = 1e-4, R = 1e-3), both in the pair's mode and with its innovation gate. ``hedger
calibrate --write`` writes this table with the window it chose in sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any, Literal

from msgspec import Meta

from hedger.config.schema import Table, decode
from hedger.core.combined import ROLLING, SELF, CombineSpec
from hedger.engine.combine import CombineParams
from hedger.engine.params import FilterParams
from hedger.engine.presets import chan_params, seed_params
from hedger.errors import ConfigError

_DEFAULTS = CombineParams()
PRESETS = {"seed": seed_params, "chan": chan_params}
"""The Kalman members besides ``self``, by name: their parameters in a mode."""
MEMBERS = (SELF, *PRESETS, ROLLING)
"""Every member a combination can have, in weight order (also the default)."""


class CombineTable(Table, frozen=True):
    """A ``combine`` table as written (every key optional)."""

    members: tuple[str, ...] = MEMBERS
    rolling_window: Annotated[int, Meta(ge=3)] | None = None
    weighting: Literal["equal", "minvar"] = _DEFAULTS.weighting
    half_life: float = _DEFAULTS.half_life
    shrink: float = _DEFAULTS.shrink
    long_only: bool = _DEFAULTS.long_only
    min_obs: int = _DEFAULTS.min_obs


def combine_spec(table: Mapping[str, Any], own: FilterParams, section: str) -> CombineSpec:
    """The combination of a pair whose own filter is ``own``, from its ``combine`` table
    (``section`` names it in errors)."""
    t = decode(table, CombineTable, section)
    unknown = [name for name in t.members if name not in MEMBERS]
    if unknown:
        raise ConfigError(
            f"{section}.members", f"unknown member {unknown[0]!r}; members are {list(MEMBERS)}"
        )
    if len(set(t.members)) != len(t.members):
        raise ConfigError(f"{section}.members", "names a member twice")
    if SELF not in t.members:
        raise ConfigError(
            f"{section}.members",
            "must include 'self': the pair's own filter gives its beta, spread and alarms",
        )
    if len(t.members) < 2:
        raise ConfigError(f"{section}.members", "a combination needs at least two members")
    rolling = ROLLING in t.members
    if t.rolling_window is not None and not rolling:
        raise ConfigError(
            f"{section}.rolling_window", "is given but 'rolling' is not one of the members"
        )
    if rolling and t.rolling_window is None:
        raise ConfigError(
            f"{section}.rolling_window",
            "is needed with the 'rolling' member: bars of rolling OLS on price changes "
            "(hedger calibrate --write chooses it)",
        )
    kalman = tuple(
        (name, replace(preset(own.mode), outlier_z=own.outlier_z, outlier_run=own.outlier_run))
        for name, preset in PRESETS.items()
        if name in t.members
    )
    try:
        params = CombineParams(
            weighting=t.weighting,
            half_life=t.half_life,
            shrink=t.shrink,
            long_only=t.long_only,
            min_obs=t.min_obs,
        )
    except ConfigError as exc:
        raise ConfigError(f"{section}.{exc.key}", exc.problem) from None
    return CombineSpec(kalman, t.rolling_window if rolling else None, params)
