"""Binance spot market streams: trades, aggregate trades and book tickers as ticks (sans-I/O).

Format as documented in Binance's spot "WebSocket Streams" page
(https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams, the file
``web-socket-streams.md`` of github.com/binance/binance-spot-api-docs):

* trade ``{"e": "trade", "E": 1672515782136, "s": "BNBBTC", "t": 12345, "p": "0.001",
  "q": "100", "T": 1672515782136, "m": true, "M": true}`` and aggregate trade
  ``{"e": "aggTrade", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"}``: prices and
  quantities are decimal strings, ``E`` (event time) and ``T`` (trade time) are ms since the
  epoch;
* book ticker ``{"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
  "a": "25.36520000", "A": "40.66000000"}``: no ``"e"`` and no time at all (the futures
  variant adds ``"e": "bookTicker"``, ``E`` and ``T``; it is accepted too);
* raw streams (``/ws``) send the payload alone; combined streams (``/stream``) wrap it as
  ``{"stream": "<name>", "data": <payload>}``; the all-market streams send arrays of payloads;
* the client subscribes with ``{"method": "SUBSCRIBE", "params": ["btcusdt@trade", ...],
  "id": 1}``, answered by ``{"result": null, "id": 1}``; errors look like
  ``{"code": 2, "msg": "Invalid request: ..."}`` (or ``{"error": {...}, "id": 1}``).
  Stream names use lower-case symbols; ``"s"`` carries them upper-case.

Mapping: trades and aggregate trades are TRADE ticks at ``p`` with size ``q`` and
``ts_event`` = ``T`` (``E`` when there is no ``T``). A book ticker is a QUOTE tick at the mid
of ``b`` and ``a`` without a size (a quote has two sizes); as spot book tickers carry no time,
its ``ts_event`` is ``E``/``T`` when present (the futures format has them) and otherwise the
receive time ``ts_recv``. A book side at price 0 (empty) makes the mid meaningless: ``bad_price``.

Rejects: ``malformed`` (not JSON, not an object, no symbol), ``bad_price``, ``bad_timestamp``,
``venue_error`` (error replies). Control replies (``result``/``id``) give nothing; other event
types are skipped and counted in :attr:`BinanceSpot.skipped`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from feeds.venues import fields
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind

URL = "wss://stream.binance.com:9443/ws"
"""Raw-stream endpoint, subscribed after connecting; ``wss://data-stream.binance.vision/ws``
serves the same market data."""

STREAMS = ("trade", "aggTrade", "bookTicker")
"""The stream kinds this adapter understands."""


class BinanceSpot:
    """Binance spot market streams for some symbols.

    Args:
        symbols: symbols in either case (``"BTCUSDT"``, ``"btcusdt"``).
        streams: which of :data:`STREAMS` to subscribe to for every symbol (``trade`` and
            ``aggTrade`` report the same trades, aggregated or not: pick one).
        url: where to connect (see :data:`URL`).
    """

    name: str = "binance"

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        streams: Sequence[str] = ("trade", "bookTicker"),
        url: str = URL,
    ) -> None:
        self.symbols = [s.strip().lower() for s in symbols]
        if not self.symbols or not all(self.symbols):
            raise ValueError("binance: give at least one symbol, none of them empty")
        unknown = [s for s in streams if s not in STREAMS]
        if unknown or not streams:
            raise ValueError(f"binance: streams must be some of {STREAMS}, got {list(streams)}")
        self.streams = list(streams)
        self.url = url
        self.skipped = 0

    def subscribe_messages(self) -> Sequence[str]:
        """One SUBSCRIBE request for every symbol and stream."""
        params = [f"{symbol}@{stream}" for symbol in self.symbols for stream in self.streams]
        return [orjson.dumps({"method": "SUBSCRIBE", "params": params, "id": 1}).decode()]

    def parse(self, message: str | bytes, ts_recv: int, rejects: Rejects) -> list[Tick]:
        """The ticks in one message; never raises."""
        return fields.parse_guarded(self._parse, self.name, message, ts_recv, rejects)

    def _parse(
        self, message: str | bytes, ts_recv: int, rejects: Rejects, ticks: list[Tick]
    ) -> None:
        try:
            payload = orjson.loads(message)
        except (orjson.JSONDecodeError, TypeError):
            rejects.add("malformed", self.name, message=fields.snippet(message))
            return
        if isinstance(payload, dict) and ("stream" in payload or "data" in payload):
            payload = payload.get("data")  # combined stream wrapper
        events = payload if isinstance(payload, list) else [payload]
        for event in events:
            tick = self._event(event, ts_recv, rejects)
            if tick is not None:
                ticks.append(tick)

    def _event(self, event: object, ts_recv: int, rejects: Rejects) -> Tick | None:
        if not isinstance(event, dict):
            rejects.add("malformed", self.name, payload=repr(event)[:200])
            return None
        kind = event.get("e")
        if kind is None:
            if "error" in event or "code" in event:
                error = event.get("error")
                detail = error if isinstance(error, dict) else event
                rejects.add(
                    "venue_error",
                    self.name,
                    code=detail.get("code"),
                    msg=str(detail.get("msg"))[:200],
                )
                return None
            if "result" in event:  # reply to SUBSCRIBE and friends
                return None
            if "u" in event and "s" in event:
                return self._book_ticker(event, ts_recv, rejects)
            self.skipped += 1
            return None
        if not isinstance(kind, str):
            rejects.add("malformed", self.name, payload=repr(event)[:200])
            return None
        if kind in ("trade", "aggTrade"):
            return self._trade(event, ts_recv, rejects)
        if kind == "bookTicker":  # the futures payload names its event and carries times
            return self._book_ticker(event, ts_recv, rejects)
        self.skipped += 1
        return None

    def _trade(self, event: dict[str, object], ts_recv: int, rejects: Rejects) -> Tick | None:
        symbol = event.get("s")
        if not isinstance(symbol, str) or not symbol:
            rejects.add("malformed", self.name, payload=repr(event)[:200])
            return None
        price = fields.price(event.get("p"), strings=True)
        if price is None:
            rejects.add("bad_price", self.name, symbol=symbol, p=repr(event.get("p"))[:64])
            return None
        raw_time = event["T"] if "T" in event else event.get("E")
        ts_event = fields.ms_to_ns(raw_time)
        if ts_event is None:
            rejects.add("bad_timestamp", self.name, symbol=symbol, T=repr(raw_time)[:64])
            return None
        size = fields.size(event.get("q"), strings=True)
        return Tick(symbol, price, ts_event, ts_recv, size, self.name, TickKind.TRADE)

    def _book_ticker(self, event: dict[str, object], ts_recv: int, rejects: Rejects) -> Tick | None:
        symbol = event.get("s")
        if not isinstance(symbol, str) or not symbol:
            rejects.add("malformed", self.name, payload=repr(event)[:200])
            return None
        bid, ask = (
            fields.price(event.get("b"), strings=True),
            fields.price(event.get("a"), strings=True),
        )
        if bid is None or ask is None:
            detail = {"b": repr(event.get("b"))[:64], "a": repr(event.get("a"))[:64]}
            rejects.add("bad_price", self.name, symbol=symbol, **detail)
            return None
        ts_event: int | None = ts_recv
        for key in ("T", "E"):
            if key in event:
                ts_event = fields.ms_to_ns(event[key])
                break
        if ts_event is None:
            rejects.add("bad_timestamp", self.name, symbol=symbol)
            return None
        return Tick(symbol, (bid + ask) / 2.0, ts_event, ts_recv, None, self.name, TickKind.QUOTE)
