"""The live hedge-ratio matrix: one :class:`MatrixFilter` over N symbols, stepped on each bar
close, publishing one compact :class:`~hedger.core.events.MatrixEvent` per bar."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from hedger.core.bars import LegPrice
from hedger.core.events import MatrixEvent
from hedger.engine import FilterParams
from hedger.engine.matrix import MatrixFilter, load_kernel
from hedger.errors import ConfigError


class MatrixActor:
    """Owns the matrix filter of ``symbols`` and its sequence counter.

    A bar in which none of the symbols ticked produces nothing (as for a pair). Otherwise each
    symbol's price is taken when it is at most ``max_age_ns`` old at the close; an older or
    missing one is NaN for the filter (its pairs only predict) and listed in the event's
    ``stale``.

    Construction compiles the matrix kernel (or loads it from numba's disk cache) on a
    throwaway 2-symbol filter, so that the first live bar does not pay for it on the event
    loop.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        params: FilterParams,
        max_age_ns: int,
        publish: Callable[[MatrixEvent], None],
    ) -> None:
        if len(set(symbols)) != len(symbols):
            raise ConfigError("matrix.symbols", "a symbol is listed twice")
        self.symbols = tuple(symbols)
        self.filter = MatrixFilter(len(self.symbols), params)
        load_kernel()
        self._max_age = max_age_ns
        self._publish = publish
        self._row = np.full(len(self.symbols), math.nan)
        self.seq = 0
        self.last_ts = 0

    def handle_bar(self, ts: int, prices: dict[str, LegPrice], ticked: frozenset[str]) -> None:
        """A bar closed at ``ts`` (ns): if any of the symbols ticked in it, :meth:`on_bar`.
        (Its failures are contained by the pipeline, which calls it as a bar listener.)"""
        if any(symbol in ticked for symbol in self.symbols):
            self.on_bar(ts, prices)

    def on_bar(self, ts: int, prices: dict[str, LegPrice]) -> None:
        """Step the matrix on the bar closed at ``ts`` (ns) and publish its snapshot."""
        row = self._row
        stale: list[str] = []
        for i, symbol in enumerate(self.symbols):
            leg = prices.get(symbol)
            if leg is not None and ts - leg.ts <= self._max_age:
                row[i] = leg.price
            else:
                row[i] = math.nan
                stale.append(symbol)
        matrix = self.filter
        matrix.step(row)
        self.seq += 1
        self.last_ts = ts
        self._publish(
            MatrixEvent(
                seq=self.seq,
                ts=ts,
                symbols=self.symbols,
                beta=np.array(matrix.beta),
                alpha=np.array(matrix.alpha),
                beta_std=matrix.beta_se,
                zscore=np.array(matrix.zscore),
                warm=matrix.warm,
                stale=tuple(stale),
            )
        )
