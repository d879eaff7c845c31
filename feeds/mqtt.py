"""Ticks from an MQTT broker: subscribe to topic filters, read JSON ticks, reconnect on drops.

Each message's payload is one JSON tick, or a JSON array of them, in the JSON Lines tick
format of :mod:`feeds.files.readers`::

    {"ts": 1700000000.25, "symbol": "AAPL", "price": 189.5, "size": 100}
    {"ts": "2024-01-02T14:30:00.5Z", "symbol": "MSFT", "bid": 370.1, "ask": 370.2}

``ts`` is an epoch number (s, ms, us or ns, told apart by magnitude unless a unit is given)
or an ISO-8601 string; a quote gives ``bid`` and ``ask`` instead of ``price`` and becomes a
quote tick at the mid; ``size`` is optional. Parsing (:func:`parse_tick_payload`) is free of
I/O; :class:`MqttTickFeed` only connects, subscribes, receives and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import aiomqtt
import orjson

from feeds.files.timestamps import TimestampParser
from feeds.reconnect import Backoff
from hedger.core.rejects import Logger, Rejects
from hedger.core.ticks import Tick, TickKind

VENUE = "mqtt"

TimestampFn = Callable[[str | float | int], int]
"""Turns a tick's ``ts`` value into integer ns since the epoch, UTC; ``ValueError`` or
``TypeError`` when it cannot."""

_PLAIN_SCHEMES = frozenset({"mqtt", "tcp"})
_TLS_SCHEMES = frozenset({"mqtts", "ssl", "tls"})
_TS_LIMIT = 2**63  # ticks carry int64-compatible ns


def timestamp_parser(ts_unit: str = "auto") -> TimestampFn:
    """The ``ts`` reader for a stream of messages.

    ``"auto"`` judges every value on its own (an ISO string, or an epoch number whose unit
    follows from its magnitude), so one odd message cannot fix the unit of all later ones;
    ``"iso"``, ``"s"``, ``"ms"``, ``"us"`` and ``"ns"`` insist on that form. Raises
    ``ValueError`` for an unknown unit.
    """
    if ts_unit == "auto":
        return _auto_timestamp
    return TimestampParser(ts_unit)


def _auto_timestamp(value: str | float | int) -> int:
    return TimestampParser("auto")(value)


def parse_tick_payload(
    payload: bytes | bytearray | memoryview | str,
    ts_recv: int,
    rejects: Rejects,
    parse_ts: TimestampFn,
    *,
    venue: str = VENUE,
    source: str = "",
) -> list[Tick]:
    """The ticks in one MQTT payload (a JSON tick object or an array of them), received at
    ``ts_recv`` (ns).

    Every object gives one tick or one reject, counted in ``rejects`` under ``source``:
    ``malformed`` (not JSON, not an object, no symbol), ``bad_timestamp`` (``ts`` missing or
    unreadable) or ``bad_price`` (no price, or one that is not a finite positive number;
    for a quote, either side). An unusable ``size`` is dropped, not rejected. Never raises.
    """
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        rejects.add("malformed", source)
        return []
    if isinstance(document, dict):
        tick = _object_tick(document, ts_recv, rejects, parse_ts, venue, source)
        return [] if tick is None else [tick]
    if not isinstance(document, list):
        rejects.add("malformed", source)
        return []
    ticks: list[Tick] = []
    for item in document:
        tick = _object_tick(item, ts_recv, rejects, parse_ts, venue, source)
        if tick is not None:
            ticks.append(tick)
    return ticks


def _object_tick(
    obj: object,
    ts_recv: int,
    rejects: Rejects,
    parse_ts: TimestampFn,
    venue: str,
    source: str,
) -> Tick | None:
    if not isinstance(obj, dict):
        rejects.add("malformed", source)
        return None
    symbol = obj.get("symbol")
    if not isinstance(symbol, str) or not symbol.strip():
        rejects.add("malformed", source)
        return None
    ts = _timestamp(obj.get("ts"), parse_ts)
    if ts is None:
        rejects.add("bad_timestamp", source, ts=str(obj.get("ts"))[:40])
        return None
    kind = TickKind.TRADE
    price: float | None
    if obj.get("price") is not None:
        price = _positive_number(obj["price"])
    elif "bid" in obj and "ask" in obj:
        kind = TickKind.QUOTE
        bid, ask = _positive_number(obj["bid"]), _positive_number(obj["ask"])
        price = None if bid is None or ask is None else 0.5 * bid + 0.5 * ask
    else:
        price = None
    if price is None or not (price > 0.0 and math.isfinite(price)):
        rejects.add("bad_price", source, symbol=symbol[:40])
        return None
    size = _number(obj.get("size"))
    if size is not None and size < 0.0:
        size = None
    return Tick(symbol.strip(), price, ts, ts_recv, size, venue, kind)


def _timestamp(value: object, parse_ts: TimestampFn) -> int | None:
    if not isinstance(value, str | int | float):
        return None
    try:
        ts = parse_ts(value)
    except (ValueError, TypeError, OverflowError):
        return None
    return ts if 0 <= ts < _TS_LIMIT else None


def _number(value: object) -> float | None:
    """A finite float from a JSON number or numeric string, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _positive_number(value: object) -> float | None:
    number = _number(value)
    return number if number is not None and number > 0.0 else None


def _payload_bytes(payload: object) -> bytes | bytearray | str:
    if isinstance(payload, bytes | bytearray | str):
        return payload
    return b"" if payload is None else str(payload).encode()


def _refused(code: object) -> bool:
    """Whether a SUBACK entry (an int for MQTT 3.1.1, a reason code for 5) is a failure."""
    value = getattr(code, "value", code)
    return isinstance(value, int) and value >= 0x80


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where and how to connect, from an ``mqtt[s]://[user:password@]host[:port]`` URL."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls_context: ssl.SSLContext | None


def broker_address(
    url: str,
    *,
    tls: bool | ssl.SSLContext = False,
    username: str | None = None,
    password: str | None = None,
) -> BrokerAddress:
    """Parse a broker URL; explicit credentials override those in the URL. Raises
    ``ValueError`` on anything but an mqtt:// or mqtts:// URL with a host."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _PLAIN_SCHEMES | _TLS_SCHEMES or not parts.hostname:
        raise ValueError(f"expected an mqtt://host[:port] or mqtts://host[:port] URL: {url!r}")
    use_tls = tls is not False or scheme in _TLS_SCHEMES
    context: ssl.SSLContext | None = None
    if isinstance(tls, ssl.SSLContext):
        context = tls
    elif use_tls:
        context = ssl.create_default_context()
    url_user = unquote(parts.username) if parts.username else None
    url_password = unquote(parts.password) if parts.password else None
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if use_tls else 1883),
        username=username if username is not None else url_user,
        password=password if password is not None else url_password,
        tls_context=context,
    )


class MqttTickFeed:
    """Ticks from topics of an MQTT broker: connect, subscribe, parse every message,
    reconnect (and resubscribe) with backoff when the broker goes away, until closed.

    Args:
        url: ``mqtt://host[:port]`` (default port 1883) or ``mqtts://host[:port]`` (TLS,
            default port 8883); user and password may be given in the URL.
        topics: topic filters to subscribe to, wildcards allowed (``"ticks/#"``).
        qos: the subscription's quality of service (0, 1 or 2).
        username, password: broker credentials (override those in the URL).
        tls: ``True`` for TLS with the system's trust store, or an ``ssl.SSLContext``.
        client_id: the MQTT client identifier (the broker assigns one by default). Two
            clients with one identifier knock each other off the broker.
        keepalive: seconds between keepalive pings, which is about how long a silently
            vanished broker (no TCP close) takes to be noticed.
        backoff: reconnect delays.
        logger: a structlog-style logger for connects, drops and sampled rejects.
        queue_size: ticks buffered between the client and the consumer. MQTT has no flow
            control towards the broker: while the consumer lags, messages wait in the
            client's own queue instead.
        ts_unit: how to read ``ts`` (see :func:`timestamp_parser`).
        seed: seeds the backoff jitter.

    Iteration ends after :meth:`close`, once the buffered ticks are consumed.
    """

    def __init__(
        self,
        url: str = "mqtt://127.0.0.1:1883",
        topics: Sequence[str] = ("ticks/#",),
        *,
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        tls: bool | ssl.SSLContext = False,
        client_id: str | None = None,
        keepalive: int = 30,
        backoff: Backoff | None = None,
        logger: Logger | None = None,
        queue_size: int = 10_000,
        ts_unit: str = "auto",
        seed: int | None = None,
    ) -> None:
        broker = broker_address(url, tls=tls, username=username, password=password)
        if isinstance(topics, str):
            topics = [topics]
        if not topics:
            raise ValueError("at least one topic filter is needed")
        for topic in topics:
            aiomqtt.Wildcard(topic)  # raises ValueError on an invalid filter
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        self.url = url
        self.topics = list(topics)
        self.qos = qos
        self.host, self.port = broker.host, broker.port
        self._tls_context = broker.tls_context
        self._username, self._password = broker.username, broker.password
        self.client_id = client_id
        self.keepalive = keepalive
        self._parse_ts = timestamp_parser(ts_unit)
        self.rejects = Rejects(logger)
        self.reconnects = 0
        self.connections = 0
        self.messages = 0
        self._backoff = backoff or Backoff()
        self._logger = logger
        self._queue: asyncio.Queue[Tick | None] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._connected = asyncio.Event()
        self._rng = random.Random(seed)

    async def __aenter__(self) -> Self:
        if self._task is None and not self._closed.is_set():
            self._task = asyncio.create_task(self._run(), name=f"feed-mqtt-{self.host}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Disconnect and stop receiving; idempotent."""
        self._closed.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # wake a consumer waiting on an empty queue (a full one wakes nobody up)
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
        self._connected.clear()

    @property
    def connected(self) -> bool:
        """Whether a connection is up and subscribed."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Wait until a connection is up and subscribed."""
        await self._connected.wait()

    def __aiter__(self) -> AsyncIterator[Tick]:
        return self._ticks()

    async def _ticks(self) -> AsyncIterator[Tick]:
        queue = self._queue
        while not (self._closed.is_set() and queue.empty()):
            tick = await queue.get()
            if tick is None:
                return
            yield tick

    def _client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self._username,
            password=self._password,
            identifier=self.client_id,
            keepalive=self.keepalive,
            tls_context=self._tls_context,
        )

    async def _run(self) -> None:
        attempt = 0
        while not self._closed.is_set():
            try:
                # a fresh client per connection: aiomqtt keeps stale connection state in a
                # client whose connection broke
                async with self._client() as client:
                    await self._subscribe(client)
                    attempt = 0
                    self.connections += 1
                    self._connected.set()
                    self._log("info", "connected")
                    await self._receive(client)
            except asyncio.CancelledError:
                raise
            except (aiomqtt.MqttError, OSError) as exc:
                self._log("warning", "disconnected", error=str(exc) or type(exc).__name__)
            except Exception as exc:  # keep the feed alive whatever the client library does
                self._log("warning", "feed_error", error=repr(exc))
            self._connected.clear()
            if self._closed.is_set():
                break
            self.reconnects += 1
            await asyncio.sleep(self._backoff.delay(attempt, self._rng))
            attempt += 1

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        granted = await client.subscribe([(topic, self.qos) for topic in self.topics])
        for topic, code in zip(self.topics, granted, strict=False):
            if _refused(code):
                self._log("warning", "subscription_refused", topic=topic, code=str(code))

    async def _receive(self, client: aiomqtt.Client) -> None:
        parse_ts, rejects, put = self._parse_ts, self.rejects, self._queue.put
        async for message in client.messages:
            self.messages += 1
            ticks = parse_tick_payload(
                _payload_bytes(message.payload),
                time.time_ns(),
                rejects,
                parse_ts,
                source=message.topic.value,
            )
            for tick in ticks:
                await put(tick)

    def _log(self, level: str, event: str, **kw: Any) -> None:
        if self._logger is not None:
            getattr(self._logger, level)(event, venue=VENUE, url=self._safe_url(), **kw)

    def _safe_url(self) -> str:
        scheme = "mqtts" if self._tls_context is not None else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"


async def mqtt_messages(
    url: str,
    topics: Sequence[str],
    *,
    qos: int = 1,
    backoff: Backoff | None = None,
    on_state: Callable[[str], None] | None = None,
) -> AsyncIterator[tuple[str, bytes]]:
    """Raw messages ``(topic, payload)`` from topic filters on a broker, reconnecting with
    backoff (a fresh client per connection) until the consumer stops iterating. ``on_state``
    hears ``"connected"`` and ``"disconnected: <why>"``. Used by ``hedger subscribe``."""
    broker = broker_address(url)
    delays = backoff or Backoff(initial=0.2, maximum=5.0)
    rng = random.Random()
    attempt = 0
    while True:
        try:
            async with aiomqtt.Client(
                broker.host,
                broker.port,
                username=broker.username,
                password=broker.password,
                tls_context=broker.tls_context,
            ) as client:
                for topic in topics:
                    await client.subscribe(topic, qos=qos)
                attempt = 0
                if on_state is not None:
                    on_state("connected")
                async for message in client.messages:
                    payload = _payload_bytes(message.payload)
                    yield (
                        str(message.topic),
                        (payload.encode() if isinstance(payload, str) else bytes(payload)),
                    )
        except aiomqtt.MqttError as exc:
            if on_state is not None:
                on_state(f"disconnected: {exc}")
        await asyncio.sleep(delays.delay(attempt, rng))
        attempt += 1
