"""The ``[refit]`` section: when the daemon refits a pair's noise, and on how much history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hedger.core.bars import parse_duration_ns
from hedger.engine.calibrate import MIN_COUNTED, WARMUP
from hedger.errors import ConfigError

REFIT_KEYS = frozenset({"every", "window", "min_bars"})
MIN_BARS = WARMUP + MIN_COUNTED + 1
"""The fewest bars a fit can use (a differenced mode loses the first bar to the transform)."""


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
    for key in table:
        if key not in REFIT_KEYS:
            known = ", ".join(sorted(REFIT_KEYS))
            raise ConfigError(f"refit.{key}", f"unknown key (known: {known})")
    every = table.get("every", 500)
    every_bars: int | None = None
    every_ns: int | None = None
    if isinstance(every, str):
        every_ns = parse_duration_ns(every, "refit.every")
        if every_ns <= 0:
            raise ConfigError("refit.every", f"must be a positive duration, got {every!r}")
    else:
        every_bars = _int("refit.every", every, 1)
    window = _int("refit.window", table.get("window", 2000), MIN_BARS)
    min_bars = _int("refit.min_bars", table.get("min_bars", min(250, window)), MIN_BARS)
    if min_bars > window:
        raise ConfigError("refit.min_bars", f"must be <= window ({window}), got {min_bars}")
    return RefitSettings(every_bars, every_ns, window, min_bars)


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, f"must be an integer >= {minimum}, got {value!r}")
    return value
