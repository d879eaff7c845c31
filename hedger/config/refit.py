"""The ``[refit]`` section: when the daemon refits a pair's noise, and on how much history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from msgspec import Meta

from hedger.config.schema import Table, decode, duration_ns
from hedger.engine.calibrate import MIN_COUNTED, WARMUP
from hedger.errors import ConfigError

MIN_BARS = WARMUP + MIN_COUNTED + 1
"""The fewest bars a fit can use (a differenced mode loses the first bar to the transform)."""
Bars = Annotated[int, Meta(ge=MIN_BARS)]


class RefitTable(Table, frozen=True):
    """The ``[refit]`` table as written: ``every`` is a bar count or a duration of bar time."""

    every: Annotated[
        Annotated[int, Meta(ge=1)] | str,
        Meta(description="an integer >= 1 (bars) or a duration like 4h"),
    ] = 500
    window: Bars = 2000
    min_bars: Bars | None = None


@dataclass(frozen=True, slots=True)
class RefitSettings:
    """When and on what to refit.

    every_bars: refit a pair after this many of its bars (or None);
    every_ns: or after this much bar time (ns) since its last refit (or None); exactly one
        of the two is set.
    window: bars of history kept per pair and used by a fit.
    min_bars: bars of history before the first refit (>= :data:`MIN_BARS`, <= window).
    """

    every_bars: int | None = 500
    every_ns: int | None = None
    window: int = 2000
    min_bars: int = 250


def refit_settings(table: Mapping[str, Any]) -> RefitSettings:
    """Validate a ``[refit]`` table (unknown keys are errors)."""
    refit = decode(table, RefitTable, "refit")
    every_bars: int | None = None
    every_ns: int | None = None
    if isinstance(refit.every, str):
        every_ns = duration_ns(refit.every, "refit.every")
    else:
        every_bars = refit.every
    min_bars = min(250, refit.window) if refit.min_bars is None else refit.min_bars
    if min_bars > refit.window:
        raise ConfigError("refit.min_bars", f"must be <= window ({refit.window}), got {min_bars}")
    return RefitSettings(every_bars, every_ns, refit.window, min_bars)
