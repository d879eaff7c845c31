"""Alpaca market data v2 stock stream: trades and quotes as ticks (sans-I/O).

Format as documented in Alpaca's "Real-time Stock Data" page
(https://docs.alpaca.markets/docs/real-time-stock-pricing-data, formerly
https://alpaca.markets/docs/api-references/market-data-api/stock-pricing-data/realtime/):

* every server message is a JSON array of objects, each with a type in ``"T"``; control
  messages (``success``, ``subscription``, ``error``) come alone in an array, data points may
  come several to an array;
* trade ``{"T": "t", "S": "AAPL", "i": 96921, "x": "D", "p": 126.55, "s": 1,
  "t": "2021-02-22T15:51:44.208Z", "c": ["@", "I"], "z": "C"}``: prices and sizes are JSON
  numbers, ``t`` an RFC 3339 time with up to nanosecond precision;
* quote ``{"T": "q", "S": .., "bx", "bp", "bs", "ax", "ap", "as", "t", "c", "z"}``;
* the client sends ``{"action": "auth", "key": .., "secret": ..}`` first, then
  ``{"action": "subscribe", "trades": [..], "quotes": [..]}``.

Mapping: a trade is a TRADE tick at ``p`` with size ``s``; a quote is a QUOTE tick at the mid
of ``bp`` and ``ap`` without a size (a quote has two sizes; neither is "the" size), and a quote
with an empty side (price 0) is a ``bad_price`` reject, since its mid would be meaningless.
``ts_event`` is ``t`` parsed exactly to integer ns (:func:`feeds.venues.fields.parse_rfc3339_ns`).

Rejects (counted in the ``rejects`` passed to :meth:`AlpacaStocks.parse`): ``malformed`` (not
JSON, not an array, an element that is not an object with a string ``T``, no symbol),
``bad_price``, ``bad_timestamp``, ``venue_error`` (``{"T": "error", "code": .., "msg": ..}``,
e.g. failed authentication). Other types (bars, corrections, statuses, ...) are skipped and
counted in :attr:`AlpacaStocks.skipped`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from feeds.venues import fields
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind

URL = "wss://stream.data.alpaca.markets/v2/iex"
"""The free IEX feed; ``wss://stream.data.alpaca.markets/v2/sip`` for the consolidated SIP
feed, ``wss://stream.data.sandbox.alpaca.markets/v2/{feed}`` for the sandbox."""


class AlpacaStocks:
    """Alpaca's v2 stock stream for some symbols: trades and/or quotes.

    Args:
        symbols: tickers as Alpaca names them (``"AAPL"``).
        key: API key id.
        secret: API secret key.
        trades: subscribe to trades.
        quotes: subscribe to quotes.
        url: where to connect (see :data:`URL`).
    """

    name: str = "alpaca"

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        key: str,
        secret: str,
        trades: bool = True,
        quotes: bool = True,
        url: str = URL,
    ) -> None:
        self.symbols = [s.strip() for s in symbols]
        if not self.symbols or not all(self.symbols):
            raise ValueError("alpaca: give at least one symbol, none of them empty")
        if not (trades or quotes):
            raise ValueError("alpaca: subscribe to trades, quotes or both")
        self.url = url
        self.trades = trades
        self.quotes = quotes
        self.skipped = 0
        self._key = key
        self._secret = secret

    def subscribe_messages(self) -> Sequence[str]:
        """Authentication, then the subscription."""
        subscribe: dict[str, object] = {"action": "subscribe"}
        if self.trades:
            subscribe["trades"] = self.symbols
        if self.quotes:
            subscribe["quotes"] = self.symbols
        auth = {"action": "auth", "key": self._key, "secret": self._secret}
        return [orjson.dumps(auth).decode(), orjson.dumps(subscribe).decode()]

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
        if not isinstance(item, dict) or not isinstance(item.get("T"), str):
            rejects.add("malformed", self.name, item=repr(item)[:200])
            return None
        kind = item["T"]
        if kind == "t":
            return self._data(item, TickKind.TRADE, ts_recv, rejects)
        if kind == "q":
            return self._data(item, TickKind.QUOTE, ts_recv, rejects)
        if kind in ("success", "subscription"):
            return None
        if kind == "error":
            rejects.add(
                "venue_error", self.name, code=item.get("code"), msg=str(item.get("msg"))[:200]
            )
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
            symbol_key="S",
            type_key="T",
            time_ns=fields.rfc3339_to_ns,
        )
