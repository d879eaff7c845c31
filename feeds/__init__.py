"""Feeds: everything that turns outside data (files, venues, buses) into prices for hedger.

Parsing happens here and only here; a bad row or message becomes a counted reject, never an
exception that escapes the feed. A file that cannot be read at all is a
:class:`hedger.errors.DataFileError`; a transport that cannot work is a
:class:`hedger.errors.TransportError`.

The public names below are loaded on first use, so importing one file reader does not load
the websocket and MQTT clients.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feeds.broker import BrokerUrl, parse_broker_url, redact_url
    from feeds.files.readers import read_ticks, read_wide_bars
    from feeds.mqtt import MqttTickFeed, mqtt_messages
    from feeds.paced import PacedFeed
    from feeds.protocol import Feed, VenueProtocol
    from feeds.reconnect import Backoff, Reconnector
    from feeds.synthetic import SyntheticFeed, SyntheticMarket, SyntheticSpec
    from feeds.venues.alpaca import AlpacaStocks
    from feeds.venues.binance import BinanceSpot
    from feeds.venues.coinbase import CoinbaseExchange
    from feeds.venues.polygon import PolygonStocks
    from feeds.websocket import WebSocketFeed

_HOMES = {
    "AlpacaStocks": "feeds.venues.alpaca",
    "Backoff": "feeds.reconnect",
    "BinanceSpot": "feeds.venues.binance",
    "BrokerUrl": "feeds.broker",
    "CoinbaseExchange": "feeds.venues.coinbase",
    "Feed": "feeds.protocol",
    "MqttTickFeed": "feeds.mqtt",
    "PacedFeed": "feeds.paced",
    "PolygonStocks": "feeds.venues.polygon",
    "Reconnector": "feeds.reconnect",
    "SyntheticFeed": "feeds.synthetic",
    "SyntheticMarket": "feeds.synthetic",
    "SyntheticSpec": "feeds.synthetic",
    "VenueProtocol": "feeds.protocol",
    "WebSocketFeed": "feeds.websocket",
    "mqtt_messages": "feeds.mqtt",
    "parse_broker_url": "feeds.broker",
    "read_ticks": "feeds.files.readers",
    "read_wide_bars": "feeds.files.readers",
    "redact_url": "feeds.broker",
}

__all__ = [
    "AlpacaStocks",
    "Backoff",
    "BinanceSpot",
    "BrokerUrl",
    "CoinbaseExchange",
    "Feed",
    "MqttTickFeed",
    "PacedFeed",
    "PolygonStocks",
    "Reconnector",
    "SyntheticFeed",
    "SyntheticMarket",
    "SyntheticSpec",
    "VenueProtocol",
    "WebSocketFeed",
    "mqtt_messages",
    "parse_broker_url",
    "read_ticks",
    "read_wide_bars",
    "redact_url",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
