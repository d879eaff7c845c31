"""Ticks from an MQTT broker: subscribe to topic filters, read JSON ticks, reconnect on drops.

Each message's payload is one JSON tick, or a JSON array of them, in the JSON Lines tick
format of :mod:`feeds.files.readers`::

    {"ts": 1700000000.25, "symbol": "AAPL", "price": 189.5, "size": 100}
    {"ts": "2024-01-02T14:30:00.5Z", "symbol": "MSFT", "bid": 370.1, "ask": 370.2}

``ts`` is an epoch number (s, ms, us or ns, told apart by magnitude unless a unit is given)
or an ISO-8601 string; a quote gives ``bid`` and ``ask`` instead of ``price`` and becomes a
quote tick at the mid; ``size`` is optional. Parsing (:func:`parse_tick_payload`) is free of
I/O; :class:`MqttTickFeed` only connects, subscribes, receives and reconnects (the URL as
:mod:`feeds.broker` reads it, the reconnecting of :mod:`feeds.reconnect`); :class:`MqttMessages`
does the same for raw messages (``hedger subscribe``).
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar, Unpack

import aiomqtt
import orjson

from feeds.broker import ClientOptions, broker_address
from feeds.files.timestamps import TimestampParser
from feeds.reconnect import Backoff, ReconnectingStream, Reconnector
from hedger.core.lifecycle import StateListener
from hedger.core.rejects import Logger, Rejects
from hedger.core.ticks import Tick, TickKind
from hedger.errors import TransportError

T = TypeVar("T")

VENUE = "mqtt"

TimestampFn = Callable[[str | float | int], int]
"""Turns a tick's ``ts`` value into integer ns since the epoch, UTC; ``ValueError`` or
``TypeError`` when it cannot."""

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
    unreadable) or ``bad_price`` (no price, or one that is not a finite number; for a quote,
    either side). Whether a number can be a price for the pairs that use it (> 0 for a log
    mode) is the bar rule's to judge, as for recorded files. An unusable ``size`` is dropped,
    not rejected. Never raises.
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
        price = _number(obj["price"])
    elif "bid" in obj and "ask" in obj:
        kind = TickKind.QUOTE
        bid, ask = _number(obj["bid"]), _number(obj["ask"])
        price = None if bid is None or ask is None else 0.5 * bid + 0.5 * ask
    else:
        price = None
    if price is None or not math.isfinite(price):
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


def _payload_bytes(payload: object) -> bytes | bytearray | str:
    if isinstance(payload, bytes | bytearray | str):
        return payload
    return b"" if payload is None else str(payload).encode()


def _refused(code: object) -> bool:
    """Whether a SUBACK entry (an int for MQTT 3.1.1, a reason code for 5) is a failure."""
    value = getattr(code, "value", code)
    return isinstance(value, int) and value >= 0x80


class _MqttStream(ReconnectingStream[T]):
    """What the tick feed and the raw subscription share: a fresh client per connection (one
    whose connection broke keeps stale state), subscribe, hand every message to
    :meth:`_handle`, reconnect with backoff; any error of the client library is retried."""

    def __init__(
        self,
        url: str,
        topics: Sequence[str],
        *,
        qos: int,
        backoff: Backoff | None,
        logger: Logger | None,
        queue_size: int,
        on_state: StateListener | None,
        seed: int | None = None,
        persistent: bool = False,
        **client: Unpack[ClientOptions],
    ) -> None:
        if persistent:
            client["clean_session"] = False
        broker = broker_address(url, **client)
        if persistent and not broker.client_id:
            raise TransportError(
                VENUE, broker.redacted, "a persistent session needs a client_id to resume"
            )
        if isinstance(topics, str):
            topics = [topics]
        if not topics:
            raise TransportError(VENUE, broker.redacted, "at least one topic filter is needed")
        for topic in topics:
            try:
                aiomqtt.Wildcard(topic)
            except ValueError as exc:
                raise TransportError(VENUE, broker.redacted, str(exc)) from None
        if qos not in (0, 1, 2):
            raise TransportError(VENUE, broker.redacted, f"qos must be 0, 1 or 2, got {qos!r}")
        super().__init__(
            Reconnector(backoff, retry_on=(Exception,), seed=seed),
            name=f"feed-mqtt-{broker.host}",
            queue_size=queue_size,
            on_state=on_state,
        )
        self.url = broker.redacted
        self.topics = list(topics)
        self.qos = qos
        self.host, self.port = broker.host, broker.port
        self.client_id = broker.client_id
        self.keepalive = broker.keepalive
        self.connections = 0
        self.messages = 0
        self.persistent = persistent
        """The broker keeps the session (subscriptions, QoS 1/2 messages) while this client
        is away, and sends what it held when the client comes back."""
        self._broker = broker
        self._logger = logger
        self._manual_ack = False
        """Messages are acknowledged by the consumer (:class:`MqttTickFeed` ``ack_when_durable``),
        not on receipt."""
        self._client: aiomqtt.Client | None = None
        """The client of the current connection (None between connections)."""

    def _new_client(self) -> aiomqtt.Client:
        client = aiomqtt.Client(**self._broker.client_arguments())
        if self._manual_ack:
            client._client.manual_ack_set(True)
        return client

    async def _session(self, healthy: Callable[[], None]) -> None:
        async with self._new_client() as client:
            self._client = client
            granted = await client.subscribe([(topic, self.qos) for topic in self.topics])
            for topic, code in zip(self.topics, granted, strict=False):
                if _refused(code):
                    self._log("warning", "subscription_refused", topic=topic, code=str(code))
            healthy()
            self.connections += 1
            self._up()
            self._log("info", "connected")
            try:
                async for message in client.messages:
                    self.messages += 1
                    await self._handle(message)
            finally:
                self._client = None

    @abstractmethod
    async def _handle(self, message: aiomqtt.Message) -> None:
        """One message received."""

    def _dropped(self, error: BaseException | None) -> None:
        if error is None or isinstance(error, aiomqtt.MqttError | OSError):
            why = "connection closed" if error is None else str(error) or type(error).__name__
            self._log("warning", "disconnected", error=why)
        else:  # the feed stays alive whatever the client library does
            self._log("warning", "feed_error", error=repr(error))

    def _log(self, level: str, event: str, **kw: Any) -> None:
        if self._logger is not None:
            getattr(self._logger, level)(event, venue=VENUE, url=self.url, **kw)


class MqttTickFeed(_MqttStream[Tick]):
    """Ticks from topics of an MQTT broker: connect, subscribe, parse every message,
    reconnect (and resubscribe) with backoff when the broker goes away, until closed.

    Args:
        url: ``mqtt://host[:port]`` (default port 1883) or ``mqtts://host[:port]`` (TLS,
            default port 8883); user and password may be given in the URL (see
            :mod:`feeds.broker`).
        topics: topic filters to subscribe to, wildcards allowed (``"ticks/#"``).
        qos: the subscription's quality of service (0, 1 or 2).
        backoff: reconnect delays (s).
        logger: a structlog-style logger for connects, drops and sampled rejects.
        queue_size: ticks buffered between the client and the consumer. MQTT has no flow
            control towards the broker: while the consumer lags, messages wait in the
            client's own queue instead.
        ts_unit: how to read ``ts`` (see :func:`timestamp_parser`).
        seed: seeds the backoff jitter.
        on_state: hears every change of :attr:`state`.
        persistent: a persistent session (needs ``client_id``): the broker keeps the
            subscription and holds the QoS 1/2 ticks published while the feed is away (a
            daemon restarting), and sends them when it is back.
        ack_when_durable: acknowledge a QoS 1/2 message to the broker only once all its
            ticks are durable (the consumer calls :meth:`durable`; the daemon does once they
            are journalled), so that a process killed with ticks in its queues gets them again
            from the broker. A message sent again after a reconnect whose ticks were already
            handed on is not handed on twice (:attr:`redelivered`).
        username, password, tls, client_id, keepalive: how the client connects
            (:class:`feeds.broker.ClientOptions`).

    Raises :class:`~hedger.errors.TransportError` for a bad URL, topic filter or qos.
    :attr:`url` is the URL with its password redacted. Iteration ends after :meth:`close`,
    once the buffered ticks are consumed.
    """

    def __init__(
        self,
        url: str = "mqtt://127.0.0.1:1883",
        topics: Sequence[str] = ("ticks/#",),
        *,
        qos: int = 1,
        backoff: Backoff | None = None,
        logger: Logger | None = None,
        queue_size: int = 10_000,
        ts_unit: str = "auto",
        seed: int | None = None,
        on_state: StateListener | None = None,
        persistent: bool = False,
        ack_when_durable: bool = False,
        **client: Unpack[ClientOptions],
    ) -> None:
        super().__init__(
            url,
            topics,
            qos=qos,
            backoff=backoff,
            logger=logger,
            queue_size=queue_size,
            on_state=on_state,
            seed=seed,
            persistent=persistent,
            **client,
        )
        try:
            self._parse_ts = timestamp_parser(ts_unit)
        except ValueError as exc:
            raise TransportError(VENUE, self.url, str(exc)) from None
        self.rejects = Rejects(logger)
        self._manual_ack = ack_when_durable and qos > 0
        self._unacked: deque[_Unacked] = deque()
        """Messages whose ticks were handed on and are not all durable yet, oldest first."""
        self._by_payload: dict[bytes, _Unacked] = {}
        self.redelivered = 0
        """Messages the broker sent again after a reconnect whose ticks were already handed
        on (not handed on twice)."""

    @property
    def acknowledges(self) -> bool:
        """Whether the consumer must call :meth:`durable` for every tick handed on: messages
        are acknowledged to the broker only once their ticks are (``ack_when_durable``)."""
        return self._manual_ack

    async def _handle(self, message: aiomqtt.Message) -> None:
        payload = _payload_bytes(message.payload)
        ticks = parse_tick_payload(
            payload,
            time.time_ns(),
            self.rejects,
            self._parse_ts,
            source=message.topic.value,
        )
        if self._manual_ack and message.qos > 0:
            key = payload.encode() if isinstance(payload, str) else bytes(payload)
            waiting = self._by_payload.get(key)
            if waiting is not None and waiting.client is not self._client:
                # sent again after a reconnect: its ticks are already on their way
                waiting.client, waiting.mid = self._client, message.mid
                self.redelivered += 1
                return
            if not ticks:
                self._ack(self._client, message.mid, message.qos)
                return
            entry = _Unacked(key, self._client, message.mid, message.qos, len(ticks))
            self._unacked.append(entry)
            self._by_payload[key] = entry
        for tick in ticks:
            await self._put(tick)

    def durable(self, ticks: int) -> None:
        """The next ``ticks`` ticks handed on (in order) are durable (journalled, or taken by
        the core): acknowledge the messages all of whose ticks now are. A message of a
        connection that has gone is left to the broker to send again."""
        unacked = self._unacked
        while ticks and unacked:
            entry = unacked[0]
            taken = min(ticks, entry.remaining)
            entry.remaining -= taken
            ticks -= taken
            if entry.remaining:
                break
            unacked.popleft()
            if self._by_payload.get(entry.key) is entry:
                del self._by_payload[entry.key]
            if entry.client is self._client:
                self._ack(entry.client, entry.mid, entry.qos)

    def _ack(self, client: aiomqtt.Client | None, mid: int, qos: int) -> None:
        if client is not None:
            client._client.ack(mid, qos)


class _Unacked:
    """A message whose ticks are not all durable yet: its payload, the client (connection)
    and message id to acknowledge it with, its QoS and how many of its ticks are left."""

    __slots__ = ("client", "key", "mid", "qos", "remaining")

    def __init__(
        self, key: bytes, client: aiomqtt.Client | None, mid: int, qos: int, remaining: int
    ) -> None:
        self.key = key
        self.client = client
        self.mid = mid
        self.qos = qos
        self.remaining = remaining


class MqttMessages(_MqttStream[tuple[str, bytes]]):
    """Raw messages ``(topic, payload)`` from topic filters on a broker, reconnecting with
    backoff like :class:`MqttTickFeed` (the same arguments, without the tick parsing)."""

    def __init__(
        self,
        url: str,
        topics: Sequence[str],
        *,
        qos: int = 1,
        backoff: Backoff | None = None,
        logger: Logger | None = None,
        queue_size: int = 1_000,
        on_state: StateListener | None = None,
        **client: Unpack[ClientOptions],
    ) -> None:
        delays = backoff or Backoff(initial=0.2, maximum=5.0)
        super().__init__(
            url,
            topics,
            qos=qos,
            backoff=delays,
            logger=logger,
            queue_size=queue_size,
            on_state=on_state,
            **client,
        )

    async def _handle(self, message: aiomqtt.Message) -> None:
        payload = _payload_bytes(message.payload)
        await self._put(
            (str(message.topic), payload.encode() if isinstance(payload, str) else bytes(payload))
        )


async def mqtt_messages(
    url: str,
    topics: Sequence[str],
    *,
    qos: int = 1,
    backoff: Backoff | None = None,
    logger: Logger | None = None,
    on_state: StateListener | None = None,
    **client: Unpack[ClientOptions],
) -> AsyncIterator[tuple[str, bytes]]:
    """Raw messages ``(topic, payload)`` from topic filters on a broker (an
    :class:`MqttMessages`), until the consumer stops iterating. ``logger`` hears connects
    and drops (``connected``, ``disconnected`` with the error), ``on_state`` every change of
    state (``RUNNING`` once connected, ``DEGRADED`` while reconnecting); ``client``: how to
    connect (:class:`feeds.broker.ClientOptions`). Used by ``hedger subscribe``."""
    stream = MqttMessages(
        url, topics, qos=qos, backoff=backoff, logger=logger, on_state=on_state, **client
    )
    async with stream:
        async for item in stream:
            yield item
