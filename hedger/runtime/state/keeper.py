"""What a daemon with ``[state]`` keeps so that a crash costs nothing: checkpoints of the
whole core, the journal of its inputs since, and the journal of its published events.

:class:`StateKeeper` is the daemon's side of it. At start, :meth:`StateKeeper.resume` loads
the newest checkpoint that verifies, resumes every pair whose configuration is the one it
was saved with (the others start fresh, each logged with the reason), and runs the inputs
journalled after the checkpoint through the core before anything goes live, so that the
daemon stands where it stood when it stopped, having published the replayed bars again
(byte-identical: each record carries the ``ts_init`` it was published with).

Live, the core journals every input, calls :meth:`StateKeeper.commit` before it lets its
output out, and :meth:`StateKeeper.checkpoint_due` / :meth:`StateKeeper.checkpoint` after bar
closes; the journal before a checkpoint goes once it is older than the retention.
"""

from __future__ import annotations

import gc
import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hedger.config.state import StateSettings
from hedger.core.bus import Bus, Message
from hedger.core.pipeline import Pipeline
from hedger.core.ticks import Tick
from hedger.core.topics import pair_id_topic
from hedger.runtime.state.checkpoint import CheckpointStore, Loaded, encode_checkpoint
from hedger.runtime.state.events import EventJournal
from hedger.runtime.state.journal import Clocked, Close, Input, InputJournal, JournalError

REDELIVERY_WINDOW = 10_000
"""How many of the journal's last ticks a restarted daemon recognises when a broker sends
them again (messages journalled but not yet acknowledged when it stopped)."""

TakeInput = Callable[[Input, int], None]
"""The core taking one input at ``now`` (ns): what the live loop does with a record."""


def spec_fingerprint(spec: object) -> str:
    """A short digest of a pair's configuration (its :class:`~hedger.core.actors.PairSpec`):
    a checkpoint is resumed only into the same configuration."""
    return hashlib.sha256(repr(spec).encode()).hexdigest()[:24]


@dataclass
class Resumed:
    """What :meth:`StateKeeper.resume` did."""

    checkpoint: Path | None = None
    journal_from: int | None = None
    """The first record replayed (None: none)."""
    replayed: int = 0
    resumed: list[str] = field(default_factory=list)
    fresh: dict[str, str] = field(default_factory=dict)
    """Pairs that start fresh, with why."""
    dropped: list[str] = field(default_factory=list)
    """Pairs of the checkpoint no longer configured."""
    set_aside: list[tuple[Path, str]] = field(default_factory=list)
    """Checkpoint files that failed verification, moved away, with why."""


class StateKeeper:
    """Checkpoints, the input journal and the event journal of one daemon.

    ``settings``: the [state] table. ``pipeline``, ``bus``: the daemon's. ``time_ns``,
    ``monotonic_ns``: its clock. ``settings_key``: what the whole checkpoint depends on
    besides the pairs (bar length, freshness, price source, clock mode): a checkpoint of
    other settings is not resumed. ``root``: the topic root and ``publish_state`` where each pair's
    state goes (retained on ``<root>/v1/state/<pair id>``) with ``retain``: the MQTT bridges."""

    def __init__(
        self,
        settings: StateSettings,
        pipeline: Pipeline,
        bus: Bus,
        logger: Any,
        *,
        time_ns: Callable[[], int],
        monotonic_ns: Callable[[], int],
        settings_key: dict[str, Any],
        root: str = "hedger",
        publish_state: Callable[[Message], None] | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.bus = bus
        self.log = logger
        self._time_ns = time_ns
        self._monotonic_ns = monotonic_ns
        self._settings_key = settings_key
        self._root = root
        self._publish_state = publish_state
        directory = Path(settings.dir)
        self.store = CheckpointStore(directory / "checkpoints")
        self.inputs: InputJournal | None = None
        if settings.journal:
            self.inputs = InputJournal(
                directory / "inputs",
                segment_bytes=settings.segment_bytes,
                segment_ns=settings.segment_ns,
                retention_ns=settings.retention_ns,
                clock_ns=time_ns,
                header={k: v for k, v in settings_key.items() if k in ("clock", "bar_ns")},
            )
        self.events: EventJournal | None = None
        if settings.event_journal_bytes > 0:
            self.events = EventJournal(directory / "events", settings.event_journal_bytes)
            bus.subscribe(self.events.record)
        self._fingerprints: dict[int, tuple[object, str]] = {}
        """id(spec) -> (spec, its fingerprint): each spec is hashed once."""
        self._recent: set[tuple[Any, ...]] = set()
        self._watching = False
        self.redelivered = 0
        self.checkpoints = 0
        self.checkpoint_ns_total = 0
        self._last_bars = 0
        self._last_mono = monotonic_ns()

    # start

    def resume(self, take: TakeInput) -> Resumed:
        """Load, verify and resume the newest checkpoint, then replay the journal after it
        through ``take``. (The next checkpoint waits until what the replay published again
        is delivered, as every checkpoint does.)"""
        done = Resumed()
        with _collector_paused():
            loaded = self.store.load(done.set_aside)
        for path, reason in done.set_aside:
            self.log.warning("checkpoint set aside", path=str(path), reason=reason)
        start: int | None = None
        if loaded is not None:
            with _collector_paused():
                start = self._restore(loaded, done)
        elif self.inputs is not None and self.inputs.next > 0:
            start = 0  # killed before its first checkpoint: the journal from its beginning
        if start is not None and self.inputs is not None and start < self.inputs.next:
            done.journal_from = start
            done.replayed = self._replay(start, take)
        self._watching = bool(self._recent)
        self.log.info(
            "resumed" if loaded is not None or done.replayed else "started fresh",
            checkpoint=None if done.checkpoint is None else str(done.checkpoint),
            pairs_resumed=len(done.resumed),
            pairs_fresh=done.fresh or None,
            pairs_dropped=done.dropped or None,
            journal_from=done.journal_from,
            replayed=done.replayed,
        )
        return done

    def _restore(self, loaded: Loaded, done: Resumed) -> int | None:
        """Resume from a verified checkpoint; the journal record to replay from (None: the
        journal cannot bring it up to date)."""
        body = loaded.body
        pipeline = self.pipeline
        if body.get("settings") != self._settings_key:
            for actor in pipeline.actors:
                done.fresh[actor.pair_id] = "the bar settings changed"
            self.log.warning(
                "checkpoint not resumed: the bar settings changed",
                saved=body.get("settings"),
                now=self._settings_key,
            )
            return None
        try:
            pipeline.restore_bars(body["pipeline"])
            self.bus.bars_published = int(body["bus"]["bars_published"])
        except (KeyError, TypeError, ValueError) as exc:
            self.store.set_aside(loaded.path, f"does not fit: {exc!r}", done.set_aside)
            self.log.warning("checkpoint set aside", path=str(loaded.path), reason=repr(exc))
            for actor in pipeline.actors:
                done.fresh[actor.pair_id] = "the checkpoint did not load"
            return None
        done.checkpoint = loaded.path
        saved: dict[str, Any] = body["pairs"]
        states = []
        for actor in pipeline.actors:
            pair_id = actor.pair_id
            entry = saved.get(pair_id)
            if entry is None:
                done.fresh[pair_id] = "not in the checkpoint"
            elif entry.get("spec") != spec_fingerprint(actor.spec):
                done.fresh[pair_id] = "its configuration changed"
            else:
                states.append(entry["state"])
        failed = pipeline.restore_pairs(states)
        for state in states:
            pair_id = state["pair"]
            if pair_id in failed:
                done.fresh[pair_id] = f"its state does not fit: {failed[pair_id]!r}"
            else:
                done.resumed.append(pair_id)
        running = {actor.pair_id for actor in pipeline.actors}
        done.dropped = sorted(set(saved) - running)
        for pair_id, why in done.fresh.items():
            self.log.warning("pair starts fresh", pair=pair_id, reason=why)
        start = body.get("journal_next")
        return None if start is None else int(start)

    def _replay(self, start: int, take: TakeInput) -> int:
        """Run the journal's records from ``start`` through ``take``; how many."""
        assert self.inputs is not None
        recent: deque[tuple[Any, ...]] = deque(maxlen=REDELIVERY_WINDOW)
        count = 0
        try:
            for record, now in self.inputs.replay_from(start):
                take(record, now)
                if isinstance(record, Tick):
                    recent.append(_identity(record))
                count += 1
        except JournalError as exc:
            self.log.error("journal replay stopped", error=str(exc), replayed=count)
        self._recent = set(recent)
        return count

    # live

    def journal(self, record: Input, now: int) -> None:
        """Journal one input the core took at ``now``."""
        inputs = self.inputs
        if inputs is None:
            return
        if isinstance(record, Tick):
            inputs.tick(record, now)
        elif isinstance(record, Close):
            inputs.close(record.ts, now)
        elif isinstance(record, Clocked):
            inputs.clocked(record.on, now)
        else:
            inputs.flush(now)

    def redelivered_tick(self, tick: Tick) -> bool:
        """Whether ``tick`` is one the journal already holds, sent again by a broker after a
        restart (checked only for the first live ticks: the broker sends those first)."""
        if not self._watching:
            return False
        if _identity(tick) in self._recent:
            self.redelivered += 1
            return True
        self._watching = False
        self._recent = set()
        return False

    def commit(self) -> None:
        """Write the journals' buffered records (before the core's output goes out)."""
        if self.inputs is not None:
            self.inputs.commit()
        if self.events is not None:
            self.events.commit()

    def checkpoint_due(self) -> bool:
        """Whether ``checkpoint_bars`` bars closed or ``checkpoint_interval`` passed since the
        last checkpoint."""
        every = self.settings.checkpoint_bars
        if every and self.pipeline.bars_closed - self._last_bars >= every:
            return True
        return self._monotonic_ns() - self._last_mono >= self.settings.checkpoint_interval_ns

    def _fingerprint(self, spec: object) -> str:
        cached = self._fingerprints.get(id(spec))
        if cached is None or cached[0] is not spec:
            cached = self._fingerprints[id(spec)] = (spec, spec_fingerprint(spec))
        return cached[1]

    def checkpoint_overdue(self) -> bool:
        """Whether the last checkpoint is ten intervals old (one due is being held back)."""
        interval = self.settings.checkpoint_interval_ns
        return self._monotonic_ns() - self._last_mono >= 10 * interval

    def checkpoint(self) -> Path:
        """Checkpoint the core now (between two inputs): the journal is synced first, so the
        checkpoint never refers to a record that is not on disk."""
        started = self._monotonic_ns()
        if self.inputs is not None:
            self.inputs.sync()
        with _collector_paused():
            snapshot = self.pipeline.snapshot()
            states = snapshot["pairs"]
            pairs = {
                actor.pair_id: {
                    "spec": self._fingerprint(actor.spec),
                    "state": states[actor.pair_id],
                }
                for actor in self.pipeline.actors
            }
            body = {
                "settings": self._settings_key,
                "written_ns": self._time_ns(),
                "journal_next": None if self.inputs is None else self.inputs.next,
                "pipeline": {"bars": snapshot["bars"], "counters": snapshot["counters"]},
                "bus": {"bars_published": self.bus.bars_published},
                "pairs": pairs,
            }
            path = self.store.save(body, pairs=len(pairs))
        if self.settings.retain and self._publish_state is not None:
            self._retain(pairs, self._publish_state)
        if self.inputs is not None:
            self.inputs.prune(self.inputs.next)
        self._last_bars = self.pipeline.bars_closed
        self._last_mono = self._monotonic_ns()
        self.checkpoints += 1
        self.checkpoint_ns_total += self._last_mono - started
        return path

    def _retain(self, pairs: dict[str, Any], publish: Callable[[Message], None]) -> None:
        """Each pair's checkpoint, retained on its state topic (for a daemon elsewhere), in
        the checkpoint file format."""
        for pair_id, entry in pairs.items():
            payload = encode_checkpoint({"settings": self._settings_key, **entry}, pair=pair_id)
            topic = pair_id_topic(self._root, "state", pair_id)
            publish(Message(topic, payload, True, pair=pair_id, kind="state"))

    def metrics(self) -> dict[str, float]:
        """Counters for the daemon's metrics."""
        values: dict[str, float] = {
            "checkpoints": self.checkpoints,
            "checkpoint_bytes": self.store.last_bytes,
            "checkpoint_seconds_total": self.checkpoint_ns_total / 1e9,
            "redelivered_ticks": self.redelivered,
        }
        if self.inputs is not None:
            values["journal_records"] = self.inputs.next
            values["journal_bytes_written"] = self.inputs.bytes_written
        if self.events is not None:
            values["event_journal_bytes"] = self.events.size
        return values

    def close(self) -> None:
        """Sync and close the journals (after the shutdown's checkpoint)."""
        if self.inputs is not None:
            self.inputs.close_file()
        if self.events is not None:
            self.events.close()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a while: a checkpoint of many pairs builds
    hundreds of thousands of small lists and dicts (no cycles: freed as soon as written),
    whose allocations would set off full collections over the whole heap, four times the
    cost of the checkpoint itself at 10,000 pairs (``bench/durability.py``)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _identity(tick: Tick) -> tuple[Any, ...]:
    """What tells a tick sent again from another tick: all but its receive time."""
    return (tick.symbol, tick.ts_event, tick.price, tick.size, tick.kind)
