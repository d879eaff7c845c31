"""The ``[[feeds]]`` tables: one typed, frozen settings struct per feed ``kind`` (the table's
tag), validated at load; :mod:`hedger.runtime.feeds` builds the feeds from them. Secrets given
as environment variable names (``key_env``, ...) are resolved here, so a feed's settings carry
the secret itself."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from feeds.broker import tls_context
from feeds.files.timestamps import DATE_PATTERN
from hedger.config.pipeline import bar_settings
from hedger.config.schema import (
    NonEmpty,
    Qos,
    Secret,
    Symbols,
    Table,
    decode,
    known_keys,
    secret,
    sub_table,
    unknown_key,
)
from hedger.errors import ConfigError, TransportError

_M = typing.TypeVar("_M", bound=msgspec.Struct)

TsUnit = Literal["auto", "iso", "s", "ms", "us", "ns"]
Speed = Annotated[
    Annotated[float, Meta(gt=0)] | Literal[False],
    Meta(description="a number > 0 (times real time) or false"),
]
Floats = Annotated[float | tuple[float, ...], Meta(description="a number or a list of numbers")]
DatePattern = Annotated[str, Meta(pattern="%", description=DATE_PATTERN)]
"""``date_format``: checked as ``--date-format`` is (:func:`hedger.cli.options.date_pattern`)."""
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


class _Feed(Table, frozen=True, tag_field="kind"):
    @property
    def kind(self) -> str:
        """The feed's kind, as written in its table."""
        return str(type(self).__struct_config__.tag)


class SyntheticFeedSettings(_Feed, frozen=True, tag="synthetic"):
    """The simulated market of :mod:`feeds.synthetic` (prices in currency units, times in s;
    a parameter left out takes :class:`feeds.synthetic.SyntheticSpec`'s default). ``beta0``
    and ``x0``: one number per X, or one for all."""

    y: NonEmpty = "YYY"
    xs: Symbols = ("XXX",)
    seed: int = 0
    speed: Speed = 1.0
    rate: float | None = None
    alpha: float | None = None
    sigma_x: float | None = None
    beta_vol: float | None = None
    spread_vol: float | None = None
    half_life: float | None = None
    noise: float | None = None
    step: float | None = None
    beta0: Floats | None = None
    x0: Floats | None = None


class FileFeedSettings(_Feed, frozen=True, tag="file"):
    """Recorded files merged in event time, paced at ``speed`` times real time (or flat out).
    ``date_format``: the strftime pattern of the files' text dates, as ``--date-format``
    (default: the common forms, m/d/Y or d/m/Y told from the values)."""

    paths: Annotated[tuple[str, ...], Meta(min_length=1, description="a non-empty list of files")]
    speed: Speed | None = None
    ts_unit: TsUnit = "auto"
    date_format: DatePattern | None = None
    bar_ns: int | None = None
    """Not a key: the pipeline's bar length (``[bars] length``, ns), set by
    :func:`feed_settings`, by which the feed refuses rows from the future as a replay does."""


class MqttFeedSettings(_Feed, frozen=True, tag="mqtt"):
    """Ticks published on an MQTT broker under ``topics`` (filters). ``password`` holds the
    secret once loaded, whether the file gave it or named its variable (``password_env``);
    ``tls``, ``ca_file``, ``cert_file``, ``key_file`` as in [bus.mqtt]. ``persistent``
    (with a ``client_id``): the broker keeps the session while the daemon is down and sends
    the ticks it held when the daemon is back; each message is acknowledged once its ticks
    are journalled ([state]), so a daemon killed with ticks in its queues gets them again."""

    topics: Annotated[tuple[str, ...], Meta(description="a list of topic filters")]
    url: str = DEFAULT_MQTT_URL
    qos: Qos = 1
    username: str | None = None
    password: Secret | None = None
    password_env: NonEmpty | None = None
    tls: bool = False
    ca_file: NonEmpty | None = None
    cert_file: NonEmpty | None = None
    key_file: NonEmpty | None = None
    ts_unit: TsUnit = "auto"
    client_id: NonEmpty | None = None
    persistent: bool = False


class BinanceFeedSettings(_Feed, frozen=True, tag="binance"):
    """Binance spot trades and book tickers (a ``url`` or ``streams`` left out: the venue's)."""

    symbols: Symbols
    url: str | None = None
    streams: tuple[str, ...] | None = None


class CoinbaseFeedSettings(_Feed, frozen=True, tag="coinbase"):
    """Coinbase Exchange matches and tickers of the product ids ``symbols``."""

    symbols: Symbols
    url: str | None = None
    channels: tuple[str, ...] | None = None


class AlpacaFeedSettings(_Feed, frozen=True, tag="alpaca"):
    """Alpaca stock trades and quotes; the key and secret, or the environment variables that
    hold them (``key_env``, ``secret_env``)."""

    symbols: Symbols
    url: str | None = None
    key: Secret | None = None
    secret: Secret | None = None
    key_env: NonEmpty | None = None
    secret_env: NonEmpty | None = None


class PolygonFeedSettings(_Feed, frozen=True, tag="polygon"):
    """Polygon stock trades and quotes; the API key, or the variable that holds it."""

    symbols: Symbols
    url: str | None = None
    api_key: Secret | None = None
    api_key_env: NonEmpty | None = None


FeedSettings = (
    SyntheticFeedSettings
    | BinanceFeedSettings
    | CoinbaseFeedSettings
    | AlpacaFeedSettings
    | PolygonFeedSettings
    | MqttFeedSettings
    | FileFeedSettings
)
"""One ``[[feeds]]`` table, by its kind."""

FEED_KINDS: tuple[str, ...] = tuple(
    str(settings.__struct_config__.tag) for settings in typing.get_args(FeedSettings)
)


class _Feeds(Table, frozen=True):
    feeds: Annotated[
        tuple[FeedSettings, ...], Meta(description="an array of tables ([[feeds]])")
    ] = ()


def feed_settings(document: Mapping[str, Any]) -> tuple[FeedSettings, ...]:
    """The document's ``[[feeds]]`` tables (at least one), secrets resolved."""
    tables = document.get("feeds", [])
    feeds = decode({"feeds": tables}, _Feeds, "").feeds
    if not feeds:
        raise ConfigError("feeds", "at least one [[feeds]] table is needed")
    return tuple(
        _resolved(
            _file_feed(feed, table, document, f"feeds[{i}]")
            if isinstance(feed, FileFeedSettings)
            else feed,
            f"feeds[{i}]",
        )
        for i, (feed, table) in enumerate(zip(feeds, tables, strict=True))
    )


def _file_feed(
    feed: FileFeedSettings, table: Mapping[str, Any], document: Mapping[str, Any], section: str
) -> FileFeedSettings:
    """A file feed with the pipeline's bar length (``bar_ns`` is no key of the table)."""
    if "bar_ns" in table:
        raise unknown_key(section, "bar_ns", known_keys(FileFeedSettings) - {"bar_ns"})
    bar_ns = bar_settings(sub_table(document, "bars")).length_ns
    return msgspec.structs.replace(feed, bar_ns=bar_ns)


def _resolved(feed: FeedSettings, section: str) -> FeedSettings:
    if isinstance(feed, AlpacaFeedSettings):
        key = secret(section, "key", feed.key, feed.key_env)
        value = secret(section, "secret", feed.secret, feed.secret_env)
        if not key or not value:
            raise ConfigError(section, "alpaca needs key and secret (or key_env, secret_env)")
        return msgspec.structs.replace(feed, key=key, secret=value)
    if isinstance(feed, PolygonFeedSettings):
        api_key = secret(section, "api_key", feed.api_key, feed.api_key_env)
        if not api_key:
            raise ConfigError(section, "polygon needs api_key (or api_key_env)")
        return msgspec.structs.replace(feed, api_key=api_key)
    if isinstance(feed, MqttFeedSettings):
        if feed.persistent and feed.client_id is None:
            raise ConfigError(f"{section}.persistent", "a persistent session needs a client_id")
        return mqtt_client_settings(feed, section)
    return feed


def mqtt_client_settings(settings: _M, section: str) -> _M:
    """MQTT client settings (``[bus.mqtt]`` or an MQTT feed's table) with ``password``
    resolved from ``password_env`` and the TLS files checked: one that cannot be read or used
    is an error naming its key and its path (never a secret)."""
    given, env = getattr(settings, "password"), getattr(settings, "password_env")  # noqa: B009
    password = secret(section, "password", given, env)
    files = {name: getattr(settings, name) for name in ("ca_file", "cert_file", "key_file")}
    if any(path is not None for path in files.values()):
        try:
            tls_context(**files)
        except TransportError as exc:
            name = exc.problem.split(" ", 1)[0]
            key = name if name in files else "key_file"
            raise ConfigError(f"{section}.{key}", exc.problem.removeprefix(f"{name} ")) from None
    return msgspec.structs.replace(settings, password=password)
