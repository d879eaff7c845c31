"""Pair ids, topic escaping and the event encoding."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hedger.core.events import HedgeRatioEvent, SpreadEvent, decode, encode
from hedger.core.topics import (
    MAX_REPLAY_ID,
    PairId,
    escape_symbol,
    is_replay_id,
    pair_topic,
    parse_pair_topic,
    replay_reply_topic,
    replay_topic,
    status_topic,
    unescape_symbol,
)
from hedger.errors import ConfigError


def test_pair_ids() -> None:
    assert str(PairId.parse("AAPL/SPY")) == "AAPL/SPY"
    basket = PairId.parse("XLE/USO+UNG")
    assert basket.xs == ("USO", "UNG") and basket.is_basket
    assert str(basket) == "XLE/USO+UNG"
    assert PairId("BRK/B", ("SPY",)).__str__() == "BRK%2FB/SPY"
    assert PairId.parse("BRK%2FB/SPY").y == "BRK/B"


@pytest.mark.parametrize("text", ["AAPL", "AAPL/", "/SPY", "A/B/C", "A/A", "A/B+B"])
def test_bad_pair_ids(text: str) -> None:
    with pytest.raises(ConfigError):
        PairId.parse(text)


def test_topics() -> None:
    pair = PairId("BTC/USD", ("ETH+USD",))
    topic = pair_topic("hedger", "ratio", pair)
    assert topic == "hedger/v1/ratio/BTC%2FUSD/ETH%2BUSD"
    assert parse_pair_topic("hedger", topic) == ("ratio", pair)
    assert status_topic("desk") == "desk/v1/status"
    basket = PairId("XLE", ("USO", "UNG,X"))
    basket_topic = pair_topic("hedger", "spread", basket)
    assert basket_topic == "hedger/v1/spread/XLE/USO,UNG%2CX"
    assert "+" not in basket_topic and "#" not in basket_topic
    assert parse_pair_topic("hedger", basket_topic) == ("spread", basket)
    with pytest.raises(ConfigError):
        pair_topic("hedger", "bogus", pair)


def test_replay_topics() -> None:
    assert replay_topic("desk") == "desk/v1/replay"
    assert replay_reply_topic("desk") == "desk/v1/replay/reply"
    assert replay_reply_topic("desk", "c1f3-7.x_Y") == "desk/v1/replay/reply/c1f3-7.x_Y"
    assert is_replay_id("a" * MAX_REPLAY_ID)
    for bad in ("", "a/b", "a+b", "#", "a b", "é", "a" * (MAX_REPLAY_ID + 1)):
        assert not is_replay_id(bad)
        with pytest.raises(ConfigError, match="replay id"):
            replay_reply_topic("desk", bad)
    assert not any(is_replay_id(value) for value in (7, None, True, ["a"]))


@given(st.text(max_size=80))
def test_a_replay_reply_topic_is_one_level_without_wildcards(text: str) -> None:
    if is_replay_id(text):
        topic = replay_reply_topic("hedger", text)
        assert topic.count("/") == 4 and not set(topic) & set("+#\0")


@given(st.text(min_size=1))
def test_symbol_escaping_round_trips_and_is_topic_safe(symbol: str) -> None:
    escaped = escape_symbol(symbol)
    assert unescape_symbol(escaped) == symbol
    assert not set(escaped) & set("/+#\0 ")


def test_event_encoding_is_the_documented_schema() -> None:
    ratio = HedgeRatioEvent(
        pair="AAPL/SPY",
        seq=7,
        ts=1_700_000_001_000_000_000,
        beta=(0.58,),
        alpha=0.0034,
        cov=((0.005, -1.2), (-1.2, 295.0)),
        beta_std=(math.sqrt(0.005),),
        warm=True,
        stale=False,
    )
    assert list(decode(encode(ratio))) == [
        "type", "version", "pair", "seq", "ts", "ts_init", "mode", "beta", "alpha", "cov",
        "beta_std", "hedge", "prices", "warm", "stale", "outlier",
    ]  # fmt: skip
    held = ratio._replace(position=100.0, hedge_qty=(-58,), hedge_notional=(-58 * 450.0,))
    assert list(decode(encode(held)))[-3:] == ["position", "hedge_qty", "hedge_notional"]
    assert decode(encode(ratio))["beta"] == 0.58
    spread = SpreadEvent("AAPL/SPY", 7, 1, 0.1, math.nan, math.nan, math.nan)
    obj = orjson.loads(encode(spread))
    assert obj == {
        "type": "spread",
        "version": 1,
        "pair": "AAPL/SPY",
        "seq": 7,
        "ts": 1,
        "ts_init": None,
        "spread": 0.1,
        "innovation": None,
        "innovation_std": None,
        "zscore": None,
        "hedged_pnl": None,
        "outlier": False,
    }
    basket = HedgeRatioEvent(
        "Y/A+B", 1, 1, (0.5, 0.25), 1.0, ((1.0,) * 3,) * 3, (1.0, 1.0), False, True
    )
    assert decode(encode(basket))["beta"] == [0.5, 0.25]
    with pytest.raises(ValueError):
        decode(b'{"type": "other"}')
