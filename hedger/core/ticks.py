"""The one tick type every feed produces."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
