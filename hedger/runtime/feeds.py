"""Builds the daemon's feeds from their configuration (:class:`FeedSettings`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from feeds.mqtt import MqttTickFeed
from feeds.paced import PacedFeed
from feeds.protocol import Feed
from feeds.synthetic import SyntheticFeed, SyntheticMarket, SyntheticSpec
from feeds.venues.alpaca import AlpacaStocks
from feeds.venues.binance import BinanceSpot
from feeds.venues.coinbase import CoinbaseExchange
from feeds.venues.polygon import PolygonStocks
from feeds.websocket import WebSocketFeed
from hedger.config.daemon import FeedSettings
from hedger.core.rejects import Logger
from hedger.core.ticks import Tick
from hedger.errors import ConfigError
from hedger.runtime.clock import Clock, LiveClock
from hedger.runtime.replay import merged_ticks

_FOREVER_S = 10.0 * 365 * 86_400


class FileFeed(PacedFeed):
    """Recorded files as a feed (merged in event time), optionally paced at ``speed`` times
    real time; it yields to the event loop regularly so it never starves the rest."""

    def __init__(self, paths: Sequence[Path], *, speed: float | None, ts_unit: str) -> None:
        super().__init__(speed)
        self._paths = list(paths)
        self._ts_unit = ts_unit

    def source(self) -> Iterator[Tick]:
        return merged_ticks(self._paths, self.rejects, self._ts_unit)


def _floats(options: dict[str, Any], key: str) -> tuple[float, ...] | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, int | float):
        return (float(value),)
    return tuple(float(v) for v in value)


def build_feed(settings: FeedSettings, logger: Logger | None, clock: Clock | None = None) -> Feed:
    """One configured feed, ready to be entered (``async with``); a synthetic market starts
    at ``clock``'s wall time (the live clock's if None)."""
    o = dict(settings.options)
    kind = settings.kind
    try:
        if kind == "synthetic":
            xs = tuple(o.get("xs", ["XXX"]))
            spec_args: dict[str, Any] = {
                "y": o.get("y", "YYY"),
                "xs": xs,
                "start_ns": (clock or LiveClock()).time_ns(),
            }
            for key in (
                "alpha",
                "sigma_x",
                "beta_vol",
                "spread_vol",
                "half_life",
                "noise",
                "rate",
                "step",
            ):
                if key in o:
                    spec_args[key] = float(o[key])
            spec_args["beta0"] = _floats(o, "beta0") or tuple(1.5 for _ in xs)
            spec_args["x0"] = _floats(o, "x0") or tuple(100.0 for _ in xs)
            market = SyntheticMarket(SyntheticSpec(**spec_args), seed=int(o.get("seed", 0)))
            speed = o.get("speed", 1.0)
            return SyntheticFeed(market, _FOREVER_S, speed=None if speed is False else float(speed))
        if kind == "file":
            speed = o.get("speed")
            return FileFeed(
                [Path(p) for p in o["paths"]],
                speed=None if speed in (None, False) else float(speed),
                ts_unit=str(o.get("ts_unit", "auto")),
            )
        if kind == "mqtt":
            return MqttTickFeed(
                o.get("url", "mqtt://127.0.0.1:1883"),
                tuple(o["topics"]),
                qos=int(o.get("qos", 1)),
                username=o.get("username"),
                password=o.get("password"),
                logger=logger,
                ts_unit=str(o.get("ts_unit", "auto")),
            )
        venue: Any
        if kind == "binance":
            venue = BinanceSpot(o["symbols"], **_pick(o, "url", "streams"))
        elif kind == "coinbase":
            venue = CoinbaseExchange(o["symbols"], **_pick(o, "url", "channels"))
        elif kind == "alpaca":
            venue = AlpacaStocks(o["symbols"], key=o["key"], secret=o["secret"], **_pick(o, "url"))
        elif kind == "polygon":
            venue = PolygonStocks(o["symbols"], api_key=o["api_key"], **_pick(o, "url"))
        else:
            raise ConfigError("feeds.kind", f"unknown feed kind {kind!r}")
        return WebSocketFeed(venue.url, venue, logger=logger)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"feeds.{kind}", str(exc)) from None


def _pick(options: dict[str, Any], *keys: str) -> dict[str, Any]:
    picked = {}
    for key in keys:
        if key in options:
            value = options[key]
            picked[key] = tuple(value) if isinstance(value, list) else value
    return picked
