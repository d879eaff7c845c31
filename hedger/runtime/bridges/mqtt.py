"""The MQTT bridge: bus messages to an MQTT broker, at least once, in order, pipelined.

:class:`MqttBridge` takes messages from its :class:`~hedger.core.bus.Outbox` and publishes them
with their topic, payload and retain flag at the configured QoS. A message leaves the outbox
only once the broker has acknowledged it (PUBACK at QoS 1, PUBCOMP at QoS 2; written to the
socket at QoS 0), so when the broker goes away nothing is lost: the bridge reconnects with
backoff, on a fresh client, and sends again, in order, whatever was not acknowledged.
Subscribers may see a message twice across a reconnect and drop repeats by ``seq``.

Throughput comes from pipelining: up to ``window`` publishes are in flight at once, issued in
outbox order on one connection, and new ones are issued as soon as acknowledgements come
back (a sliding window, not stop-and-wait: waiting for a whole window to be acknowledged
stalls on the broker's Nagle buffering of PUBACKs). MQTT keeps the order of one connection's
messages of one QoS, so subscribers see them in outbox order.

Presence: the connection carries a last will, ``offline`` retained (QoS 1) on
``<root>/v1/status``; every (re)connect publishes ``online`` retained there, and a clean
shutdown (:meth:`MqttBridge.close`, or cancelling :meth:`MqttBridge.run`) publishes
``offline`` before disconnecting.

Control (a daemon with ``[control]``, :mod:`hedger.runtime.control`): with
:attr:`MqttBridge.control` set, every (re)connect subscribes to ``<root>/v1/control``; each
request there goes to the hook, and its reply is published on ``<root>/v1/control/reply``
(not retained) in order with the events. A retained request is ignored (counted as
``control_retained``): it would be applied again at every reconnect.
:func:`control_request` is the client side (``hedger pairs``).

Gap fill (a daemon with an event journal, ``[state]``; the schema is
:mod:`hedger.runtime.bridges.gapfill`'s): with :attr:`MqttBridge.replay` set, every
(re)connect also subscribes to ``<root>/v1/replay``. A request there, ``{"id": "c1f3-7",
"pair": "AAPL/SPY", "from_seq": 120, "to_seq": 131}`` (``id`` required: 1 to 64 of
``A-Z a-z 0-9 . _ -``), is answered on its own topic ``<root>/v1/replay/reply/<id>``, which
only its asker subscribes to: the journal's payloads of the range (byte for byte as
published), then the summary ``{"type": "replayed", "id": "c1f3-7", ..., "next_seq": null}``,
or one error frame instead; a request without a usable id is refused on
``<root>/v1/replay/reply``. Answers go through the outbox in order, at QoS 1 at least (the
bridge's QoS if higher), not retained, at most what the outbox has room for (and 10,000
events; ``next_seq`` says where the rest starts). A retained request is ignored (counted as
``replay_retained``), bad ones are counted by reason. :class:`ReplayClient` and
:func:`replay_request` are the client side (``hedger subscribe``).

This is the only module of hedger that talks to aiomqtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, NamedTuple, Self, Unpack

import aiomqtt
import paho.mqtt.client as mqtt

from feeds.broker import ClientOptions, broker_address
from feeds.reconnect import Backoff, Reconnector
from hedger.core.bus import Message, Outbox
from hedger.core.lifecycle import Lifecycle, State, StateListener
from hedger.core.rejects import Logger, Rejects
from hedger.core.topics import (
    control_reply_topic,
    control_topic,
    is_replay_id,
    replay_reply_topic,
    replay_topic,
    status_topic,
)
from hedger.errors import TransportError
from hedger.runtime.bridges import gapfill
from hedger.runtime.bridges.gapfill import Replayed, ReplayRefusedError

ONLINE = b"online"
OFFLINE = b"offline"

_DROP_LOG_EVERY = 10_000  # overflow drops between two warnings, at most ...
_DROP_LOG_INTERVAL = 1.0  # ... or seconds between two warnings, whichever comes first
_TICK = 0.25  # seconds between checks of the time limits (acknowledgements, shutdown)
_STATUS_TIMEOUT = 5.0  # seconds to wait for the broker to take an online/offline status
_CLOSE_GRACE = 3.0  # seconds past the close timeout before a run that has not ended is cancelled
_REPLAY_KIND = "replay"  # the kind of the bridge's own answers to replay requests
_REPLAY_CLOSE = 1.0  # seconds a replay client's disconnect may take (a hung broker's socket)


class _BridgeOutbox(Outbox):
    """The bridge's outbox: an :class:`Outbox` that also counts every message put and wakes
    the bridge's sender, and reports overflow drops so that they are logged."""

    def __init__(
        self, capacity: int, name: str, wake: asyncio.Event, on_drop: Callable[[], None]
    ) -> None:
        super().__init__(capacity, name)
        self.total = 0  # messages ever put: the stream position just past the newest one
        self._wake = wake
        self._on_drop = on_drop

    def put(self, message: Message) -> None:
        full = len(self) >= self.capacity
        super().put(message)
        self.total += 1
        if full:
            self._on_drop()
        self._wake.set()

    @property
    def front(self) -> int:
        """The stream position of the oldest message waiting."""
        return self.total - len(self)


class _ConnectionLostError(aiomqtt.MqttError):
    """The connection broke, or stopped acknowledging, while publishing."""


class MqttBridge(Lifecycle):
    """Publishes bus messages to an MQTT broker (see the module documentation).

    Args:
        url: ``mqtt://host[:port]`` (default port 1883) or ``mqtts://host[:port]`` (TLS,
            default port 8883); user and password may be given in the URL (see
            :mod:`feeds.broker`; :attr:`url` and the logs show it without the password).
        root: the topic root; the status topic is ``<root>/v1/status`` (message topics come
            from the bus, which builds them with its own root).
        qos: the QoS of every publish (0, 1 or 2). At QoS 0 a message counts as delivered
            once written to the socket, so a broker outage can lose what was in transit.
        outbox_capacity: messages kept while the broker is slow or away; past it the oldest
            are dropped, counted (``dropped``) and logged.
        backoff: reconnect delays (s).
        logger: a structlog-style logger for connects, drops and overflow.
        window: publishes in flight at once (awaiting their acknowledgement).
        ack_timeout: seconds without any acknowledgement, while publishes are in flight,
            after which the connection is given up and made again.
        seed: seeds the backoff jitter.
        on_state: hears every change of :attr:`state` (``RUNNING`` while connected,
            ``DEGRADED`` while reconnecting, ``STOPPING`` and ``STOPPED`` once closed).
        username, password, tls, client_id, keepalive: how the client connects
            (:class:`feeds.broker.ClientOptions`).

    Bad arguments raise :class:`~hedger.errors.TransportError`. Run it with
    ``await bridge.run()`` (until cancelled or closed), or ``async with bridge``
    (or :meth:`start`), which runs it in a task and closes it on exit.
    """

    name = "mqtt"

    def __init__(
        self,
        url: str = "mqtt://127.0.0.1:1883",
        *,
        root: str = "hedger",
        qos: int = 1,
        outbox_capacity: int = 100_000,
        backoff: Backoff | None = None,
        logger: Logger | None = None,
        window: int = 128,
        ack_timeout: float = 15.0,
        seed: int | None = None,
        on_state: StateListener | None = None,
        **client: Unpack[ClientOptions],
    ) -> None:
        super().__init__(on_state)
        broker = broker_address(url, **client)
        self.url = broker.redacted
        for ok, problem in (
            (qos in (0, 1, 2), f"qos must be 0, 1 or 2, got {qos!r}"),
            (1 <= window <= 32_768, f"window must be between 1 and 32768, got {window!r}"),
            (ack_timeout > 0, f"ack_timeout must be positive, got {ack_timeout!r}"),
            (outbox_capacity >= 1, f"outbox_capacity must be at least 1, got {outbox_capacity!r}"),
        ):
            if not ok:
                raise TransportError(self.name, self.url, problem)
        self.root = root
        self.qos = qos
        self.host, self.port = broker.host, broker.port
        self._broker = broker
        self.client_id = broker.client_id
        self.keepalive = broker.keepalive
        self.window = window
        self.ack_timeout = ack_timeout
        self.status_topic = status_topic(root)
        self.reconnector = Reconnector(backoff, retry_on=(Exception,), seed=seed)
        self._logger = logger

        self._wake = asyncio.Event()  # something for the sender to look at
        self._progress = asyncio.Event()  # acknowledgements came back
        box = _BridgeOutbox(outbox_capacity, self.name, self._wake, self._drop)
        self._box = box
        self.outbox: Outbox = box

        # counters
        self.rejects = Rejects(logger)  # messages the client refuses (see _collect)
        self.published = 0
        self.acked = 0
        self.connections = 0
        self.reconnects = 0
        self._connected = False
        self._inflight: deque[tuple[Message, Any]] = deque()
        """(message, paho's MQTTMessageInfo or a refusal) of the publishes in flight."""

        # overflow logging
        self._drops_unlogged = 0
        self._last_drop_log = -math.inf

        # lifecycle
        self._running = False
        self._runner: asyncio.Task[Any] | None = None
        self._finished = asyncio.Event()
        self._finished.set()
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._stop_deadline = math.inf
        self._closed = False
        self._task: asyncio.Task[None] | None = None

        # control: set by the daemon when [control] is configured
        self.control: Callable[[bytes, Callable[[bytes], None]], None] | None = None
        # gap fill: set by the daemon when it keeps an event journal ([state])
        self.replay: gapfill.ReplayHook | None = None
        """The journal's ``lookup(pair, from_seq, to_seq)``; None: no replay topic."""
        self.replay_oldest: gapfill.OldestHook | None = None
        """The journal's ``oldest_seq(pair)`` (None: the answers' ``oldest_seq`` is null)."""
        self.replays = 0
        """Replay requests answered (refusals not included)."""

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run the bridge in a task of its own (once; later calls give the same task)."""
        if self._task is None or (self._task.done() and not self._closed):
            self._task = asyncio.create_task(self.run(), name=f"bridge-mqtt-{self.host}")
        return self._task

    async def _open(self) -> None:
        self.start()

    async def run(self) -> None:
        """Connect, publish, reconnect with backoff, until :meth:`close` (or cancelled).

        Closing delivers what is waiting first (within the close timeout), then publishes
        ``offline`` and disconnects; so does cancelling, without the delivering.
        """
        if self._running:
            raise TransportError(self.name, self.url, "this bridge is already running")
        self._running = True
        self._runner = asyncio.current_task()
        self._finished.clear()
        try:
            # a session ends without an error only when closing; only a connection that
            # came up resets the backoff
            await self.reconnector.run(
                self._attempt, stopped=self._should_exit, on_drop=self._dropped, wait=self._pause
            )
        finally:
            self._running = False
            self._runner = None
            self._connected = False
            self._flush_drop_log()
            self._finished.set()
            self._set_state(State.STOPPED if self._closed else State.DEGRADED)

    async def _attempt(self, healthy: Callable[[], None]) -> None:
        try:
            async with self._client() as client:
                await self._session(client, healthy)
        finally:
            self._connected = False

    def _dropped(self, error: BaseException | None) -> None:
        self._set_state(State.DEGRADED)
        if error is None:
            return
        if isinstance(error, aiomqtt.MqttError | OSError):
            self._log(
                "warning", "mqtt bridge disconnected", error=str(error) or type(error).__name__
            )
        else:  # keep publishing whatever the client library does
            self._log("warning", "mqtt bridge error", error=repr(error))

    async def _pause(self, delay: float) -> None:
        """The backoff delay (s), cut short when a close is requested; while closing, no
        longer than the time left to deliver."""
        if self._stopping:
            await self.reconnector.sleep(min(delay, max(0.0, self._stop_deadline - _now())))
            return
        sleeping = asyncio.ensure_future(self.reconnector.sleep(delay))
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({sleeping, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            stop.cancel()

    async def drain(self, timeout: float) -> bool:
        """Wait, up to ``timeout`` seconds, until every waiting message has been delivered
        (acknowledged); True if the outbox is empty. Delivering is :meth:`run`'s work: a
        bridge that is not running gives its answer at once."""
        deadline = _now() + timeout
        while self.outbox and self._active():
            remaining = deadline - _now()
            if remaining <= 0:
                break
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(remaining, _TICK))
        return not self.outbox

    async def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is waiting (for up to ``timeout`` seconds, reconnecting if need
        be), publish ``offline`` (retained) and disconnect; idempotent. True if everything
        was delivered. A run that does not end in time (a hung connect) is cancelled."""
        self._closed = True
        self._set_state(State.STOPPING)
        if not self._stopping:
            self._stopping = True
            self._stop_deadline = _now() + timeout
            self._stop_requested.set()
            self._wake.set()
        runner = self._runner or self._task
        if runner is not None and not runner.done():
            grace = max(0.0, self._stop_deadline - _now()) + _CLOSE_GRACE
            await asyncio.wait({runner}, timeout=grace)
            if not runner.done():
                runner.cancel()
                await asyncio.wait({runner})
        if self._running:
            await self._finished.wait()
        self._set_state(State.STOPPED)
        return not self.outbox

    @property
    def connected(self) -> bool:
        """Whether a connection is up (and ``online`` was acknowledged on it)."""
        return self._connected

    def metrics(self) -> dict[str, float]:
        """Counters: ``published`` (publishes issued, resends included), ``acked``
        (acknowledged), ``dropped`` (outbox overflow), ``rejected`` (messages that cannot be
        published at all), ``queued`` (waiting in the outbox, in flight included),
        ``inflight``, ``reconnects`` (connections after the first), ``connected`` (0 or 1)."""
        return {
            "published": float(self.published),
            "acked": float(self.acked),
            "dropped": float(self.outbox.dropped),
            "rejected": float(self.rejects.counts.total()),
            "queued": float(len(self.outbox)),
            "inflight": float(len(self._inflight)),
            "reconnects": float(self.reconnects),
            "connected": 1.0 if self._connected else 0.0,
        }

    # --- one connection ------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        # A fresh client per connection: one whose connection broke keeps stale state.
        # paho's own inflight limit is off (0): its bookkeeping walks every message in
        # flight on each acknowledgement when a limit is set; the window bounds it instead.
        return aiomqtt.Client(
            **self._broker.client_arguments(),
            will=aiomqtt.Will(self.status_topic, OFFLINE, qos=1, retain=True),
            max_inflight_messages=0,
            max_queued_outgoing_messages=0,
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )

    async def _session(self, client: aiomqtt.Client, healthy: Callable[[], None]) -> None:
        """Announce ``online``, publish until closing, then announce ``offline``. Raises
        when the connection breaks."""
        # aiomqtt logs a warning per publish while more than this many calls are pending
        client.pending_calls_threshold = self.window + 16
        if self.control is not None:
            await client.subscribe(control_topic(self.root), qos=1)
        if self.replay is not None:
            await client.subscribe(replay_topic(self.root), qos=1)
        watcher = asyncio.create_task(_watch(client, self._on_message), name="bridge-mqtt-watch")
        watcher.add_done_callback(lambda _: self._wake.set())
        ticker = asyncio.create_task(self._tick(), name="bridge-mqtt-tick")
        try:
            await client.publish(
                self.status_topic, ONLINE, qos=1, retain=True, timeout=_STATUS_TIMEOUT
            )
            self.connections += 1
            if self.connections > 1:
                self.reconnects += 1
            self._connected = True
            healthy()
            self._set_state(State.RUNNING)
            self._log("info", "mqtt bridge connected", queued=len(self.outbox))
            self._flush_drop_log()
            await self._pump(client, watcher)
            self._connected = False
            await self._say_offline(client)
        except asyncio.CancelledError:
            self._connected = False
            self._cancel_inflight()
            if not watcher.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(self._say_offline(client), 1.0)
            raise
        finally:
            self._cancel_inflight()
            ticker.cancel()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await watcher

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        await client.publish(
            self.status_topic, OFFLINE, qos=1, retain=True, timeout=_STATUS_TIMEOUT
        )
        self._log("info", "mqtt bridge offline")

    async def _tick(self) -> None:
        # wakes the sender now and then so that it checks its time limits
        while True:
            await asyncio.sleep(_TICK)
            self._wake.set()

    async def _pump(self, client: aiomqtt.Client, watcher: asyncio.Task[None]) -> None:
        """The sliding window: issue publishes in outbox order while fewer than ``window``
        are in flight, take acknowledged ones off the front of the outbox. Returns when
        closing and done (or out of time); raises when the connection breaks.

        Publishes go straight to the paho client under aiomqtt (``client._client``, the
        connection aiomqtt made and watches): aiomqtt's own ``publish`` is a coroutine per
        message, and a task per message cost most of the bridge's time. paho's message
        info says when each is acknowledged; its ``on_publish`` (aiomqtt's, chained) wakes
        this loop."""
        box = self._box
        inflight = self._inflight
        inflight.clear()
        wake = self._wake
        paho = client._client  # see the docstring
        chained = paho.on_publish

        def on_publish(*args: Any) -> None:
            if chained is not None:
                chained(*args)
            wake.set()

        paho.on_publish = on_publish
        publish = paho.publish
        qos = self.qos
        replay_qos = max(qos, 1)  # answers to replay requests: at least once
        window = self.window
        # everything waiting is (re)sent, from the front
        next_pos = box.front
        last_ack = _now()
        while True:
            if inflight and _acknowledged(inflight[0][1]):
                self._collect(inflight)
                last_ack = _now()
            if watcher.done():
                raise _ConnectionLostError("connection lost")
            if self._stopping and (not box or _now() >= self._stop_deadline):
                return
            if inflight and _now() - last_ack > self.ack_timeout:
                raise _ConnectionLostError(f"no acknowledgement for {self.ack_timeout:g} s")
            if not inflight:
                last_ack = _now()
            room = window - len(inflight)
            front = box.front
            # below 0 when overflow dropped messages that had not been sent yet
            start = max(next_pos - front, 0)
            if room > 0 and len(box) > start:
                fresh = box.peek_batch(start + room)[start:]
                for message in fresh:
                    level = replay_qos if message.kind == _REPLAY_KIND else qos
                    try:
                        info: Any = publish(message.topic, message.payload, level, message.retain)
                    except (ValueError, TypeError) as exc:  # a topic or payload it refuses
                        info = _Refused(str(exc))
                    else:
                        if info.rc != mqtt.MQTT_ERR_SUCCESS:
                            raise _ConnectionLostError(f"publish failed (paho rc {info.rc})")
                    inflight.append((message, info))
                self.published += len(fresh)
                next_pos = front + start + len(fresh)
            wake.clear()
            if inflight and _acknowledged(inflight[0][1]):
                continue
            await wake.wait()

    def _collect(self, inflight: deque[tuple[Message, Any]]) -> None:
        """Take the acknowledged front of the window off the outbox. A message the client
        refuses outright (a topic with a wildcard, a payload over the size limit) can never
        be published: it is taken off too, counted as rejected and logged, instead of
        blocking everything behind it."""
        batch: list[Message] = []
        refused = 0
        while inflight:
            message, info = inflight[0]
            if isinstance(info, _Refused):
                self.rejects.add("unpublishable", message.topic[:120], error=info.error)
                refused += 1
            elif not _acknowledged(info):
                break
            inflight.popleft()
            batch.append(message)
        if batch:
            self.outbox.ack(batch)
            self.acked += len(batch) - refused
            self._progress.set()

    def _cancel_inflight(self) -> None:
        """The connection is gone: take what was acknowledged off the outbox; the rest stays
        in it and is sent again on the next connection (a new client: the old one's queue
        goes with it)."""
        inflight = self._inflight
        with contextlib.suppress(Exception):
            self._collect(inflight)
        inflight.clear()

    # --- helpers --------------------------------------------------------------------------

    def _active(self) -> bool:
        runner = self._runner or self._task
        return runner is not None and not runner.done()

    def _should_exit(self) -> bool:
        return self._stopping and (not self.outbox or _now() >= self._stop_deadline)

    def _drop(self) -> None:
        self._drops_unlogged += 1
        now = _now()
        if (
            self._drops_unlogged >= _DROP_LOG_EVERY
            or now - self._last_drop_log >= _DROP_LOG_INTERVAL
        ):
            self._flush_drop_log(now)

    def _flush_drop_log(self, now: float | None = None) -> None:
        if not self._drops_unlogged:
            return
        self._log(
            "warning",
            "mqtt bridge outbox overflow: oldest messages dropped",
            dropped=self._drops_unlogged,
            dropped_total=self.outbox.dropped,
            capacity=self.outbox.capacity,
        )
        self._drops_unlogged = 0
        self._last_drop_log = _now() if now is None else now

    def _log(self, level: str, event: str, **kw: Any) -> None:
        if self._logger is not None:
            getattr(self._logger, level)(event, bridge=self.name, url=self.url, **kw)

    def _on_message(self, message: aiomqtt.Message) -> None:
        """A message on the control or the replay topic (the only ones the bridge subscribes
        to)."""
        if self.control is not None and message.topic.matches(control_topic(self.root)):
            if message.retain:
                self.rejects.add("control_retained", str(message.topic))
                return
            self.control(_bytes(message.payload), self._reply)
        elif self.replay is not None and message.topic.matches(replay_topic(self.root)):
            if message.retain:  # it would be answered again at every connect
                self.rejects.add("replay_retained", str(message.topic))
                return
            self._answer_replay(_bytes(message.payload))

    def _reply(self, frame: bytes) -> None:
        self._box.put(Message(control_reply_topic(self.root), frame, False))

    def _answer_replay(self, data: bytes) -> None:
        """A replay request: the answer (or the refusal) queued on its reply topic, as many
        events as the outbox has room for."""
        room = self.outbox.capacity - len(self.outbox) - 1  # the summary takes one place
        answer = gapfill.serve(data, self.replay, self.replay_oldest, room, topic_id=True)
        if answer.refused:
            self.rejects.add(f"replay_{answer.refused}", replay_topic(self.root))
        else:
            self.replays += 1
        request_id = answer.request_id if is_replay_id(answer.request_id) else None
        topic = replay_reply_topic(self.root, request_id)
        for frame in answer.frames:
            self._box.put(Message(topic, frame, False, kind=_REPLAY_KIND))


def _bytes(payload: Any) -> bytes:
    """An aiomqtt payload as bytes."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


async def _watch(client: aiomqtt.Client, on_message: Callable[[aiomqtt.Message], None]) -> None:
    """Ends (with MqttError) when the client's connection breaks; hands every message (of the
    control topic, the only one subscribed, if any) to ``on_message``."""
    async for message in client.messages:
        on_message(message)


async def control_request(
    url: str,
    root: str,
    payload: bytes,
    request_id: str,
    timeout: float,
    **client: Unpack[ClientOptions],
) -> bytes:
    """Publish one control request on ``<root>/v1/control`` and return the reply on
    ``<root>/v1/control/reply`` whose ``id`` is ``request_id`` (other clients' replies are
    skipped). Raises :class:`~hedger.errors.TransportError` when the broker cannot be reached
    or no reply comes within ``timeout`` seconds."""
    import orjson  # noqa: PLC0415 (a client-side helper: the bridge itself never decodes)

    broker = broker_address(url, **client)
    try:
        async with asyncio.timeout(timeout):
            async with aiomqtt.Client(**broker.client_arguments()) as mqtt:
                await mqtt.subscribe(control_reply_topic(root), qos=1)
                await mqtt.publish(control_topic(root), payload, qos=1)
                async for message in mqtt.messages:
                    body = message.payload
                    if not isinstance(body, bytes | bytearray):
                        continue
                    try:
                        reply = orjson.loads(body)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(reply, dict) and reply.get("id") == request_id:
                        return bytes(body)
    except TimeoutError:
        raise TransportError(
            "mqtt", broker.redacted, f"no reply from the daemon within {timeout:g} s"
        ) from None
    except aiomqtt.MqttError as exc:
        raise TransportError("mqtt", broker.redacted, f"cannot reach the broker: {exc}") from None
    raise TransportError("mqtt", broker.redacted, "the connection ended before a reply")


class ReplayClient:
    """The client side of gap fill over MQTT (``hedger subscribe``): one connection, made at
    the first request and made again after one broke or timed out, on which each request
    subscribes to its own reply topic, publishes on ``<root>/v1/replay`` and reads the answer
    (the module documentation). Use it as ``async with``; ``client``: how to connect
    (:class:`feeds.broker.ClientOptions`; give it no ``client_id`` of a subscriber's own, or
    the two connections would knock each other off the broker)."""

    def __init__(self, url: str, root: str, **client: Unpack[ClientOptions]) -> None:
        self._broker = broker_address(url, **client)
        self.url = self._broker.redacted
        self.root = root
        self._prefix = uuid.uuid4().hex[:16]
        self._count = itertools.count(1)
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: aiomqtt.Client | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Disconnect, within a second (idempotent; the next request connects again)."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_REPLAY_CLOSE):
                    await stack.aclose()

    async def _connected(self) -> aiomqtt.Client:
        if self._client is None:
            stack = contextlib.AsyncExitStack()
            client = aiomqtt.Client(**self._broker.client_arguments())
            self._client = await stack.enter_async_context(client)
            self._stack = stack
        return self._client

    async def request(self, pair: str, from_seq: int, to_seq: int, timeout: float) -> Replayed:
        """One request and its answer: the events and the summary (whose ``next_seq`` may say
        the answer was cut short). Raises :class:`~hedger.runtime.bridges.gapfill.
        ReplayRefusedError` when the daemon refuses it (no journal: reason ``no_journal``),
        :class:`~hedger.errors.TransportError` when the broker cannot be reached or no answer
        comes within ``timeout`` seconds (a daemon without a journal does not listen)."""
        request_id = f"{self._prefix}-{next(self._count)}"
        reply = replay_reply_topic(self.root, request_id)
        payload = gapfill.request_frame(pair, from_seq, to_seq, request_id, action=False)
        try:
            async with asyncio.timeout(timeout):
                client = await self._connected()
                await client.subscribe(reply, qos=1)
                await client.publish(replay_topic(self.root), payload, qos=1)
                outcome = await _read_answer(client, reply, request_id)
                await client.unsubscribe(reply)
        except TimeoutError:
            await self.close()  # what is still on its way to the old topic goes with it
            raise TransportError(
                "mqtt", self.url, f"no answer from the daemon within {timeout:g} s"
            ) from None
        except aiomqtt.MqttError as exc:
            await self.close()
            raise TransportError("mqtt", self.url, f"cannot reach the broker: {exc}") from None
        if isinstance(outcome, ReplayRefusedError):
            raise outcome
        return outcome

    async def replay(self, pair: str, from_seq: int, to_seq: int, timeout: float) -> Replayed:
        """The whole range: :meth:`request` again from each ``next_seq`` until the daemon has
        answered all of it (see :func:`~hedger.runtime.bridges.gapfill.replay_all`)."""

        async def ask(low: int, high: int) -> Replayed:
            return await self.request(pair, low, high, timeout)

        return await gapfill.replay_all(ask, from_seq, to_seq)


async def _read_answer(
    client: aiomqtt.Client, topic: str, request_id: str
) -> Replayed | ReplayRefusedError:
    """The answer to ``request_id`` on ``topic``: the events up to the summary, or the
    refusal."""
    events: list[bytes] = []
    async for message in client.messages:
        if not message.topic.matches(topic):
            continue  # a late message of an earlier request
        body = _bytes(message.payload)
        kind, frame = gapfill.frame_kind(body, request_id)
        if kind == "summary" and frame is not None:
            return Replayed(events, frame)
        if kind == "error" and frame is not None:
            return ReplayRefusedError(str(frame.get("reason")), str(frame.get("error")))
        events.append(body)
    raise aiomqtt.MqttError("the connection ended before an answer")


async def replay_request(
    url: str,
    root: str,
    pair: str,
    from_seq: int,
    to_seq: int,
    timeout: float,
    **client: Unpack[ClientOptions],
) -> Replayed:
    """Ask the daemon, on a connection of its own, for ``pair``'s events with ``from_seq <=
    seq <= to_seq`` (:meth:`ReplayClient.replay`); raises as :meth:`ReplayClient.request`."""
    async with ReplayClient(url, root, **client) as replayer:
        return await replayer.replay(pair, from_seq, to_seq, timeout)


class _Refused(NamedTuple):
    """A message the client refused to publish (why)."""

    error: str


def _acknowledged(info: Any) -> bool:
    """Whether a publish in flight is done: acknowledged (QoS 1, 2), written (QoS 0), or
    refused by the client."""
    return isinstance(info, _Refused) or bool(info.is_published())


def _now() -> float:
    return time.monotonic()
