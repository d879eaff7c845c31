"""Checkpoints (:mod:`hedger.runtime.state`): a pipeline resumed from a checkpoint written to
disk and read back gives, byte for byte, the events of one that never stopped (bank and actor
paths, gates, alarms, baskets, a combined hedge, a refitted noise); a torn, foreign or corrupt
checkpoint is never loaded; the input journal survives a torn line, rolls over, and is pruned
only behind the checkpoint."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedger.config.state import StateSettings
from hedger.core.actors import PairSpec
from hedger.core.bus import Bus, Message
from hedger.core.events import Event, encode
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind
from hedger.core.topics import PairId, pair_topic
from hedger.engine import FilterParams, HedgeFilter
from hedger.engine.params import InputMode
from hedger.runtime.state.checkpoint import CheckpointStore, decode_checkpoint, encode_checkpoint
from hedger.runtime.state.journal import Close, Flush, InputJournal, JournalError, read_inputs
from hedger.runtime.state.keeper import StateKeeper
from tests.test_bank_path import SECOND, mixed_specs, ticks_of
from tests.test_combined_live import combined_spec


def through_disk(body: dict[str, object], tmp_path: Path) -> dict[str, object]:
    """``body`` written as a checkpoint file and loaded back, verified."""
    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(body)
    loaded = store.load()
    assert loaded is not None
    return loaded.body


def pipeline_of(specs: list[PairSpec], out: list[bytes], *, bank: bool = True) -> Pipeline:
    def emit(event: Event) -> None:
        out.append(encode(event))

    return Pipeline(specs, SECOND, 2 * SECOND, emit, Rejects(), bank=bank)


def resumed_run(
    specs: list[PairSpec], ticks: list[Tick], cut: int, tmp_path: Path, *, bank: bool
) -> list[bytes]:
    """The events of ``ticks`` with the pipeline checkpointed after ``cut`` of them and a new
    pipeline resumed from the file for the rest."""
    out: list[bytes] = []
    first = pipeline_of(specs, out, bank=bank)
    for tick in ticks[:cut]:
        first.on_tick(tick)
    body = through_disk(first.snapshot(), tmp_path)
    second = pipeline_of(specs, out, bank=bank)
    second.restore_bars(body)
    assert second.restore_pairs(list(body["pairs"].values())) == {}  # type: ignore[attr-defined]
    for tick in ticks[cut:]:
        second.on_tick(tick)
    second.flush()
    assert second.stats.ticks_in == len(ticks)
    return out


@pytest.mark.parametrize("bank", [True, False])
def test_a_resumed_pipeline_publishes_the_bytes_of_one_that_never_stopped(
    tmp_path: Path, bank: bool
) -> None:
    specs = [*mixed_specs(), combined_spec("A", "E")]
    ticks = ticks_of(11, 900)
    reference: list[bytes] = []
    whole = pipeline_of(specs, reference, bank=bank)
    for tick in ticks:
        whole.on_tick(tick)
    whole.flush()
    for cut in (1, 37, len(ticks) // 2, len(ticks) - 3):
        assert resumed_run(specs, ticks, cut, tmp_path / str(cut), bank=bank) == reference


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(0, 400), seed=st.integers(0, 2**16))
def test_any_cut_resumes_exactly(
    cut: int, seed: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    specs = mixed_specs()
    ticks = ticks_of(seed, 120)
    cut = min(cut, len(ticks))
    reference: list[bytes] = []
    whole = pipeline_of(specs, reference)
    for tick in ticks:
        whole.on_tick(tick)
    whole.flush()
    assert resumed_run(specs, ticks, cut, tmp_path_factory.mktemp("cut"), bank=True) == reference


def test_a_filter_resumes_bit_for_bit_mid_warm_up_mid_outlier_run_and_after_a_refit() -> None:
    rng = np.random.default_rng(3)
    for params in (
        FilterParams(outlier_z=3.0, outlier_run=4),
        FilterParams(n_legs=2, mode=InputMode.LOG, outlier_z=3.0),
        FilterParams(mode=InputMode.RETURNS, intercept=False),
    ):
        k = params.n_legs
        steps = []
        for i in range(300):
            xs = list(100 + np.cumsum(rng.normal(size=k)) + i * 0.01)
            y = 2 * sum(xs) + rng.normal() * (40 if i % 50 == 49 else 0.1)
            steps.append((float(y), [float(x) for x in xs]))
        for cut in (3, 10, 60, 150):
            a = HedgeFilter(params)
            for y, xs in steps[:cut]:
                a.step(y, xs)
            if cut == 60:
                a.set_noise(np.eye(params.n_states) * 1e-5, 0.3)
            saved = msgspec.msgpack.decode(msgspec.msgpack.encode(a.checkpoint()))
            b = HedgeFilter(params)
            b.resume(saved)
            for y, xs in steps[cut:]:
                assert a.step(y, xs) == b.step(y, xs)
            assert a.checkpoint() == b.checkpoint()


def test_a_state_of_another_shape_is_refused_and_the_pair_stays_cold() -> None:
    out: list[bytes] = []
    pair = PairSpec(PairId("A", ("B",)), FilterParams())
    basket = PairSpec(PairId("A", ("B", "C")), FilterParams(n_legs=2))
    pipeline = pipeline_of([pair], out)
    other = pipeline_of([basket], out)
    state = other.snapshot()["pairs"]["A/B+C"]
    failed = pipeline.restore_pairs([state, {**state, "pair": "A/B"}])
    assert "not running" in str(failed["A/B+C"])
    assert isinstance(failed["A/B"], ValueError | KeyError | TypeError)
    assert pipeline.actors[0].seq == 0 and pipeline.actors[0].observations == 0


def test_a_torn_foreign_or_corrupt_checkpoint_is_set_aside_and_the_previous_one_loads(
    tmp_path: Path,
) -> None:
    store = CheckpointStore(tmp_path)
    store.save({"n": 1})
    store.save({"n": 2})
    assert (store.load() or pytest.fail()).body == {"n": 2}
    blob = store.current.read_bytes()
    for bad, reason in (
        (blob[:-3], "bytes of body"),
        (blob[:-1] + bytes([blob[-1] ^ 1]), "checksum"),
        (b'{"format": "something-else"}\n', "not a hedger checkpoint"),
        (b"", "no header"),
        (blob.replace(b'"version":1', b'"version":9'), "schema version 9"),
    ):
        store.current.write_bytes(bad)
        aside: list[tuple[Path, str]] = []
        loaded = store.load(aside)
        assert loaded is not None and loaded.body == {"n": 1}, reason
        assert len(aside) == 1 and reason in aside[0][1]
        assert aside[0][0].exists() and not store.current.exists()
        store.save({"n": 2})
        store.previous.write_bytes(encode_checkpoint({"n": 1}))
    with pytest.raises(ValueError, match="checksum"):
        decode_checkpoint(blob[:-1] + b"\x00", tmp_path / "x")


def test_no_temporary_file_is_left_and_the_header_names_the_format(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save({"pairs": {}}, pairs=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.bin"]
    header = store.current.read_bytes().split(b"\n", 1)[0]
    assert b'"format":"hedger-checkpoint"' in header and b'"pairs":0' in header


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000 * SECOND

    def __call__(self) -> int:
        return self.now


def journal_in(path: Path, clock: Clock, **kw: int) -> InputJournal:
    options = {"segment_bytes": 10_000_000, "segment_ns": 3600 * SECOND, "retention_ns": SECOND}
    options.update(kw)
    return InputJournal(path, clock_ns=clock, header={"clock": "wall"}, **options)


def test_the_journal_gives_back_its_records_and_drops_a_line_torn_by_a_kill(
    tmp_path: Path,
) -> None:
    clock = Clock()
    journal = journal_in(tmp_path, clock)
    ticks = [
        Tick("A", 100.0 + i, i * SECOND, i * SECOND + 5, None if i % 2 else 3.0, "mqtt")
        for i in range(5)
    ]
    quote = Tick("B", 7.25, 6 * SECOND, 6 * SECOND, 1.0, "x", TickKind.QUOTE)
    for i, tick in enumerate(ticks):
        journal.tick(tick, 10 + i)
    journal.close(5 * SECOND, 20)
    journal.tick(quote, 21)
    journal.flush(22)
    journal.commit()
    records = list(journal.replay_from(0))
    assert [r for r, _ in records] == [*ticks, Close(5 * SECOND), quote, Flush()]
    assert [now for _, now in records] == [10, 11, 12, 13, 14, 20, 21, 22]
    assert [r for r, _ in journal.replay_from(6)] == [quote, Flush()]
    segment = next(tmp_path.glob("inputs-*.jsonl"))
    with open(segment, "ab") as file:
        file.write(b'{"ts": 1, "symbol": "A", "pri')  # the kill came mid-write
    reopened = journal_in(tmp_path, clock)
    assert reopened.next == 8
    reopened.tick(ticks[0], 30)
    reopened.commit()
    assert [r for r, _ in reopened.replay_from(7)] == [Flush(), ticks[0]]
    assert len(list(read_inputs(tmp_path.glob("inputs-*.jsonl")))) == 9


def test_the_journal_rolls_over_and_is_pruned_only_behind_the_checkpoint(tmp_path: Path) -> None:
    clock = Clock()
    journal = journal_in(tmp_path, clock, segment_bytes=2_000)
    tick = Tick("A", 100.0, SECOND, SECOND, 1.0, "mqtt")
    for i in range(100):
        journal.tick(tick, i)
        journal.commit()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) > 3
    assert names[0] == "inputs-0000000000000000.jsonl"
    clock.now += 10 * SECOND
    assert journal.prune(keep_from=0) == []
    deleted = journal.prune(keep_from=60)
    assert deleted and all(p.name < "inputs-0000000000000060" for p in deleted)
    assert len(list(journal.replay_from(60))) == 40
    with pytest.raises(JournalError, match="no longer in the journal"):
        list(journal.replay_from(0))


def test_a_keeper_resumes_pairs_whose_config_is_unchanged_and_starts_the_others_fresh(
    tmp_path: Path,
) -> None:
    settings = StateSettings(dir=str(tmp_path), event_journal_bytes=0)
    ticks = ticks_of(5, 200)
    specs = mixed_specs()
    out: list[bytes] = []
    clock = Clock()

    def keeper_of(pipeline: Pipeline) -> StateKeeper:
        return StateKeeper(
            settings, pipeline, Bus(), _Log(), time_ns=clock, monotonic_ns=clock,
            settings_key={"bar_ns": SECOND, "clock": "data"},
        )  # fmt: skip

    first = pipeline_of(specs, out)
    keeper = keeper_of(first)
    keeper.resume(lambda record, now: None)
    for tick in ticks:
        first.on_tick(tick)
        keeper.journal(tick, clock.now)
    keeper.commit()
    keeper.checkpoint()
    changed = [specs[0], PairSpec(specs[1].pair, FilterParams(delta=1e-3)), *specs[2:]]
    second = pipeline_of(changed, out)
    done = keeper_of(second).resume(lambda record, now: None)
    assert done.resumed == [str(s.pair) for s in changed if s is not changed[1]]
    assert done.fresh == {str(changed[1].pair): "its configuration changed"}
    assert done.replayed == 0
    assert second.actors[0].snapshot() == first.actors[0].snapshot()
    assert second.actors[1].seq == 0


class _Log:
    def info(self, *args: object, **kw: object) -> None: ...

    def warning(self, *args: object, **kw: object) -> None: ...

    def error(self, *args: object, **kw: object) -> None: ...


def test_a_bank_reads_its_pairs_states_from_its_arrays_as_the_actors_give_them() -> None:
    """The checkpoint of banked pairs is read from the bank's arrays; it must be, value for
    value, what each actor gives once the bank has written its state back."""
    out: list[bytes] = []
    specs = [*mixed_specs(), combined_spec("A", "E")]
    pipeline = pipeline_of(specs, out)
    for tick in ticks_of(13, 700):
        pipeline.on_tick(tick)
    bank = pipeline._bank
    assert bank is not None and len(bank.actors) >= 4
    from_arrays = bank.snapshots()
    pipeline.sync()
    assert from_arrays == [actor.snapshot() for actor in bank.actors]
    assert any(state["alarm"] and state["alarm"]["raised"] for state in from_arrays)


def test_with_retain_each_pairs_checkpoint_goes_out_retained_on_its_state_topic(
    tmp_path: Path,
) -> None:
    out: list[bytes] = []
    sent: list[Message] = []
    specs = mixed_specs()
    pipeline = pipeline_of(specs, out)
    for tick in ticks_of(2, 100):
        pipeline.on_tick(tick)
    clock = Clock()
    keeper = StateKeeper(
        StateSettings(dir=str(tmp_path), retain=True, event_journal_bytes=0),
        pipeline, Bus(), _Log(), time_ns=clock, monotonic_ns=clock,
        settings_key={"bar_ns": SECOND}, root="desk", publish_state=sent.append,
    )  # fmt: skip
    keeper.checkpoint()
    assert [m.topic for m in sent] == [pair_topic("desk", "state", s.pair) for s in specs]
    assert all(m.retain and m.kind == "state" for m in sent)
    entry = decode_checkpoint(sent[0].payload, tmp_path / "x").body
    assert entry["settings"] == {"bar_ns": SECOND}
    assert entry["state"] == pipeline.actors[0].snapshot()
