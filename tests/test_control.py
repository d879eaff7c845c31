"""Pairs added, changed and removed in a running pipeline (the core of the control channel),
and the request schema: a warm start equals a pair run from the start, a refused change
changes nothing, and no request, however malformed, raises anything but a refusal."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedger.config.control import ControlSettings
from hedger.core.actors import PairSpec
from hedger.core.events import Event, HedgeRatioEvent
from hedger.core.pipeline import Pipeline
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickColumns
from hedger.core.topics import PairId
from hedger.engine import FilterParams, InputMode
from hedger.errors import ConfigError
from hedger.runtime.control import ControlRefusedError, parse_request

S = 1_000_000_000
SYMBOLS = ("A", "B", "C", "D")


def spec(pair: str, **params: Any) -> PairSpec:
    pair_id = PairId.parse(pair)
    return PairSpec(pair_id, FilterParams(n_legs=len(pair_id.xs), **params))


def market(n_bars: int, seed: int = 1) -> list[Tick]:
    """Every symbol ticks once a bar (1 s bars), as positive correlated random walks."""
    rng = np.random.default_rng(seed)
    common = np.cumsum(rng.normal(0, 0.5, n_bars)) + 100.0
    ticks = []
    for k in range(n_bars):
        for i, symbol in enumerate(SYMBOLS):
            price = common[k] * (1.0 + 0.1 * i) + rng.normal(0, 0.2)
            ts = k * S + (i + 1) * 1000
            ticks.append(Tick(symbol, float(price), ts, ts, 1.0, "test"))
    return ticks


class Run:
    """A live pipeline (one-by-one ticks) and what it emitted."""

    def __init__(self, *pairs: PairSpec, symbols: tuple[str, ...] = (), history: int = 10_000):
        self.events: list[Event] = []
        self.pipeline = Pipeline(
            list(pairs), S, 2 * S, self.events.append, Rejects(), symbols=symbols
        )
        self.pipeline.keep_history(history)

    def feed(self, ticks: list[Tick]) -> None:
        for item in ticks:
            self.pipeline.on_tick(item)

    def ratios(self, pair: str) -> list[HedgeRatioEvent]:
        return [e for e in self.events if isinstance(e, HedgeRatioEvent) and e.pair == pair]


def _same_state(a: HedgeRatioEvent, b: HedgeRatioEvent) -> None:
    assert a.ts == b.ts
    np.testing.assert_allclose(a.beta, b.beta, rtol=0, atol=1e-12)
    assert math.isclose(a.alpha, b.alpha, rel_tol=0, abs_tol=1e-12)
    np.testing.assert_allclose(a.cov, b.cov, rtol=0, atol=1e-12)
    assert (a.warm, a.stale) == (b.warm, b.stale)


@pytest.mark.parametrize("mode", ["levels", "log", "changes", "returns"])
@pytest.mark.parametrize("pair", ["A/C", "A/C+D"])
def test_an_added_pair_warms_from_held_bars_to_equal_a_pair_run_from_the_start(
    mode: str, pair: str
) -> None:
    ticks = market(200)
    cut = 120 * len(SYMBOLS)  # ticks of 120 bars, then the add
    new = spec(pair, mode=InputMode(mode))
    reference = Run(spec("A/B"), new, symbols=SYMBOLS)
    reference.feed(ticks)
    live = Run(spec("A/B"), symbols=SYMBOLS)
    live.feed(ticks[:cut])
    closed = live.pipeline.bars_closed
    added = live.pipeline.add_pair(new)
    assert added.warm_bars == closed  # every held bar had a leg ticking
    live.feed(ticks[cut:])

    after = live.ratios(pair)
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
    assert after, "the added pair published nothing"
    earlier = reference.ratios(pair)[-len(after) :]
    for got, want in zip(after, earlier, strict=True):
        _same_state(got, want)
    # the pair that ran all along is not disturbed by the add
    for got, want in zip(live.ratios("A/B"), reference.ratios("A/B"), strict=True):
        _same_state(got, want)


def test_a_pair_with_a_symbol_the_bars_did_not_carry_starts_cold_and_takes_it_from_then() -> None:
    ticks = market(60)
    live = Run(spec("A/B"))
    live.feed(ticks[: 30 * len(SYMBOLS)])
    assert live.pipeline.rejects.counts["unknown_symbol"] > 0  # C was not carried
    before = live.pipeline.rejects.counts["unknown_symbol"]
    added = live.pipeline.add_pair(spec("C/B"))
    assert added.warm_bars == 0
    assert "C" in live.pipeline.symbols
    live.feed(ticks[30 * len(SYMBOLS) :])
    ratios = live.ratios("C/B")
    assert ratios[0].seq == 1 and len(ratios) >= 29
    # D is still unknown, C no longer
    unknown = live.pipeline.rejects.counts["unknown_symbol"] - before
    assert unknown == 30  # D's ticks only


def test_history_is_bounded_and_zero_means_cold() -> None:
    ticks = market(50)
    held = Run(spec("A/B"), symbols=SYMBOLS, history=10)
    held.feed(ticks)
    history = held.pipeline.history
    assert history is not None and len(history.bars) == 10
    assert held.pipeline.add_pair(spec("A/C")).warm_bars == 10
    cold = Run(spec("A/B"), symbols=SYMBOLS, history=0)
    cold.feed(ticks)
    assert cold.pipeline.add_pair(spec("A/C")).warm_bars == 0
    with pytest.raises(ConfigError, match=r"control\.history"):
        cold.pipeline.keep_history(-1)


def test_a_removed_pair_publishes_nothing_more_and_the_others_go_on() -> None:
    ticks = market(40)
    live = Run(spec("A/B"), spec("C/B"))
    live.feed(ticks[: 20 * len(SYMBOLS)])
    seen = len(live.ratios("A/B"))
    removed = live.pipeline.remove_pair("A/B")
    assert removed.pair_id == "A/B" and removed.seq == seen
    live.feed(ticks[20 * len(SYMBOLS) :])
    assert len(live.ratios("A/B")) == seen
    assert len(live.ratios("C/B")) > seen
    assert "A" in live.pipeline.symbols  # still carried: a later add warms from it
    again = live.pipeline.add_pair(spec("A/B"))
    assert again.warm_bars == live.pipeline.bars_closed and again.actor.seq == 0


def test_log_legs_refuse_non_positive_prices_only_while_a_log_pair_runs() -> None:
    live = Run(spec("A/B"), symbols=("A", "B"))
    assert "A" not in live.pipeline.positive_symbols
    live.pipeline.add_pair(spec("B/A", mode=InputMode.LOG))
    assert {"A", "B"} <= live.pipeline.positive_symbols
    live.feed([Tick("A", -1.0, S, S, 1.0, "test")])
    assert live.pipeline.rejects.counts["bad_price"] == 1
    live.pipeline.remove_pair("B/A")
    assert not live.pipeline.positive_symbols
    live.feed([Tick("A", -1.0, 2 * S, 2 * S, 1.0, "test")])
    assert live.pipeline.rejects.counts["bad_price"] == 1


def _state(pipeline: Pipeline) -> list[Any]:
    return [(a.pair_id, a.seq, a.snapshot(), a.params) for a in pipeline.actors] + [
        pipeline.symbols,
        pipeline.positive_symbols,
    ]


def test_refused_changes_change_nothing() -> None:
    live = Run(spec("A/B"), spec("C/B"), symbols=SYMBOLS)
    live.feed(market(30))
    before = _state(live.pipeline)
    refusals: list[tuple[Callable[[], object], str]] = [
        (lambda: live.pipeline.add_pair(spec("A/B")), "already running"),
        (lambda: live.pipeline.remove_pair("A/D"), "not running"),
        (lambda: live.pipeline.update_pair(spec("A/D")), "not running"),
        (
            lambda: live.pipeline.add_pair(PairSpec(PairId.parse("A/D"), FilterParams(n_legs=2))),
            "hedge",
        ),
        (
            lambda: live.pipeline.update_pair(
                PairSpec(PairId.parse("A/B"), FilterParams(n_legs=2))
            ),
            "hedge",
        ),
    ]
    for attempt, words in refusals:
        with pytest.raises(ConfigError, match=words):
            attempt()
        assert _state(live.pipeline) == before


def test_a_pipeline_fed_columns_refuses_changes() -> None:
    pipeline = Pipeline([spec("A/B")], S, S, lambda e: None, Rejects())
    columns = TickColumns(
        ts=np.array([S], dtype=np.int64),
        sym=np.array([0], dtype=np.int64),
        price=np.array([1.0]),
        size=np.array([1.0]),
        has_size=np.array([True]),
        ok=np.array([True]),
    )
    pipeline.on_tick_columns(columns)
    with pytest.raises(ConfigError, match="columns"):
        pipeline.add_pair(spec("B/A"))
    with pytest.raises(ConfigError, match="columns"):
        pipeline.remove_pair("A/B")
    assert [a.pair_id for a in pipeline.actors] == ["A/B"]


def test_update_keeps_the_state_when_only_the_noise_changes_else_rebuilds_with_seq_going_on() -> (
    None
):
    ticks = market(80)
    live = Run(spec("A/B", delta=1e-4, obs_cov=1e-3, adaptive_r=None), symbols=SYMBOLS)
    live.feed(ticks[: 40 * len(SYMBOLS)])
    actor = live.pipeline.actors[0]
    observations = actor.observations
    kept = live.pipeline.update_pair(spec("A/B", delta=1e-5, obs_cov=2e-3, adaptive_r=None))
    assert kept.kept_state and kept.actor is actor and kept.warm_bars == 0
    assert actor.observations == observations and actor.params.obs_cov == 2e-3
    rebuilt = live.pipeline.update_pair(spec("A/B", mode=InputMode.LOG))
    assert not rebuilt.kept_state and rebuilt.actor is not actor
    assert rebuilt.warm_bars == live.pipeline.bars_closed and rebuilt.actor.seq == actor.seq
    assert live.pipeline.actors == [rebuilt.actor]
    assert {"A", "B"} <= live.pipeline.positive_symbols
    live.feed(ticks[40 * len(SYMBOLS) :])
    seqs = [e.seq for e in live.ratios("A/B")]
    assert seqs == list(range(1, len(seqs) + 1))  # one sequence across the rebuild


# The request schema --------------------------------------------------------------------------

CONTROL = ControlSettings(filter_defaults={"delta": 1e-5})


def test_requests_parse_into_specs_over_the_filter_defaults() -> None:
    request = parse_request(
        orjson.dumps({"action": "add_pair", "id": 3, "pair": "y/x", "mode": "returns"}), CONTROL
    )
    assert request.action == "add_pair" and request.id == 3 and request.pair == "y/x"
    assert request.spec is not None
    assert request.spec.params.mode is InputMode.RETURNS
    assert request.spec.params.delta == 1e-5
    assert parse_request(b'{"action":"list_pairs"}', CONTROL).id is None
    removal = parse_request(b'{"action":"remove_pair","pair":"BRK%20B/SPY","id":"r"}', CONTROL)
    assert removal.pair == "BRK%20B/SPY" and removal.spec is None


@pytest.mark.parametrize(
    ("request_text", "reason", "words"),
    [
        (b"{not json", "bad_json", "not valid JSON"),
        (b"[1, 2]", "not_an_object", "object"),
        (b'{"action":"explode"}', "unknown_action", "unknown action 'explode'"),
        (b'{"pair":"A/B"}', "unknown_action", "(missing)"),
        (b'{"action":"add_pair"}', "bad_pair", "needs a pair"),
        (b'{"action":"add_pair","pair":"AB"}', "bad_pair", "Y/X"),
        (b'{"action":"add_pair","pair":"A/B","delta":2.0}', "bad_params", "pairs.A/B.delta"),
        (b'{"action":"add_pair","pair":"A/B","mode":"prices"}', "bad_params", "pairs.A/B.mode"),
        (b'{"action":"add_pair","pair":"A/B","colour":1}', "bad_params", "unknown key"),
        (b'{"action":"remove_pair","pair":"A/B","delta":1}', "bad_params", "only a pair"),
        (b'{"action":"list_pairs","pair":"A/B"}', "bad_params", "no pair"),
        (b'{"action":"list_pairs","id":[1]}', "bad_id", "id must be"),
    ],
)
def test_malformed_requests_are_refused_in_one_line(
    request_text: bytes, reason: str, words: str
) -> None:
    with pytest.raises(ControlRefusedError) as err:
        parse_request(request_text, CONTROL)
    assert err.value.reason == reason
    assert words in err.value.message and "\n" not in err.value.message


def test_a_token_is_checked_before_anything_and_never_repeated() -> None:
    body = {"action": "list_pairs", "token": "wrong-secret"}
    with pytest.raises(ControlRefusedError) as err:
        parse_request(orjson.dumps(body), CONTROL, token="right-secret")
    assert err.value.reason == "unauthorized"
    assert "secret" not in err.value.message
    with pytest.raises(ControlRefusedError, match="unauthorized"):
        parse_request(b'{"action":"list_pairs"}', CONTROL, token="right-secret")
    ok = parse_request(
        orjson.dumps({**body, "token": "right-secret"}), CONTROL, token="right-secret"
    )
    assert ok.action == "list_pairs"
    with pytest.raises(ControlRefusedError, match="disabled"):
        parse_request(b'{"action":"list_pairs"}', ControlSettings(enabled=False))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["action", "id", "pair", "mode", "delta", "obs_cov", "token", "x"]),
        json_values | st.sampled_from(["add_pair", "remove_pair", "A/B", "log"]),
    )
    | json_values
)
def test_any_request_is_either_well_formed_or_refused(body: Any) -> None:
    try:
        data = orjson.dumps(body)
    except (TypeError, orjson.JSONEncodeError):
        return
    try:
        request = parse_request(data, CONTROL)
    except ControlRefusedError as exc:
        assert exc.message and "\n" not in exc.message
        return
    assert request.action in ("add_pair", "remove_pair", "update_pair", "list_pairs")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=30),
            st.sampled_from(["add", "remove", "update"]),
            st.sampled_from(["A/B", "C/D", "A/C+D", "D/B"]),
            st.sampled_from(["levels", "log", "returns"]),
        ),
        max_size=12,
    )
)
def test_any_interleaving_of_changes_and_ticks_keeps_every_pair_sequence_contiguous(
    changes: list[tuple[int, str, str, str]],
) -> None:
    """Whatever is added, updated and removed between which bars: nothing raises but a
    refusal, a refusal changes nothing, and each run of a pair (from its add to its removal)
    publishes ``seq`` 1, 2, 3, ... (an update carries the sequence on)."""
    ticks = market(32)
    live = Run(spec("A/B"), symbols=("A", "B"), history=16)
    at: dict[int, list[tuple[str, str, str]]] = {bar: [] for bar in range(32)}
    for bar, action, pair, mode in changes:
        at[bar].append((action, pair, mode))
    lifetimes: dict[str, int] = {"A/B": 0}  # events seen of the pair's current run
    for bar in range(32):
        for action, pair, mode in at[bar]:
            before = _state(live.pipeline)
            try:
                if action == "add":
                    live.pipeline.add_pair(spec(pair, mode=InputMode(mode)))
                    lifetimes[pair] = 0
                elif action == "remove":
                    live.pipeline.remove_pair(pair)
                    lifetimes.pop(pair)
                else:
                    live.pipeline.update_pair(spec(pair, mode=InputMode(mode)))
            except ConfigError:
                assert _state(live.pipeline) == before
        start = len(live.events)
        live.feed(ticks[bar * len(SYMBOLS) : (bar + 1) * len(SYMBOLS)])
        for event in live.events[start:]:
            if isinstance(event, HedgeRatioEvent):
                assert event.pair in lifetimes, f"{event.pair} published after its removal"
                lifetimes[event.pair] += 1
                assert event.seq == lifetimes[event.pair]
