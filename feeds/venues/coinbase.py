"""Coinbase Exchange websocket feed: matches and tickers as ticks (sans-I/O).

Format as documented in Coinbase's "Exchange WebSocket Overview" and "Exchange WebSocket
Channels" pages (https://docs.cdp.coinbase.com/exchange/websocket-feed/overview and
https://docs.cdp.coinbase.com/exchange/websocket-feed/channels):

* every message is one JSON object with a ``"type"``;
* ``match`` (and ``last_match``, the first message after subscribing to ``matches``)
  ``{"type": "match", "trade_id": 10, "sequence": 50, "maker_order_id": .., "taker_order_id":
  .., "time": "2014-11-07T08:19:27.028459Z", "product_id": "BTC-USD", "size": "5.23512",
  "price": "400.23", "side": "sell"}``: decimal strings, RFC 3339 time in microseconds;
* ``ticker`` ``{"type": "ticker", "sequence", "product_id", "price", "open_24h", ...,
  "best_bid", "best_bid_size", "best_ask", "best_ask_size", "side", "time", "trade_id",
  "last_size"}``; the ticker sent right after subscribing is a snapshot without ``time``,
  ``trade_id``, ``side`` and ``last_size`` (and, for an inactive product, with zero prices);
* control: ``subscriptions`` (the reply to ``subscribe``), ``heartbeat``, and
  ``{"type": "error", "message": .., "reason": ..}``;
* the client subscribes with ``{"type": "subscribe", "product_ids": [..], "channels": [..]}``.

Mapping: ``match``/``last_match`` are TRADE ticks at ``price`` with size ``size``. A ``ticker``
is a QUOTE tick at the mid of ``best_bid`` and ``best_ask`` (no size): its ``price`` is the last
trade, which the ``matches`` channel already delivers trade by trade, so the ticker's news is
the top of book. A ticker needs both sides (a zero or missing side is ``bad_price``); the
subscribe-time snapshot without ``time`` gets ``ts_event`` = ``ts_recv`` (it describes the book
as of its arrival). Other times are parsed exactly to integer ns.

Rejects: ``malformed`` (not JSON, not an object with a string ``type``, no ``product_id``),
``bad_price``, ``bad_timestamp``, ``venue_error`` (``error`` messages). Unknown types are
skipped and counted in :attr:`CoinbaseExchange.skipped` (Coinbase may add types at any time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from feeds.venues import fields
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind

URL = "wss://ws-feed.exchange.coinbase.com"
"""Coinbase Market Data (public, no authentication); the sandbox is
``wss://ws-feed-public.sandbox.exchange.coinbase.com``."""

_CONTROL = frozenset({"subscriptions", "heartbeat"})


class CoinbaseExchange:
    """The Coinbase Exchange feed for some products.

    Args:
        product_ids: products as Coinbase names them (``"BTC-USD"``).
        channels: channels to subscribe to; ``matches`` gives trades, ``ticker`` the top of
            book, ``heartbeat`` keeps a quiet product's connection visibly alive.
        url: where to connect (see :data:`URL`).
    """

    name: str = "coinbase"

    def __init__(
        self,
        product_ids: Iterable[str],
        *,
        channels: Sequence[str] = ("matches", "ticker", "heartbeat"),
        url: str = URL,
    ) -> None:
        self.product_ids = [p.strip() for p in product_ids]
        if not self.product_ids or not all(self.product_ids):
            raise ValueError("coinbase: give at least one product id, none of them empty")
        if not channels:
            raise ValueError("coinbase: give at least one channel")
        self.channels = list(channels)
        self.url = url
        self.skipped = 0

    def subscribe_messages(self) -> Sequence[str]:
        """One subscribe message for every product and channel."""
        message = {"type": "subscribe", "product_ids": self.product_ids, "channels": self.channels}
        return [orjson.dumps(message).decode()]

    def parse(self, message: str | bytes, ts_recv: int, rejects: Rejects) -> list[Tick]:
        """The ticks in one message (at most one); never raises."""
        return fields.parse_guarded(self._parse, self.name, message, ts_recv, rejects)

    def _parse(
        self, message: str | bytes, ts_recv: int, rejects: Rejects, ticks: list[Tick]
    ) -> None:
        tick = self._message(message, ts_recv, rejects)
        if tick is not None:
            ticks.append(tick)

    def _message(self, message: str | bytes, ts_recv: int, rejects: Rejects) -> Tick | None:
        obj = fields.json_payload(message, self.name, rejects, dict)
        if not isinstance(obj, dict):
            return None
        if not isinstance(obj.get("type"), str):
            rejects.add("malformed", self.name, message=fields.snippet(message))
            return None
        kind = obj["type"]
        if kind in ("match", "last_match"):
            return self._match(obj, ts_recv, rejects)
        if kind == "ticker":
            return self._ticker(obj, ts_recv, rejects)
        if kind in _CONTROL:
            return None
        if kind == "error":
            message_text = str(obj.get("message"))[:200]
            rejects.add(
                "venue_error",
                self.name,
                msg=message_text,
                venue_reason=str(obj.get("reason"))[:200],
            )
            return None
        self.skipped += 1
        return None

    def _match(self, obj: dict[str, object], ts_recv: int, rejects: Rejects) -> Tick | None:
        product = obj.get("product_id")
        if not isinstance(product, str) or not product:
            rejects.add("malformed", self.name, message=repr(obj)[:200])
            return None
        price = fields.price(obj.get("price"), strings=True)
        if price is None:
            rejects.add("bad_price", self.name, symbol=product, price=repr(obj.get("price"))[:64])
            return None
        ts_event = fields.rfc3339_to_ns(obj.get("time"))
        if ts_event is None:
            rejects.add("bad_timestamp", self.name, symbol=product, time=repr(obj.get("time"))[:64])
            return None
        size = fields.size(obj.get("size"), strings=True)
        return Tick(product, price, ts_event, ts_recv, size, self.name, TickKind.TRADE)

    def _ticker(self, obj: dict[str, object], ts_recv: int, rejects: Rejects) -> Tick | None:
        product = obj.get("product_id")
        if not isinstance(product, str) or not product:
            rejects.add("malformed", self.name, message=repr(obj)[:200])
            return None
        bid, ask = (
            fields.price(obj.get("best_bid"), strings=True),
            fields.price(obj.get("best_ask"), strings=True),
        )
        if bid is None or ask is None:
            detail = {"bid": repr(obj.get("best_bid"))[:64], "ask": repr(obj.get("best_ask"))[:64]}
            rejects.add("bad_price", self.name, symbol=product, **detail)
            return None
        raw_time = obj.get("time")
        ts_event = ts_recv if raw_time is None else fields.rfc3339_to_ns(raw_time)
        if ts_event is None:
            rejects.add("bad_timestamp", self.name, symbol=product, time=repr(raw_time)[:64])
            return None
        return Tick(product, (bid + ask) / 2.0, ts_event, ts_recv, None, self.name, TickKind.QUOTE)
