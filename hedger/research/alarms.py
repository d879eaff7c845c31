"""Relationship-break alarms over a whole history: the live detector
(:class:`hedger.engine.alarm.BreakDetector`) run over a method's standardised forecast errors,
as spans of bars, for ``evaluate`` and its plot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hedger.engine.alarm import AlarmParams, BreakDetector
from hedger.engine.linalg import FloatArray


@dataclass(frozen=True, slots=True)
class AlarmSpan:
    """One alarm over bars ``[start, end)`` (end None: still active at the last bar).

    kind: ``up``, ``down`` or ``scale``; start: the bar it was raised on; end: the bar it was
    cleared on; statistic: the value that raised it."""

    kind: str
    start: int
    end: int | None
    statistic: float


def alarm_spans(zscore: FloatArray, params: AlarmParams | None = None) -> tuple[AlarmSpan, ...]:
    """The alarms the live detector raises over ``zscore`` (T,) (NaN: no observation that
    bar), in the order they were raised."""
    detector = BreakDetector(params)
    open_spans: dict[str, tuple[int, float]] = {}
    spans: list[AlarmSpan] = []
    for t, z in enumerate(np.asarray(zscore, dtype=np.float64).tolist()):
        for change in detector.update(z):
            if change.raised:
                open_spans[change.kind] = (t, change.statistic)
            else:
                start, statistic = open_spans.pop(change.kind)
                spans.append(AlarmSpan(change.kind, start, t, statistic))
    spans.extend(AlarmSpan(kind, start, None, value) for kind, (start, value) in open_spans.items())
    spans.sort(key=lambda span: (span.start, span.kind))
    return tuple(spans)
