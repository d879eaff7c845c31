"""``hedger subscribe``: the latest hedge ratios of a running daemon, as a live table or JSON
lines, with sequence gaps reported (never a silent hole) and repeats dropped; the pairs'
relationship-break alarms as they are raised and cleared."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO, Unpack

import orjson

from feeds.broker import ClientOptions, broker_address, parse_broker_url, tls_context
from feeds.mqtt import mqtt_messages
from hedger.cli.options import at_least
from hedger.core.bar_events import ratios_of_bar
from hedger.core.topics import PairId, bar_topic, pair_topic, parse_pair_topic, status_topic
from hedger.errors import ConfigError, TransportError


@dataclass
class PairView:
    """What a subscriber knows of one pair."""

    event: dict[str, Any]
    received: float
    gaps: int = 0
    missing: int = 0
    repeats: int = 0
    restarts: int = 0


@dataclass
class RatioBoard:
    """The latest ratio per pair; ``accept`` returns the event if it is new, else None."""

    pairs: dict[str, PairView] = field(default_factory=dict)
    alarms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """The active alarm kinds of each pair that has some."""
    status: str = "unknown"
    malformed: int = 0

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
        if not isinstance(event, dict) or event.get("type") != "alarm":
            self.malformed += 1
            return None
        pair, active = event.get("pair"), event.get("active")
        if not isinstance(pair, str) or not isinstance(active, list):
            self.malformed += 1
            return None
        if active:
            self.alarms[pair] = tuple(str(kind) for kind in active)
        else:
            self.alarms.pop(pair, None)
        return event

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
        try:
            ratios = ratios_of_bar(orjson.loads(payload))
        except (orjson.JSONDecodeError, ValueError, AttributeError):
            self.malformed += 1
            return []
        taken = []
        for event in ratios:
            pair = event["pair"]
            if wanted is not None and pair not in wanted:
                continue
            view = self.pairs.get(pair)
            if view is not None and view.event.get("seq") == event["seq"]:
                continue  # the same bar, come by its per-pair topic first
            accepted, missed = self.accept_event(event, now)
            if accepted is not None:
                taken.append((accepted, missed))
        return taken

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
    first. ``client``: credentials and TLS (:class:`feeds.broker.ClientOptions`)."""

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
    last_draw = 0.0
    count = 0

    shown = broker_address(url, **client).redacted
    notes = _ConnectionNotes(err)

    def draw(now: float) -> None:
        nonlocal last_draw
        out.write("\x1b[H\x1b[2J" + board.render(now, shown) + "\n")
        out.flush()
        last_draw = now

    async def keep_drawing() -> None:
        while True:
            await asyncio.sleep(refresh)
            draw(time.time())

    ticker = asyncio.create_task(keep_drawing()) if live else None
    try:
        async for topic, payload in mqtt_messages(url, topics, logger=notes, **client):
            now = time.time()
            if topic == status:
                changed = board.set_status(payload)
                if live:
                    draw(now)
                elif as_json:
                    out.write(orjson.dumps({"type": "status", "status": board.status}).decode())
                    out.write("\n")
                    out.flush()
                elif changed:
                    out.write(f"daemon: {board.status}\n")
                    out.flush()
                continue
            if topic.startswith(alarm_prefix):
                alarm = board.accept_alarm(payload, _topic_pair(root, topic))
                if alarm is None:
                    continue
                if as_json:
                    out.write(orjson.dumps(alarm).decode() + "\n")
                elif live:
                    draw(now)
                else:
                    out.write(alarm_line(alarm) + "\n")
                out.flush()
                continue
            news: list[tuple[dict[str, Any] | None, int]]
            if topic == bar:
                news = list(board.accept_bar(payload, now, wanted))
            else:
                news = [board.accept(payload, now)]
            for event, missed in news:
                if missed:
                    err.write(f"hedger subscribe: gap of {missed} on {event and event['pair']}\n")
                if event is None:
                    continue
                count += 1
                if as_json:
                    out.write(orjson.dumps(event).decode() + "\n")
                    out.flush()
                elif live:
                    if now - last_draw >= 0.25:
                        draw(now)
                else:
                    out.write(board.render_line(event["pair"], now) + "\n")
                    out.flush()
                if max_messages is not None and count >= max_messages:
                    return 0
    finally:
        if ticker is not None:
            ticker.cancel()
    return 0


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
    "each bar, and show them as a live table (or JSON lines with --json). Gaps in a pair's "
    "seq are reported; alarms are shown as they are raised and cleared. Ctrl-C exits."
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
    try:
        return asyncio.run(
            run_subscribe(
                args.broker,
                args.root,
                args.pairs,
                as_json=args.json,
                max_messages=args.count,
                **client,
            )
        )
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a subscriber ends
