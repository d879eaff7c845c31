"""Pairs added, changed and removed while the daemon runs: one request schema for every
transport (the WebSocket server, the MQTT control topic), checked here and applied on the
core's task.

A request is one JSON object::

    {"action": "add_pair", "id": 7, "pair": "Y/X", "mode": "returns", "delta": 1e-5}
    {"action": "update_pair", "id": 8, "pair": "Y/X", "obs_cov": 0.002}
    {"action": "remove_pair", "id": 9, "pair": "Y/X"}
    {"action": "list_pairs", "id": 10}

``id`` (optional, a string of at most 100 characters or an integer) is echoed in the reply.
Every other key of ``add_pair``/``update_pair`` is a filter key as in a ``[pairs."Y/X"]``
table, over the file's ``[filter]`` defaults (``update_pair`` too starts from the defaults,
not from the running parameters: it says the pair's whole table), except ``position``: the
shares of Y held (or ``{"notional": ...}``), as in ``[positions]`` (an update without one keeps
the running pair's). Hedges take the file's ``[lots]``. Over MQTT, with ``[control] token``
set, a request also carries ``"token"``.

The reply is one JSON object, ``{"type": "control_reply", "id": 7, "ok": true,
"action": "add_pair", "pair": "Y/X", "warm_bars": 1200}`` or ``{"type": "control_reply",
"id": 7, "ok": false, "error": "<one line>"}``. A request that is refused changes nothing and
is counted (``rejected_control_<reason>`` in the metrics) and logged without its token.

Order: a well-formed request goes through the daemon's tick queue, so it is applied between
two queue items on the core's task: never during a bar close, and at a deterministic place in
the stream of ticks. The first bar an added pair takes is the next bar to close; a removed pair
publishes nothing from then on and its retained ``ratio`` and ``alarm`` topics are cleared.

The configuration file stays the source of truth: a restart runs the file's pairs, forgetting
every change made here (each change is logged as a warning saying so).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from hedger.config.control import ControlSettings, pair_spec
from hedger.core.topics import PairId
from hedger.errors import ConfigError

if TYPE_CHECKING:  # annotations only: the WebSocket bridge imports this module, keep it light
    from hedger.core.actors import PairActor, PairSpec
    from hedger.core.bus import Bus
    from hedger.core.pipeline import Pipeline
    from hedger.core.rejects import Rejects
    from hedger.runtime.refit import Refitter

ACTIONS = ("add_pair", "remove_pair", "update_pair", "list_pairs")
"""The control actions."""
MAX_ID = 100
"""The longest string ``id`` taken."""
_ENVELOPE = frozenset({"action", "id", "pair", "token", "position"})

Reply = Callable[[bytes], None]
"""Sends one reply frame back to whoever asked (a WebSocket client, the MQTT reply topic)."""
ControlHook = Callable[[str | bytes, Reply], None]
"""What a transport calls with a request's raw bytes and how to reply (set by the daemon)."""

RESTART_NOTE = "a restart runs the config file's pairs and forgets this change"


class ControlRefusedError(Exception):
    """A request refused: ``reason`` (a counter label) and a one-line ``message``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """A well-formed request: its action, echoed id, pair id (normalised) and, for
    ``add_pair``/``update_pair``, the pair's spec."""

    action: str
    id: str | int | None = None
    pair: str | None = None
    spec: PairSpec | None = None


@dataclass
class ControlCounters:
    """What the control channel did."""

    requests: int = 0
    applied: int = 0
    refused: int = 0
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def reply_frame(request_id: str | int | None, ok: bool, **fields: Any) -> bytes:
    """A ``control_reply`` frame."""
    return orjson.dumps({"type": "control_reply", "id": request_id, "ok": ok, **fields})


def request_id(data: str | bytes) -> str | int | None:
    """The ``id`` of a request if it has a usable one (for echoing in a refusal), else None."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    value = obj.get("id")
    return value if _good_id(value) else None


def refusal(data: str | bytes, message: str) -> bytes:
    """The reply refusing ``data`` with ``message`` (its id echoed when it has one)."""
    return reply_frame(request_id(data), False, error=message)


def _good_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and len(value) <= MAX_ID)


def parse_request(
    data: str | bytes, settings: ControlSettings, *, token: str | None = None
) -> ControlRequest:
    """Check one request against the schema (not against what runs: that is
    :meth:`Controller.apply`'s). ``token``: the secret the request must carry in its
    ``token`` key (None: none needed). Raises :class:`ControlRefusedError`."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ControlRefusedError("bad_json", "not valid JSON") from None
    if not isinstance(obj, dict):
        raise ControlRefusedError("not_an_object", "expected a JSON object")
    if token is not None:
        given = obj.get("token")
        if not isinstance(given, str) or not hmac.compare_digest(
            given.encode("utf-8", "replace"), token.encode()
        ):
            raise ControlRefusedError("unauthorized", "unauthorized: a valid token is needed")
    if not settings.enabled:
        raise ControlRefusedError("disabled", "control is disabled ([control] enabled = false)")
    ident = obj.get("id")
    if ident is not None and not _good_id(ident):
        raise ControlRefusedError(
            "bad_id", f"id must be an integer or a string of at most {MAX_ID} characters"
        )
    action = obj.get("action")
    if action not in ACTIONS:
        shown = repr(action[:40]) if isinstance(action, str) else "(missing)"
        raise ControlRefusedError(
            "unknown_action", f"unknown action {shown}; expected one of {', '.join(ACTIONS)}"
        )
    params = {key: value for key, value in obj.items() if key not in _ENVELOPE}
    if action == "list_pairs":
        if params or "pair" in obj or "position" in obj:
            raise ControlRefusedError("bad_params", "list_pairs takes no pair or parameters")
        return ControlRequest(action, ident)
    raw = obj.get("pair")
    if not isinstance(raw, str):
        raise ControlRefusedError("bad_pair", f"{action} needs a pair id like Y/X")
    try:
        pair = str(PairId.parse(raw))
    except ConfigError as exc:
        raise ControlRefusedError("bad_pair", f"bad pair: {exc.problem}") from None
    if action == "remove_pair":
        if params or "position" in obj:
            raise ControlRefusedError("bad_params", "remove_pair takes only a pair")
        return ControlRequest(action, ident, pair)
    try:
        spec = pair_spec(
            pair,
            params,
            settings.filter_defaults,
            lots=settings.lots,
            position=obj.get("position"),
            alarm=settings.alarm,
        )
    except ConfigError as exc:
        raise ControlRefusedError("bad_params", str(exc)) from None
    return ControlRequest(action, ident, pair, spec)


class Controller:
    """Takes requests from the transports and applies them to the running pipeline.

    :meth:`receive` (a transport's hook, on the event loop) checks a request and refuses a
    malformed one at once; a well-formed one goes to ``enqueue`` (the daemon puts it on its
    tick queue), and the core task calls :meth:`apply`, which changes the pipeline and
    replies. ``refitter``: attached to added pairs and detached from removed ones;
    ``on_pairs``: hears the running pair ids after every change (the WebSocket bridge's
    known pairs)."""

    def __init__(
        self,
        pipeline: Pipeline,
        bus: Bus,
        settings: ControlSettings,
        rejects: Rejects,
        logger: Any,
        *,
        refitter: Refitter | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.bus = bus
        self.settings = settings
        self.rejects = rejects
        self.log = logger
        self.refitter = refitter
        self.counters = ControlCounters()
        self.enqueue: Callable[[ControlRequest, Reply], bool] | None = None
        """Queues a checked request for :meth:`apply`; False when the queue is full."""
        self.on_pairs: list[Callable[[tuple[str, ...]], None]] = []

    def metrics(self) -> dict[str, float]:
        """Counters for the daemon's metrics."""
        return {
            "control_requests": self.counters.requests,
            "control_applied": self.counters.applied,
            "control_refused": self.counters.refused,
        }

    def hook(self, source: str, token: str | None = None) -> ControlHook:
        """The hook a transport calls (``source`` names it in the logs; ``token``: the secret
        its requests must carry, None if the transport authenticated them already)."""

        def receive(data: str | bytes, reply: Reply) -> None:
            self.receive(data, reply, source, token=token)

        return receive

    def receive(
        self, data: str | bytes, reply: Reply, source: str, *, token: str | None = None
    ) -> None:
        """Check a request; refuse it at once or queue it for :meth:`apply`."""
        self.counters.requests += 1
        try:
            request = parse_request(data, self.settings, token=token)
        except ControlRefusedError as exc:
            self._refuse(reply, request_id(data), exc, source)
            return
        if self.enqueue is None or not self.enqueue(request, reply):
            busy = ControlRefusedError("busy", "the daemon is busy or stopping; try again")
            self._refuse(reply, request.id, busy, source)

    def _refuse(
        self, reply: Reply, ident: str | int | None, exc: ControlRefusedError, source: str
    ) -> None:
        self.counters.refused += 1
        self.rejects.add(f"control_{exc.reason}", source, error=exc.message)
        reply(reply_frame(ident, False, error=exc.message))

    def apply(self, request: ControlRequest, reply: Reply) -> None:
        """Apply a checked request (on the core task, between two queue items) and reply."""
        try:
            fields = self._apply(request)
        except ConfigError as exc:
            self._refuse(reply, request.id, ControlRefusedError("refused", str(exc)), "core")
            return
        self.counters.applied += 1
        reply(reply_frame(request.id, True, action=request.action, **fields))

    def _apply(self, request: ControlRequest) -> dict[str, Any]:
        pipeline = self.pipeline
        if request.action == "list_pairs":
            pipeline.sync()  # the bank's seq and observations, on the actors
            return {"pairs": [_describe(actor) for actor in pipeline.actors], **self._held()}
        assert request.pair is not None
        if request.action == "remove_pair":
            actor = pipeline.remove_pair(request.pair)
            if self.refitter is not None:
                self.refitter.detach(actor)
            self.bus.clear_retained("ratio", actor.pair_id)
            self.bus.clear_retained("alarm", actor.pair_id)
            self.counters.removed.append(actor.pair_id)
            self._changed()
            self.log.warning("pair removed", pair=actor.pair_id, seq=actor.seq, note=RESTART_NOTE)
            return {"pair": actor.pair_id, "seq": actor.seq}
        assert request.spec is not None
        if request.action == "add_pair":
            added = pipeline.add_pair(request.spec)
            if self.refitter is not None:
                self.refitter.attach([added.actor])
            self.counters.added.append(added.actor.pair_id)
            self._changed()
            self.log.warning(
                "pair added",
                pair=added.actor.pair_id,
                mode=added.actor.params.mode.value,
                warm_bars=added.warm_bars,
                note=RESTART_NOTE,
            )
            return {"pair": added.actor.pair_id, "warm_bars": added.warm_bars}
        spec = request.spec
        running = next((a for a in pipeline.actors if a.pair_id == request.pair), None)
        if spec.position is None and running is not None:
            spec = replace(spec, position=running.spec.position)  # the position carries on
        updated = pipeline.update_pair(spec)
        if self.refitter is not None and not updated.kept_state:
            self.refitter.detach(updated.old)
            self.refitter.attach([updated.actor])
        self._changed()
        self.log.warning(
            "pair updated",
            pair=updated.actor.pair_id,
            kept_state=updated.kept_state,
            warm_bars=updated.warm_bars,
            note=RESTART_NOTE,
        )
        return {
            "pair": updated.actor.pair_id,
            "kept_state": updated.kept_state,
            "warm_bars": updated.warm_bars,
        }

    def log_forgotten(self) -> None:
        """At shutdown: say loudly which run-time changes a restart will not have."""
        counters = self.counters
        if counters.added or counters.removed or counters.applied:
            self.log.warning(
                "pairs changed at run time are forgotten at a restart: the config file is the "
                "source of truth (edit it to keep them)",
                added=counters.added,
                removed=counters.removed,
                running=[actor.pair_id for actor in self.pipeline.actors],
            )

    def _held(self) -> dict[str, int]:
        history = self.pipeline.history
        return {"held_bars": 0 if history is None else len(history.bars)}

    def _changed(self) -> None:
        ids = tuple(actor.pair_id for actor in self.pipeline.actors)
        for listener in self.on_pairs:
            listener(ids)


def _describe(actor: PairActor) -> dict[str, Any]:
    """One running pair as ``list_pairs`` shows it."""
    params = actor.params
    return {
        "pair": actor.pair_id,
        "mode": params.mode.value,
        "seq": actor.seq,
        "observations": actor.observations,
        "delta": params.delta if params.trans_cov is None else None,
        "obs_cov": params.obs_cov,
        "adaptive_r": params.adaptive_r,
    }
