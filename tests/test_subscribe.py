"""The subscriber's bookkeeping: repeats dropped, gaps reported, a restarted daemon followed."""

from __future__ import annotations

import orjson

from hedger.cli.subscribe import RatioBoard


def ratio(pair: str, seq: int, ts: int, beta: float = 1.0) -> bytes:
    return orjson.dumps(
        {"type": "hedge_ratio", "version": 1, "pair": pair, "seq": seq, "ts": ts, "beta": beta,
         "alpha": 0.0, "cov": [[1.0]], "beta_std": 0.1, "warm": True, "stale": False}
    )  # fmt: skip


def test_repeats_gaps_and_restarts() -> None:
    board = RatioBoard()
    assert board.accept(ratio("A/B", 7, 700), 0.0) == (orjson.loads(ratio("A/B", 7, 700)), 0)
    assert board.accept(ratio("A/B", 7, 700), 0.1)[0] is None  # the retained copy again
    event, missed = board.accept(ratio("A/B", 10, 1000), 0.2)
    assert event is not None and missed == 2
    view = board.pairs["A/B"]
    assert (view.gaps, view.missing, view.repeats) == (1, 2, 1)
    # the daemon restarted: seq counts from 1 again, on newer bars
    event, missed = board.accept(ratio("A/B", 1, 2000, beta=1.2), 0.3)
    assert event is not None and event["beta"] == 1.2 and missed == 0
    assert view.restarts == 1
    assert board.accept(ratio("A/B", 2, 2100), 0.4)[0] is not None
    assert "A/B" in board.render(1.0, "mqtt://x") and "1.00000" in board.render_line("A/B", 1.0)


def test_malformed_messages_are_counted() -> None:
    board = RatioBoard()
    for payload in (b"not json", b"[1, 2]", b'{"type": "spread"}', b'{"type": "hedge_ratio"}'):
        assert board.accept(payload, 0.0) == (None, 0)
    assert board.malformed == 4
