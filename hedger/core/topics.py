"""Pair ids and MQTT topics: the only place topic strings are built and parsed.

Pair ids: ``Y/X`` for a pair (``AAPL/SPY``: AAPL hedged with SPY) and ``Y/X1+X2+...`` for a
basket (``XLE/USO+UNG``). Symbols are escaped in ids and topics by one rule: every character
outside ``[A-Za-z0-9._-]`` (``/``, ``+``, ``#``, ``%``, spaces, ...) becomes ``%XX``, its UTF-8
bytes in upper-case hex, so ids split unambiguously and topics never contain MQTT wildcards.

Topics: ``<root>/v1/<kind>/<escaped Y>/<escaped X>`` (a basket's hedges joined by ``,``, since
MQTT forbids ``+`` in a published topic) with kinds ``ratio`` (retained), ``spread``, ``state``
(retained), ``alarm`` (retained while active), ``matrix``; and ``<root>/v1/status``,
``<root>/v1/metrics``, ``<root>/v1/bar`` (the batch message of each bar); and the daemon's
request topics: ``<root>/v1/control`` (replies on ``<root>/v1/control/reply``) and
``<root>/v1/replay`` (gap fill: the answer to a request with id ``ID`` on
``<root>/v1/replay/reply/ID``; a request without a usable id is refused on
``<root>/v1/replay/reply``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard
from urllib.parse import unquote

from hedger.errors import ConfigError

SCHEMA_VERSION = 1
PAIR_KINDS = ("ratio", "spread", "state", "alarm")
"""The kinds of per-pair topics."""
_PLAIN = re.compile(r"^[A-Za-z0-9._-]+$")
_ESCAPED = re.compile(r"^(?:[A-Za-z0-9._-]|%[0-9A-F]{2})+$")
MAX_REPLAY_ID = 64
"""The longest id of a replay request (it is a topic level of its reply topic)."""
_REPLAY_ID = re.compile(rf"^[A-Za-z0-9._-]{{1,{MAX_REPLAY_ID}}}$")


def escape_symbol(symbol: str) -> str:
    """A symbol made safe for pair ids and topic levels (``BRK/B`` -> ``BRK%2FB``)."""
    if not symbol:
        raise ConfigError("symbol", "must not be empty")
    if _PLAIN.match(symbol):
        return symbol
    return "".join(ch if _PLAIN.match(ch) else _percent(ch) for ch in symbol)


def _percent(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def unescape_symbol(text: str) -> str:
    """The inverse of :func:`escape_symbol`."""
    if not _ESCAPED.match(text):
        raise ConfigError("symbol", f"{text!r} is not an escaped symbol")
    return unquote(text, errors="surrogatepass")


@dataclass(frozen=True, slots=True)
class PairId:
    """The hedged instrument ``y`` and its hedge(s) ``xs`` (one for a pair)."""

    y: str
    xs: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.xs:
            raise ConfigError("pair", "needs at least one hedge instrument")
        legs = (self.y, *self.xs)
        if len(set(legs)) != len(legs):
            raise ConfigError("pair", f"a symbol appears twice in {legs}")

    @classmethod
    def parse(cls, text: str) -> PairId:
        """Parse ``Y/X`` or ``Y/X1+X2`` (symbols as typed by a person: ``/`` and ``+``
        inside a symbol must be escaped as ``%2F`` and ``%2B``)."""
        head, sep, tail = text.strip().partition("/")
        if not sep or not head or not tail or "/" in tail:
            raise ConfigError("pair", f"must look like Y/X or Y/X1+X2, got {text!r}")
        try:
            return cls(unquote(head), tuple(unquote(part) for part in tail.split("+") if part))
        except ConfigError as exc:
            raise ConfigError("pair", f"{text!r}: {exc.problem}") from None

    @property
    def legs(self) -> tuple[str, ...]:
        """All symbols, Y first."""
        return (self.y, *self.xs)

    @property
    def is_basket(self) -> bool:
        """More than one hedge."""
        return len(self.xs) > 1

    def __str__(self) -> str:
        return f"{escape_symbol(self.y)}/{'+'.join(escape_symbol(x) for x in self.xs)}"


def pair_topic(root: str, kind: str, pair: PairId) -> str:
    """``<root>/v1/<kind>/<Y>/<X>`` (a basket: ``<Y>/<X1>,<X2>``) for the per-pair kinds
    :data:`PAIR_KINDS`. A basket's hedges are joined by ``,`` in topics, not by
    ``+``, which MQTT reserves as a wildcard; a ``,`` inside a symbol is escaped (``%2C``)."""
    if kind not in PAIR_KINDS:
        raise ConfigError("topic kind", f"unknown per-pair kind {kind!r}")
    hedges = ",".join(escape_symbol(x) for x in pair.xs)
    return f"{root}/v{SCHEMA_VERSION}/{kind}/{escape_symbol(pair.y)}/{hedges}"


def pair_id_topic(root: str, kind: str, pair_id: str) -> str:
    """:func:`pair_topic` from a pair id already in its escaped form (as events carry it)."""
    return pair_topic(root, kind, PairId.parse(pair_id))


def parse_pair_topic(root: str, topic: str) -> tuple[str, PairId]:
    """The inverse of :func:`pair_topic`: ``(kind, pair)``."""
    prefix = f"{root}/v{SCHEMA_VERSION}/"
    if not topic.startswith(prefix):
        raise ConfigError("topic", f"{topic!r} is not under {prefix!r}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 3 or parts[0] not in PAIR_KINDS:
        raise ConfigError("topic", f"{topic!r} is not a per-pair topic")
    try:
        pair = PairId(
            unescape_symbol(parts[1]), tuple(unescape_symbol(x) for x in parts[2].split(","))
        )
    except ConfigError as exc:
        raise ConfigError("topic", f"{topic!r}: {exc.problem}") from None
    return parts[0], pair


def status_topic(root: str) -> str:
    """The retained daemon status topic (last will ``offline``)."""
    return f"{root}/v{SCHEMA_VERSION}/status"


def metrics_topic(root: str) -> str:
    """The periodic metrics topic."""
    return f"{root}/v{SCHEMA_VERSION}/metrics"


def matrix_topic(root: str) -> str:
    """The per-bar hedge-ratio matrix snapshot topic."""
    return f"{root}/v{SCHEMA_VERSION}/matrix"


def bar_topic(root: str) -> str:
    """The batch message of every bar: all pairs' ratio and spread fields in one object (not
    retained)."""
    return f"{root}/v{SCHEMA_VERSION}/bar"


def control_topic(root: str) -> str:
    """The topic the daemon takes control requests on (with ``[control]``; not retained)."""
    return f"{root}/v{SCHEMA_VERSION}/control"


def control_reply_topic(root: str) -> str:
    """The topic the daemon answers control requests on (not retained)."""
    return f"{root}/v{SCHEMA_VERSION}/control/reply"


def replay_topic(root: str) -> str:
    """The topic the daemon takes gap-fill (replay) requests on (with an event journal; not
    retained)."""
    return f"{root}/v{SCHEMA_VERSION}/replay"


def is_replay_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` can be a replay request's id: a string of 1 to
    :data:`MAX_REPLAY_ID` characters of ``A-Z a-z 0-9 . _ -`` (a topic level, no wildcard)."""
    return isinstance(value, str) and _REPLAY_ID.match(value) is not None


def replay_reply_topic(root: str, request_id: str | None = None) -> str:
    """Where the daemon answers the replay request ``request_id``:
    ``<root>/v1/replay/reply/<request_id>``, only its asker subscribed there; without an id,
    ``<root>/v1/replay/reply``, where a request without a usable id is refused. Raises
    :class:`~hedger.errors.ConfigError` for an id :func:`is_replay_id` refuses."""
    base = f"{root}/v{SCHEMA_VERSION}/replay/reply"
    if request_id is None:
        return base
    if not is_replay_id(request_id):
        raise ConfigError(
            "replay id",
            f"must be 1 to {MAX_REPLAY_ID} of A-Z a-z 0-9 . _ -, got {request_id[:80]!r}",
        )
    return f"{base}/{request_id}"
