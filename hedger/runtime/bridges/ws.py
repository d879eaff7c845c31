"""The WebSocket bridge: bus events pushed to local clients, with a Prometheus ``/metrics`` page.

Protocol (JSON text frames, one object per frame; a ``ws://host:port/`` URL, any path but
``/metrics``):

* On connect the server sends the daemon's latest status, if the bus has published one:
  ``{"type":"status","status":"online"}``. Later status changes go to every client, subscribed
  or not.
* The client subscribes: ``{"action":"subscribe","pairs":["AAPL/SPY","XLE/USO+UNG"]}``
  (``"*"`` is every pair) and unsubscribes: ``{"action":"unsubscribe","pairs":["AAPL/SPY"]}``.
  Pair ids are as in :mod:`hedger.core.topics` and are normalised (``BRK%2FB/SPY``); unsubscribing
  a pair does not carve it out of ``"*"``, unsubscribing ``"*"`` does.
* The hedge-ratio matrix (a daemon with ``[matrix]``) is a subscription of its own:
  ``{"action":"subscribe","matrix":true}`` (with or without ``pairs``); ``unsubscribe`` with
  ``"matrix":true`` ends it. Matrix messages are large (N x N numbers a bar), so ``"*"`` does
  not include them.
* The batch message of every bar (``type`` ``bar``: all pairs' ratio and spread fields of the
  bar in one object, see the README's Events) is a subscription of its own too:
  ``{"action":"subscribe","bar":true}`` (with or without ``pairs``), ended by ``unsubscribe``
  with ``"bar":true``; one frame a bar however many pairs run.
* Either action is answered with the client's whole subscription after it:
  ``{"type":"subscribed","pairs":["*","AAPL/SPY"]}`` (sorted; an empty list once everything
  is unsubscribed), with ``"matrix":true`` (``"bar":true``) added while the client takes the
  matrix (the bar messages). After a
  subscribe reply the server sends, at once, the latest ``hedge_ratio`` event it has seen of
  each pair named (of every pair for ``"*"``), like an MQTT retained message, so a late client
  has the current ratio without waiting for a bar, then the latest ``alarm`` event of each of
  those pairs with an alarm active (an MQTT retained alarm); likewise the latest ``matrix``
  event on a matrix subscribe.
* From then on every event of a subscribed pair is pushed as the event JSON itself (the bytes
  of :func:`hedger.core.events.encode`, with ``type`` ``hedge_ratio``, ``spread`` or
  ``alarm``; ``matrix``
  events as :func:`hedger.core.events.encode_matrix` writes them), in bus order.
  Metrics snapshots are not pushed (scrape ``/metrics``).
* A malformed client message (not JSON, not an object, unknown action, bad ``pairs``, a bad
  pair id) is answered with ``{"type":"error","error":"<why>"}``, changes nothing and is
  counted by reason; the connection stays open. Messages over 64 KiB close the connection
  (1009).
* Limits: a bridge that knows the daemon's pairs (``pairs``) refuses a subscribe naming a
  pair it does not run with ``{"type":"error","error":"unknown pair 'A/B' (...)",
  "unknown":["A/B"]}`` (the unknown pairs, at most 100 of them listed), changing nothing; a
  subscribe that would take a client past ``max_pairs_per_client`` named pairs (default
  1,000; ``"*"`` counts as none) is refused the same way (``"error":"at most 1000 pairs per
  client"``). At ``max_clients`` connections (default 256) one more is refused with HTTP 503
  (``/metrics`` is still served) and counted as ``refused``. So what a client can make the
  daemon hold is bounded, whatever it sends.
* Control (a daemon's pairs changed while it runs, :mod:`hedger.runtime.control`): the
  actions ``add_pair``, ``update_pair``, ``remove_pair`` and ``list_pairs``
  (``{"action":"add_pair","id":1,"pair":"Y/X","mode":"returns"}``), answered with a
  ``{"type":"control_reply","id":1,"ok":true,...}`` or ``{..."ok":false,"error":"<why>"}``
  frame, are taken only by a server with a ``token`` (every connection has then presented
  it); without one they are refused with an ``ok: false`` reply (and counted as
  ``control_refused``). A subscribe may name a pair added at run time once it was added.
* Gap fill (a daemon with an event journal, ``[state]``): a client that sees a gap in a pair's
  ``seq`` asks for the missing range, ``{"action":"replay","id":1,"pair":"AAPL/SPY",
  "from_seq":120,"to_seq":131}`` (``id`` optional, echoed), and is sent, itself only, the
  journal's payloads of that pair's events in the range (``hedge_ratio``, ``spread``,
  ``alarm``: the very bytes first published, text frames, in publish order, each once), then
  ``{"type":"replayed","id":1,"pair":"AAPL/SPY","from_seq":120,"to_seq":131,"events":24,
  "oldest_seq":1,"next_seq":null}``: ``oldest_seq`` the lowest seq of the pair the bounded
  journal still holds (null: none), ``next_seq`` null when the whole range was sent, else the
  seq to ask again from (an answer holds at most what the client's queue has room for, and
  10,000 events; a seq's events are never split). The schema is
  :mod:`hedger.runtime.bridges.gapfill`'s. A replay needs what a subscribe needs (with a
  ``token``, the connection presented it; not the control rights). A bad request (not a pair
  id, seqs that are not integers >= 1 with ``from_seq <= to_seq``, more than 100,000 seqs),
  or any request to a daemon without a journal, is answered with ``{"type":"error",
  "action":"replay","id":1,"reason":"bad_range","error":"<why>"}`` (``reason``
  ``no_journal``: ``[state]`` is not configured) and counted with the malformed messages.
* Shutdown closes connections with 1001 (going away).

Delivery: :meth:`WebSocketBridge.run` drains the bridge's outbox and fans every message out
to each interested client's own bounded queue (``client_queue`` frames); each client has its
own sender task, so a slow client only ever delays itself. A full client queue drops that
client's *oldest* frame and counts it (per client and in total); the client sees the gap in
``seq``. A matrix frame is large (N x N numbers) and each supersedes the one before, so at
most one waits in a client's queue: a new matrix frame replaces a queued one not sent yet (the
older is counted as dropped, the new one goes to the back of the queue, every other frame
keeps its order). By default a slow client stays connected, since it keeps getting the newest
ratios; with ``max_drops=N`` a client that has lost more than N frames in all is disconnected
with 1008 ("slow consumer") so that it reconnects and starts again from the retained ratios.

HTTP: the server listens on 127.0.0.1 unless told otherwise. With ``token`` set, every
request (WebSocket upgrades and ``/metrics``) must carry ``Authorization: Bearer <token>``,
else it gets 401. ``GET /metrics`` answers Prometheus text format 0.0.4, written by
``prometheus_client`` (:mod:`hedger.runtime.bridges.prometheus`): the bridge's own metrics as
``hedger_ws_<name>`` plus every one of ``metrics_provider()`` as ``hedger_<name>``, counters
typed ``counter`` (samples ``..._total``) and levels typed ``gauge``.

Frames are the UTF-8 JSON bytes the bus made, sent as text frames as they are (never decoded
per client).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from hedger.core.bus import Message, Outbox
from hedger.core.events import AlarmEvent
from hedger.core.lifecycle import Lifecycle, State, StateListener
from hedger.core.rejects import Logger, Rejects
from hedger.core.topics import PairId, matrix_topic, status_topic
from hedger.errors import ConfigError, TransportError
from hedger.runtime.bridges import gapfill
from hedger.runtime.bridges.prometheus import CONTENT_TYPE, CountersCollector, Kind, render
from hedger.runtime.control import ACTIONS as CONTROL_ACTIONS
from hedger.runtime.control import ControlHook, refusal

ALL_PAIRS = "*"
MAX_CLIENT_MESSAGE = 64 * 1024
MAX_PAIRS_PER_CLIENT = 1_000
"""The default bound on the pairs one client subscribes to by name."""
MAX_CLIENTS = 256
"""The default bound on connections served at once."""
_LISTED = 100  # unknown pairs named in one error reply, at most
PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE
_STATUS_SUFFIX = status_topic("")  # "/v1/status": the status topic under any root
_MATRIX_SUFFIX = matrix_topic("")
_BATCH = 256


_EVENT_KINDS = frozenset(("ratio", "spread", "alarm"))
"""Kinds of per-pair event messages."""
_KIND_OF_TYPE = {"hedge_ratio": "ratio", "spread": "spread", "alarm": "alarm"}

# ---------------------------------------------------------------------------------------------
# The core: subscriptions, per-client queues, retained ratios. No sockets here.


class Client:
    """One connected client: what it wants and the frames waiting for it."""

    __slots__ = (
        "bar",
        "capacity",
        "dropped",
        "everything",
        "id",
        "in_flight",
        "kicked",
        "matrix",
        "pairs",
        "peer",
        "pending_matrix",
        "queue",
        "ready",
        "sent",
    )

    def __init__(self, client_id: int, capacity: int, peer: str = "") -> None:
        self.id = client_id
        self.peer = peer
        self.capacity = capacity
        self.queue: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.pairs: set[str] = set()
        self.everything = False
        self.matrix = False
        self.bar = False
        """Whether the client takes the batch message of every bar."""
        self.pending_matrix: bytes | None = None  # the matrix frame in the queue, if any
        self.dropped = 0
        self.sent = 0
        self.in_flight = False
        self.kicked = False

    def wants(self, pair: str) -> bool:
        """Whether events of ``pair`` go to this client."""
        return self.everything or pair in self.pairs

    def subscription(self) -> list[str]:
        """The subscription as the client sees it (sorted, ``*`` first)."""
        return ([ALL_PAIRS] if self.everything else []) + sorted(self.pairs)

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing being written."""
        return not self.queue and not self.in_flight


class ClientStats(NamedTuple):
    """A snapshot of one client's counters."""

    id: int
    peer: str
    pairs: tuple[str, ...]
    queued: int
    sent: int
    dropped: int


class FanOut:
    """The bridge without I/O: routes bus messages to clients' bounded queues, remembers the
    latest ratio of each pair and the latest status, and answers client messages.

    ``client_queue``: frames held per client before the oldest is dropped; of them at most
    one matrix frame, a newer one replacing it. ``max_drops``: a
    client that has dropped more frames than this is marked ``kicked`` and reported once by
    :meth:`take_kicked` (None: never). ``rejects``: counts malformed client messages.
    ``pairs``: the pair ids the daemon runs (a subscribe naming another is refused; None: any
    pair is taken). ``max_pairs``: pairs one client may subscribe to by name.
    """

    def __init__(
        self,
        client_queue: int,
        max_drops: int | None = None,
        rejects: Rejects | None = None,
        *,
        pairs: Iterable[str] | None = None,
        max_pairs: int = MAX_PAIRS_PER_CLIENT,
    ) -> None:
        if client_queue < 1:
            raise TransportError("websocket", "", "client_queue must be at least 1")
        if max_pairs < 1:
            raise TransportError("websocket", "", "max_pairs_per_client must be at least 1")
        self.client_queue = client_queue
        self.known: frozenset[str] | None = (
            None if pairs is None else frozenset(str(PairId.parse(p)) for p in pairs)
        )
        self.max_pairs = max_pairs
        self.max_drops = max_drops
        self.rejects = rejects if rejects is not None else Rejects()
        self.clients: dict[int, Client] = {}
        self.latest_ratio: dict[str, bytes] = {}
        self.latest_alarm: dict[str, bytes] = {}
        """The last alarm frame of each pair with an active alarm (an MQTT retained alarm)."""
        self.latest_matrix: bytes | None = None
        self.status: bytes | None = None
        self.connections = 0
        self.sent = 0
        self.dropped = 0
        self.events = 0
        self._kicked: list[Client] = []
        self._next_id = 1
        self.control: ControlHook | None = None
        """Applies a control request (the daemon sets it); None: control is not served."""
        self.control_allowed = False
        """Whether clients may send control requests: the server has a token, so every
        connection authenticated with it."""
        self.replay: gapfill.ReplayHook | None = None
        """Looks up a pair's journalled events for a ``replay`` request (the daemon sets it to
        its event journal's ``lookup``); None: the daemon keeps no journal."""
        self.replay_oldest: gapfill.OldestHook | None = None
        """The journal's ``oldest_seq`` (the daemon sets it with :attr:`replay`); None: the
        replies' ``oldest_seq`` is null."""
        self.replays = 0
        """Replay requests answered."""

    # clients

    def add_client(self, peer: str = "") -> Client:
        """Register a new connection; it is sent the latest status at once, if any."""
        client = Client(self._next_id, self.client_queue, peer)
        self._next_id += 1
        self.clients[client.id] = client
        self.connections += 1
        if self.status is not None:
            self._push(client, self.status)
        return client

    def remove_client(self, client: Client) -> None:
        """Forget a connection (its queued frames are discarded, not counted as drops)."""
        self.clients.pop(client.id, None)
        client.queue.clear()
        client.pending_matrix = None

    def take_kicked(self) -> list[Client]:
        """Clients that went past ``max_drops`` since the last call."""
        kicked, self._kicked = self._kicked, []
        return [client for client in kicked if client.id in self.clients]

    @property
    def queued(self) -> int:
        """Frames waiting in all client queues."""
        return sum(len(client.queue) for client in self.clients.values())

    @property
    def idle(self) -> bool:
        """Every client has been sent everything queued for it."""
        return all(client.idle for client in self.clients.values())

    # bus side

    def publish(self, message: Message) -> None:
        """Route one bus message: events to the clients that want their pair, the matrix to
        its subscribers, status to everyone; anything else (metrics snapshots) is not
        forwarded."""
        kind = message.kind
        if not kind and message.event is not None:  # a message built without its kind
            kind = _KIND_OF_TYPE.get(message.event.type, "")
        if message.retain and not message.payload:
            self._forget(message)
        elif kind in _EVENT_KINDS:
            frame = message.payload
            pair = message.pair
            self.events += 1
            if kind == "ratio":
                self.latest_ratio[pair] = frame
            elif kind == "alarm":
                event = message.event
                if isinstance(event, AlarmEvent) and event.active:
                    self.latest_alarm[pair] = frame
                else:
                    self.latest_alarm.pop(pair, None)
            for client in self.clients.values():
                if client.wants(pair):
                    self._push(client, frame)
        elif kind == "bar":
            frame = message.payload
            for client in self.clients.values():
                if client.bar:
                    self._push(client, frame)
        elif message.topic.endswith(_MATRIX_SUFFIX):
            frame = message.payload
            self.latest_matrix = frame
            for client in self.clients.values():
                if client.matrix:
                    self._push_matrix(client, frame)
        elif message.topic.endswith(_STATUS_SUFFIX):
            status = message.payload.decode("utf-8", "replace")
            self.status = _dumps({"type": "status", "status": status})
            for client in self.clients.values():
                self._push(client, self.status)

    def _forget(self, message: Message) -> None:
        """A cleared retained topic (:meth:`~hedger.core.bus.Bus.clear_retained`): the pair's
        latest frame of that kind is not sent to clients that subscribe from now on."""
        kind = message.topic.rsplit("/", 3)[-3] if message.topic.count("/") >= 3 else ""
        if kind == "ratio":
            self.latest_ratio.pop(message.pair, None)
        elif kind == "alarm":
            self.latest_alarm.pop(message.pair, None)

    # client side

    def receive(self, client: Client, data: str | bytes) -> bool:
        """Handle one message from ``client``, queueing the reply (and the retained ratios on
        a subscribe). False, with an error reply queued and the reject counted, if it was
        malformed."""
        try:
            action, pairs, matrix, bar = _parse_request(data)
        except _BadRequestError as exc:
            self.rejects.add(exc.reason, source=f"ws client {client.id}", peer=client.peer)
            self._push(client, _dumps({"type": "error", "error": exc.message}))
            return False
        if action in CONTROL_ACTIONS:
            return self._control(client, data)
        if action == gapfill.ACTION:
            return self._replay(client, data)
        wildcard = ALL_PAIRS in pairs
        named = [pair for pair in pairs if pair != ALL_PAIRS]
        if action == "subscribe":
            known = self.known
            unknown = [] if known is None else [p for p in dict.fromkeys(named) if p not in known]
            if unknown:
                return self._refuse(client, "unknown_pair", _unknown(unknown), unknown)
            if len(client.pairs.union(named)) > self.max_pairs:
                text = f"at most {self.max_pairs} pairs per client"
                return self._refuse(client, "too_many_pairs", text)
            client.everything = client.everything or wildcard
            client.pairs.update(named)
            client.matrix = client.matrix or matrix
            client.bar = client.bar or bar
            self._push(client, _subscribed(client))
            retained = sorted(self.latest_ratio) if wildcard else list(dict.fromkeys(named))
            alarmed = sorted(self.latest_alarm) if wildcard else retained
            for latest, pairs_of in ((self.latest_ratio, retained), (self.latest_alarm, alarmed)):
                for pair in pairs_of:
                    frame = latest.get(pair)
                    if frame is not None:
                        self._push(client, frame)
            if matrix and self.latest_matrix is not None:
                self._push_matrix(client, self.latest_matrix)
        else:
            if wildcard:
                client.everything = False
            client.pairs.difference_update(named)
            client.matrix = client.matrix and not matrix
            client.bar = client.bar and not bar
            self._push(client, _subscribed(client))
        return True

    def _control(self, client: Client, data: str | bytes) -> bool:
        """A control request: to the daemon's hook if this server takes control, its reply
        queued for ``client`` when it comes; else refused."""
        if not self.control_allowed or self.control is None:
            why = (
                "control needs a server with a token ([bus.websocket] token)"
                if not self.control_allowed
                else "this server does not take control requests"
            )
            self.rejects.add("control_refused", source=f"ws client {client.id}", peer=client.peer)
            self._push(client, refusal(data, why))
            return False

        def reply(frame: bytes) -> None:
            if client.id in self.clients:  # not for a client gone meanwhile
                self._push(client, frame)

        self.control(data, reply)
        return True

    def _replay(self, client: Client, data: str | bytes) -> bool:
        """A replay request: the journal's events of the range queued for ``client``, as many
        as its queue has room for, then the summary; or an error frame (counted)."""
        room = client.capacity - len(client.queue) - 1  # the summary takes one place
        answer = gapfill.serve(data, self.replay, self.replay_oldest, room)
        if answer.refused:
            self.rejects.add(answer.refused, source=f"ws client {client.id}", peer=client.peer)
        else:
            self.replays += 1
        for frame in answer.frames:
            self._push(client, frame)
        return not answer.refused

    def _refuse(
        self, client: Client, reason: str, text: str, unknown: list[str] | None = None
    ) -> bool:
        self.rejects.add(reason, source=f"ws client {client.id}", peer=client.peer)
        reply: dict[str, Any] = {"type": "error", "error": text}
        if unknown is not None:
            reply["unknown"] = unknown[:_LISTED]
        self._push(client, _dumps(reply))
        return False

    def _push(self, client: Client, frame: bytes) -> None:
        queue = client.queue
        if len(queue) >= client.capacity:
            if queue.popleft() is client.pending_matrix:
                client.pending_matrix = None
            self._count_drop(client)
        queue.append(frame)
        client.ready.set()

    def _push_matrix(self, client: Client, frame: bytes) -> None:
        """Queue a matrix frame, first dropping the client's older one if it is still queued
        (the same frame again, the retained one on a repeated subscribe, only moves back)."""
        older = client.pending_matrix
        if older is not None:
            client.pending_matrix = None
            _remove_identical(client.queue, older)
            if older is not frame:
                self._count_drop(client)
        self._push(client, frame)
        client.pending_matrix = frame

    def _count_drop(self, client: Client) -> None:
        client.dropped += 1
        self.dropped += 1
        if self.max_drops is not None and client.dropped > self.max_drops and not client.kicked:
            client.kicked = True
            self._kicked.append(client)


def take_frame(client: Client) -> bytes:
    """The next frame to send ``client`` (its queue must not be empty)."""
    frame = client.queue.popleft()
    if frame is client.pending_matrix:
        client.pending_matrix = None
    return frame


def _remove_identical(queue: deque[bytes], frame: bytes) -> None:
    """Remove ``frame`` itself (not an equal string) from ``queue``."""
    for i, queued in enumerate(queue):
        if queued is frame:
            del queue[i]
            return


def _unknown(pairs: list[str]) -> str:
    shown = ", ".join(_short(p) for p in pairs[:3])
    more = f" and {len(pairs) - 3} more" if len(pairs) > 3 else ""
    noun = "pair" if len(pairs) == 1 else "pairs"
    return f"unknown {noun} {shown}{more} (not run by this daemon)"


class _BadRequestError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _subscribed(client: Client) -> bytes:
    reply: dict[str, Any] = {"type": "subscribed", "pairs": client.subscription()}
    if client.matrix:
        reply["matrix"] = True
    if client.bar:
        reply["bar"] = True
    return _dumps(reply)


def _parse_request(data: str | bytes) -> tuple[str, list[str], bool, bool]:
    """``(action, normalised pairs, matrix, bar)`` from a client message, or
    :class:`_BadRequestError`."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _BadRequestError("bad_json", "not valid JSON") from None
    if not isinstance(obj, dict):
        raise _BadRequestError("not_an_object", "expected a JSON object")
    action = obj.get("action")
    if action in CONTROL_ACTIONS or action == gapfill.ACTION:
        # checked by the control channel (runtime.control), or the gap fill's schema
        return action, [], False, False
    if action not in ("subscribe", "unsubscribe"):
        shown = action if isinstance(action, str) else None
        raise _BadRequestError(
            "unknown_action",
            f"unknown action {_short(shown)}; expected subscribe, unsubscribe, replay or a "
            f"control action ({', '.join(CONTROL_ACTIONS)})",
        )
    matrix = obj.get("matrix", False)
    if not isinstance(matrix, bool):
        raise _BadRequestError("bad_matrix", "matrix must be true or false")
    bar = obj.get("bar", False)
    if not isinstance(bar, bool):
        raise _BadRequestError("bad_bar", "bar must be true or false")
    raw = obj.get("pairs")
    if raw is None and (matrix or bar):
        return action, [], matrix, bar
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
        raise _BadRequestError("bad_pairs", "pairs must be a non-empty list of pair ids")
    pairs: list[str] = []
    for text in raw:
        if text.strip() == ALL_PAIRS:
            pairs.append(ALL_PAIRS)
            continue
        try:
            pairs.append(str(PairId.parse(text)))
        except ConfigError as exc:
            raise _BadRequestError("bad_pair", f"bad pair {_short(text)}: {exc.problem}") from None
    return action, pairs, matrix, bar


def _short(text: str | None, limit: int = 60) -> str:
    if text is None:
        return "(missing)"
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _dumps(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


# The bridge's own metrics: (kind, help). Names are hedger_<bridge name>_<key>, the same names
# a daemon's metrics_provider gives them, so those repeats are left out.
_OWN_METRICS: dict[str, tuple[Kind, str]] = {
    "clients": ("gauge", "WebSocket clients connected."),
    "queued": ("gauge", "Messages waiting in the outbox and in client queues."),
    "sent": ("counter", "Frames written to WebSocket clients."),
    "dropped": ("counter", "Frames dropped from full client queues (slow clients)."),
    "outbox_dropped": ("counter", "Messages dropped from the bridge's full outbox."),
    "connections": ("counter", "WebSocket connections accepted."),
    "client_errors": ("counter", "Malformed messages received from clients."),
    "unauthorized": ("counter", "HTTP requests refused for a missing or wrong token."),
    "kicked": ("counter", "Clients disconnected for dropping too much."),
    "refused": ("counter", "WebSocket connections refused at max_clients."),
    "replays": ("counter", "Replay (gap fill) requests answered from the event journal."),
}

# ---------------------------------------------------------------------------------------------
# The I/O layer.


class WebSocketBridge(Lifecycle):
    """Bus messages to WebSocket clients (see the module docstring for the protocol).

    ``host``/``port``: where to listen (``port=0``: any free port; :attr:`port` holds the
    bound one once started). ``token``: the bearer token every HTTP request must carry (None:
    no authentication). ``client_queue``: frames buffered per client. ``outbox_capacity``:
    the bus outbox. ``metrics_provider``: more counters for ``/metrics``. ``logger``: a
    structlog-style logger. ``max_drops``: disconnect a client past this many drops (None:
    never). ``close_timeout``: how long a closing handshake may take before the socket is
    dropped (a client that stopped reading never completes one). ``pairs``: the daemon's pair
    ids (a subscribe naming another is refused; None: any is taken). ``max_clients``,
    ``max_pairs_per_client``: the limits of the module documentation.

    :meth:`run` starts the server (or :meth:`start`, to learn the port first) and delivers
    until cancelled; :meth:`close` stops it (also usable as ``async with``). ``on_state``
    hears every change of :attr:`state`: ``RUNNING`` once listening, ``STOPPING`` and
    ``STOPPED`` once closed. A port that cannot be bound, a bad argument or a start after
    close raise :class:`~hedger.errors.TransportError`.
    """

    name = "ws"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        token: str | None = None,
        client_queue: int = 1000,
        outbox_capacity: int = 100_000,
        metrics_provider: Callable[[], Mapping[str, float]] | None = None,
        logger: Logger | None = None,
        max_drops: int | None = None,
        close_timeout: float = 2.0,
        on_state: StateListener | None = None,
        pairs: Iterable[str] | None = None,
        max_clients: int = MAX_CLIENTS,
        max_pairs_per_client: int = MAX_PAIRS_PER_CLIENT,
    ) -> None:
        super().__init__(on_state)
        if max_clients < 1:
            raise TransportError("websocket", "", "max_clients must be at least 1")
        if token is not None and not token:
            raise TransportError(
                "websocket", "", "token must not be empty (use None for no authentication)"
            )
        self.host = host
        self.port = port
        self.outbox = Outbox(outbox_capacity, name=self.name)
        self.client_errors = Rejects(logger)
        self.core = FanOut(
            client_queue, max_drops, self.client_errors, pairs=pairs, max_pairs=max_pairs_per_client
        )
        self.core.control_allowed = token is not None
        self.max_clients = max_clients
        self.unauthorized = 0
        self.kicked = 0
        self.refused = 0
        self._token = token
        self._metrics_provider = metrics_provider
        self._logger = logger
        self._close_timeout = close_timeout
        self._auth_log = Rejects(logger)
        self._server: Server | None = None
        self._start_lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._connections: dict[int, ServerConnection] = {}
        self._progress = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._collector = CountersCollector(self._own_samples, self._provided)

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/"

    # lifecycle

    async def start(self) -> None:
        """Listen (once; later calls do nothing). Sets :attr:`port` to the bound port."""
        async with self._start_lock:
            if self.closing:
                raise TransportError("websocket", self.url, "the WebSocket bridge is closed")
            if self._server is not None:
                return
            try:
                self._server = await serve(
                    self._handle,
                    self.host,
                    self.port,
                    process_request=self._process_request,
                    compression=None,
                    max_size=MAX_CLIENT_MESSAGE,
                    close_timeout=self._close_timeout,
                )
            except OSError as exc:
                problem = f"cannot listen: {exc.strerror or exc}"
                raise TransportError("websocket", self.url, problem) from exc
            sockets = self._server.sockets
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
            self._set_state(State.RUNNING)
            self._log("info", "websocket listening", host=self.host, port=self.port)

    async def run(self) -> None:
        """Start if needed, then move outbox messages to the clients until cancelled."""
        await self.start()
        outbox = self.outbox
        while True:
            await outbox.wait()
            self._pump(_BATCH)
            # let the sender tasks write before the next batch
            await asyncio.sleep(0)

    async def drain(self, timeout: float) -> bool:
        """Hand everything in the outbox to the clients and wait, up to ``timeout`` seconds,
        until every client has been sent its queue. True if all was delivered (a slow client
        can make it False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while len(self.outbox):
                self._pump(len(self.outbox))
            if self.core.idle:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)

    def close(self) -> asyncio.Future[None]:
        """Stop listening and close every connection (1001). Idempotent. Returns an
        awaitable that finishes when all is closed (the same as :meth:`wait_closed`); it may
        be ignored, cancelling it does not stop the close. Call it from the event loop."""
        if not self.closing:
            self._set_state(State.STOPPING)
            if self._server is not None:
                self._server.close()
            self._closed.set()
        return asyncio.ensure_future(self.wait_closed())

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has been called and every connection is closed."""
        await self._closed.wait()
        if self._server is not None:
            await self._server.wait_closed()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        self._set_state(State.STOPPED)

    async def _open(self) -> None:
        await self.start()

    # counters

    def metrics(self) -> dict[str, float]:
        """clients, sent, dropped (client queues), queued (outbox and client queues), and
        outbox_dropped, connections, client_errors, unauthorized, kicked, refused, replays."""
        core = self.core
        return {
            "clients": len(core.clients),
            "sent": core.sent,
            "dropped": core.dropped,
            "queued": len(self.outbox) + core.queued,
            "outbox_dropped": self.outbox.dropped,
            "connections": core.connections,
            "client_errors": self.client_errors.total,
            "unauthorized": self.unauthorized,
            "kicked": self.kicked,
            "refused": self.refused,
            "replays": core.replays,
        }

    def client_stats(self) -> list[ClientStats]:
        """Per-client counters, oldest connection first."""
        return [
            ClientStats(c.id, c.peer, tuple(c.subscription()), len(c.queue), c.sent, c.dropped)
            for c in self.core.clients.values()
        ]

    def prometheus(self) -> str:
        """The ``/metrics`` page (see :mod:`hedger.runtime.bridges.prometheus`)."""
        return render(self._collector)

    def _own_samples(self) -> Iterator[tuple[str, Kind, str, float]]:
        for key, value in self.metrics().items():
            kind, help_text = _OWN_METRICS[key]
            yield f"hedger_{self.name}_{key}", kind, help_text, float(value)

    def _provided(self) -> Mapping[str, float]:
        if self._metrics_provider is None:
            return {}
        try:
            return self._metrics_provider()
        except Exception as exc:  # a scrape never fails for a broken provider
            self._log("warning", "metrics provider failed", error=repr(exc))
            return {}

    # internals

    def _pump(self, limit: int) -> None:
        batch = self.outbox.peek_batch(limit)
        publish = self.core.publish
        for message in batch:
            publish(message)
        self.outbox.ack(batch)
        self._kick_slow()

    def _kick_slow(self) -> None:
        for client in self.core.take_kicked():
            connection = self._connections.get(client.id)
            if connection is None:
                continue
            self.kicked += 1
            self._log(
                "warning",
                "slow websocket client disconnected",
                client=client.id,
                peer=client.peer,
                dropped=client.dropped,
            )
            task = asyncio.create_task(connection.close(1008, "slow consumer"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self._token is not None and not self._authorized(request):
            self.unauthorized += 1
            self._auth_log.add("unauthorized", source="ws", peer=_peer(connection))
            response = connection.respond(
                HTTPStatus.UNAUTHORIZED, "Missing or wrong bearer token.\n"
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="hedger"'
            return response
        if urlsplit(request.path).path == "/metrics":
            response = connection.respond(HTTPStatus.OK, self.prometheus())
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = PROMETHEUS_CONTENT_TYPE
            return response
        if len(self._connections) >= self.max_clients:
            return self._refuse_connection(connection)
        return None

    def _refuse_connection(self, connection: ServerConnection) -> Response:
        self.refused += 1
        self._auth_log.add("too_many_clients", source="ws", peer=_peer(connection))
        return connection.respond(
            HTTPStatus.SERVICE_UNAVAILABLE, f"Too many clients (at most {self.max_clients}).\n"
        )

    def _authorized(self, request: Request) -> bool:
        assert self._token is not None
        values = request.headers.get_all("Authorization")
        if len(values) != 1:
            return False
        scheme, _, credentials = values[0].strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self._token.encode())

    async def _handle(self, connection: ServerConnection) -> None:
        peer = _peer(connection)
        if len(self._connections) >= self.max_clients:  # handshakes that raced past the check
            self.refused += 1
            await connection.close(1013, "too many clients")
            return
        client = self.core.add_client(peer)
        self._connections[client.id] = connection
        self._log("info", "websocket client connected", client=client.id, peer=peer)
        sender = asyncio.create_task(self._send(connection, client))
        try:
            async for data in connection:
                self.core.receive(client, data)
                self._kick_slow()
        except ConnectionClosed:
            pass
        finally:
            self.core.remove_client(client)
            self._connections.pop(client.id, None)
            sender.cancel()
            await asyncio.wait([sender])
            self._progress.set()
            self._log(
                "info",
                "websocket client disconnected",
                client=client.id,
                peer=peer,
                sent=client.sent,
                dropped=client.dropped,
            )

    async def _send(self, connection: ServerConnection, client: Client) -> None:
        queue = client.queue
        core = self.core
        progress = self._progress
        with contextlib.suppress(ConnectionClosed):
            while True:
                if not queue:
                    client.ready.clear()
                    await client.ready.wait()
                    continue
                frame = take_frame(client)
                client.in_flight = True
                # UTF-8 JSON as it is, sent as a text frame: nothing decoded per client
                await connection.send(frame, text=True)
                client.in_flight = False
                client.sent += 1
                core.sent += 1
                progress.set()

    def _log(self, level: str, event: str, **kw: Any) -> None:
        if self._logger is not None:
            getattr(self._logger, level)(event, bridge=self.name, **kw)


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
