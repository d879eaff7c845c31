"""The ``[alarm]`` table: the relationship-break detector every pair runs (on by default).

```toml
[alarm]
enabled = true          # false: no alarm events
threshold = 12          # the mean CUSUMs' alarm level, in sd of z
drift = 0.5             # their allowance per bar (half the shift they are tuned to)
scale_threshold = 25    # the scale CUSUM's alarm level
scale_drift = 1         # its allowance: z^2 above 1 + this counts as evidence
clip = 3                # the largest |z| one bar contributes
memory = 500            # bars of the long-run scale of z
burn_in = 50            # bars that only learn that scale
```

The meaning and the choice of the defaults are in ``docs/alarms.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from hedger.config.schema import Table, decode, sub_table
from hedger.core.actors import PairSpec
from hedger.engine.alarm import AlarmParams

_DEFAULTS = AlarmParams()


class AlarmTable(Table, frozen=True):
    """``[alarm]`` as written (every key optional)."""

    enabled: bool = True
    drift: float = _DEFAULTS.drift
    threshold: float = _DEFAULTS.threshold
    scale_drift: float = _DEFAULTS.scale_drift
    scale_threshold: float = _DEFAULTS.scale_threshold
    clip: float = _DEFAULTS.clip
    memory: int = _DEFAULTS.memory
    burn_in: int = _DEFAULTS.burn_in


def alarm_params(document: Mapping[str, Any]) -> AlarmParams | None:
    """The detector's parameters of a document (the defaults without ``[alarm]``; None with
    ``enabled = false``); a bad value is a :class:`ConfigError` naming its key."""
    table = decode(sub_table(document, "alarm"), AlarmTable, "alarm")
    if not table.enabled:
        return None
    return AlarmParams(
        drift=table.drift,
        threshold=table.threshold,
        scale_drift=table.scale_drift,
        scale_threshold=table.scale_threshold,
        clip=table.clip,
        memory=table.memory,
        burn_in=table.burn_in,
    )


def with_alarm(document: Mapping[str, Any], specs: Sequence[PairSpec]) -> list[PairSpec]:
    """``specs`` with the document's alarm parameters."""
    params = alarm_params(document)
    return [replace(spec, alarm=params) for spec in specs]
