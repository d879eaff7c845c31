"""The daemon's configuration: the replay sections ([bars], [filter], [pairs]) plus [[feeds]]
(:mod:`hedger.config.feeds`), [bus] (with [bus.mqtt] and [bus.websocket]), [daemon],
[logging], [state] (checkpoints and journals, :mod:`hedger.config.state`) and [matrix] (the
live hedge-ratio matrix: ``symbols = [...]`` plus any [filter] key as an override), [refit]
(background refits of the pairs' noise, :mod:`hedger.runtime.refit`), [control] (pairs
changed at run time, :mod:`hedger.config.control`). Validated at load into frozen values;
unknown keys are errors naming the key. See ``deploy/hedger.toml``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from feeds.broker import parse_broker_url
from hedger.config.control import ControlSettings, control_settings
from hedger.config.feeds import (
    DEFAULT_MQTT_URL,
    FEED_KINDS,
    FeedSettings,
    MqttFeedSettings,
    feed_settings,
    mqtt_client_settings,
)
from hedger.config.pipeline import (
    DOCUMENT_SECTIONS,
    FilterTable,
    PipelineConfig,
    bar_settings,
    filter_params,
    pipeline_config,
)
from hedger.config.refit import RefitSettings, refit_settings
from hedger.config.schema import (
    Duration,
    NonEmpty,
    Qos,
    Secret,
    Table,
    check_keys,
    decode,
    duration_ns,
    seconds,
    secret,
    sub_table,
)
from hedger.config.state import StateSettings, state_settings
from hedger.core.shards import Shard
from hedger.engine import FilterParams
from hedger.errors import ConfigError, TransportError

__all__ = [
    "FEED_KINDS",
    "DaemonConfig",
    "FeedSettings",
    "MatrixSettings",
    "MqttSettings",
    "WebSocketSettings",
    "daemon_config",
]

Positive = Annotated[int, Meta(ge=1)]


class MqttSettings(Table, frozen=True):
    """The MQTT transport ([bus.mqtt]); ``keepalive`` in seconds. ``password`` holds the
    secret once loaded, whether the file gave it or named its environment variable
    (``password_env``). ``tls``: TLS with the system's trust store; ``ca_file``: TLS trusting
    the certificate authorities of this PEM file instead; ``cert_file`` (and ``key_file``,
    unless the key is in the same file): a client certificate to present."""

    url: str = DEFAULT_MQTT_URL
    qos: Qos = 1
    username: str | None = None
    password: Secret | None = None
    password_env: NonEmpty | None = None
    tls: bool = False
    ca_file: NonEmpty | None = None
    cert_file: NonEmpty | None = None
    key_file: NonEmpty | None = None
    client_id: str | None = None
    keepalive: Positive = 30


class WebSocketSettings(Table, frozen=True):
    """The WebSocket server transport ([bus.websocket]); ``token`` holds the secret once
    loaded, whether the file gave it or named its environment variable (``token_env``).
    ``max_clients``: connections served at once (one more is refused with HTTP 503);
    ``max_pairs_per_client``: pairs one client may subscribe to (``"*"`` counts as none)."""

    host: NonEmpty = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535, description="an integer from 0 to 65535")] = 8765
    token: Secret | None = None
    token_env: NonEmpty | None = None
    client_queue: Positive = 1000
    max_clients: Positive = 256
    max_pairs_per_client: Positive = 1000


class _Bus(Table, frozen=True):
    root: NonEmpty = "hedger"
    outbox: Positive = 100_000
    per_pair: bool = True
    bar: bool = True
    mqtt: MqttSettings | None = None
    websocket: WebSocketSettings | None = None


class _Daemon(Table, frozen=True):
    tick_queue: Positive = 100_000
    shutdown_timeout: Duration = "10s"
    metrics_interval: Duration = "5s"
    bar_grace: Duration = "200ms"


class _Shard(Table, frozen=True):
    index: Annotated[int, Meta(ge=0, description="an integer >= 0")]
    count: Positive


class _Logging(Table, frozen=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json: bool | None = None


class _Matrix(FilterTable, frozen=True, kw_only=True):
    symbols: Annotated[
        tuple[NonEmpty, ...], Meta(min_length=2, description="a list of at least 2 symbols")
    ]


@dataclass(frozen=True, slots=True)
class MatrixSettings:
    """The live hedge-ratio matrix: its symbols (N >= 2, in matrix order) and the parameters
    of every pair filter ([filter] defaults, overridden by the [matrix] table's keys)."""

    symbols: tuple[str, ...]
    params: FilterParams


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """Everything ``hedger run`` needs."""

    pipeline: PipelineConfig
    feeds: tuple[FeedSettings, ...]
    root: str = "hedger"
    outbox: int = 100_000
    per_pair: bool = True
    """Each bar's ratios and spreads on their per-pair topics."""
    bar_message: bool = True
    """Each bar as one batch message on ``<root>/v1/bar``."""
    mqtt: MqttSettings | None = None
    websocket: WebSocketSettings | None = None
    tick_queue: int = 100_000
    shutdown_timeout_s: float = 10.0
    metrics_interval_s: float = 5.0
    bar_grace_ns: int = 200_000_000
    log_level: str = "info"
    log_json: bool | None = None
    matrix: MatrixSettings | None = None
    refit: RefitSettings | None = None
    control: ControlSettings = field(default_factory=ControlSettings)
    state: StateSettings | None = None
    """Checkpoints and journals ([state]); None: the daemon keeps nothing across a restart."""
    shard: Shard | None = None
    """This daemon runs only the pairs its shard owns ([shard], ``--shard i/N``)."""


def _mqtt_url(key: str, url: str) -> str:
    try:
        parse_broker_url(url)
    except TransportError as exc:
        raise ConfigError(key, f"{exc.problem}, got {exc.address!r}") from None
    return url


def _matrix(document: Mapping[str, Any]) -> MatrixSettings | None:
    if "matrix" not in document:
        return None
    table = sub_table(document, "matrix")
    matrix = decode(table, _Matrix, "matrix")
    if len(set(matrix.symbols)) != len(matrix.symbols):
        raise ConfigError("matrix.symbols", "a symbol is listed twice")
    overrides = {key: value for key, value in table.items() if key != "symbols"}
    params = filter_params({**sub_table(document, "filter"), **overrides}, 1, "matrix")
    return MatrixSettings(matrix.symbols, params)


def _pipeline(document: Mapping[str, Any], matrix: MatrixSettings | None) -> PipelineConfig:
    if matrix is not None and not document.get("pairs"):
        # the matrix alone: no pair actors; the sections and [bars] are checked all the same
        check_keys("config", document, DOCUMENT_SECTIONS)
        return PipelineConfig(bar_settings(sub_table(document, "bars")), ())
    return pipeline_config(document)


def _feeds(document: Mapping[str, Any]) -> tuple[FeedSettings, ...]:
    feeds = feed_settings(document)
    for i, feed in enumerate(feeds):
        if isinstance(feed, MqttFeedSettings):
            _mqtt_url(f"feeds[{i}].url", feed.url)
    return feeds


def _websocket(settings: WebSocketSettings | None) -> WebSocketSettings | None:
    if settings is None:
        return None
    token = secret("bus.websocket", "token", settings.token, settings.token_env)
    return msgspec.structs.replace(settings, token=token)


def with_shard(config: DaemonConfig, shard: Shard | None) -> DaemonConfig:
    """``config`` running only the pairs ``shard`` owns (:mod:`hedger.core.shards`); None:
    unchanged. A :class:`ConfigError` if the shard would run no pair (and no matrix)."""
    if shard is None:
        return config
    pairs = tuple(spec for spec in config.pipeline.pairs if shard.owns(str(spec.pair)))
    if not pairs and config.matrix is None:
        raise ConfigError(
            "shard", f"shard {shard} runs none of the {len(config.pipeline.pairs)} pair(s)"
        )
    pipeline = replace(config.pipeline, pairs=pairs)
    return replace(config, pipeline=pipeline, shard=shard)


def daemon_config(document: Mapping[str, Any]) -> DaemonConfig:
    """Validate a whole daemon document."""
    matrix = _matrix(document)
    pipeline = _pipeline(document, matrix)
    feeds = _feeds(document)
    bus = decode(sub_table(document, "bus"), _Bus, "bus")
    if any(ch in bus.root for ch in "+#") or bus.root.startswith("/") or bus.root.endswith("/"):
        raise ConfigError("bus.root", f"must be a plain topic prefix, got {bus.root!r}")
    mqtt = bus.mqtt
    if mqtt is not None:
        _mqtt_url("bus.mqtt.url", mqtt.url)
        mqtt = mqtt_client_settings(mqtt, "bus.mqtt")
    daemon = decode(sub_table(document, "daemon"), _Daemon, "daemon")
    logging = decode(sub_table(document, "logging"), _Logging, "logging")
    config = DaemonConfig(
        pipeline=pipeline,
        feeds=feeds,
        root=bus.root,
        outbox=bus.outbox,
        per_pair=bus.per_pair,
        bar_message=bus.bar,
        mqtt=mqtt,
        websocket=_websocket(bus.websocket),
        tick_queue=daemon.tick_queue,
        shutdown_timeout_s=seconds(daemon.shutdown_timeout, "daemon.shutdown_timeout"),
        metrics_interval_s=seconds(daemon.metrics_interval, "daemon.metrics_interval"),
        bar_grace_ns=duration_ns(daemon.bar_grace, "daemon.bar_grace"),
        log_level=logging.level,
        log_json=logging.json,
        matrix=matrix,
        refit=refit_settings(sub_table(document, "refit")) if "refit" in document else None,
        control=control_settings(document),
        state=state_settings(document),
    )
    if "shard" in document:
        table = decode(sub_table(document, "shard"), _Shard, "shard")
        try:
            shard = Shard(table.index, table.count)
        except ConfigError as exc:
            raise ConfigError("shard.index", exc.problem) from None
        return with_shard(config, shard)
    return config
