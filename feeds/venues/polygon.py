"""Polygon.io stocks websocket: trades and quotes as ticks (sans-I/O).

Format as documented in Polygon's stocks websocket pages ("Trades",
https://polygon.io/docs/stocks/ws_stocks_t; "Quotes", https://polygon.io/docs/stocks/ws_stocks_q;
and the websocket getting-started page for authentication and status messages):

* every server message is a JSON array of objects, each with an event type in ``"ev"``;
* trade ``{"ev": "T", "sym": "AAPL", "x": 4, "i": "12345", "z": 3, "p": 192.31, "s": 100,
  "c": [12], "t": 1748476801234, "q": 1063}``: JSON numbers, ``t`` the SIP time in ms;
* quote ``{"ev": "Q", "sym", "bx", "bp", "bs", "ax", "ap", "as", "c", "i", "t", "q", "z"}``;
* status ``{"ev": "status", "status": "connected" | "auth_success" | "auth_failed" |
  "success" | "max_connections" | ..., "message": ".."}``;
* the client sends ``{"action": "auth", "params": KEY}`` then
  ``{"action": "subscribe", "params": "T.AAPL,Q.AAPL"}``.

Mapping: a trade is a TRADE tick at ``p`` with size ``s``; a quote is a QUOTE tick at the mid
of ``bp`` and ``ap`` without a size (a quote has two sizes); an empty side (price 0) is
``bad_price``. ``ts_event`` is ``t`` (ms) in ns.

Rejects: ``malformed`` (not JSON, not an array, an element that is not an object with a string
``ev``, no symbol), ``bad_price``, ``bad_timestamp``, ``venue_error`` (a status other than
``connected``, ``auth_success`` and ``success``: ``auth_failed``, ``max_connections``, ...).
Other event types (aggregates, LULD, ...) are skipped and counted in
:attr:`PolygonStocks.skipped`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from feeds.venues import fields
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind

URL = "wss://socket.polygon.io/stocks"
"""Real-time stocks cluster; ``wss://delayed.polygon.io/stocks`` is 15 minutes delayed."""

_OK_STATUSES = frozenset({"connected", "auth_success", "success"})


class PolygonStocks:
    """Polygon's stocks websocket for some symbols: trades and/or quotes.

    Args:
        symbols: tickers as Polygon names them (``"AAPL"``).
        api_key: the Polygon API key.
        trades: subscribe to trades (``T.<sym>``).
        quotes: subscribe to quotes (``Q.<sym>``).
        url: where to connect (see :data:`URL`).
    """

    name: str = "polygon"

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        api_key: str,
        trades: bool = True,
        quotes: bool = True,
        url: str = URL,
    ) -> None:
        self.symbols = [s.strip() for s in symbols]
        if not self.symbols or not all(self.symbols):
            raise ValueError("polygon: give at least one symbol, none of them empty")
        if not (trades or quotes):
            raise ValueError("polygon: subscribe to trades, quotes or both")
        self.url = url
        self.trades = trades
        self.quotes = quotes
        self.skipped = 0
        self._api_key = api_key

    def subscribe_messages(self) -> Sequence[str]:
        """Authentication, then the subscription (``T.AAPL,Q.AAPL,...``)."""
        prefixes = [p for p, wanted in (("T", self.trades), ("Q", self.quotes)) if wanted]
        params = ",".join(f"{prefix}.{symbol}" for symbol in self.symbols for prefix in prefixes)
        return [
            orjson.dumps({"action": "auth", "params": self._api_key}).decode(),
            orjson.dumps({"action": "subscribe", "params": params}).decode(),
        ]

    def parse(self, message: str | bytes, ts_recv: int, rejects: Rejects) -> list[Tick]:
        """The ticks in one message; never raises."""
        return fields.parse_guarded(self._parse, self.name, message, ts_recv, rejects)

    def _parse(
        self, message: str | bytes, ts_recv: int, rejects: Rejects, ticks: list[Tick]
    ) -> None:
        batch = fields.json_payload(message, self.name, rejects, list)
        for item in batch if isinstance(batch, list) else ():
            tick = self._item(item, ts_recv, rejects)
            if tick is not None:
                ticks.append(tick)

    def _item(self, item: object, ts_recv: int, rejects: Rejects) -> Tick | None:
        if not isinstance(item, dict) or not isinstance(item.get("ev"), str):
            rejects.add("malformed", self.name, item=repr(item)[:200])
            return None
        kind = item["ev"]
        if kind == "T":
            return self._data(item, TickKind.TRADE, ts_recv, rejects)
        if kind == "Q":
            return self._data(item, TickKind.QUOTE, ts_recv, rejects)
        if kind == "status":
            status = item.get("status")
            if not (isinstance(status, str) and status in _OK_STATUSES):
                text = str(item.get("message"))[:200]
                rejects.add("venue_error", self.name, status=str(status)[:64], msg=text)
            return None
        self.skipped += 1
        return None

    def _data(
        self, item: dict[str, object], kind: TickKind, ts_recv: int, rejects: Rejects
    ) -> Tick | None:
        return fields.stock_tick(
            item,
            kind,
            ts_recv,
            rejects,
            self.name,
            symbol_key="sym",
            type_key="ev",
            time_ns=fields.ms_to_ns,
        )
