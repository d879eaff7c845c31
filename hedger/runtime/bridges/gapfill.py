"""Gap fill: the events a subscriber missed, answered from the daemon's event journal
(:mod:`hedger.runtime.state.events`), one request schema and one answer for the WebSocket and
MQTT bridges (the transports only carry the frames).

A request is one JSON object::

    {"action": "replay", "id": 7, "pair": "AAPL/SPY", "from_seq": 120, "to_seq": 131}

``pair``: a pair id (normalised as in :mod:`hedger.core.topics`; a pair the daemon no longer
runs is answered from what the journal still holds of it). ``from_seq``, ``to_seq``: integers,
``1 <= from_seq <= to_seq``, at most :data:`MAX_SEQS` seqs. ``id`` (optional over WebSocket: a
string of at most 100 characters or an integer; over MQTT required and a topic level, see
:func:`hedger.core.topics.is_replay_id`) is echoed in the summary. ``action`` is needed over
WebSocket only; other keys are ignored.

The answer: the payloads of the pair's events (``hedge_ratio``, ``spread``, ``alarm``) with
``from_seq <= seq <= to_seq`` that the journal holds, byte for byte as they were published,
in publish order, each once; then one summary::

    {"type": "replayed", "id": 7, "pair": "AAPL/SPY", "from_seq": 120, "to_seq": 131,
     "events": 24, "oldest_seq": 1, "next_seq": null}

``events``: how many payloads came before it. ``oldest_seq``: the lowest seq of the pair the
journal still holds (null: none of the pair's, or not known); a seq of the range below it is
gone from the bounded journal. ``next_seq``: null when the whole range was answered; else the
answer was cut short to what the transport holds at once (the client's queue, the bridge's
outbox, at most :data:`MAX_EVENTS` events), never inside one seq's events, and a request
from ``next_seq`` gets the rest.

A refusal is one frame, ``{"type": "error", "action": "replay", "id": 7, "reason":
"bad_range", "error": "<one line>"}`` (``pair`` too when the request named a well-formed
one); ``reason`` is ``bad_json``, ``not_an_object``, ``bad_id``, ``bad_pair``, ``bad_range``,
``no_journal`` (the daemon runs without ``[state]``) or ``replay_failed`` (the journal could
not be read). A refusal changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from hedger.core.topics import MAX_REPLAY_ID, PairId, is_replay_id
from hedger.errors import ConfigError

ACTION = "replay"
"""The WebSocket action of a replay request."""
MAX_SEQS = 100_000
"""The most seqs one request may span (the journal's own bound on a lookup)."""
MAX_EVENTS = 10_000
"""The most events one answer carries (then ``next_seq`` says where to go on)."""
MAX_ID = 100
MAX_ROUNDS = 100
"""The most requests :func:`replay_all` makes for one range."""
"""The longest string id taken over WebSocket."""
NO_JOURNAL = "this daemon keeps no event journal ([state] not configured)"

ReplayHook = Callable[[str, int, int], list[bytes]]
"""``lookup(pair, from_seq, to_seq)``: the journal's payloads of the range, in publish order
(:meth:`hedger.runtime.state.events.EventJournal.lookup`); ``ValueError`` for a bad range."""
OldestHook = Callable[[str], int | None]
"""``oldest_seq(pair)``: the lowest seq of the pair the journal holds, None if none."""
RequestId = str | int | None


class ReplayRefusedError(Exception):
    """A replay request refused: ``reason`` (a counter label, and the error frame's) and a
    one-line ``message``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """A well-formed request: the pair id (normalised), the seq range, the id to echo."""

    pair: str
    from_seq: int
    to_seq: int
    id: RequestId = None


class Answer(NamedTuple):
    """What a transport sends back for one request, in order: the events then the summary,
    or one error frame; ``refused``: the refusal's reason (empty when answered);
    ``request_id``: the request's id (None when it has none, or none usable)."""

    frames: list[bytes]
    refused: str
    request_id: RequestId


def request_frame(
    pair: str, from_seq: int, to_seq: int, request_id: RequestId, *, action: bool = True
) -> bytes:
    """A request as a client sends it (``action``: with ``"action": "replay"``, as a
    WebSocket server needs)."""
    body: dict[str, Any] = {"action": ACTION} if action else {}
    body.update(id=request_id, pair=pair, from_seq=from_seq, to_seq=to_seq)
    return orjson.dumps(body)


def parse_request(data: str | bytes, *, topic_id: bool = False) -> ReplayRequest:
    """Check one request against the schema (module docstring). ``topic_id``: the id must
    name a reply topic (MQTT). Raises :class:`ReplayRefusedError`."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ReplayRefusedError("bad_json", "not valid JSON") from None
    if not isinstance(obj, dict):
        raise ReplayRefusedError("not_an_object", "expected a JSON object")
    request_id = obj.get("id")
    if topic_id and not is_replay_id(request_id):
        raise ReplayRefusedError(
            "bad_id",
            f"id must be 1 to {MAX_REPLAY_ID} of A-Z a-z 0-9 . _ - (it names the reply topic)",
        )
    if not _good_id(request_id):
        raise ReplayRefusedError("bad_id", f"id must be an integer or a string of at most {MAX_ID}")
    pair = _pair(obj.get("pair"))
    low, high = _seq(obj, "from_seq"), _seq(obj, "to_seq")
    if low > high:
        raise ReplayRefusedError("bad_range", f"from_seq {low} is after to_seq {high}")
    if high - low >= MAX_SEQS:
        raise ReplayRefusedError("bad_range", f"at most {MAX_SEQS} seqs in one replay")
    return ReplayRequest(pair, low, high, request_id)


def _good_id(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and len(value) <= MAX_ID)


def _pair(value: Any) -> str:
    if not isinstance(value, str):
        raise ReplayRefusedError("bad_pair", "pair must be a pair id (Y/X)")
    try:
        return str(PairId.parse(value))
    except ConfigError as exc:
        raise ReplayRefusedError("bad_pair", f"bad pair {value[:60]!r}: {exc.problem}") from None


def _seq(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ReplayRefusedError("bad_range", f"{key} must be an integer of at least 1")
    return value


def serve(
    data: str | bytes,
    lookup: ReplayHook | None,
    oldest: OldestHook | None,
    limit: int,
    *,
    topic_id: bool = False,
) -> Answer:
    """Answer one request (raw bytes) from the journal's ``lookup`` (None: the daemon keeps
    no journal) with at most ``limit`` events (and :data:`MAX_EVENTS`); ``oldest`` gives the
    summary's ``oldest_seq`` (None: not known). Never raises: a bad request, a missing journal
    or a journal that fails is a refusal."""
    try:
        request = parse_request(data, topic_id=topic_id)
    except ReplayRefusedError as exc:
        request_id = _echoed_id(data, topic_id)
        return Answer([refusal(exc, request_id)], exc.reason, request_id)
    if lookup is None:
        missing = ReplayRefusedError("no_journal", NO_JOURNAL)
        return Answer([refusal(missing, request.id, request.pair)], missing.reason, request.id)
    try:
        events, summary = answer(request, lookup, oldest, limit)
    except ReplayRefusedError as exc:
        return Answer([refusal(exc, request.id, request.pair)], exc.reason, request.id)
    return Answer([*events, summary], "", request.id)


def answer(
    request: ReplayRequest, lookup: ReplayHook, oldest: OldestHook | None, limit: int
) -> tuple[list[bytes], bytes]:
    """The events answering ``request`` (at most ``limit`` and :data:`MAX_EVENTS`, cut
    between two seqs) and its summary frame. Raises :class:`ReplayRefusedError` when the
    journal refuses the range or fails."""
    limit = max(0, min(limit, MAX_EVENTS))
    try:
        low, high, events = _look(lookup, request.pair, request.from_seq, request.to_seq, limit)
        # after the lookup, which writes what the journal was still holding back
        first = oldest(request.pair) if oldest is not None else None
        if not events and first is not None and low < first <= request.to_seq:
            # the range's start is gone from the bounded journal: go on from its oldest
            low, high, events = _look(lookup, request.pair, first, request.to_seq, limit)
    except ValueError as exc:
        raise ReplayRefusedError("bad_range", str(exc).splitlines()[0]) from None
    except Exception as exc:  # the journal's disk: a refusal, never a broken connection
        why = f"the journal could not be read: {exc!r}"[:200]
        raise ReplayRefusedError("replay_failed", why) from None
    events, next_seq = _cut(events, limit)
    gone = oldest is not None and (first is None or first > request.to_seq)  # none left
    if next_seq is None and high < request.to_seq and not gone:
        next_seq = high + 1
    return events, summary_frame(request, len(events), first, next_seq)


def _look(
    lookup: ReplayHook, pair: str, low: int, high: int, limit: int
) -> tuple[int, int, list[bytes]]:
    """``(low, the last seq looked up, the events)``: the range from ``low`` on that an
    answer of ``limit`` events can hold (each seq has at least one event)."""
    high = min(high, low + limit - 1)
    return low, high, lookup(pair, low, high) if low <= high else []


def _cut(events: list[bytes], limit: int) -> tuple[list[bytes], int | None]:
    """At most ``limit`` events, never a seq's events split: (the events, the first seq
    left out, or None when none was)."""
    if len(events) <= limit:
        return events, None
    next_seq = seq_of(events[limit])
    end = limit
    while end > 0 and seq_of(events[end - 1]) == next_seq:
        end -= 1
    return events[:end], next_seq


def seq_of(payload: bytes) -> int:
    """The ``seq`` of an event payload."""
    seq = orjson.loads(payload)["seq"]
    assert isinstance(seq, int)
    return seq


def summary_frame(
    request: ReplayRequest, events: int, oldest_seq: int | None, next_seq: int | None
) -> bytes:
    """The frame after the events of an answer (module docstring)."""
    return orjson.dumps(
        {
            "type": "replayed",
            "id": request.id,
            "pair": request.pair,
            "from_seq": request.from_seq,
            "to_seq": request.to_seq,
            "events": events,
            "oldest_seq": oldest_seq,
            "next_seq": next_seq,
        }
    )


def refusal(exc: ReplayRefusedError, request_id: RequestId, pair: str | None = None) -> bytes:
    """The error frame refusing a request (module docstring)."""
    body: dict[str, Any] = {"type": "error", "action": ACTION, "id": request_id}
    if pair is not None:
        body["pair"] = pair
    body.update(reason=exc.reason, error=exc.message)
    return orjson.dumps(body)


def _echoed_id(data: str | bytes, topic_id: bool) -> RequestId:
    """The id of a refused request, when it has one worth echoing (over MQTT: one that names
    a reply topic)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    if topic_id:
        return value if is_replay_id(value) else None
    return value if _good_id(value) else None


class Replayed(NamedTuple):
    """One answer as a client receives it: the event payloads (as published) and the summary
    (decoded)."""

    events: list[bytes]
    summary: dict[str, Any]


def frame_kind(payload: bytes, request_id: RequestId) -> tuple[str, dict[str, Any] | None]:
    """What a frame of an answer to ``request_id`` is: ``("summary", decoded)``, ``("error",
    decoded)`` (a refusal of it), or ``("event", None)`` for anything else (an event payload,
    kept as it is)."""
    if b'"type":"replayed"' not in payload and b'"type":"error"' not in payload:
        return "event", None
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "event", None
    if not isinstance(obj, dict) or obj.get("id") != request_id:
        return "event", None
    if obj.get("type") == "replayed":
        return "summary", obj
    if obj.get("type") == "error" and obj.get("action") == ACTION:
        return "error", obj
    return "event", None


async def replay_all(
    ask: Callable[[int, int], Awaitable[Replayed]],
    from_seq: int,
    to_seq: int,
    rounds: int = MAX_ROUNDS,
) -> Replayed:
    """The answer to a whole range, asked in as many requests as the daemon's cuts need
    (``ask(low, high)``: one request and its answer), at most ``rounds``: every event, and
    the last summary with the range's ``from_seq`` and the events of all of them; its
    ``next_seq`` is null unless the daemon stopped short (no room to answer at all, or out of
    rounds)."""
    events: list[bytes] = []
    low = from_seq
    summary: dict[str, Any] = {}
    for _ in range(rounds):
        got = await ask(low, to_seq)
        events.extend(got.events)
        summary = got.summary
        after = summary.get("next_seq")
        if not isinstance(after, int) or not low < after <= to_seq:
            break
        low = after
    return Replayed(events, {**summary, "from_seq": from_seq, "events": len(events)})
