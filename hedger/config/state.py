"""[state]: where a daemon keeps what survives a crash (checkpoints, the tick journal, the
journal of published events) and how often it writes it. See :mod:`hedger.runtime.state`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from msgspec import Meta

from hedger.config.schema import Duration, NonEmpty, Table, decode, duration_ns, sub_table

Count = Annotated[int, Meta(ge=0, description="an integer >= 0")]
Megabytes = Annotated[float, Meta(gt=0, description="a number of megabytes > 0")]


class _State(Table, frozen=True):
    dir: NonEmpty
    checkpoint_bars: Count = 100
    checkpoint_interval: Duration = "10s"
    journal: bool = True
    segment_mb: Megabytes = 64.0
    segment_time: Duration = "1h"
    retention: Duration = "7d"
    event_journal_mb: Annotated[float, Meta(ge=0, description="a number of megabytes >= 0")] = 256.0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class StateSettings:
    """What a daemon keeps in ``dir`` (created if missing).

    A checkpoint of every pair's state every ``checkpoint_bars`` bars (0: not by count) or
    every ``checkpoint_interval_ns`` on the clock, whichever comes first,
    and at shutdown. ``journal``: every input of the core (accepted ticks, bar closes) is
    journalled, so a restart replays what came after the last checkpoint; its files roll
    over at ``segment_bytes`` or ``segment_ns`` and are deleted once older than
    ``retention_ns`` and before the last checkpoint. ``event_journal_bytes``: how much of
    the published events is kept for subscribers to fill gaps from (0: none). ``retain``:
    each pair's checkpoint is also published retained on ``<root>/v1/state/<pair id>``."""

    dir: str
    checkpoint_bars: int = 100
    checkpoint_interval_ns: int = 10_000_000_000
    journal: bool = True
    segment_bytes: int = 64_000_000
    segment_ns: int = 3_600_000_000_000
    retention_ns: int = 7 * 86_400_000_000_000
    event_journal_bytes: int = 256_000_000
    retain: bool = False


def state_settings(document: Mapping[str, Any]) -> StateSettings | None:
    """The [state] table of a daemon document (None without one)."""
    if "state" not in document:
        return None
    table = decode(sub_table(document, "state"), _State, "state")
    interval = duration_ns(table.checkpoint_interval, "state.checkpoint_interval")
    return StateSettings(
        dir=table.dir,
        checkpoint_bars=table.checkpoint_bars,
        checkpoint_interval_ns=interval,
        journal=table.journal,
        segment_bytes=max(1, round(table.segment_mb * 1e6)),
        segment_ns=duration_ns(table.segment_time, "state.segment_time"),
        retention_ns=duration_ns(table.retention, "state.retention"),
        event_journal_bytes=round(table.event_journal_mb * 1e6),
        retain=table.retain,
    )
