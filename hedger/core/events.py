"""The events hedger publishes, and their JSON encoding (orjson).

Schema version 1; additive changes only within a version. Every event carries ``type``,
``version``, ``pair`` (its id, see :mod:`hedger.core.topics`), ``seq`` (per pair, from 1,
contiguous, shared by the two events of one bar), ``ts`` (the bar's close, integer ns since
the epoch, UTC) and ``ts_init`` (when the event was built, ns: the daemon's clock, so
``ts_init - ts`` is the bar's latency; a replay writes the bar's close, so that replays stay
byte-identical). Numbers that do not exist on a bar (the innovation of a predict-only step, a
hedge in shares before the first price) are ``null``. Encoding is deterministic: the same
events give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import orjson

from hedger.core.topics import SCHEMA_VERSION


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _envelope(kind: str, pair: str, seq: int, ts: int) -> dict[str, Any]:
    """The keys every pair event starts with, in schema order."""
    return {"type": kind, "version": SCHEMA_VERSION, "pair": pair, "seq": seq, "ts": ts}


def _one_or_list(values: tuple[float, ...]) -> float | list[float | None] | None:
    if len(values) == 1:
        return _number(values[0])
    return [_number(v) for v in values]


def _ints(values: tuple[int, ...]) -> int | list[int]:
    return values[0] if len(values) == 1 else list(values)


class HedgeRatioEvent(NamedTuple):
    """The pair's hedge ratio after a bar, and the hedge it means in shares.

    beta: the hedge ratio(s) (k,) in the mode's units (shares of X per share of Y on levels
    and changes; an elasticity on log prices and log returns); ``beta`` in JSON is a number for
    a pair, a list for a basket (as are ``beta_std``, ``hedge``, ``hedge_qty`` and
    ``hedge_notional``). alpha: the intercept. cov: the state covariance (n, n). beta_std:
    sqrt of cov's diagonal for the betas. warm: the filter's warm-up is complete. stale: a leg
    had no fresh price, so the bar was a predict-only step (beta unchanged, its uncertainty
    grown). outlier: the innovation gate refused the bar's observation (a predict-only step
    too).

    mode: the filter's input mode (``levels``, ``log``, ``changes``, ``returns``).
    prices: ``{symbol: price}`` of every leg, Y first: the marks the hedge is set at (each
    leg's latest price, not moved by an observation the filter refused; None before a leg's
    first price). hedge: shares of each X per share of Y (k,) at those prices (``beta``, or
    ``beta * P_y / P_x`` in the log modes), None while a price is missing.
    position, hedge_qty, hedge_notional: only for a pair with a configured position: the
    shares of Y held (from a notional at ``P_y``), the integer shares of each X to hold
    against it (signed, negative = short, rounded to each X's lot), and their value at
    ``P_x`` (signed, in X's currency).
    combination: only for a pair with a combined hedge (:mod:`hedger.core.combined`):
    ``members`` (names), ``weights`` and ``hedges`` (each member's; lists in that order); the
    pair's ``hedge`` is then the weighted combination of the members' hedges.
    """

    pair: str
    seq: int
    ts: int
    beta: tuple[float, ...]
    alpha: float
    cov: tuple[tuple[float, ...], ...]
    beta_std: tuple[float, ...]
    warm: bool
    stale: bool
    outlier: bool = False
    mode: str | None = None
    hedge: tuple[float, ...] | None = None
    prices: Mapping[str, float | None] | None = None
    ts_init: int | None = None
    position: float | None = None
    hedge_qty: tuple[int, ...] | None = None
    hedge_notional: tuple[float, ...] | None = None
    combination: Mapping[str, Any] | None = None

    @property
    def type(self) -> str:
        """The event type in the JSON."""
        return "hedge_ratio"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in schema order."""
        body = _envelope(self.type, self.pair, self.seq, self.ts)
        body["ts_init"] = self.ts_init
        body["mode"] = self.mode
        body["beta"] = _one_or_list(self.beta)
        body["alpha"] = self.alpha
        body["cov"] = self.cov
        body["beta_std"] = _one_or_list(self.beta_std)
        body["hedge"] = None if self.hedge is None else _one_or_list(self.hedge)
        body["prices"] = None if self.prices is None else dict(self.prices)
        body["warm"] = self.warm
        body["stale"] = self.stale
        body["outlier"] = self.outlier
        if self.position is not None:
            body["position"] = self.position
            body["hedge_qty"] = None if self.hedge_qty is None else _ints(self.hedge_qty)
            notional = self.hedge_notional
            body["hedge_notional"] = None if notional is None else _one_or_list(notional)
        if self.combination is not None:
            body["combination"] = self.combination
        return body


class SpreadEvent(NamedTuple):
    """The pair's spread on a bar.

    spread: y - beta.x - alpha after the update, in the units of the mode's y (price units on
    levels and changes, log price on log, a residual log return on returns).
    innovation: the forecast error e. innovation_std: sqrt(S). zscore: e / sqrt(S); the three
    are null together on a predict-only bar.
    hedged_pnl: the bar's P&L of one share of Y hedged with the previous bar's ``hedge``, in
    Y's price units, in every mode: ``dY - sum_i h_i dX_i`` over the marks of the two bars
    (null on the pair's first bar, or while a mark or that hedge is missing).
    outlier: the innovation gate refused this observation: the numbers describe it, and the
    filter did not absorb it.
    """

    pair: str
    seq: int
    ts: int
    spread: float
    innovation: float
    innovation_std: float
    zscore: float
    outlier: bool = False
    hedged_pnl: float = math.nan
    ts_init: int | None = None

    @property
    def type(self) -> str:
        """The event type in the JSON."""
        return "spread"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in schema order."""
        body = _envelope(self.type, self.pair, self.seq, self.ts)
        body["ts_init"] = self.ts_init
        # orjson writes NaN as null
        body["spread"] = self.spread
        body["innovation"] = self.innovation
        body["innovation_std"] = self.innovation_std
        body["zscore"] = self.zscore
        body["hedged_pnl"] = self.hedged_pnl
        body["outlier"] = self.outlier
        return body


class AlarmEvent(NamedTuple):
    """A relationship-break alarm of the pair raised or cleared on a bar (topic
    ``<root>/v1/alarm/<pair>``, retained while an alarm of the pair is active; see
    :mod:`hedger.engine.alarm`).

    seq, ts: the bar's (the alarm is published after that bar's two events). kind: ``up`` (the
    innovations run positive: Y is rich against the hedge), ``down`` (they run negative) or
    ``scale`` (they are larger than the filter predicts). state: ``raised`` or ``cleared``.
    statistic: the kind's CUSUM after the bar, in standard deviations of z (of z^2 for
    ``scale``); threshold: the level it is raised above (it clears when the statistic is back
    at 0). started_ts, started_seq: the bar the alarm was raised on (its own for a
    ``raised`` event). active: the pair's kinds still active after this event, so the retained
    message always tells the pair's whole alarm state.
    """

    pair: str
    seq: int
    ts: int
    kind: str
    state: str
    statistic: float
    threshold: float
    started_ts: int
    started_seq: int
    active: tuple[str, ...]
    ts_init: int | None = None

    @property
    def type(self) -> str:
        """The event type in the JSON."""
        return "alarm"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in schema order."""
        body = _envelope(self.type, self.pair, self.seq, self.ts)
        body["ts_init"] = self.ts_init
        body["kind"] = self.kind
        body["state"] = self.state
        body["statistic"] = self.statistic
        body["threshold"] = self.threshold
        body["started_ts"] = self.started_ts
        body["started_seq"] = self.started_seq
        body["active"] = list(self.active)
        return body


Event = HedgeRatioEvent | SpreadEvent | AlarmEvent


class MatrixEvent(NamedTuple):
    """The hedge-ratio matrix of N symbols after a bar: one message for all N (N - 1) ordered
    pairs (topic ``<root>/v1/matrix``, retained).

    JSON: ``type`` ``"matrix"``, ``version``, ``seq`` (per matrix, from 1, contiguous), ``ts``
    (the bar's close, ns), ``symbols`` (N,), then N x N nested lists indexed ``[y][x]`` (row =
    the hedged symbol Y, column = the hedge X), ``null`` on the diagonal and where a number
    does not exist: ``beta``, ``alpha``, ``beta_std`` (sqrt of P00), ``zscore`` (e / sqrt(S),
    ``null`` for a pair without both prices on the bar); ``warm`` (N x N booleans); ``stale``:
    the symbols that had no fresh price on the bar (their pairs only predicted).
    """

    seq: int
    ts: int
    symbols: tuple[str, ...]
    beta: np.ndarray
    alpha: np.ndarray
    beta_std: np.ndarray
    zscore: np.ndarray
    warm: np.ndarray
    stale: tuple[str, ...]

    @property
    def type(self) -> str:
        """The event type in the JSON."""
        return "matrix"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in schema order (matrices as float64 / bool arrays)."""
        return {
            "type": self.type,
            "version": SCHEMA_VERSION,
            "seq": self.seq,
            "ts": self.ts,
            "symbols": list(self.symbols),
            "beta": self.beta,
            "alpha": self.alpha,
            "beta_std": self.beta_std,
            "zscore": self.zscore,
            "warm": self.warm,
            "stale": list(self.stale),
        }


EVENT_TYPES = ("hedge_ratio", "spread", "alarm", "matrix")
"""The ``type`` of every event hedger publishes."""


def encode_matrix(event: MatrixEvent) -> bytes:
    """A matrix event as compact JSON bytes (NaN written as ``null``)."""
    return orjson.dumps(event.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)


def encode(event: Event) -> bytes:
    """The event as compact JSON bytes (no trailing newline)."""
    return orjson.dumps(event.to_dict())


def decode(data: bytes | str) -> dict[str, Any]:
    """Parse an encoded event back to its JSON object (for subscribers and tests)."""
    obj = orjson.loads(data)
    if not isinstance(obj, dict) or obj.get("type") not in EVENT_TYPES:
        raise ValueError("not a hedger event")
    return obj
