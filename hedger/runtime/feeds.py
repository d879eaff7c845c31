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
from hedger.config.feeds import (
    AlpacaFeedSettings,
    BinanceFeedSettings,
    CoinbaseFeedSettings,
    FeedSettings,
    FileFeedSettings,
    MqttFeedSettings,
    PolygonFeedSettings,
    SyntheticFeedSettings,
)
from hedger.core.bars import without_future_rows
from hedger.core.rejects import Logger
from hedger.core.ticks import Tick
from hedger.errors import ConfigError
from hedger.runtime.clock import Clock, LiveClock
from hedger.runtime.replay import merged_ticks

_FOREVER_S = 10.0 * 365 * 86_400


class FileFeed(PacedFeed):
    """Recorded files as a feed (merged in event time), optionally paced at ``speed`` times
    real time; it yields to the event loop regularly so it never starves the rest.

    ``bar_ns``: the pipeline's bar length; each file's rows from the future (the replay's jump
    tests, :func:`~hedger.core.bars.without_future_rows`) are counted as ``future`` in
    :attr:`rejects` and dropped, since the daemon's bars, which also serve live feeds, never
    hold a tick back to look ahead (None: not judged). ``date_format``: as
    ``--date-format``."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        speed: float | None,
        ts_unit: str,
        date_format: str | None = None,
        bar_ns: int | None = None,
    ) -> None:
        super().__init__(speed)
        self._paths = list(paths)
        self._ts_unit = ts_unit
        self._date_format = date_format
        self._bar_ns = bar_ns

    def source(self) -> Iterator[Tick]:
        paths, bar_ns = self._paths, self._bar_ns
        ticks = merged_ticks(
            paths, self.rejects, self._ts_unit, bar_ns, date_format=self._date_format
        )
        if bar_ns is None or len(paths) > 1:  # several files: each judged before the merge
            return ticks
        return without_future_rows(ticks, bar_ns, self.rejects, str(paths[0]))


def build_feed(settings: FeedSettings, logger: Logger | None, clock: Clock | None = None) -> Feed:
    """One configured feed, ready to be entered (``async with``); a synthetic market starts
    at ``clock``'s wall time (the live clock's if None)."""
    try:
        return _build(settings, logger, clock or LiveClock())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"feeds.{settings.kind}", str(exc)) from None


def _build(settings: FeedSettings, logger: Logger | None, clock: Clock) -> Feed:
    match settings:
        case SyntheticFeedSettings():
            spec = _synthetic_spec(settings, clock.time_ns())
            market = SyntheticMarket(spec, seed=settings.seed)
            return SyntheticFeed(market, _FOREVER_S, speed=settings.speed or None)
        case FileFeedSettings():
            paths = [Path(p) for p in settings.paths]
            return FileFeed(
                paths,
                speed=settings.speed or None,
                ts_unit=settings.ts_unit,
                date_format=settings.date_format,
                bar_ns=settings.bar_ns,
            )
        case MqttFeedSettings():
            return MqttTickFeed(
                settings.url,
                settings.topics,
                qos=settings.qos,
                username=settings.username,
                password=settings.password,
                tls=settings.tls,
                ca_file=settings.ca_file,
                cert_file=settings.cert_file,
                key_file=settings.key_file,
                logger=logger,
                ts_unit=settings.ts_unit,
                client_id=settings.client_id,
                persistent=settings.persistent,
                ack_when_durable=settings.persistent,
            )
    venue = _venue(settings)
    return WebSocketFeed(venue.url, venue, logger=logger)


def _venue(
    settings: BinanceFeedSettings | CoinbaseFeedSettings | AlpacaFeedSettings | PolygonFeedSettings,
) -> Any:
    """The venue's sans-I/O protocol; an option left out (``url``, ``streams``, ...): the
    venue's default."""
    url = _given(url=settings.url)
    match settings:
        case BinanceFeedSettings():
            return BinanceSpot(settings.symbols, **url, **_given(streams=settings.streams))
        case CoinbaseFeedSettings():
            return CoinbaseExchange(settings.symbols, **url, **_given(channels=settings.channels))
        case AlpacaFeedSettings(key=str(key), secret=str(secret)):
            return AlpacaStocks(settings.symbols, key=key, secret=secret, **url)
        case PolygonFeedSettings(api_key=str(api_key)):
            return PolygonStocks(settings.symbols, api_key=api_key, **url)
    raise ConfigError(f"feeds.{settings.kind}", "needs its key (or the variable that holds it)")


def _given(**options: Any) -> dict[str, Any]:
    return {key: value for key, value in options.items() if value is not None}


def _synthetic_spec(settings: SyntheticFeedSettings, start_ns: int) -> SyntheticSpec:
    """The market's parameters: those the table gives, the spec's defaults for the rest; its
    ticks start at ``start_ns`` (ns since the epoch)."""
    given = {
        key: value for key in _SYNTHETIC_FLOATS if (value := getattr(settings, key)) is not None
    }
    n = len(settings.xs)
    return SyntheticSpec(
        y=settings.y,
        xs=settings.xs,
        beta0=_per_leg(settings.beta0, n, 1.5),
        x0=_per_leg(settings.x0, n, 100.0),
        start_ns=start_ns,
        **given,
    )


_SYNTHETIC_FLOATS = (
    "alpha", "sigma_x", "beta_vol", "spread_vol", "half_life", "noise", "rate", "step",
)  # fmt: skip


def _per_leg(value: float | tuple[float, ...] | None, n: int, default: float) -> tuple[float, ...]:
    """One number per hedge leg: the list as given, a number for one leg, or the default for
    every leg."""
    if value is None:
        return tuple(default for _ in range(n))
    if isinstance(value, float):
        return (value,)
    return value
