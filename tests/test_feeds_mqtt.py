"""The MQTT tick feed: the payload parser on its own, then the feed against a real mosquitto
broker, including the broker going away and coming back on the same port."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

import aiomqtt
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.mqtt import MqttTickFeed, parse_tick_payload, timestamp_parser
from feeds.reconnect import Backoff
from hedger.core.lifecycle import Lifecycle, State
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind
from hedger.errors import TransportError
from tests.waiting import eventually

if TYPE_CHECKING:
    from tests.mosquitto import MosquittoBroker

# the `mosquitto` fixture (imported here only for types, so that pytest can load it as a
# plugin with its assertions rewritten)

TS_S = 1_700_000_000
TS_NS = TS_S * 1_000_000_000
RECV = 1_800_000_000_000_000_000


def state_of(component: Lifecycle) -> State:
    """The component's state now (a call, so that mypy does not narrow it between steps)."""
    return component.state


def parse(payload: bytes | str, rejects: Rejects | None = None, unit: str = "auto") -> list[Tick]:
    return parse_tick_payload(payload, RECV, rejects or Rejects(), timestamp_parser(unit))


def tick(
    symbol: str,
    price: float,
    ts: int,
    size: float | None = None,
    kind: TickKind = TickKind.TRADE,
    ts_recv: int = RECV,
) -> Tick:
    return Tick(symbol, price, ts, ts_recv, size, "mqtt", kind)


# --- the payload parser -------------------------------------------------------------------


def test_one_trade() -> None:
    payload = b'{"ts": 1700000000, "symbol": "AAPL", "price": 189.5, "size": 100}'
    assert parse(payload) == [tick("AAPL", 189.5, TS_NS, 100.0)]


def test_a_quote_becomes_a_quote_tick_at_the_mid() -> None:
    payload = b'{"ts": 1700000000, "symbol": "MSFT", "bid": 370.0, "ask": 370.5}'
    assert parse(payload) == [tick("MSFT", 370.25, TS_NS, kind=TickKind.QUOTE)]


def test_an_array_gives_its_ticks_in_order() -> None:
    payload = orjson.dumps(
        [
            {"ts": TS_S, "symbol": "A", "price": 1.5},
            {"ts": TS_S + 1, "symbol": "B", "bid": "2", "ask": "3", "size": "7"},
            {"ts": TS_S + 2, "symbol": "A", "price": "1.25"},
        ]
    )
    assert parse(payload) == [
        tick("A", 1.5, TS_NS),
        tick("B", 2.5, TS_NS + 1_000_000_000, 7.0, TickKind.QUOTE),
        tick("A", 1.25, TS_NS + 2_000_000_000),
    ]


def test_bad_items_of_an_array_are_rejected_one_by_one() -> None:
    rejects = Rejects()
    payload = orjson.dumps(
        [
            {"ts": TS_S, "symbol": "A", "price": 1.0},
            {"ts": TS_S, "symbol": "A", "price": "-"},
            7,
            {"ts": "later", "symbol": "A", "price": 1.0},
            {"ts": TS_S + 1, "symbol": "B", "price": 2.0},
        ]
    )
    assert parse(payload, rejects) == [tick("A", 1.0, TS_NS), tick("B", 2.0, TS_NS + 10**9)]
    assert rejects.summary() == {"bad_price": 1, "bad_timestamp": 1, "malformed": 1}


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1_700_000_000, TS_NS),
        (1_700_000_000.5, TS_NS + 500_000_000),
        ("1700000000.000000001", TS_NS + 1),
        (1_700_000_000_123, TS_NS + 123_000_000),
        (1_700_000_000_123_456, TS_NS + 123_456_000),
        (1_700_000_000_123_456_789, TS_NS + 123_456_789),
        ("2023-11-14T22:13:20Z", TS_NS),
        ("2023-11-14T23:13:20.25+01:00", TS_NS + 250_000_000),
    ],
)
def test_timestamps_in_any_unit(ts: object, expected: int) -> None:
    payload = orjson.dumps({"ts": ts, "symbol": "X", "price": 1.0})
    assert [t.ts_event for t in parse(payload)] == [expected]


def test_auto_units_are_judged_per_message() -> None:
    """A stream is not a file: one message in ms must not make later seconds read as ms."""
    parse_ts = timestamp_parser("auto")
    assert parse_ts(1_700_000_000_000) == TS_NS
    assert parse_ts(1_700_000_000) == TS_NS
    assert parse_ts("2023-11-14T22:13:20Z") == TS_NS
    with pytest.raises(ValueError):
        parse_ts(1e300)
    assert parse_ts(1_700_000_000) == TS_NS


def test_a_fixed_unit_is_obeyed() -> None:
    payload = orjson.dumps({"ts": 1_700_000_000_000, "symbol": "X", "price": 1.0})
    assert [t.ts_event for t in parse(payload, unit="ms")] == [TS_NS]
    rejects = Rejects()
    iso = orjson.dumps({"ts": "2023-11-14T22:13:20Z", "symbol": "X", "price": 1.0})
    assert parse(iso, rejects, unit="s") == []
    assert rejects.summary() == {"bad_timestamp": 1}
    with pytest.raises(ValueError):
        timestamp_parser("fortnights")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "malformed"),
        (b"not json", "malformed"),
        (b'{"ts": 1700000000, "symbol": "A", "price": 1', "malformed"),
        (b"\xff\xfe{}", "malformed"),
        (b"42", "malformed"),
        (b'"AAPL"', "malformed"),
        (b"null", "malformed"),
        (b"[[]]", "malformed"),
        (b'{"ts": 1700000000, "price": 1}', "malformed"),
        (b'{"ts": 1700000000, "symbol": "", "price": 1}', "malformed"),
        (b'{"ts": 1700000000, "symbol": 5, "price": 1}', "malformed"),
        (b'{"ts": 1700000000, "symbol": ["A"], "price": 1}', "malformed"),
        (b'{"symbol": "A", "price": 1}', "bad_timestamp"),
        (b'{"ts": null, "symbol": "A", "price": 1}', "bad_timestamp"),
        (b'{"ts": "yesterday", "symbol": "A", "price": 1}', "bad_timestamp"),
        (b'{"ts": "2023-13-45T00:00:00", "symbol": "A", "price": 1}', "bad_timestamp"),
        (b'{"ts": true, "symbol": "A", "price": 1}', "bad_timestamp"),
        (b'{"ts": -5, "symbol": "A", "price": 1}', "bad_timestamp"),
        (b'{"ts": 1e300, "symbol": "A", "price": 1}', "bad_timestamp"),
        (b'{"ts": "NaN", "symbol": "A", "price": 1}', "bad_timestamp"),
        (b'{"ts": [1700000000], "symbol": "A", "price": 1}', "bad_timestamp"),
        (b'{"ts": 1700000000, "symbol": "A"}', "bad_price"),
        (b'{"ts": 1700000000, "symbol": "A", "price": null}', "bad_price"),
        (b'{"ts": 1700000000, "symbol": "A", "price": "abc"}', "bad_price"),
        (b'{"ts": 1700000000, "symbol": "A", "price": "NaN"}', "bad_price"),
        (b'{"ts": 1700000000, "symbol": "A", "price": "inf"}', "bad_price"),
        (b'{"ts": 1700000000, "symbol": "A", "price": true}', "bad_price"),
        (b'{"ts": 1700000000, "symbol": "A", "price": {"v": 1}}', "bad_price"),
        (b'{"ts": 1700000000, "symbol": "A", "bid": 1}', "bad_price"),
        (b'{"ts": 1700000000, "symbol": "A", "bid": "x", "ask": 2}', "bad_price"),
    ],
)
def test_malformed_payloads_are_counted_not_raised(payload: bytes, reason: str) -> None:
    rejects = Rejects()
    assert parse(payload, rejects) == []
    assert rejects.summary() == {reason: 1}


@pytest.mark.parametrize(
    ("payload", "price"),
    [
        (b'{"ts": 1700000000, "symbol": "A", "price": 0}', 0.0),
        (b'{"ts": 1700000000, "symbol": "A", "price": -3.5}', -3.5),
        (b'{"ts": 1700000000, "symbol": "A", "bid": -1, "ask": 0}', -0.5),
    ],
)
def test_numbers_at_or_below_zero_are_left_to_the_bar_rule(payload: bytes, price: float) -> None:
    # a spread or a future may trade at or below 0; the pairs' modes decide (hedger.core.bars)
    rejects = Rejects()
    assert [t.price for t in parse(payload, rejects)] == [price]
    assert rejects.summary() == {}


@pytest.mark.parametrize("size", ["abc", -1, None, True, "nan", [1]])
def test_an_unusable_size_is_dropped_not_the_tick(size: object) -> None:
    rejects = Rejects()
    payload = orjson.dumps({"ts": TS_S, "symbol": "A", "price": 2.0, "size": size})
    assert parse(payload, rejects) == [tick("A", 2.0, TS_NS)]
    assert rejects.total == 0


def test_a_huge_quote_does_not_overflow_its_mid() -> None:
    payload = b'{"ts": 1700000000, "symbol": "A", "bid": 1.7e308, "ask": 1.7e308}'
    assert parse(payload) == [tick("A", 1.7e308, TS_NS, kind=TickKind.QUOTE)]


def test_text_payloads_are_accepted() -> None:
    assert parse('{"ts": 1700000000, "symbol": "Ä", "price": 1}') == [tick("Ä", 1.0, TS_NS)]


def test_rejects_name_the_topic() -> None:
    rejects = Rejects()
    parse_tick_payload(b"?", RECV, rejects, timestamp_parser(), source="ticks/x")
    assert rejects.counts["malformed"] == 1


def _assert_sane(ticks: list[Tick]) -> None:
    for t in ticks:
        assert math.isfinite(t.price)
        assert t.price > 0.0
        assert 0 <= t.ts_event < 2**63
        assert t.ts_recv == RECV
        assert t.symbol
        assert t.size is None or (math.isfinite(t.size) and t.size >= 0.0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    _assert_sane(parse(payload))


_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["1700000000", "2023-11-14T22:13:20Z", "NaN", "-inf", "1e400", "0x10"]),
)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
_tick_like = st.dictionaries(
    st.sampled_from(["ts", "symbol", "price", "bid", "ask", "size"]), _json_value
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_tick_like, _json_value), max_size=6))
def test_every_item_is_a_tick_or_a_reject(items: list[object]) -> None:
    try:
        payload = orjson.dumps(items)
    except orjson.JSONEncodeError:  # integers beyond 64 bits
        return
    rejects = Rejects()
    ticks = parse(payload, rejects)
    _assert_sane(ticks)
    assert len(ticks) + rejects.total == len(items)


# --- construction -------------------------------------------------------------------------


def test_url_credentials_and_defaults() -> None:
    feed = MqttTickFeed("mqtt://trader:s%40cret@broker.example", "ticks/+/AAPL")
    assert (feed.host, feed.port, feed.topics) == ("broker.example", 1883, ["ticks/+/AAPL"])
    assert (feed._broker.username, feed._broker.password) == ("trader", "s@cret")
    assert feed._broker.tls_context is None
    assert feed.url == "mqtt://trader:***@broker.example:1883"  # never the password
    secure = MqttTickFeed("mqtts://broker.example", username="u", password="p")
    assert secure.port == 8883
    assert isinstance(secure._broker.tls_context, ssl.SSLContext)
    assert (secure._broker.username, secure._broker.password) == ("u", "p")
    assert MqttTickFeed("mqtt://h:1", tls=True)._broker.tls_context is not None
    assert MqttTickFeed("mqtt://h", tls=True).port == 8883


@pytest.mark.parametrize(
    "make",
    [
        lambda: MqttTickFeed("http://broker:1883"),
        lambda: MqttTickFeed("broker:1883"),
        lambda: MqttTickFeed("mqtt://broker", []),
        lambda: MqttTickFeed("mqtt://broker", ["ticks/#/AAPL"]),
        lambda: MqttTickFeed("mqtt://broker", qos=3),
        lambda: MqttTickFeed("mqtt://broker", ts_unit="days"),
    ],
)
def test_bad_settings_fail_at_construction(make: Callable[[], MqttTickFeed]) -> None:
    with pytest.raises(TransportError) as caught:
        make()
    assert caught.value.transport == "mqtt" and caught.value.problem


# --- against a real broker ----------------------------------------------------------------


def test_a_missing_broker_binary_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.mosquitto as helper  # noqa: PLC0415 (loaded by pytest as a plugin)

    monkeypatch.delenv("MOSQUITTO", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(helper, "_SEARCH_PATHS", ())
    with pytest.raises(helper.MosquittoNotFoundError, match="apt-get install mosquitto"):
        helper.find_mosquitto()


FAST = Backoff(initial=0.02, maximum=0.2, factor=2.0, jitter=0.2)


def prefix() -> str:
    return f"hedger-test/{uuid.uuid4().hex[:12]}"


async def take(ticks: AsyncIterator[Tick], n: int, timeout: float = 5.0) -> list[Tick]:
    async with asyncio.timeout(timeout):
        return [await anext(ticks) for _ in range(n)]


async def publish(
    broker: MosquittoBroker, messages: Sequence[tuple[str, bytes]], qos: int = 1
) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=qos)


def received(ticks: list[Tick], before: int, after: int) -> list[Tick]:
    """The ticks with their receive times checked and zeroed, to compare with expectations."""
    for t in ticks:
        assert before <= t.ts_recv <= after
    return [dataclasses.replace(t, ts_recv=0) for t in ticks]


def trade(symbol: str, price: float, seq: int, size: float | None = None) -> bytes:
    return orjson.dumps({"ts": TS_S + seq, "symbol": symbol, "price": price, "size": size})


def expected(symbol: str, price: float, seq: int, size: float | None = None) -> Tick:
    return tick(symbol, price, TS_NS + seq * 1_000_000_000, size, ts_recv=0)


async def test_ticks_arrive_in_order_and_malformed_messages_are_counted(
    mosquitto: MosquittoBroker,
) -> None:
    root = prefix()
    feed = MqttTickFeed(mosquitto.url, [f"{root}/ticks/#"], backoff=FAST)
    async with feed:
        await asyncio.wait_for(feed.wait_connected(), 5)
        before = time.time_ns()
        messages = [
            (f"{root}/ticks/AAA", trade("AAA", 10.0, 0, 5)),
            (f"{root}/ticks/BBB", trade("BBB", 20.0, 1)),
            (f"{root}/ticks/AAA", b"garbage"),
            (f"{root}/other/AAA", trade("AAA", 99.0, 2)),  # outside the subscription
            (
                f"{root}/ticks/batch",
                orjson.dumps(
                    [
                        {"ts": TS_S + 3, "symbol": "AAA", "price": 10.5},
                        {"ts": TS_S + 4, "symbol": "BBB", "bid": 19.0, "ask": 21.0},
                        {"ts": "soon", "symbol": "BBB", "price": 1.0},
                    ]
                ),
            ),
            (f"{root}/ticks/BBB", orjson.dumps({"ts": TS_S + 5, "symbol": "BBB", "price": "x"})),
            (f"{root}/ticks/deep/er/AAA", trade("AAA", 11.0, 6)),
        ]
        await publish(mosquitto, messages)
        ticks = await take(aiter(feed), 5)
        after = time.time_ns()
        assert received(ticks, before, after) == [
            expected("AAA", 10.0, 0, 5.0),
            expected("BBB", 20.0, 1),
            expected("AAA", 10.5, 3),
            dataclasses.replace(expected("BBB", 20.0, 4), kind=TickKind.QUOTE),
            expected("AAA", 11.0, 6),
        ]
        # the last tick came after every bad message, so all of them have been counted
        assert feed.rejects.summary() == {"bad_price": 1, "bad_timestamp": 1, "malformed": 1}
        assert feed.messages == 6
        assert feed.reconnects == 0
    assert not feed.connected


async def test_several_filters_and_many_ticks_keep_their_order(
    mosquitto: MosquittoBroker,
) -> None:
    root = prefix()
    topics = [f"{root}/equities/+", f"{root}/fx/EURUSD"]
    n = 2_000
    symbols = ["SPY", "QQQ", "EURUSD"]
    topic_of = {"SPY": topics[0][:-1] + "SPY", "QQQ": topics[0][:-1] + "QQQ", "EURUSD": topics[1]}
    async with MqttTickFeed(mosquitto.url, topics, qos=1, backoff=FAST) as feed:
        await asyncio.wait_for(feed.wait_connected(), 5)
        messages = []
        for i in range(n):
            symbol = symbols[i % 3]
            messages.append((topic_of[symbol], trade(symbol, 100.0 + i, i)))
        ticks_task = asyncio.create_task(take(aiter(feed), n, timeout=10))
        await publish(mosquitto, messages)
        ticks = await ticks_task
    assert [(t.symbol, t.price) for t in ticks] == [(symbols[i % 3], 100.0 + i) for i in range(n)]
    assert feed.rejects.total == 0


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_the_feed_reconnects_when_the_broker_comes_back(
    mosquitto: MosquittoBroker, outage: str
) -> None:
    root = prefix()
    topic = f"{root}/ticks/AAA"
    async with MqttTickFeed(mosquitto.url, [f"{root}/ticks/#"], backoff=FAST) as feed:
        await asyncio.wait_for(feed.wait_connected(), 5)
        ticks = aiter(feed)
        await publish(mosquitto, [(topic, trade("AAA", 1.0, 0))])
        assert [t.price for t in await take(ticks, 1)] == [1.0]

        await asyncio.to_thread(mosquitto.stop if outage == "stop" else mosquitto.kill)
        await eventually(lambda: feed.reconnects >= 1)
        assert not feed.connected
        assert state_of(feed) is State.DEGRADED
        # a few failed attempts while the broker is away
        await eventually(lambda: feed.reconnector.attempts >= 4)
        assert feed.connections == 1

        await asyncio.to_thread(mosquitto.start)
        await asyncio.wait_for(feed.wait_connected(), 5)
        assert state_of(feed) is State.RUNNING
        assert feed.connections == 2
        assert feed.reconnects >= 3
        # failed attempts back off, the first after a connection at the initial delay, all
        # within the cap
        delays = list(feed.reconnector.delays)
        assert delays[0] <= FAST.initial and delays[1] > delays[0]
        assert max(delays) <= FAST.maximum

        await publish(mosquitto, [(topic, trade("AAA", 2.0, 1)), (topic, trade("AAA", 3.0, 2))])
        assert [t.price for t in await take(ticks, 2)] == [2.0, 3.0]
        assert feed.rejects.total == 0


async def test_a_feed_started_before_the_broker_connects_when_it_is_up(
    mosquitto: MosquittoBroker,
) -> None:
    root = prefix()
    await asyncio.to_thread(mosquitto.stop)
    async with MqttTickFeed(mosquitto.url, [f"{root}/#"], backoff=FAST) as feed:
        await eventually(lambda: feed.reconnects >= 2)
        assert not feed.connected
        await asyncio.to_thread(mosquitto.start)
        await asyncio.wait_for(feed.wait_connected(), 5)
        await publish(mosquitto, [(f"{root}/x", trade("X", 4.0, 0))])
        assert [t.price for t in await take(aiter(feed), 1)] == [4.0]


async def test_close_is_idempotent_prompt_and_ends_iteration(mosquitto: MosquittoBroker) -> None:
    root = prefix()
    feed = MqttTickFeed(mosquitto.url, [f"{root}/#"], backoff=FAST)
    async with feed:
        await asyncio.wait_for(feed.wait_connected(), 5)
        await publish(mosquitto, [(f"{root}/x", trade("X", 4.0, 0))])
        await eventually(lambda: feed.messages == 1)

        got: list[Tick] = []

        async def consume() -> list[Tick]:
            async for t in feed:
                got.append(t)
            return got

        consumer = asyncio.create_task(consume())
        await eventually(lambda: len(got) == 1)
        assert not consumer.done()  # waiting for more
        # close while reconnecting, too: in a backoff delay that would never end by itself
        never = asyncio.Event()
        waited: list[float] = []

        async def endless(delay: float) -> None:
            waited.append(delay)
            await never.wait()

        feed.reconnector.sleep = endless
        await asyncio.to_thread(mosquitto.stop)
        await eventually(lambda: waited != [])
        assert state_of(feed) is State.DEGRADED
        await asyncio.wait_for(feed.close(), 5)  # the guard fails only if close hangs
        assert state_of(feed) is State.STOPPED
        await feed.close()
        assert [t.price for t in await asyncio.wait_for(consumer, 2)] == [4.0]
    await feed.close()
    assert state_of(feed) is State.STOPPED
    assert [t async for t in feed] == []
