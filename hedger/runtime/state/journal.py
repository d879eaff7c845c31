"""The journal of a daemon's core inputs: every accepted tick and every bar close, in the
order the core took them, as JSON Lines in rolling segment files.

A restarted daemon loads its last checkpoint and runs the records journalled after it
through the same core before going live, so it ends where it stood when it stopped; and
``hedger replay`` over the segments gives the events the daemon published (``ts_init``
aside: a replay stamps each with its bar's close).

A segment ``inputs-<first record>.jsonl`` starts with a header line, then one record per
line, numbered on from ``first``::

    {"journal": "hedger-inputs", "version": 1, "first": 0, "opened": …, "clock": "wall", …}
    {"ts": 1733330000123456789, "symbol": "AAPL", "price": 189.5, "size": 100,
     "ts_recv": 1733330000124000000, "venue": "mqtt", "now": 1733330000124100000}
    {"close": 1733330001000000000, "now": 1733330001200311000}
    {"flush": true, "now": 1733330002000000000}
    {"clocked": false, "now": 1733330002000000000}

(one line each; the tick is wrapped here to fit).
A tick keeps the fields of the JSON Lines tick format (``ts`` in integer ns, ``"kind":
"quote"`` for a quote's mid) plus its receive time and venue; ``close`` is the bar clock
closing every bar that ends by then (a daemon on the wall clock), ``flush`` the end of
recorded input or a shutdown (the open bar closes), ``clocked`` the bars handed to or taken
from the wall clock (a restart's catch-up, :class:`Clocked`). ``now`` is the daemon clock when the
core took the record: the ``ts_init`` of what it published then.

Records are buffered and written by :meth:`InputJournal.commit`, which the core calls
before it lets anything it published out (before it waits for the next input) and before a
checkpoint: a process killed at any instant leaves every input whose output went out on
disk. A line torn by a kill is dropped when the journal is opened again.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from hedger.core.ticks import Tick, TickKind

FORMAT = "hedger-inputs"
VERSION = 1
_SEGMENT = re.compile(r"^inputs-(\d{16})\.jsonl$")


@dataclass(frozen=True, slots=True)
class Close:
    """The bar clock read ``ts`` (ns): every bar that ends by then closes."""

    ts: int


@dataclass(frozen=True, slots=True)
class Flush:
    """The end of recorded input, or a shutdown: the open bar closes."""


@dataclass(frozen=True, slots=True)
class Clocked:
    """The bars switch to (``on``) or from the wall clock: a restarted daemon closes the
    bars of the backlog its broker held on event time, then hands them to the clock."""

    on: bool


Input = Tick | Close | Flush | Clocked
"""One record of the journal."""


class JournalError(ValueError):
    """A journal file that is not one, or records that do not follow on."""


def encode_tick(tick: Tick, now: int) -> bytes:
    """The journal line of an accepted tick taken at ``now`` (no newline)."""
    record: dict[str, Any] = {"ts": tick.ts_event, "symbol": tick.symbol, "price": tick.price}
    if tick.size is not None:
        record["size"] = tick.size
    if tick.kind is not TickKind.TRADE:
        record["kind"] = tick.kind.value
    record["ts_recv"] = tick.ts_recv
    record["venue"] = tick.venue
    record["now"] = now
    return orjson.dumps(record)


def decode_record(line: bytes) -> tuple[Input, int]:
    """A journal line's input and its ``now``; :class:`JournalError` for anything else."""
    try:
        record = orjson.loads(line)
        now = int(record["now"])
        if "close" in record:
            return Close(int(record["close"])), now
        if "flush" in record:
            return Flush(), now
        if "clocked" in record:
            return Clocked(bool(record["clocked"])), now
        size = record.get("size")
        tick = Tick(
            str(record["symbol"]),
            float(record["price"]),
            int(record["ts"]),
            int(record["ts_recv"]),
            None if size is None else float(size),
            str(record["venue"]),
            TickKind(record.get("kind", "trade")),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise JournalError(f"not a journal record: {line[:80]!r} ({exc})") from None
    return tick, now


def segment_header(path: Path) -> dict[str, Any] | None:
    """The header of a journal segment, or None if ``path`` is not one."""
    try:
        with open(path, "rb") as file:
            first = file.readline(4096)
        header = orjson.loads(first)
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(header, dict) or header.get("journal") != FORMAT:
        return None
    return header


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The journal's segments in ``directory`` as (first record, path), oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _SEGMENT.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_segment(path: Path) -> tuple[dict[str, Any], Iterator[tuple[Input, int]]]:
    """A segment's header and its records (input, now) in order; a torn last line is left
    out. :class:`JournalError` if it is not a segment, or a whole line is not a record."""
    header = segment_header(path)
    if header is None:
        raise JournalError(f"{path}: not a hedger journal segment")
    if header.get("version") != VERSION:
        raise JournalError(f"{path}: journal version {header.get('version')!r}, not {VERSION}")

    def records() -> Iterator[tuple[Input, int]]:
        with open(path, "rb") as file:
            file.readline()
            for line in file:
                if not line.endswith(b"\n"):
                    return  # torn by a kill: never committed whole
                yield decode_record(line)

    return header, records()


def read_inputs(paths: Iterable[Path]) -> Iterator[tuple[Input, int]]:
    """The records of segments, in the order of their first records (each must follow on
    from the one before)."""
    ordered = sorted(paths, key=lambda p: int((segment_header(p) or {}).get("first", -1)))
    expected: int | None = None
    for path in ordered:
        header, records = read_segment(path)
        first = int(header["first"])
        if expected is not None and first != expected:
            raise JournalError(f"{path}: starts at record {first}, record {expected} is missing")
        count = 0
        for record in records:
            count += 1
            yield record
        expected = first + count


class InputJournal:
    """Appends core inputs to segments in ``directory``; see the module docstring.

    ``clock_ns``: the time segments are stamped and rolled with (the daemon's clock).
    ``header``: fields every segment header carries (``clock``, ``bar_ns``)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        segment_bytes: int,
        segment_ns: int,
        retention_ns: int,
        clock_ns: Callable[[], int],
        header: dict[str, Any] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._segment_bytes = segment_bytes
        self._segment_ns = segment_ns
        self._retention_ns = retention_ns
        self._clock_ns = clock_ns
        self._header = dict(header or {})
        self._buffer: list[bytes] = []
        self._fd: int | None = None
        self._segment_size = 0
        self._segment_opened = 0
        self.next = self._recover()
        """The number the next record gets (records so far, over the journal's life)."""
        self.committed = self.next
        self.commits = 0
        self.bytes_written = 0

    def _recover(self) -> int:
        """The next record number, from the newest segment (its torn tail cut off)."""
        found = segments(self.directory)
        if not found:
            return 0
        first, path = found[-1]
        header = segment_header(path)
        if header is None or int(header.get("first", -1)) != first:
            raise JournalError(f"{path}: not a hedger journal segment")
        whole = count = 0
        with open(path, "rb") as file:
            header_line = file.readline()
            whole = len(header_line)
            for line in file:
                if not line.endswith(b"\n"):
                    break
                whole += len(line)
                count += 1
        if whole < path.stat().st_size:
            os.truncate(path, whole)  # a line torn by a kill
        return first + count

    def tick(self, tick: Tick, now: int) -> None:
        """Journal an accepted tick taken at ``now``."""
        self._buffer.append(encode_tick(tick, now))
        self.next += 1

    def close(self, ts: int, now: int) -> None:
        """Journal the bar clock closing every bar that ends by ``ts``."""
        self._buffer.append(b'{"close":%d,"now":%d}' % (ts, now))
        self.next += 1

    def flush(self, now: int) -> None:
        """Journal the end of the input (the open bar closes)."""
        self._buffer.append(b'{"flush":true,"now":%d}' % now)
        self.next += 1

    def clocked(self, on: bool, now: int) -> None:
        """Journal the bars switching to (``on``) or from the wall clock."""
        self._buffer.append(b'{"clocked":%s,"now":%d}' % (b"true" if on else b"false", now))
        self.next += 1

    @property
    def pending(self) -> int:
        """Records not written yet."""
        return len(self._buffer)

    def commit(self) -> None:
        """Write the buffered records (to the OS: they survive the process being killed),
        rolling over to a new segment when the current one is full or old."""
        if not self._buffer:
            return
        if self._fd is None or self._due_roll():
            self._roll()
        data = b"\n".join(self._buffer) + b"\n"
        self._buffer.clear()
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._segment_size += len(data)
        self.bytes_written += len(data)
        self.committed = self.next
        self.commits += 1

    def sync(self) -> None:
        """Commit and fsync (a checkpoint or a shutdown: survive the machine too)."""
        self.commit()
        if self._fd is not None:
            os.fsync(self._fd)

    def _due_roll(self) -> bool:
        if self._segment_size >= self._segment_bytes:
            return True
        return self._clock_ns() - self._segment_opened >= self._segment_ns

    def _roll(self) -> None:
        """Start the segment of the next record to write."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
        first = self.committed
        path = self.directory / f"inputs-{first:016d}.jsonl"
        if path.exists():  # the newest segment, reopened after a restart: append to it
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._segment_size = path.stat().st_size
        else:
            header = {
                "journal": FORMAT, "version": VERSION, "first": first,
                "opened": self._clock_ns(), **self._header,
            }  # fmt: skip
            line = orjson.dumps(header) + b"\n"
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            os.write(self._fd, line)
            self._segment_size = len(line)
        self._segment_opened = self._clock_ns()

    def prune(self, keep_from: int) -> list[Path]:
        """Delete segments whose records all come before ``keep_from`` (the last checkpoint's
        next record) and that are older than the retention; the paths deleted."""
        found = segments(self.directory)
        cutoff = self._clock_ns() - self._retention_ns
        deleted = []
        for (_, path), (next_first, next_path) in itertools.pairwise(found):
            # a segment ended when the next one opened
            ended = int((segment_header(next_path) or {}).get("opened", cutoff))
            if next_first <= keep_from and ended < cutoff:
                path.unlink()
                deleted.append(path)
        return deleted

    def replay_from(self, start: int) -> Iterator[tuple[Input, int]]:
        """The committed records numbered ``start`` on. :class:`JournalError` if the journal
        no longer holds record ``start``."""
        found = segments(self.directory)
        if not found:
            if start != self.next:
                raise JournalError(f"record {start} is not in the journal (it is empty)")
            return iter(())
        chosen = [
            path
            for (first, path), nxt in zip(found, [*found[1:], None], strict=True)
            if nxt is None or nxt[0] > start
        ]
        first = int((segment_header(chosen[0]) or {}).get("first", -1))
        if first > start:
            raise JournalError(f"record {start} is no longer in the journal (oldest {first})")

        def records() -> Iterator[tuple[Input, int]]:
            number = first
            for record in read_inputs(chosen):
                if number >= start:
                    yield record
                number += 1

        return records()

    def close_file(self) -> None:
        """Commit, fsync and close the current segment. Idempotent."""
        self.sync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
