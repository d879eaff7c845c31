"""The daemon's configuration: the replay sections ([bars], [filter], [pairs]) plus [[feeds]],
[bus] (with [bus.mqtt] and [bus.websocket]), [daemon], [logging] and [matrix] (the live
hedge-ratio matrix: ``symbols = [...]`` plus any [filter] key as an override), [refit]
(background refits of the pairs' noise, :mod:`hedger.runtime.refit`). Validated at
load into frozen dataclasses; unknown keys are errors naming the key. See
``deploy/hedger.toml``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from feeds.broker import parse_broker_url
from hedger.config.pipeline import (
    DOCUMENT_SECTIONS,
    FILTER_KEYS,
    PipelineConfig,
    bar_settings,
    filter_params,
    pipeline_config,
)
from hedger.config.refit import RefitSettings, refit_settings
from hedger.core.bars import parse_duration_ns
from hedger.engine import FilterParams
from hedger.errors import ConfigError, TransportError

FEED_KINDS = ("synthetic", "binance", "coinbase", "alpaca", "polygon", "mqtt", "file")
_FEED_KEYS: dict[str, frozenset[str]] = {
    "synthetic": frozenset(
        {"kind", "y", "xs", "seed", "speed", "rate", "beta0", "x0", "alpha", "sigma_x",
         "beta_vol", "spread_vol", "half_life", "noise", "step"}
    ),
    "binance": frozenset({"kind", "symbols", "url", "streams"}),
    "coinbase": frozenset({"kind", "symbols", "url", "channels"}),
    "alpaca": frozenset({"kind", "symbols", "url", "key", "secret", "key_env", "secret_env"}),
    "polygon": frozenset({"kind", "symbols", "url", "api_key", "api_key_env"}),
    "mqtt": frozenset({"kind", "url", "topics", "qos", "username", "password", "ts_unit"}),
    "file": frozenset({"kind", "paths", "speed", "ts_unit"}),
}  # fmt: skip
BUS_KEYS = frozenset({"root", "mqtt", "websocket", "outbox"})
MQTT_KEYS = frozenset({"url", "qos", "username", "password", "tls", "client_id", "keepalive"})
WS_KEYS = frozenset({"host", "port", "token", "token_env", "client_queue"})
DAEMON_KEYS = frozenset({"tick_queue", "shutdown_timeout", "metrics_interval", "bar_grace"})
LOGGING_KEYS = frozenset({"level", "json"})
MATRIX_KEYS = FILTER_KEYS | {"symbols"}


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """One feed: its kind and its options (validated against the kind's keys)."""

    kind: str
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """The MQTT transport."""

    url: str = "mqtt://127.0.0.1:1883"
    qos: int = 1
    username: str | None = None
    password: str | None = None
    tls: bool = False
    client_id: str | None = None
    keepalive: int = 30


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """The WebSocket server transport."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    client_queue: int = 1000


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


def _table(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return value


def _unknown(section: str, table: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in table:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"{section}.{key}", f"unknown key (known: {known})")


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, f"must be an integer >= {minimum}, got {value!r}")
    return value


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, f"must be a non-empty string, got {value!r}")
    return value


def _seconds(key: str, value: Any) -> float:
    return parse_duration_ns(str(value), key) / 1e9


def _secret(table: Mapping[str, Any], key: str, env_key: str, section: str) -> str | None:
    if key in table:
        return _str(f"{section}.{key}", table[key])
    if env_key in table:
        name = _str(f"{section}.{env_key}", table[env_key])
        value = os.environ.get(name)
        if not value:
            raise ConfigError(f"{section}.{env_key}", f"environment variable {name} is not set")
        return value
    return None


def _mqtt_url(key: str, value: Any) -> str:
    url = _str(key, value)
    try:
        parse_broker_url(url)
    except TransportError as exc:
        raise ConfigError(key, f"{exc.problem}, got {exc.address!r}") from None
    return url


def _speed(key: str, value: Any) -> None:
    if value is False or value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(key, f"must be a number > 0 (times real time) or false, got {value!r}")


def _feeds(document: Mapping[str, Any]) -> tuple[FeedSettings, ...]:
    raw = document.get("feeds", [])
    if not isinstance(raw, list):
        raise ConfigError("feeds", "must be an array of tables ([[feeds]])")
    feeds = []
    for i, table in enumerate(raw):
        section = f"feeds[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(section, "must be a table")
        kind = table.get("kind")
        if kind not in FEED_KINDS:
            raise ConfigError(f"{section}.kind", f"must be one of {', '.join(FEED_KINDS)}")
        _unknown(section, table, _FEED_KEYS[kind])
        options = dict(table)
        if kind in ("binance", "coinbase", "alpaca", "polygon"):
            symbols = table.get("symbols")
            if (
                not isinstance(symbols, list)
                or not symbols
                or not all(isinstance(s, str) and s for s in symbols)
            ):
                raise ConfigError(f"{section}.symbols", "must be a non-empty list of symbols")
        if kind == "alpaca":
            options["key"] = _secret(table, "key", "key_env", section)
            options["secret"] = _secret(table, "secret", "secret_env", section)
            if not options["key"] or not options["secret"]:
                raise ConfigError(section, "alpaca needs key and secret (or key_env, secret_env)")
        if kind == "polygon":
            options["api_key"] = _secret(table, "api_key", "api_key_env", section)
            if not options["api_key"]:
                raise ConfigError(section, "polygon needs api_key (or api_key_env)")
        if kind == "file":
            paths = table.get("paths")
            if not isinstance(paths, list) or not paths:
                raise ConfigError(f"{section}.paths", "must be a non-empty list of files")
        if kind == "mqtt":
            if not isinstance(table.get("topics"), list):
                raise ConfigError(f"{section}.topics", "must be a list of topic filters")
            _mqtt_url(f"{section}.url", table.get("url", "mqtt://127.0.0.1:1883"))
        if kind == "synthetic":
            xs = table.get("xs", ["XXX"])
            if not isinstance(xs, list) or not xs or not all(isinstance(x, str) and x for x in xs):
                raise ConfigError(f"{section}.xs", "must be a non-empty list of symbols")
        if kind in ("synthetic", "file"):
            _speed(f"{section}.speed", table.get("speed"))
        feeds.append(FeedSettings(kind, options))
    if not feeds:
        raise ConfigError("feeds", "at least one [[feeds]] table is needed")
    return tuple(feeds)


def _matrix(document: Mapping[str, Any]) -> MatrixSettings | None:
    if "matrix" not in document:
        return None
    table = _table(document, "matrix")
    _unknown("matrix", table, MATRIX_KEYS)
    symbols = table.get("symbols")
    if (
        not isinstance(symbols, list)
        or len(symbols) < 2
        or not all(isinstance(s, str) and s for s in symbols)
    ):
        raise ConfigError("matrix.symbols", "must be a list of at least 2 symbols")
    if len(set(symbols)) != len(symbols):
        raise ConfigError("matrix.symbols", "a symbol is listed twice")
    overrides = {key: value for key, value in table.items() if key != "symbols"}
    params = filter_params({**_table(document, "filter"), **overrides}, 1, "matrix")
    return MatrixSettings(tuple(symbols), params)


def _pipeline(document: Mapping[str, Any], matrix: MatrixSettings | None) -> PipelineConfig:
    if matrix is not None and not document.get("pairs"):
        # the matrix alone: no pair actors; the sections and [bars] are checked all the same
        _unknown("config", document, DOCUMENT_SECTIONS)
        return PipelineConfig(bar_settings(_table(document, "bars")), ())
    return pipeline_config(document)


def daemon_config(document: Mapping[str, Any]) -> DaemonConfig:
    """Validate a whole daemon document."""
    matrix = _matrix(document)
    pipeline = _pipeline(document, matrix)
    feeds = _feeds(document)
    bus = _table(document, "bus")
    _unknown("bus", bus, BUS_KEYS)
    root = _str("bus.root", bus.get("root", "hedger"))
    if any(ch in root for ch in "+#") or root.startswith("/") or root.endswith("/"):
        raise ConfigError("bus.root", f"must be a plain topic prefix, got {root!r}")
    mqtt = None
    if "mqtt" in bus:
        table = _table(bus, "mqtt")
        _unknown("bus.mqtt", table, MQTT_KEYS)
        qos = _int("bus.mqtt.qos", table.get("qos", 1), 0)
        if qos > 2:
            raise ConfigError("bus.mqtt.qos", "must be 0, 1 or 2")
        tls = table.get("tls", False)
        if not isinstance(tls, bool):
            raise ConfigError("bus.mqtt.tls", "must be true or false")
        url = _mqtt_url("bus.mqtt.url", table.get("url", "mqtt://127.0.0.1:1883"))
        mqtt = MqttSettings(
            url=url,
            qos=qos,
            username=table.get("username"),
            password=table.get("password"),
            tls=tls,
            client_id=table.get("client_id"),
            keepalive=_int("bus.mqtt.keepalive", table.get("keepalive", 30), 1),
        )
    websocket = None
    if "websocket" in bus:
        table = _table(bus, "websocket")
        _unknown("bus.websocket", table, WS_KEYS)
        port = _int("bus.websocket.port", table.get("port", 8765), 0)
        if port > 65535:
            raise ConfigError("bus.websocket.port", "must be <= 65535")
        websocket = WebSocketSettings(
            host=_str("bus.websocket.host", table.get("host", "127.0.0.1")),
            port=port,
            token=_secret(table, "token", "token_env", "bus.websocket"),
            client_queue=_int("bus.websocket.client_queue", table.get("client_queue", 1000), 1),
        )
    daemon = _table(document, "daemon")
    _unknown("daemon", daemon, DAEMON_KEYS)
    logging_table = _table(document, "logging")
    _unknown("logging", logging_table, LOGGING_KEYS)
    level = logging_table.get("level", "info")
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError("logging.level", "must be debug, info, warning or error")
    log_json = logging_table.get("json")
    if log_json is not None and not isinstance(log_json, bool):
        raise ConfigError("logging.json", "must be true or false")
    return DaemonConfig(
        pipeline=pipeline,
        feeds=feeds,
        root=root,
        outbox=_int("bus.outbox", bus.get("outbox", 100_000), 1),
        mqtt=mqtt,
        websocket=websocket,
        tick_queue=_int("daemon.tick_queue", daemon.get("tick_queue", 100_000), 1),
        shutdown_timeout_s=_seconds(
            "daemon.shutdown_timeout", daemon.get("shutdown_timeout", "10s")
        ),
        metrics_interval_s=_seconds(
            "daemon.metrics_interval", daemon.get("metrics_interval", "5s")
        ),
        bar_grace_ns=parse_duration_ns(str(daemon.get("bar_grace", "200ms")), "daemon.bar_grace"),
        log_level=level,
        log_json=log_json,
        matrix=matrix,
        refit=refit_settings(_table(document, "refit")) if "refit" in document else None,
    )
