"""The one tick type every feed produces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np


class TickKind(StrEnum):
    """What a tick's price is: a trade's price, or the mid of a quote."""

    TRADE = "trade"
    QUOTE = "quote"


@dataclass(frozen=True, slots=True)
class Tick:
    """One price observation of one instrument.

    symbol: the instrument as the desk names it (``"AAPL"``, ``"BTCUSDT"``).
    price: a trade price, or the mid of a quote (``kind``), in the instrument's currency.
    size: traded or quoted size when the source gives one.
    ts_event: when it happened at the venue, integer ns since the epoch, UTC.
    ts_recv: when hedger received it, integer ns since the epoch, UTC (equal to ``ts_event``
        for recorded files, which carry one time).
    venue: where it came from (``"binance"``, ``"file"``, ``"synthetic"``).
    """

    symbol: str
    price: float
    ts_event: int
    ts_recv: int
    size: float | None = None
    venue: str = ""
    kind: TickKind = TickKind.TRADE


@dataclass(frozen=True, slots=True)
class TickColumns:
    """n trades parsed into columns over a fixed symbol table: how a compiled reader hands a
    block of a long tick file to the pipeline
    (:meth:`hedger.core.pipeline.Pipeline.on_tick_columns`).

    ts: int64 (n,), event time, ns since the epoch, UTC. sym: int (n,), index into the
    pipeline's ``symbols``, -1 for a symbol outside it. price: float64 (n,). size: float64 (n,),
    read only where ``has_size`` (bool (n,)). ok: bool (n,), False for lines the reader refused
    (counted by the reader).
    """

    ts: np.ndarray
    sym: np.ndarray
    price: np.ndarray
    size: np.ndarray
    has_size: np.ndarray
    ok: np.ndarray


def tick_values(tick: Tick) -> list[Any]:
    """A tick as a plain list (symbol, price, ts_event, ts_recv, size, venue, kind), for
    checkpoints; :func:`tick_from_values` reads it back."""
    return [
        tick.symbol, tick.price, tick.ts_event, tick.ts_recv, tick.size, tick.venue,
        tick.kind.value,
    ]  # fmt: skip


def tick_from_values(values: Sequence[Any]) -> Tick:
    """The tick of :func:`tick_values`; ``ValueError`` (or ``TypeError``) if it is not one."""
    symbol, price, ts_event, ts_recv, size, venue, kind = values
    return Tick(
        str(symbol), float(price), int(ts_event), int(ts_recv),
        None if size is None else float(size), str(venue), TickKind(kind),
    )  # fmt: skip
