"""The journal of published events, from which a subscriber that saw a gap in a pair's
``seq`` gets the events it missed, byte for byte (WebSocket ``replay`` action, MQTT
``<root>/v1/replay`` requests, ``hedger subscribe``).

A local subscriber of the bus: every per-pair event (``hedge_ratio``, ``spread``,
``alarm``) is appended to segment files ``events-<n>.jsonl`` of ``directory``, one payload
per line, exactly as it went out. The journal is bounded: past ``capacity_bytes`` its
oldest segment is deleted. Each segment's range of seqs per pair is kept in memory (and in
a sidecar ``.idx`` file once the segment is full), so a lookup reads only the segments that
can hold the range. Records are buffered and written by :meth:`EventJournal.commit`, at the
same moments as the input journal's (before the core lets its output out).

A daemon restarted after a crash publishes the bars it replays from its input journal
again: the journal then holds those events twice, identical, and a lookup returns each
once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from hedger.core.bus import Message

JOURNALLED_KINDS = frozenset({"ratio", "spread", "alarm"})
MAX_REPLAY = 100_000
"""The most seqs one lookup may span."""
_SEGMENT = re.compile(r"^events-(\d{10})\.jsonl$")


@dataclass
class _Segment:
    number: int
    path: Path
    size: int = 0
    seqs: dict[str, list[int]] = field(default_factory=dict)
    """pair -> [lowest seq, highest seq] in the segment."""

    def note(self, pair: str, seq: int) -> None:
        span = self.seqs.get(pair)
        if span is None:
            self.seqs[pair] = [seq, seq]
        elif seq < span[0]:
            span[0] = seq
        elif seq > span[1]:
            span[1] = seq

    def may_hold(self, pair: str, low: int, high: int) -> bool:
        span = self.seqs.get(pair)
        return span is not None and span[0] <= high and low <= span[1]


class EventJournal:
    """The bounded journal of published events in ``directory``; see the module docstring."""

    def __init__(self, directory: str | Path, capacity_bytes: int) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.capacity_bytes = capacity_bytes
        self.segment_bytes = max(1_000_000, capacity_bytes // 16)
        self._buffer: list[bytes] = []
        self._pending: list[tuple[str, int]] = []
        self._segments = self._load()
        self._fd: int | None = None
        self.recorded = 0
        self.lookups = 0

    def _load(self) -> list[_Segment]:
        found = []
        for path in self.directory.iterdir():
            match = _SEGMENT.match(path.name)
            if match:
                found.append(_Segment(int(match.group(1)), path))
        found.sort(key=lambda s: s.number)
        for segment in found:
            index = segment.path.with_suffix(".idx")
            seqs = _read_index(index)
            if seqs is None:
                seqs = _scan(segment.path)
            segment.seqs = seqs
            segment.size = segment.path.stat().st_size
        return found

    def record(self, message: Message) -> None:
        """Keep ``message`` if it is a pair's event (the bus's local subscriber)."""
        if message.kind in JOURNALLED_KINDS and message.payload:
            self._buffer.append(message.payload)
            self._pending.append((message.pair, message.seq))

    def commit(self) -> None:
        """Write what was recorded since the last commit."""
        if not self._buffer:
            return
        if self._fd is None or self._segments[-1].size >= self.segment_bytes:
            self._roll()
        segment = self._segments[-1]
        data = b"\n".join(self._buffer) + b"\n"
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        segment.size += len(data)
        for pair, seq in self._pending:
            segment.note(pair, seq)
        self.recorded += len(self._buffer)
        self._buffer.clear()
        self._pending.clear()

    def _roll(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            last = self._segments[-1]
            last.path.with_suffix(".idx").write_bytes(orjson.dumps(last.seqs))
        number = self._segments[-1].number + 1 if self._segments else 0
        path = self.directory / f"events-{number:010d}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._segments.append(_Segment(number, path, path.stat().st_size))
        while len(self._segments) > 1 and self.size > self.capacity_bytes:
            oldest = self._segments.pop(0)
            oldest.path.unlink(missing_ok=True)
            oldest.path.with_suffix(".idx").unlink(missing_ok=True)

    @property
    def size(self) -> int:
        """Bytes held on disk."""
        return sum(segment.size for segment in self._segments)

    def oldest_seq(self, pair: str) -> int | None:
        """The lowest seq of ``pair`` the journal still holds (None: none)."""
        self.commit()
        lows = [s.seqs[pair][0] for s in self._segments if pair in s.seqs]
        return min(lows) if lows else None

    def lookup(self, pair: str, from_seq: int, to_seq: int) -> list[bytes]:
        """The payloads of ``pair``'s events with ``from_seq <= seq <= to_seq`` still held, in
        the order they were published, each once. ``ValueError`` for a range that is empty
        or wider than :data:`MAX_REPLAY`."""
        if to_seq < from_seq or from_seq < 1:
            raise ValueError(f"from_seq {from_seq} to to_seq {to_seq} is not a range of seqs")
        if to_seq - from_seq >= MAX_REPLAY:
            raise ValueError(f"at most {MAX_REPLAY} seqs in one replay")
        self.commit()
        self.lookups += 1
        needle = b'"pair":' + orjson.dumps(pair)
        seen: set[bytes] = set()
        found: list[tuple[int, int, bytes]] = []
        order = 0
        for segment in self._segments:
            if not segment.may_hold(pair, from_seq, to_seq):
                continue
            with open(segment.path, "rb") as file:
                for line in file:
                    if needle not in line or not line.endswith(b"\n"):
                        continue
                    payload = line[:-1]
                    try:
                        event = orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        continue
                    seq = event.get("seq") if isinstance(event, dict) else None
                    if (
                        event.get("pair") == pair
                        and isinstance(seq, int)
                        and from_seq <= seq <= to_seq
                        and payload not in seen
                    ):
                        seen.add(payload)
                        found.append((seq, order, payload))
                        order += 1
        found.sort()
        return [payload for _, _, payload in found]

    def close(self) -> None:
        """Commit and close the open segment. Idempotent."""
        self.commit()
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None


def _read_index(path: Path) -> dict[str, list[int]] | None:
    try:
        seqs = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return seqs if isinstance(seqs, dict) else None


def _scan(path: Path) -> dict[str, list[int]]:
    """A segment's seq ranges by pair, read from its lines (one without a sidecar index)."""
    segment = _Segment(0, path)
    with open(path, "rb") as file:
        for line in file:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line torn by a kill
            if isinstance(event, dict) and isinstance(event.get("seq"), int):
                segment.note(str(event.get("pair")), event["seq"])
    return segment.seqs
