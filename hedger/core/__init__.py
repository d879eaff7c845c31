"""The deterministic, synchronous path that replay and the daemon share: ticks and rejects, the
bar rule (and its compiled twin), the pair actors, the pipeline (the one entry point), events,
topics and the in-process bus. Nothing here does I/O or reads a clock."""

from hedger.core.actors import PairActor, PairSpec
from hedger.core.bars import BarBuilder, LegPrice, parse_duration_ns, tick_verdict
from hedger.core.bus import Bus, Message
from hedger.core.events import (
    AlarmEvent,
    Event,
    HedgeRatioEvent,
    MatrixEvent,
    SpreadEvent,
    decode,
    encode,
)
from hedger.core.pipeline import Pipeline, PipelineStats
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickColumns, TickKind
from hedger.core.topics import PairId, pair_topic

__all__ = [
    "AlarmEvent",
    "BarBuilder",
    "Bus",
    "Event",
    "HedgeRatioEvent",
    "LegPrice",
    "MatrixEvent",
    "Message",
    "PairActor",
    "PairId",
    "PairSpec",
    "Pipeline",
    "PipelineStats",
    "Rejects",
    "SpreadEvent",
    "Tick",
    "TickColumns",
    "TickKind",
    "decode",
    "encode",
    "pair_topic",
    "parse_duration_ns",
    "tick_verdict",
]
