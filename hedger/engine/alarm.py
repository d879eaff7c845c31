"""A relationship-break detector: two-sided CUSUM on a filter's standardised innovations, and a
CUSUM on their squares for a change of scale.

While a pair's model holds, its innovations standardised by their predicted deviation,
``z_t = e_t / sqrt(S_t)``, are close to independent N(0, 1). A break shows up in them in one of
two ways: a persistent sign (the hedge no longer matches: typical on price levels, where the
innovation is the mismatch times the price of X), or a larger spread than the filter predicts
(typical on returns, where a changed beta adds ``d_beta * r_x`` of noise with a mean of zero).
Three statistics, each a CUSUM that forgets good news (none can go below 0)::

    up_t    = max(0, up_{t-1}    + min(z_t, clip) - drift)
    down_t  = max(0, down_{t-1}  - max(z_t, -clip) - drift)
    scale_t = max(0, scale_{t-1} + min(z_t^2, clip^2) - 1 - scale_drift)

A statistic above its threshold raises an alarm of its kind (``up``, ``down``, ``scale``); while
it is active the statistic is held at the threshold (it cannot pile up evidence), and the alarm
clears when the statistic is back at 0: on innovations the model explains, after about
``threshold / drift`` bars (24 for the mean, 25 for the scale at the defaults; at least 4 and
13 bars). ``drift`` is half the
mean shift (in sd) the detector is tuned to; ``scale_drift`` makes a z^2 above ``1 +
scale_drift`` count as evidence (the log-likelihood ratio of N(0, v) against N(0, 1) is a
multiple of ``z^2 - ln(v) / (1 - 1/v)``, so the default 1.0 is tuned to a variance about 5
times the one expected: a sd 2.2 times larger).
``clip`` bounds what one bar can add, so that a single bad print (whose |z| may be in the
thousands) cannot raise an alarm alone. The defaults are chosen in ``docs/alarms.md`` from the
false alarms on a synthetic pair whose beta never moves and the delay after a break.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from hedger.engine.kernels.jit import jitable
from hedger.errors import ConfigError

ALARM_KINDS = ("up", "down", "scale")
"""The kinds of alarm, in the order statistics are reported."""


@dataclass(frozen=True, slots=True)
class AlarmParams:
    """The detector's thresholds (units: standard deviations of z, and of z^2 for ``scale``).

    drift: the allowance k of the two mean CUSUMs (>= 0). threshold: their alarm level h (>
    0). scale_drift: the allowance of the scale CUSUM (>= 0). scale_threshold: its alarm level
    (> 0). clip: the largest |z| one bar contributes (> 0), in units of the long-run scale.
    memory: steps of the long-run scale of z (>= 1). burn_in: steps that only learn that
    scale (>= 1)."""

    drift: float = 0.5
    threshold: float = 12.0
    scale_drift: float = 1.0
    scale_threshold: float = 25.0
    clip: float = 3.0
    memory: int = 500
    burn_in: int = 50

    def __post_init__(self) -> None:
        for key in ("drift", "scale_drift"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"alarm.{key}", "must be a finite number >= 0")
        for key in ("threshold", "scale_threshold", "clip"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"alarm.{key}", "must be a finite number > 0")
        for key in ("memory", "burn_in"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"alarm.{key}", "must be an integer >= 1")


class AlarmChange(NamedTuple):
    """One kind of alarm raised or cleared on a step.

    kind: ``up``, ``down`` or ``scale``. raised: True when it started on this step, False when
    it cleared. statistic: the kind's statistic after the step. started: the step index (as
    counted by :attr:`BreakDetector.steps`) the alarm started on."""

    kind: str
    raised: bool
    statistic: float
    started: int


@jitable
def cusum_step(
    z: float,
    up: float,
    down: float,
    scale: float,
    steps: int,
    mean_square: float,
    since_up: int,
    since_down: int,
    since_scale: int,
    drift: float,
    threshold: float,
    scale_allowance: float,
    scale_threshold: float,
    clip: float,
    clip2: float,
    forget: float,
    burn_in: int,
) -> tuple[float, float, float, int, float, int, int, int, int, int, float, float, float]:
    """One step of the detector on plain numbers: the rule :class:`BreakDetector` runs, and
    the bank's compiled bar step runs inline for every pair (one definition, two paths).

    ``since_*``: the step each kind's alarm started on, -1 while it is not active.
    ``scale_allowance`` is ``1 + scale_drift``, ``clip2`` is ``clip**2``, ``forget`` is
    ``1 / memory``. Returns the new (up, down, scale, steps, mean_square, since_up,
    since_down, since_scale), then bit masks (bit 0 up, 1 down, 2 scale) of the kinds raised
    and cleared by the step, and each kind's statistic as the change reports it (a raised
    kind's before it is held at the threshold)."""
    nothing = (up, down, scale, steps, mean_square, since_up, since_down, since_scale)
    if not math.isfinite(z):
        return (*nothing, 0, 0, up, down, scale)
    steps += 1
    n = steps
    ms = mean_square
    square = z * z
    # one bad print in the burn-in must not set the scale: past 10 steps a square counts at
    # most clip^2 times the mean so far
    capped = square if n <= 10 or square < clip2 * ms else clip2 * ms
    if n <= burn_in or ms <= 0.0:
        ms = ms + (capped - ms) / n
        return (
            up, down, scale, steps, ms, since_up, since_down, since_scale, 0, 0, up, down, scale,
        )  # fmt: skip
    u = z / math.sqrt(ms)
    clipped = clip if u > clip else (-clip if u < -clip else u)
    up = _at_least_zero(up + clipped - drift)
    down = _at_least_zero(down - clipped - drift)
    scale = _at_least_zero(scale + clipped * clipped - scale_allowance)
    v_up, v_down, v_scale = up, down, scale
    raised = cleared = 0
    was_active = since_up >= 0 or since_down >= 0 or since_scale >= 0
    if was_active or up > threshold or down > threshold or scale > scale_threshold:
        # raise the kinds above their threshold, clear the active ones back at 0, and hold an
        # active statistic at its threshold (so that an alarm clears after about
        # threshold / drift bars of innovations the model explains, however strong the break)
        up, since_up, r_up, c_up = _judged(up, threshold, since_up, steps)
        down, since_down, r_down, c_down = _judged(down, threshold, since_down, steps)
        scale, since_scale, r_scale, c_scale = _judged(scale, scale_threshold, since_scale, steps)
        raised = r_up | r_down << 1 | r_scale << 2
        cleared = c_up | c_down << 1 | c_scale << 2
    # a break must not teach the scale it is measured by: while an alarm is active the scale
    # learns four times slower, so that a lasting new regime is absorbed (and its alarm
    # clears) within a few memories instead of never
    weight = 1.0 / n if n * forget < 1.0 else forget
    if since_up >= 0 or since_down >= 0 or since_scale >= 0:
        weight *= 0.25
    ms = ms + (capped - ms) * weight
    return (
        up, down, scale, steps, ms, since_up, since_down, since_scale,
        raised, cleared, v_up, v_down, v_scale,
    )  # fmt: skip


@jitable
def _judged(value: float, threshold: float, since: int, step: int) -> tuple[float, int, int, int]:
    """One kind's alarm after a step: (statistic, step it started on or -1, raised 0/1,
    cleared 0/1). A kind above its threshold is raised there; an active one clears back at
    0 and is held at its threshold while above it."""
    if since < 0:
        if value > threshold:
            return threshold, step, 1, 0
        return value, since, 0, 0
    if value == 0.0:
        return value, -1, 0, 1
    return (threshold if value > threshold else value), since, 0, 0


@jitable
def _at_least_zero(value: float) -> float:
    return value if value > 0.0 else 0.0


class BreakDetector:
    """The three CUSUMs of one pair: ``update(z)`` once per observation the filter judged
    (warm steps only; a refused outlier's z counts too, clipped).

    Each z is first divided by its own long-run root mean square (a plain mean over the first
    ``memory`` steps, then an exponential one with that memory, each square after the tenth
    capped at ``clip**2`` times the current mean, learnt four times slower while an alarm is
    active), so the
    detector keeps its false-alarm rate when the filter's S is off by a constant factor (Q
    and R that do not suit the price scale: Chan's delta on $100 prices gives z with a
    standard deviation near 0.08). No alarm before ``burn_in`` steps. ``statistics`` are
    (up, down, scale); ``active`` maps each active kind to the step it started on. Plain
    floats, no allocation on a quiet step: this runs on every bar."""

    __slots__ = (
        "_burn_in", "_c", "_c2", "_forget", "_h", "_hs", "_k", "_ks",
        "active", "mean_square", "params", "statistics", "steps",
    )  # fmt: skip

    def __init__(self, params: AlarmParams | None = None) -> None:
        self.params = params = params if params is not None else AlarmParams()
        self._k, self._h = float(params.drift), float(params.threshold)
        self._ks, self._hs = 1.0 + float(params.scale_drift), float(params.scale_threshold)
        self._c = float(params.clip)
        self._c2 = self._c * self._c
        self._forget = 1.0 / params.memory
        self._burn_in = params.burn_in
        self.statistics = (0.0, 0.0, 0.0)
        self.active: dict[str, int] = {}
        self.steps = 0
        self.mean_square = 0.0
        """The long-run mean of z^2 the statistics are scaled by."""

    def update(self, z: float) -> tuple[AlarmChange, ...]:
        """Take one standardised innovation (NaN or an infinity is ignored: the step is not
        counted); the alarms raised or cleared by it, usually none."""
        active = self.active
        up, down, scale = self.statistics
        (
            up, down, scale, self.steps, self.mean_square, since_up, since_down, since_scale,
            raised, cleared, v_up, v_down, v_scale,
        ) = cusum_step(
            z, up, down, scale, self.steps, self.mean_square,
            active.get("up", -1), active.get("down", -1), active.get("scale", -1),
            self._k, self._h, self._ks, self._hs, self._c, self._c2, self._forget, self._burn_in,
        )  # fmt: skip
        self.statistics = (up, down, scale)
        if not (raised | cleared):
            return ()
        changes: list[AlarmChange] = []
        for bit, (kind, since, value) in enumerate(
            zip(
                ALARM_KINDS,
                (since_up, since_down, since_scale),
                (v_up, v_down, v_scale),
                strict=True,
            )
        ):
            if raised >> bit & 1:
                active[kind] = since
                changes.append(AlarmChange(kind, True, value, since))
            elif cleared >> bit & 1:
                changes.append(AlarmChange(kind, False, value, active.pop(kind)))
        return tuple(changes)

    def forget_alarms(self) -> None:
        """Drop the active alarms, keeping the learnt scale and the statistics (each held at
        its threshold): evidence that goes on raises the alarm again on the next step."""
        self.active = {}
        up, down, scale = self.statistics
        self.statistics = (min(up, self._h), min(down, self._h), min(scale, self._hs))

    def restart(self) -> None:
        """Start again from nothing (a new burn-in): for when the meaning of z changes, as
        when the filter's noise is swapped."""
        self.statistics = (0.0, 0.0, 0.0)
        self.active = {}
        self.steps = 0
        self.mean_square = 0.0

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot` (of a detector with the same parameters)."""
        up, down, scale = (float(v) for v in state["statistics"])
        active = {str(kind): int(step) for kind, step in state["active"].items()}
        if not set(active) <= set(ALARM_KINDS):
            raise ValueError(f"unknown alarm kinds in {sorted(active)}")
        self.statistics = (up, down, scale)
        self.active = active
        self.steps = int(state["steps"])
        self.mean_square = float(state["mean_square"])

    def snapshot(self) -> dict[str, object]:
        """The detector's state as a plain value."""
        return detector_state(
            list(self.statistics), dict(self.active), self.steps, self.mean_square
        )


def detector_state(
    statistics: list[float], active: dict[str, int], steps: int, mean_square: float
) -> dict[str, object]:
    """The layout of :meth:`BreakDetector.snapshot` (the one place it is written: a bank
    writes its pairs' detectors with it too)."""
    return {"statistics": statistics, "active": active, "steps": steps, "mean_square": mean_square}
