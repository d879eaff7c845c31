"""``hedger subscribe``: the latest hedge ratios of a running daemon, as a live table or JSON
lines, with sequence gaps filled from the daemon's event journal or reported (never a silent
hole) and repeats dropped; the pairs' relationship-break alarms as they are raised and
cleared.

Gap fill: a pair's ratio whose ``seq`` is more than one past the last one seen (the
subscriber was away, the broker restarted without persistence) makes the subscriber ask the
daemon for the missing seqs (MQTT ``<root>/v1/replay``, :mod:`hedger.runtime.bridges.gapfill`)
before it shows that ratio: the missing ratios and alarms are shown first, in seq order, then
the ratio that revealed the gap, so each pair's output stays in seq order, every seq once. Each
fill is one stderr line (``filled AAPL/SPY seq 120-131 (12 bars)``), and what could not be
filled another, with why (the bounded journal no longer holds it, the daemon keeps no
journal, no answer). A daemon that answers no request three times in a row (one without an
event journal does not listen) ends gap filling for the session, said once; gaps are then
reported as they are without it (``gap of 12 on AAPL/SPY``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO, Unpack

import orjson

from feeds.broker import ClientOptions, broker_address, parse_broker_url, tls_context
from feeds.mqtt import mqtt_messages
from hedger.cli.options import at_least
from hedger.core.bar_events import ratios_of_bar
from hedger.core.topics import PairId, bar_topic, pair_topic, parse_pair_topic, status_topic
from hedger.errors import ConfigError, TransportError
from hedger.runtime.bridges.gapfill import Replayed, ReplayRefusedError
from hedger.runtime.bridges.mqtt import ReplayClient

FILL_TIMEOUT = 5.0
"""Seconds to wait for each answer of the daemon to a gap-fill request."""
UNANSWERED_LIMIT = 3
"""Gap-fill requests in a row without an answer after which gap fill is given up."""
_ALARMS_KEPT = 64  # alarm events remembered per pair, to show each once
_RUNS_SHOWN = 3  # seq runs named in one stderr line, at most


@dataclass
class PairView:
    """What a subscriber knows of one pair."""

    event: dict[str, Any]
    received: float
    gaps: int = 0
    missing: int = 0
    repeats: int = 0
    restarts: int = 0
    filled: int = 0
    """Ratios missed live and filled from the daemon's journal."""


@dataclass
class RatioBoard:
    """The latest ratio per pair; ``accept`` returns the event if it is new, else None."""

    pairs: dict[str, PairView] = field(default_factory=dict)
    alarms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """The active alarm kinds of each pair that has some."""
    status: str = "unknown"
    malformed: int = 0
    _alarm_ts: dict[str, int] = field(default_factory=dict, repr=False)
    """The bar time of the alarm event each pair's alarm state was last taken from."""
    _alarms_seen: dict[str, OrderedDict[tuple[Any, ...], None]] = field(
        default_factory=dict, repr=False
    )

    def accept_alarm(self, payload: bytes, pair: str | None = None) -> dict[str, Any] | None:
        """Take one alarm message (``pair``: the id its topic names): the event, or None for
        a deleted retained alarm (an empty payload: the pair has no alarm any more) or a
        malformed message (counted)."""
        if not payload:
            if pair is not None:
                self.alarms.pop(pair, None)
            return None
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.malformed += 1
            return None
        return self.accept_alarm_event(event)

    def accept_alarm_event(self, event: Any) -> dict[str, Any] | None:
        """Take one decoded alarm event: the event, or None if malformed (counted). The
        pair's alarm state follows it unless it is older than the event the state came from
        (an alarm filled from the journal after a newer retained one)."""
        if not isinstance(event, dict) or event.get("type") != "alarm":
            self.malformed += 1
            return None
        pair, active = event.get("pair"), event.get("active")
        if not isinstance(pair, str) or not isinstance(active, list):
            self.malformed += 1
            return None
        ts = event.get("ts")
        if isinstance(ts, int):
            if ts < self._alarm_ts.get(pair, ts):
                return event
            self._alarm_ts[pair] = ts
        if active:
            self.alarms[pair] = tuple(str(kind) for kind in active)
        else:
            self.alarms.pop(pair, None)
        return event

    def fresh_alarm(self, event: dict[str, Any]) -> bool:
        """Whether this alarm event was not seen before (the retained copy at a reconnect,
        or one both received live and filled from the journal, is shown once)."""
        key = tuple(event.get(k) for k in ("seq", "ts", "kind", "state"))
        seen = self._alarms_seen.setdefault(str(event.get("pair")), OrderedDict())
        if key in seen:
            return False
        seen[key] = None
        if len(seen) > _ALARMS_KEPT:
            seen.popitem(last=False)
        return True

    def accept(self, payload: bytes, now: float) -> tuple[dict[str, Any] | None, int]:
        """Take one ratio message; returns (the event if it is new, seq numbers missed)."""
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.malformed += 1
            return None, 0
        return self.accept_event(event, now)

    def accept_bar(
        self, payload: bytes, now: float, wanted: set[str] | None = None
    ) -> list[tuple[dict[str, Any], int]]:
        """Take one batch message (``<root>/v1/bar``): for each pair in it (of ``wanted``, or
        all) whose ratio is new, (the ratio event, seq numbers missed). A ratio already seen
        on its per-pair topic is not new (and not counted as a repeat)."""
        taken = []
        for event in self.bar_ratios(payload, wanted):
            accepted, missed = self.accept_event(event, now)
            if accepted is not None:
                taken.append((accepted, missed))
        return taken

    def bar_ratios(self, payload: bytes, wanted: set[str] | None = None) -> list[dict[str, Any]]:
        """The ratio events of one batch message (of the pairs ``wanted``, or all), but those
        already seen on their per-pair topic; not taken yet (:meth:`accept_event`)."""
        try:
            ratios = ratios_of_bar(orjson.loads(payload))
        except (orjson.JSONDecodeError, ValueError, AttributeError):
            self.malformed += 1
            return []
        fresh = []
        for event in ratios:
            pair = event["pair"]
            if wanted is not None and pair not in wanted:
                continue
            view = self.pairs.get(pair)
            if view is not None and view.event.get("seq") == event["seq"]:
                continue  # the same bar, come by its per-pair topic first
            fresh.append(event)
        return fresh

    def gap_before(self, event: Any) -> tuple[str, int, int] | None:
        """``(pair, from_seq, to_seq)``: the seqs missed before this ratio event, if taking it
        would leave a gap (None: no gap, a repeat, a restarted daemon, or a pair not seen
        yet)."""
        if not isinstance(event, dict) or event.get("type") != "hedge_ratio":
            return None
        pair, seq = event.get("pair"), event.get("seq")
        view = self.pairs.get(pair) if isinstance(pair, str) else None
        if view is None or not isinstance(seq, int) or isinstance(seq, bool):
            return None
        last = view.event["seq"]
        return (view.event["pair"], last + 1, seq - 1) if seq > last + 1 else None

    def last_ts(self, pair: str) -> int | None:
        """The bar time of the pair's latest ratio (None: not known)."""
        view = self.pairs.get(pair)
        ts = view.event.get("ts") if view is not None else None
        return ts if isinstance(ts, int) else None

    def accept_event(self, event: Any, now: float) -> tuple[dict[str, Any] | None, int]:
        """Take one decoded ratio event; returns (the event if it is new, seq numbers
        missed)."""
        if not isinstance(event, dict) or event.get("type") != "hedge_ratio":
            self.malformed += 1
            return None, 0
        pair, seq = event.get("pair"), event.get("seq")
        if not isinstance(pair, str) or not isinstance(seq, int):
            self.malformed += 1
            return None, 0
        view = self.pairs.get(pair)
        if view is None:
            self.pairs[pair] = PairView(event, now)
            return event, 0
        last = view.event["seq"]
        if seq <= last:
            ts, last_ts = event.get("ts"), view.event.get("ts")
            if isinstance(ts, int) and isinstance(last_ts, int) and ts > last_ts:
                # a newer bar with a smaller seq: the daemon restarted and counts from 1 again
                view.event, view.received, view.restarts = event, now, view.restarts + 1
                return event, 0
            view.repeats += 1
            return None, 0
        missed = seq - last - 1
        if missed:
            view.gaps += 1
            view.missing += missed
        view.event, view.received = event, now
        return event, missed

    def set_status(self, payload: bytes) -> bool:
        """Take the daemon's status message (``online``, ``offline``, ``degraded: ...``);
        True if it changed."""
        text = payload.decode("utf-8", "replace").strip() or "unknown"
        changed, self.status = text != self.status, text
        return changed

    def render(self, now: float, source: str) -> str:
        """The table, one line per pair."""
        lines = [
            f"hedger subscribe  {source}  daemon: {self.status}  "
            f"{time.strftime('%H:%M:%S', time.localtime(now))}",
            "",
            f"{'pair':<18}{'beta':>12}{'+-2 sd':>11}{'hedge':>12}{'qty':>10}{'alpha':>12}"
            f"{'seq':>9}{'age':>8}  flags",
        ]
        lines.extend(self.render_line(pair, now) for pair in sorted(self.pairs))
        if not self.pairs:
            lines.append("(waiting for hedge ratios)")
        return "\n".join(lines)

    def render_line(self, pair: str, now: float) -> str:
        """One pair's row of the table."""
        view = self.pairs[pair]
        e = view.event
        beta = e.get("beta")
        std = e.get("beta_std")
        if isinstance(beta, list):
            beta_text = ",".join(_num(b, 4) for b in beta)
            stds = std if isinstance(std, list) else []
            std_text = ",".join(
                _num(2 * s if isinstance(s, int | float) else None, 3) for s in stds
            )
        else:
            beta_text = _num(beta, 5)
            std_text = _num(2 * std if isinstance(std, int | float) else None, 4)
        flags = []
        if not e.get("warm", True):
            flags.append("warming")
        if e.get("stale"):
            flags.append("stale")
        if e.get("outlier"):
            flags.append("outlier")
        if pair in self.alarms:
            flags.append(f"ALARM {','.join(self.alarms[pair])}")
        if view.gaps:
            flags.append(f"gaps {view.gaps} ({view.missing} missed)")
        if view.filled:
            flags.append(f"filled {view.filled}")
        combination = e.get("combination")
        if isinstance(combination, dict):
            flags.append("combined " + _weights(combination))
        return (
            f"{_shown(pair):<18}{beta_text:>12}{std_text:>11}{_list(e.get('hedge'), 4):>12}"
            f"{_quantity(e.get('hedge_qty')):>10}{_num(e.get('alpha'), 3):>12}"
            f"{e.get('seq', 0):>9}{now - view.received:>7.1f}s  {' '.join(flags)}"
        )


def alarm_line(event: dict[str, Any]) -> str:
    """One alarm event as a line: ``alarm AAPL/SPY scale raised at seq 812 (31.2 > 25)``."""
    kind, state, seq = event.get("kind"), event.get("state"), event.get("seq")
    statistic, threshold = event.get("statistic"), event.get("threshold")
    started = event.get("started_seq")
    why = (
        f"({_num(statistic, 1)} > {_num(threshold, 1)})"
        if state == "raised"
        else f"(raised at seq {started})"
    )
    return f"alarm {_shown(str(event.get('pair')))} {kind} {state} at seq {seq} {why}"


def _topic_pair(root: str, topic: str) -> str | None:
    """The pair id a per-pair topic names (None for a topic that is not one)."""
    try:
        return str(parse_pair_topic(root, topic)[1])
    except ConfigError:
        return None


def _shown(pair: str) -> str:
    """A pair id as a person writes it: symbols unescaped (``BRK B/SPY``, not ``BRK%20B``)."""
    try:
        parsed = PairId.parse(pair)
    except ConfigError:
        return pair
    return f"{parsed.y}/{'+'.join(parsed.xs)}"


def _weights(combination: dict[str, Any]) -> str:
    """A combined hedge's members with their weights: ``self 0.27 seed 0.15 ...``."""
    members, weights = combination.get("members"), combination.get("weights")
    if not isinstance(members, list) or not isinstance(weights, list):
        return "?"
    return " ".join(
        f"{m} {w:.2f}" if isinstance(w, int | float) else f"{m} ?"
        for m, w in zip(members, weights, strict=False)
    )


def _list(value: Any, digits: int) -> str:
    if isinstance(value, list):
        return ",".join(_num(v, digits) for v in value)
    return _num(value, digits)


def _quantity(value: Any) -> str:
    """Integer shares (a list for a basket); ``-`` when the event has none."""
    if isinstance(value, list):
        return ",".join(_quantity(v) for v in value)
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "-"


def _num(value: Any, digits: int) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}" if abs(value) >= 1e5 else f"{value:.{digits}f}"


Fetch = Callable[[str, int, int], Awaitable[Replayed]]
"""``fetch(pair, from_seq, to_seq)``: the daemon's answer to a whole range
(:meth:`hedger.runtime.bridges.mqtt.ReplayClient.replay`, with its timeout)."""


@dataclass
class Fill:
    """What one gap fill brought: the missed ratio and alarm events (decoded), in seq order,
    to take before the ratio that revealed the gap, and the stderr lines saying what was
    filled and what could not be."""

    events: list[dict[str, Any]]
    notes: list[str]


class GapFiller:
    """Fills a pair's gaps from the daemon's event journal through ``fetch``. A request that
    fails fast (within ``retry_within`` seconds: a connection that broke with the broker) is
    made once more; after :data:`UNANSWERED_LIMIT` requests in a row without an answer,
    :attr:`enabled` turns False (a daemon without a journal does not listen)."""

    def __init__(self, fetch: Fetch, *, retry_within: float = FILL_TIMEOUT / 2) -> None:
        self._fetch = fetch
        self._retry_within = retry_within
        self.unanswered = 0
        self.enabled = True

    async def fill(
        self, pair: str, from_seq: int, to_seq: int, after_ts: int | None, before_ts: Any
    ) -> Fill:
        """The events of ``pair`` with ``from_seq <= seq <= to_seq`` (bars after ``after_ts``
        and before ``before_ts``, ns, when those are known: a restarted daemon's journal may
        hold an older run's events of those seqs)."""
        span = f"{pair} seq {_runs_text([(from_seq, to_seq)])}"
        try:
            got = await self._ask(pair, from_seq, to_seq)
        except ReplayRefusedError as exc:
            self.unanswered = 0
            return Fill([], [f"could not fill {span}: {exc.message}"])
        except TransportError as exc:
            self.unanswered += 1
            notes = [f"could not fill {span}: {exc.problem}"]
            if self.unanswered >= UNANSWERED_LIMIT:
                self.enabled = False
                notes.append(
                    f"gap fill given up: {self.unanswered} requests in a row had no answer "
                    "(does the daemon keep an event journal, [state]?)"
                )
            return Fill([], notes)
        self.unanswered = 0
        before = before_ts if isinstance(before_ts, int) else None
        events = missed_events(got.events, pair, from_seq, to_seq, after_ts, before)
        seqs = [e["seq"] for e in events if e["type"] == "hedge_ratio"]
        return Fill(events, fill_notes(pair, from_seq, to_seq, seqs, got.summary))

    async def _ask(self, pair: str, from_seq: int, to_seq: int) -> Replayed:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            return await self._fetch(pair, from_seq, to_seq)
        except TransportError:
            if loop.time() - start >= self._retry_within:
                raise
        return await self._fetch(pair, from_seq, to_seq)  # on a new connection


def missed_events(
    payloads: Iterable[bytes],
    pair: str,
    from_seq: int,
    to_seq: int,
    after_ts: int | None = None,
    before_ts: int | None = None,
) -> list[dict[str, Any]]:
    """The ratio and alarm events of ``pair`` in a replay's payloads with ``from_seq <= seq
    <= to_seq`` (and bar times strictly between ``after_ts`` and ``before_ts`` when given),
    decoded, in seq order, one ratio a seq."""
    taken: list[dict[str, Any]] = []
    ratios: set[int] = set()
    for payload in payloads:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict) or event.get("pair") != pair:
            continue
        kind, seq, ts = event.get("type"), event.get("seq"), event.get("ts")
        if kind not in ("hedge_ratio", "alarm") or not isinstance(seq, int):
            continue
        if not from_seq <= seq <= to_seq or not _between(ts, after_ts, before_ts):
            continue
        if kind == "hedge_ratio":
            if seq in ratios:
                continue
            ratios.add(seq)
        taken.append(event)
    taken.sort(key=lambda e: e["seq"])  # stable: a bar's ratio stays before its alarms
    return taken


def _between(ts: Any, after: int | None, before: int | None) -> bool:
    if not isinstance(ts, int):
        return True
    return (after is None or ts > after) and (before is None or ts < before)


def fill_notes(
    pair: str, from_seq: int, to_seq: int, seqs: Sequence[int], summary: dict[str, Any]
) -> list[str]:
    """The stderr lines of one fill: ``filled AAPL/SPY seq 120-131 (12 bars)``, then the
    seqs of the range it could not fill and why (from the daemon's summary)."""
    got = sorted(set(seqs))
    notes = []
    if got:
        notes.append(f"filled {pair} seq {_runs_text(_runs(got))} ({_bars(len(got))})")
    lost = _missing(got, from_seq, to_seq)
    if lost:
        count = sum(high - low + 1 for low, high in lost)
        why = _why_missing(lost, summary)
        notes.append(f"could not fill {pair} seq {_runs_text(lost)} ({_bars(count)}): {why}")
    return notes


def _why_missing(lost: list[tuple[int, int]], summary: dict[str, Any]) -> str:
    after, oldest = summary.get("next_seq"), summary.get("oldest_seq")
    if isinstance(after, int):
        return f"the daemon stopped answering at seq {after} (no room to send more)"
    if isinstance(oldest, int) and lost[-1][1] < oldest:
        return f"the daemon's journal no longer holds them (it holds seq {oldest} on)"
    if oldest is None and not summary.get("events"):
        return "the daemon's journal holds none of the pair's events"
    return "not in the daemon's journal"


def _runs(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted distinct seqs as runs ``(first, last)``."""
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def _missing(got: Sequence[int], from_seq: int, to_seq: int) -> list[tuple[int, int]]:
    """The runs of ``from_seq..to_seq`` that are not in sorted ``got``."""
    lost = []
    expected = from_seq
    for seq in got:
        if seq > expected:
            lost.append((expected, seq - 1))
        expected = max(expected, seq + 1)
    if expected <= to_seq:
        lost.append((expected, to_seq))
    return lost


def _runs_text(runs: Sequence[tuple[int, int]]) -> str:
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:_RUNS_SHOWN])
    more = len(runs) - _RUNS_SHOWN
    return text + (f" and {more} more runs" if more > 0 else "")


def _bars(count: int) -> str:
    return f"{count} bar" if count == 1 else f"{count} bars"


class _Output:
    """Where a subscription's events go: JSON lines, a line each, or the live table
    (:func:`run_subscribe`); counts the ratios shown against ``max_messages``."""

    def __init__(
        self,
        board: RatioBoard,
        out: TextIO,
        source: str,
        *,
        as_json: bool,
        live: bool,
        max_messages: int | None,
    ) -> None:
        self.board = board
        self.out = out
        self.source = source
        self.as_json = as_json
        self.live = live
        self.max_messages = max_messages
        self.count = 0
        self.last_draw = 0.0

    def draw(self, now: float) -> None:
        """The whole table, redrawn."""
        self.out.write("\x1b[H\x1b[2J" + self.board.render(now, self.source) + "\n")
        self.out.flush()
        self.last_draw = now

    def status(self, changed: bool, now: float) -> None:
        """The daemon's status, as the board now has it."""
        if self.live:
            self.draw(now)
        elif self.as_json:
            self._line(orjson.dumps({"type": "status", "status": self.board.status}).decode())
        elif changed:
            self._line(f"daemon: {self.board.status}")

    def alarm(self, event: dict[str, Any], now: float) -> None:
        """One alarm event raised or cleared."""
        if self.as_json:
            self._line(orjson.dumps(event).decode())
        elif self.live:
            self.draw(now)
        else:
            self._line(alarm_line(event))

    def ratio(self, event: dict[str, Any], now: float) -> bool:
        """One new ratio (taken by the board); True once ``max_messages`` were shown."""
        self.count += 1
        if self.as_json:
            self._line(orjson.dumps(event).decode())
        elif self.live:
            if now - self.last_draw >= 0.25:
                self.draw(now)
        else:
            self._line(self.board.render_line(event["pair"], now))
        return self.max_messages is not None and self.count >= self.max_messages

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


async def run_subscribe(
    url: str,
    root: str,
    pairs: Sequence[str],
    *,
    as_json: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    max_messages: int | None = None,
    live: bool | None = None,
    refresh: float = 1.0,
    gap_fill: bool = True,
    fill_timeout: float = FILL_TIMEOUT,
    **client: Unpack[ClientOptions],
) -> int:
    """Subscribe to the ratio and alarm topics (all pairs, or ``pairs``), the batch message
    of each bar and the status topic. The broker URL is shown (on stderr and in the table)
    with its password redacted. A daemon that publishes the batch message (``[bus] bar``,
    the default) may leave the per-pair topics off (``per_pair = false``): the ratios come
    out of the batch messages then, after the retained ones of a late start.

    ``live`` (default: ``out`` is a terminal and not ``as_json``): a table redrawn at once
    when the daemon's status changes, at most every 0.25 s as ratios arrive, and every
    ``refresh`` seconds without any message, so the ages keep growing after a daemon stops.
    Otherwise one line per new ratio, one per alarm raised or cleared (:func:`alarm_line`) and
    ``daemon: <status>`` lines when the status changes (JSON objects with ``as_json``); the
    table flags a pair's active alarms. A late subscriber gets the retained status and ratios
    first. An alarm event is shown once (not again as the retained copy of a reconnect).

    ``gap_fill``: a gap in a pair's seq is filled from the daemon's event journal (module
    docstring), each answer awaited up to ``fill_timeout`` seconds, on a connection of its
    own; otherwise, and once gap fill is given up, a gap is one stderr line. ``client``:
    credentials, TLS, and with ``client_id`` and ``clean_session=False`` a persistent session
    (:class:`feeds.broker.ClientOptions`)."""

    chosen = [PairId.parse(p) for p in pairs]
    topics = [pair_topic(root, kind, p) for kind in ("ratio", "alarm") for p in chosen] or [
        f"{root}/v1/ratio/#",
        f"{root}/v1/alarm/#",
    ]
    alarm_prefix = f"{root}/v1/alarm/"
    status = status_topic(root)
    bar = bar_topic(root)
    topics += [status, bar]
    wanted = {str(p) for p in chosen} or None
    board = RatioBoard()
    live = (not as_json and out.isatty()) if live is None else live
    shown = broker_address(url, **client).redacted
    screen = _Output(board, out, shown, as_json=as_json, live=live, max_messages=max_messages)
    notes = _ConnectionNotes(err)

    async def keep_drawing() -> None:
        while True:
            await asyncio.sleep(refresh)
            screen.draw(time.time())

    ticker = asyncio.create_task(keep_drawing()) if live else None
    try:
        async with ReplayClient(url, root, **_replay_options(client)) as replayer:

            async def fetch(pair: str, from_seq: int, to_seq: int) -> Replayed:
                return await replayer.replay(pair, from_seq, to_seq, fill_timeout)

            filler = GapFiller(fetch, retry_within=fill_timeout / 2) if gap_fill else None
            async for topic, payload in mqtt_messages(url, topics, logger=notes, **client):
                now = time.time()
                if topic == status:
                    screen.status(board.set_status(payload), now)
                elif topic.startswith(alarm_prefix):
                    alarm = board.accept_alarm(payload, _topic_pair(root, topic))
                    if alarm is not None and board.fresh_alarm(alarm):
                        screen.alarm(alarm, now)
                else:
                    events = (
                        board.bar_ratios(payload, wanted) if topic == bar else _one(board, payload)
                    )
                    for event in events:
                        if await _take_ratio(event, board, filler, screen, err, now):
                            return 0
    finally:
        if ticker is not None:
            ticker.cancel()
    return 0


def _replay_options(client: ClientOptions) -> ClientOptions:
    """The subscription's connection options for the gap-fill connection: the same broker
    and credentials, a client id and session of its own (the broker's, clean)."""
    options = ClientOptions(**client)
    options.pop("client_id", None)
    options.pop("clean_session", None)
    return options


def _one(board: RatioBoard, payload: bytes) -> list[Any]:
    """The decoded event of one per-pair ratio message (none if it is not JSON, counted)."""
    try:
        return [orjson.loads(payload)]
    except orjson.JSONDecodeError:
        board.malformed += 1
        return []


async def _take_ratio(
    event: Any,
    board: RatioBoard,
    filler: GapFiller | None,
    screen: _Output,
    err: TextIO,
    now: float,
) -> bool:
    """Take one ratio event: first the gap before it filled, when there is one and gap fill
    is on, then the event; True once ``max_messages`` ratios were shown."""
    gap = board.gap_before(event) if filler is not None and filler.enabled else None
    if gap is not None and filler is not None:
        pair, low, high = gap
        fill = await filler.fill(pair, low, high, board.last_ts(pair), event.get("ts"))
        for note in fill.notes:
            err.write(f"hedger subscribe: {note}\n")
        err.flush()
        for missed in fill.events:
            if missed["type"] == "alarm":
                alarm = board.accept_alarm_event(missed)
                if alarm is not None and board.fresh_alarm(alarm):
                    screen.alarm(alarm, now)
                continue
            taken, _ = board.accept_event(missed, now)
            if taken is not None:
                board.pairs[pair].filled += 1
                if screen.ratio(taken, now):
                    return True
    taken, missed_seqs = board.accept_event(event, now)
    if missed_seqs and gap is None:  # a filled gap's holes were said by the fill
        err.write(f"hedger subscribe: gap of {missed_seqs} on {taken and taken['pair']}\n")
        err.flush()
    return taken is not None and screen.ratio(taken, now)


class _ConnectionNotes:
    """The subscription's logger: connects and drops as one stderr line each, with the URL
    as the subscription gives it (password redacted)."""

    def __init__(self, err: TextIO) -> None:
        self._err = err

    def info(self, event: str, **kw: Any) -> None:
        self._note(event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._note(event, kw)

    def _note(self, event: str, kw: dict[str, Any]) -> None:
        why = f": {kw['error']}" if "error" in kw else ""
        self._err.write(f"hedger subscribe: {kw.get('url', '')} {event}{why}\n")
        self._err.flush()


HELP = "show the latest hedge ratios of a running daemon (MQTT), live"
DESCRIPTION = (
    "Subscribe to a daemon's retained hedge-ratio and alarm topics and its batch message of "
    "each bar, and show them as a live table (or JSON lines with --json). A gap in a pair's "
    "seq is filled from the daemon's event journal (a daemon with [state]) and reported on "
    "stderr, with what could not be filled; alarms are shown as they are raised and cleared. "
    "Ctrl-C exits."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hedger subscribe``."""
    parser.add_argument("pairs", nargs="*", metavar="PAIR", help="pairs (Y/X); default: all")
    parser.add_argument(
        "--broker",
        default="mqtt://127.0.0.1:1883",
        help="MQTT broker URL (mqtt://[user:password@]host[:port] or mqtts://...)",
    )
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the broker password from this environment variable (not from the URL, "
        "which the process list shows)",
    )
    parser.add_argument("--ca-file", help="TLS: trust this CA file (PEM) instead of the system's")
    parser.add_argument("--cert-file", help="TLS: present this client certificate (PEM)")
    parser.add_argument("--key-file", help="TLS: the client certificate's key, if apart")
    parser.add_argument("--root", default="hedger", help="the daemon's topic root (hedger)")
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    parser.add_argument("--count", type=at_least(1), help="exit after this many new hedge ratios")
    parser.add_argument(
        "--no-gap-fill",
        dest="gap_fill",
        action="store_false",
        help="do not ask the daemon for the events of a seq gap (only report the gap)",
    )
    parser.add_argument(
        "--client-id",
        metavar="ID",
        help="a persistent session under this MQTT client id (QoS 1): the broker keeps the "
        "subscription and holds the events published while this subscriber is away",
    )


def run(args: argparse.Namespace) -> int:
    """Subscribe until Ctrl-C (or ``--count`` new ratios)."""
    try:
        parse_broker_url(args.broker)
    except TransportError as exc:
        raise ConfigError("broker", f"{exc.problem}, got {exc.address}") from None
    files = {name: getattr(args, name, None) for name in ("ca_file", "cert_file", "key_file")}
    client = ClientOptions(
        ca_file=files["ca_file"], cert_file=files["cert_file"], key_file=files["key_file"]
    )
    client_id = getattr(args, "client_id", None)
    if client_id is not None:
        if not client_id.strip():
            raise ConfigError("client-id", "must not be empty")
        client["client_id"] = client_id
        client["clean_session"] = False
    password_env = getattr(args, "password_env", None)
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            raise ConfigError("password-env", f"environment variable {password_env} is not set")
        client["password"] = password
    if any(path is not None for path in files.values()):
        try:
            tls_context(**files)
        except TransportError as exc:
            name, _, problem = exc.problem.partition(" ")
            raise ConfigError(name.replace("_", "-"), problem) from None
    work = run_subscribe(
        args.broker,
        args.root,
        args.pairs,
        as_json=args.json,
        max_messages=args.count,
        gap_fill=getattr(args, "gap_fill", True),
        **client,
    )
    try:
        return asyncio.run(_until_signalled(work))
    except KeyboardInterrupt:
        return 0  # Ctrl-C before the loop took the signal over


async def _until_signalled(work: Coroutine[Any, Any, int]) -> int:
    """Run ``work`` until it ends, or until SIGINT (Ctrl-C) or SIGTERM ends the subscriber,
    with exit status 0 (the handlers are the loop's own, so a parent that ignores SIGINT for
    its background children cannot leave a subscriber that never stops)."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 0
