"""Venue adapters (Binance, Coinbase, Alpaca, Polygon): parsing of recorded-style messages,
fuzzing of ``parse``, and end to end through :class:`feeds.websocket.WebSocketFeed` against a real
local websockets server (scripted conversations, a reconnect)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve

from feeds.protocol import VenueProtocol
from feeds.reconnect import Backoff
from feeds.venues.alpaca import AlpacaStocks
from feeds.venues.binance import BinanceSpot
from feeds.venues.coinbase import CoinbaseExchange
from feeds.venues.fields import parse_rfc3339_ns
from feeds.venues.polygon import PolygonStocks
from feeds.websocket import WebSocketFeed
from hedger.core.rejects import Rejects
from hedger.core.ticks import Tick, TickKind

TRADE, QUOTE = TickKind.TRADE, TickKind.QUOTE
RECV = 1_700_000_000_999_000_001
"""ts_recv handed to parse in unit tests."""


class RecordingLogger:
    """Stands in for structlog: a detail key that collides with the logger's own arguments
    (``event``, ``reason``, ``source``, ``count``) fails here as it would there."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))


def run(adapter: VenueProtocol, *messages: str | bytes) -> tuple[list[Tick], dict[str, int]]:
    """Parse messages in order at RECV; the ticks and the reject counts."""
    rejects = Rejects(RecordingLogger(), first=1000)
    ticks: list[Tick] = []
    for message in messages:
        ticks.extend(adapter.parse(message, RECV, rejects))
    return ticks, rejects.summary()


# --------------------------------------------------------------------------------------------
# Binance


BINANCE_TRADE = (
    '{"e":"trade","E":1700000000123,"s":"BTCUSDT","t":3271234567,"p":"37123.45000000",'
    '"q":"0.00250000","T":1700000000121,"m":false,"M":true}'
)
BINANCE_AGG_COMBINED = (
    '{"stream":"ethusdt@aggTrade","data":{"e":"aggTrade","E":1700000000456,"s":"ETHUSDT",'
    '"a":987654321,"p":"2050.10000000","q":"1.50000000","f":1200300,"l":1200305,'
    '"T":1700000000455,"m":true,"M":true}}'
)
BINANCE_BOOK = (
    '{"u":400900217,"s":"BTCUSDT","b":"37123.44000000","B":"1.20000000",'
    '"a":"37123.46000000","A":"0.30000000"}'
)
BINANCE_BOOK_COMBINED = (
    '{"stream":"ethusdt@bookTicker","data":{"u":400900218,"s":"ETHUSDT","b":"2050.09000000",'
    '"B":"3.10000000","a":"2050.11000000","A":"2.00000000"}}'
)
BINANCE_REPLY = '{"result":null,"id":1}'
BINANCE_ERROR = '{"code":2,"msg":"Invalid request: unknown variant `SUBSCRIPE`","id":1}'
BINANCE_MINI_TICKER = (
    '{"e":"24hrMiniTicker","E":1700000000999,"s":"BTCUSDT","c":"37123.45","o":"36000.00",'
    '"h":"37500.00","l":"35900.00","v":"1234.5","q":"45678901.2"}'
)


def test_binance_trade() -> None:
    ticks, rejects = run(BinanceSpot(["BTCUSDT"]), BINANCE_TRADE)
    assert ticks == [
        Tick("BTCUSDT", 37123.45, 1_700_000_000_121_000_000, RECV, 0.0025, "binance", TRADE)
    ]
    assert rejects == {}


def test_binance_agg_trade_in_combined_stream() -> None:
    ticks, rejects = run(BinanceSpot(["ethusdt"]), BINANCE_AGG_COMBINED)
    assert ticks == [
        Tick("ETHUSDT", 2050.1, 1_700_000_000_455_000_000, RECV, 1.5, "binance", TRADE)
    ]
    assert rejects == {}


def test_binance_book_ticker_raw_and_combined_is_a_quote_at_the_mid_at_receive_time() -> None:
    ticks, rejects = run(BinanceSpot(["BTCUSDT"]), BINANCE_BOOK, BINANCE_BOOK_COMBINED)
    assert ticks == [
        Tick("BTCUSDT", (37123.44 + 37123.46) / 2.0, RECV, RECV, None, "binance", QUOTE),
        Tick("ETHUSDT", (2050.09 + 2050.11) / 2.0, RECV, RECV, None, "binance", QUOTE),
    ]
    assert rejects == {}


def test_binance_book_ticker_with_a_time_uses_it() -> None:
    message = (
        '{"e":"bookTicker","u":400900219,"E":1700000001001,"T":1700000001000,"s":"BTCUSDT",'
        '"b":"10.0","B":"1","a":"12.0","A":"1"}'
    )
    expected = [Tick("BTCUSDT", 11.0, 1_700_000_001_000_000_000, RECV, None, "binance", QUOTE)]
    assert run(BinanceSpot(["BTCUSDT"]), message) == (expected, {})
    assert run(BinanceSpot(["BTCUSDT"]), message.replace('"e":"bookTicker",', "")) == (expected, {})
    bad_time = message.replace('"T":1700000001000', '"T":null')
    assert run(BinanceSpot(["BTCUSDT"]), bad_time) == ([], {"bad_timestamp": 1})


def test_binance_control_error_and_unknown_messages() -> None:
    adapter = BinanceSpot(["BTCUSDT"])
    ticks, rejects = run(adapter, BINANCE_REPLY, BINANCE_ERROR, BINANCE_MINI_TICKER)
    assert ticks == []
    assert rejects == {"venue_error": 1}
    assert adapter.skipped == 1
    nested_error = '{"error":{"code":-1121,"msg":"Invalid symbol."},"id":3}'
    assert run(adapter, nested_error) == ([], {"venue_error": 1})


def test_binance_all_market_array_and_bytes() -> None:
    both = f"[{BINANCE_TRADE},{BINANCE_BOOK}]".encode()
    ticks, rejects = run(BinanceSpot(["BTCUSDT"]), both)
    assert [(t.kind, t.price) for t in ticks] == [
        (TRADE, 37123.45),
        (QUOTE, (37123.44 + 37123.46) / 2.0),
    ]
    assert rejects == {}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json", "malformed"),
        (b"\xff\xfe", "malformed"),
        ("null", "malformed"),
        ("[1]", "malformed"),
        ('{"stream":"btcusdt@trade"}', "malformed"),
        (BINANCE_TRADE.replace('"s":"BTCUSDT"', '"s":7'), "malformed"),
        (BINANCE_TRADE.replace('"e":"trade"', '"e":["trade"]'), "malformed"),
        (BINANCE_TRADE.replace('"37123.45000000"', '"NaN"'), "bad_price"),
        (BINANCE_TRADE.replace('"37123.45000000"', '"Infinity"'), "bad_price"),
        (BINANCE_TRADE.replace('"37123.45000000"', '"1e400"'), "bad_price"),
        (BINANCE_TRADE.replace('"37123.45000000"', '"0.00000000"'), "bad_price"),
        (BINANCE_TRADE.replace('"37123.45000000"', '"-1.5"'), "bad_price"),
        (BINANCE_TRADE.replace('"37123.45000000"', '"1_000"'), "bad_price"),
        (BINANCE_TRADE.replace('"37123.45000000"', "true"), "bad_price"),
        (BINANCE_TRADE.replace('"p":"37123.45000000",', ""), "bad_price"),
        (BINANCE_BOOK.replace('"37123.46000000"', '"0.00000000"'), "bad_price"),
        (BINANCE_TRADE.replace('"T":1700000000121', '"T":"1700000000121"'), "bad_timestamp"),
        (BINANCE_TRADE.replace('"T":1700000000121', '"T":-5'), "bad_timestamp"),
        (BINANCE_TRADE.replace('"T":1700000000121', '"T":99999999999999999'), "bad_timestamp"),
        (
            BINANCE_TRADE.replace('"T":1700000000121,', "").replace('"E":1700000000123,', ""),
            "bad_timestamp",
        ),
    ],
)
def test_binance_rejects(message: str | bytes, reason: str) -> None:
    assert run(BinanceSpot(["BTCUSDT"]), message) == ([], {reason: 1})


def test_binance_trade_without_trade_time_uses_event_time() -> None:
    ticks, _ = run(BinanceSpot(["BTCUSDT"]), BINANCE_TRADE.replace('"T":1700000000121,', ""))
    assert [t.ts_event for t in ticks] == [1_700_000_000_123_000_000]


def test_binance_subscription() -> None:
    adapter = BinanceSpot(["BTCUSDT", "ethusdt"], streams=("aggTrade", "bookTicker"))
    assert [json.loads(m) for m in adapter.subscribe_messages()] == [
        {
            "method": "SUBSCRIBE",
            "params": [
                "btcusdt@aggTrade",
                "btcusdt@bookTicker",
                "ethusdt@aggTrade",
                "ethusdt@bookTicker",
            ],
            "id": 1,
        }
    ]
    with pytest.raises(ValueError, match="streams"):
        BinanceSpot(["BTCUSDT"], streams=("depth",))
    with pytest.raises(ValueError, match="symbol"):
        BinanceSpot([])


# --------------------------------------------------------------------------------------------
# Coinbase


COINBASE_MATCH = (
    '{"type":"match","trade_id":10,"sequence":50,'
    '"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8",'
    '"taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1",'
    '"time":"2014-11-07T08:19:27.028459Z","product_id":"BTC-USD","size":"5.23512",'
    '"price":"400.23","side":"sell"}'
)
COINBASE_LAST_MATCH = (
    '{"type":"last_match","trade_id":461948687,'
    '"maker_order_id":"335d96b3-e77a-411b-924c-a6acbbe8affb",'
    '"taker_order_id":"ebe2f71e-513a-4084-97d1-4d5809be161b","side":"sell",'
    '"size":"0.00251665","price":"1933.93","product_id":"ETH-USD","sequence":47388972940,'
    '"time":"2023-07-16T12:19:57.255067Z"}'
)
COINBASE_TICKER = (
    '{"type":"ticker","sequence":37475248783,"product_id":"ETH-USD","price":"1285.22",'
    '"open_24h":"1310.79","volume_24h":"245532.79269678","low_24h":"1280.52",'
    '"high_24h":"1313.8","volume_30d":"9788783.60117027","best_bid":"1285.04",'
    '"best_bid_size":"0.46688654","best_ask":"1285.27","best_ask_size":"1.56637040",'
    '"side":"buy","time":"2022-10-19T23:28:22.061769Z","trade_id":370843401,'
    '"last_size":"11.4396987"}'
)
COINBASE_TICKER_SNAPSHOT = (
    '{"type":"ticker","sequence":305122881,"product_id":"LTC-BTC","price":"0.00915000",'
    '"open_24h":"0.00913000","volume_24h":"61559.04412384","low_24h":"0.00903000",'
    '"high_24h":"0.00963000","volume_30d":"2306951.35609583","best_bid":"0.00915",'
    '"best_ask":"0.00916"}'
)
COINBASE_INACTIVE_SNAPSHOT = (
    '{"type":"ticker","product_id":"HBAR-USD","price":"0","open_24h":"0","volume_24h":"0",'
    '"low_24h":"0","high_24h":"0","volume_30d":"0","best_bid":"0.00000","best_ask":"0.00000"}'
)
COINBASE_SUBSCRIPTIONS = (
    '{"type":"subscriptions","channels":[{"name":"matches","product_ids":["BTC-USD"]},'
    '{"name":"ticker","product_ids":["BTC-USD"]},{"name":"heartbeat","product_ids":["BTC-USD"]}]}'
)
COINBASE_HEARTBEAT = (
    '{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD",'
    '"time":"2014-11-07T08:19:28.464459Z"}'
)
COINBASE_ERROR = '{"type":"error","message":"Failed to subscribe","reason":"No channels provided"}'
COINBASE_L2 = (
    '{"type":"l2update","product_id":"BTC-USD","time":"2019-08-14T20:42:27.265Z",'
    '"changes":[["buy","10101.80000000","0.162567"]]}'
)


def test_coinbase_matches() -> None:
    ticks, rejects = run(CoinbaseExchange(["BTC-USD"]), COINBASE_MATCH, COINBASE_LAST_MATCH)
    assert ticks == [
        Tick("BTC-USD", 400.23, 1_415_348_367_028_459_000, RECV, 5.23512, "coinbase", TRADE),
        Tick("ETH-USD", 1933.93, 1_689_509_997_255_067_000, RECV, 0.00251665, "coinbase", TRADE),
    ]
    assert rejects == {}


def test_coinbase_ticker_is_a_quote_at_the_mid() -> None:
    ticks, rejects = run(CoinbaseExchange(["ETH-USD"]), COINBASE_TICKER)
    mid = (1285.04 + 1285.27) / 2.0
    assert ticks == [Tick("ETH-USD", mid, 1_666_222_102_061_769_000, RECV, None, "coinbase", QUOTE)]
    assert rejects == {}


def test_coinbase_subscribe_snapshot_ticker_has_no_time_and_takes_the_receive_time() -> None:
    ticks, rejects = run(CoinbaseExchange(["LTC-BTC"]), COINBASE_TICKER_SNAPSHOT)
    assert ticks == [
        Tick("LTC-BTC", (0.00915 + 0.00916) / 2.0, RECV, RECV, None, "coinbase", QUOTE)
    ]
    assert rejects == {}
    assert run(CoinbaseExchange(["HBAR-USD"]), COINBASE_INACTIVE_SNAPSHOT) == ([], {"bad_price": 1})


def test_coinbase_control_error_and_unknown_messages() -> None:
    adapter = CoinbaseExchange(["BTC-USD"])
    ticks, rejects = run(
        adapter, COINBASE_SUBSCRIPTIONS, COINBASE_HEARTBEAT, COINBASE_ERROR, COINBASE_L2
    )
    assert ticks == []
    assert rejects == {"venue_error": 1}
    assert adapter.skipped == 1


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("{", "malformed"),
        ("[]", "malformed"),
        ('{"type":7}', "malformed"),
        ('{"product_id":"BTC-USD"}', "malformed"),
        (COINBASE_MATCH.replace('"product_id":"BTC-USD",', ""), "malformed"),
        (COINBASE_MATCH.replace('"400.23"', '"nan"'), "bad_price"),
        (COINBASE_MATCH.replace('"400.23"', '"0"'), "bad_price"),
        (COINBASE_MATCH.replace('"400.23"', "null"), "bad_price"),
        (COINBASE_TICKER.replace('"best_ask":"1285.27",', ""), "bad_price"),
        (
            COINBASE_MATCH.replace("2014-11-07T08:19:27.028459Z", "2014-11-07 08:19"),
            "bad_timestamp",
        ),
        (
            COINBASE_MATCH.replace("2014-11-07T08:19:27.028459Z", "2014-02-30T08:19:27Z"),
            "bad_timestamp",
        ),
        (COINBASE_MATCH.replace('"time":"2014-11-07T08:19:27.028459Z",', ""), "bad_timestamp"),
        (COINBASE_TICKER.replace('"2022-10-19T23:28:22.061769Z"', "1666222102"), "bad_timestamp"),
    ],
)
def test_coinbase_rejects(message: str, reason: str) -> None:
    assert run(CoinbaseExchange(["BTC-USD"]), message) == ([], {reason: 1})


def test_coinbase_subscription() -> None:
    adapter = CoinbaseExchange(["BTC-USD", "ETH-USD"])
    assert [json.loads(m) for m in adapter.subscribe_messages()] == [
        {
            "type": "subscribe",
            "product_ids": ["BTC-USD", "ETH-USD"],
            "channels": ["matches", "ticker", "heartbeat"],
        }
    ]
    with pytest.raises(ValueError, match="product"):
        CoinbaseExchange([""])


# --------------------------------------------------------------------------------------------
# Alpaca


ALPACA_CONNECTED = '[{"T":"success","msg":"connected"}]'
ALPACA_AUTHENTICATED = '[{"T":"success","msg":"authenticated"}]'
ALPACA_SUBSCRIPTION = (
    '[{"T":"subscription","trades":["AAPL"],"quotes":["AMD"],"bars":[],"updatedBars":[],'
    '"dailyBars":[],"statuses":[],"lulds":[],"corrections":["AAPL"],"cancelErrors":["AAPL"]}]'
)
ALPACA_TRADE = (
    '{"T":"t","i":96921,"S":"AAPL","x":"D","p":126.55,"s":1,"t":"2021-02-22T15:51:44.208Z",'
    '"c":["@","I"],"z":"C"}'
)
ALPACA_QUOTE = (
    '{"T":"q","S":"AMD","bx":"U","bp":87.66,"bs":1,"ax":"Q","ap":87.68,"as":4,'
    '"t":"2021-02-22T15:51:45.335689322Z","c":["R"],"z":"C"}'
)
ALPACA_BAR = (
    '{"T":"b","S":"SPY","o":388.985,"h":389.13,"l":388.975,"c":389.12,"v":49378,'
    '"t":"2021-02-22T19:15:00Z","n":461,"vw":389.062639}'
)
ALPACA_AUTH_FAILED = '[{"T":"error","code":402,"msg":"auth failed"}]'


def alpaca(symbols: Sequence[str] = ("AAPL",)) -> AlpacaStocks:
    return AlpacaStocks(symbols, key="PKTEST", secret="s3cr3t")


def test_alpaca_trade_and_quote_with_nanosecond_times() -> None:
    ticks, rejects = run(alpaca(), f"[{ALPACA_TRADE}]", f"[{ALPACA_QUOTE}]")
    assert ticks == [
        Tick("AAPL", 126.55, 1_614_009_104_208_000_000, RECV, 1.0, "alpaca", TRADE),
        Tick("AMD", (87.66 + 87.68) / 2.0, 1_614_009_105_335_689_322, RECV, None, "alpaca", QUOTE),
    ]
    assert rejects == {}


def test_alpaca_mixed_array_and_control_messages() -> None:
    adapter = alpaca()
    ticks, rejects = run(
        adapter,
        ALPACA_CONNECTED,
        ALPACA_AUTHENTICATED,
        ALPACA_SUBSCRIPTION,
        f"[{ALPACA_TRADE},{ALPACA_BAR},{ALPACA_QUOTE},42]".encode(),
        ALPACA_AUTH_FAILED,
    )
    assert [(t.symbol, t.kind) for t in ticks] == [("AAPL", TRADE), ("AMD", QUOTE)]
    assert rejects == {"venue_error": 1, "malformed": 1}
    assert adapter.skipped == 1


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (ALPACA_TRADE.replace('"T":"t"', '"T":null'), "malformed"),
        (ALPACA_TRADE.replace('"S":"AAPL",', ""), "malformed"),
        (ALPACA_TRADE.replace('"p":126.55', '"p":"126.55"'), "bad_price"),
        (ALPACA_TRADE.replace('"p":126.55', '"p":0'), "bad_price"),
        (ALPACA_QUOTE.replace('"ap":87.68', '"ap":0'), "bad_price"),
        (ALPACA_QUOTE.replace('"bp":87.66,', ""), "bad_price"),
        (
            ALPACA_TRADE.replace("2021-02-22T15:51:44.208Z", "2021-02-22T15:51:44.208"),
            "bad_timestamp",
        ),
        (ALPACA_TRADE.replace("2021-02-22T15:51:44.208Z", "2021-02-22T15:51:60Z"), "bad_timestamp"),
        (ALPACA_TRADE.replace('"2021-02-22T15:51:44.208Z"', "1614009104208"), "bad_timestamp"),
    ],
)
def test_alpaca_rejects(item: str, reason: str) -> None:
    assert run(alpaca(), f"[{item}]") == ([], {reason: 1})
    assert run(alpaca(), item) == ([], {"malformed": 1})  # not in an array


def test_alpaca_subscription_authenticates_first() -> None:
    adapter = AlpacaStocks(["AAPL", "MSFT"], key="PKTEST", secret="s3cr3t", quotes=False)
    assert [json.loads(m) for m in adapter.subscribe_messages()] == [
        {"action": "auth", "key": "PKTEST", "secret": "s3cr3t"},
        {"action": "subscribe", "trades": ["AAPL", "MSFT"]},
    ]
    assert "s3cr3t" not in repr(adapter)
    with pytest.raises(ValueError, match="trades, quotes"):
        AlpacaStocks(["AAPL"], key="k", secret="s", trades=False, quotes=False)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2021-02-22T15:51:44.208Z", 1_614_009_104_208_000_000),
        ("2021-02-22T15:51:45.335689322Z", 1_614_009_105_335_689_322),
        ("2021-02-22T15:51:45.335689322999Z", 1_614_009_105_335_689_322),
        ("2021-02-22T10:51:45.335689322-05:00", 1_614_009_105_335_689_322),
        ("2021-02-23t01:21:45.000000001+09:30", 1_614_009_105_000_000_001),
        ("2024-02-29 00:00:00.5z", 1_709_164_800_500_000_000),
        ("1969-12-31T23:59:59.999999999Z", -1),
    ],
)
def test_parse_rfc3339_ns_exact(text: str, ns: int) -> None:
    assert parse_rfc3339_ns(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2021-02-22",
        "2021-02-22T15:51:44",
        "2021-02-22T15:51:44.Z",
        "2021-02-22T24:00:00Z",
        "2021-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2021-02-22T15:51:44+2400",
        "2021-02-22T15:51:44+24:00",
        "\uff12\uff10\uff12\uff11-02-22T15:51:44Z",  # full-width digits
        " 2021-02-22T15:51:44Z",
    ],
)
def test_parse_rfc3339_ns_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339_ns(text)


@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    extra_ns=st.integers(0, 999),
    offset_minutes=st.integers(-23 * 60, 23 * 60),
)
def test_parse_rfc3339_ns_agrees_with_datetime(
    moment: datetime, extra_ns: int, offset_minutes: int
) -> None:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    expected = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000 + extra_ns
    local = moment + timedelta(minutes=offset_minutes)
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond:06d}{extra_ns:03d}"
    assert parse_rfc3339_ns(f"{text}{sign}{hours:02d}:{minutes:02d}") == expected


# --------------------------------------------------------------------------------------------
# Polygon


POLYGON_CONNECTED = '[{"ev":"status","status":"connected","message":"Connected Successfully"}]'
POLYGON_AUTHENTICATED = '[{"ev":"status","status":"auth_success","message":"authenticated"}]'
POLYGON_SUBSCRIBED = '[{"ev":"status","status":"success","message":"subscribed to: T.AAPL"}]'
POLYGON_AUTH_FAILED = '[{"ev":"status","status":"auth_failed","message":"authentication failed"}]'
POLYGON_TRADE = (
    '{"ev":"T","sym":"AAPL","x":4,"i":"52983525029461","z":3,"p":192.31,"s":100,"c":[12,37],'
    '"t":1748476801234,"q":1063}'
)
POLYGON_TRADE_2 = POLYGON_TRADE.replace("192.31", "192.35").replace(
    "1748476801234", "1748476801301"
)
POLYGON_QUOTE = (
    '{"ev":"Q","sym":"MSFT","bx":11,"bp":415.02,"bs":2,"ax":12,"ap":415.08,"as":3,"c":1,'
    '"i":[604],"t":1748476801240,"q":50385480,"z":3}'
)
POLYGON_AGG = (
    '{"ev":"A","sym":"AAPL","v":5400,"av":1234567,"op":191.5,"vw":192.305,"o":192.3,'
    '"c":192.31,"h":192.34,"l":192.28,"a":192.1,"z":54,"s":1748476800000,"e":1748476801000}'
)


def polygon(symbols: Sequence[str] = ("AAPL",)) -> PolygonStocks:
    return PolygonStocks(symbols, api_key="pk_test")


def test_polygon_trade_and_quote() -> None:
    ticks, rejects = run(polygon(), f"[{POLYGON_TRADE},{POLYGON_QUOTE}]")
    assert ticks == [
        Tick("AAPL", 192.31, 1_748_476_801_234_000_000, RECV, 100.0, "polygon", TRADE),
        Tick(
            "MSFT", (415.02 + 415.08) / 2.0, 1_748_476_801_240_000_000, RECV, None, "polygon", QUOTE
        ),
    ]
    assert rejects == {}


def test_polygon_statuses_and_unknown_events() -> None:
    adapter = polygon()
    ticks, rejects = run(
        adapter,
        POLYGON_CONNECTED,
        POLYGON_AUTHENTICATED,
        POLYGON_SUBSCRIBED,
        f"[{POLYGON_AGG},{POLYGON_TRADE}]",
        POLYGON_AUTH_FAILED,
        '[{"ev":"status","status":"max_connections","message":"Maximum number of connections"}]',
        '[{"ev":"status","status":["odd"]}]',
    )
    assert [t.symbol for t in ticks] == ["AAPL"]
    assert rejects == {"venue_error": 3}
    assert adapter.skipped == 1


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ('{"sym":"AAPL"}', "malformed"),
        (POLYGON_TRADE.replace('"sym":"AAPL",', '"sym":"",'), "malformed"),
        (POLYGON_TRADE.replace('"p":192.31', '"p":-192.31'), "bad_price"),
        (POLYGON_TRADE.replace('"p":192.31', '"p":1e999'), "malformed"),  # not JSON (orjson)
        (POLYGON_QUOTE.replace('"bp":415.02', '"bp":null'), "bad_price"),
        (POLYGON_TRADE.replace('"t":1748476801234', '"t":1748476801234.5'), "bad_timestamp"),
        (POLYGON_TRADE.replace('"t":1748476801234', '"t":0'), "bad_timestamp"),
        (POLYGON_TRADE.replace('"t":1748476801234', '"t":"2025-05-29"'), "bad_timestamp"),
    ],
)
def test_polygon_rejects(item: str, reason: str) -> None:
    assert run(polygon(), f"[{item}]") == ([], {reason: 1})


def test_polygon_integral_float_time_is_accepted() -> None:
    item = POLYGON_TRADE.replace('"t":1748476801234', '"t":1748476801234.0')
    assert [t.ts_event for t in run(polygon(), f"[{item}]")[0]] == [1_748_476_801_234_000_000]


def test_polygon_subscription_authenticates_first() -> None:
    adapter = PolygonStocks(["AAPL", "MSFT"], api_key="pk_test")
    assert [json.loads(m) for m in adapter.subscribe_messages()] == [
        {"action": "auth", "params": "pk_test"},
        {"action": "subscribe", "params": "T.AAPL,Q.AAPL,T.MSFT,Q.MSFT"},
    ]
    only_quotes = PolygonStocks(["AAPL"], api_key="pk_test", trades=False)
    assert json.loads(only_quotes.subscribe_messages()[1]) == {
        "action": "subscribe",
        "params": "Q.AAPL",
    }


# --------------------------------------------------------------------------------------------
# Fuzzing: parse never raises and yields only sane ticks


def _venues() -> list[VenueProtocol]:
    return [BinanceSpot(["BTCUSDT"]), CoinbaseExchange(["BTC-USD"]), alpaca(), polygon()]


VENUE_IDS = ["binance", "coinbase", "alpaca", "polygon"]

numeric_text = st.one_of(
    st.floats().map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(
        ["NaN", "nan", "inf", "-inf", "1e400", "-0", "0", "0.0", "1_000", " 1", "0x10", "١٢", ""]
    ),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
    numeric_text,
    st.sampled_from(["2021-02-22T15:51:44.208123456Z", "2014-11-07T08:19:27.028459Z", "T"]),
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)


field_values = st.one_of(
    leaves,
    st.lists(leaves, max_size=3),
    st.dictionaries(st.text(max_size=4), leaves, max_size=3),
    json_values,
)


def _shaped(types: Sequence[str], type_key: str, keys: Sequence[str]) -> st.SearchStrategy[Any]:
    """Objects that look like a venue's messages, with arbitrary values in their fields."""
    type_values = st.one_of(*(st.just(t) for t in types), field_values)  # each type as likely
    return st.fixed_dictionaries(
        {type_key: type_values}, optional={key: field_values for key in keys}
    )


binance_events = _shaped(
    ["trade", "aggTrade", "24hrTicker"],
    "e",
    ["s", "p", "q", "T", "E", "u", "b", "a", "result", "code", "error", "msg", "id"],
)
binance_messages = st.one_of(
    binance_events,
    st.lists(binance_events, max_size=3),
    st.fixed_dictionaries(
        {"stream": st.text(max_size=8)},
        optional={"data": binance_events | st.lists(binance_events, max_size=3) | json_values},
    ),
)
coinbase_messages = _shaped(
    ["match", "last_match", "ticker", "error", "heartbeat", "subscriptions", "done"],
    "type",
    ["product_id", "price", "size", "time", "best_bid", "best_ask", "message", "reason"],
)
alpaca_messages = st.lists(
    _shaped(
        ["t", "q", "b", "success", "subscription", "error"],
        "T",
        ["S", "p", "s", "bp", "ap", "t", "msg", "code"],
    ),
    max_size=6,
)
polygon_messages = st.lists(
    _shaped(
        ["T", "Q", "A", "status"], "ev", ["sym", "p", "s", "bp", "ap", "t", "status", "message"]
    ),
    max_size=6,
)
SHAPED = {
    "binance": binance_messages,
    "coinbase": coinbase_messages,
    "alpaca": alpaca_messages,
    "polygon": polygon_messages,
}


def _check_parse(adapter: VenueProtocol, message: str | bytes) -> None:
    logger = RecordingLogger()
    rejects = Rejects(logger, first=1000)
    ticks = adapter.parse(message, RECV, rejects)
    assert isinstance(ticks, list)
    assert "internal_error" not in rejects.counts, logger.lines
    for tick in ticks:
        assert isinstance(tick, Tick)
        assert isinstance(tick.price, float) and math.isfinite(tick.price) and tick.price > 0
        assert isinstance(tick.ts_event, int) and 0 < tick.ts_event < 2**63
        assert tick.ts_recv == RECV
        assert tick.venue == adapter.name
        assert isinstance(tick.symbol, str) and tick.symbol
        assert tick.size is None or (math.isfinite(tick.size) and tick.size >= 0)
        assert tick.kind in (TRADE, QUOTE)


@pytest.mark.parametrize("index", range(4), ids=VENUE_IDS)
@settings(max_examples=100, deadline=None)
@given(raw=st.text() | st.binary())
def test_fuzz_arbitrary_text_and_bytes(index: int, raw: str | bytes) -> None:
    _check_parse(_venues()[index], raw)


@pytest.mark.parametrize("index", range(4), ids=VENUE_IDS)
@settings(max_examples=150, deadline=None)
@given(value=json_values, as_bytes=st.booleans())
def test_fuzz_arbitrary_json(index: int, value: Any, as_bytes: bool) -> None:
    text = json.dumps(value)
    _check_parse(_venues()[index], text.encode() if as_bytes else text)


@pytest.mark.parametrize("venue", VENUE_IDS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_fuzz_venue_shaped_json(venue: str, data: st.DataObject) -> None:
    value = data.draw(SHAPED[venue])
    _check_parse(_venues()[VENUE_IDS.index(venue)], json.dumps(value))


# --------------------------------------------------------------------------------------------
# End to end: WebSocketFeed against a local websockets server

AT_RECV = -1
"""In expected ticks: ``ts_event`` equal to the tick's own ``ts_recv`` (quotes without a venue
time)."""


@dataclasses.dataclass
class Conversation:
    """A scripted server side: ``("send", text)`` / ``("send", bytes)`` steps and
    ``("recv", json)`` steps (the client's message, parsed, is recorded for the test)."""

    adapter: Callable[[], VenueProtocol]
    steps: list[tuple[str, Any]]
    ticks: list[Tick]
    rejects: dict[str, int]
    skipped: int

    @property
    def sent(self) -> int:
        return sum(1 for kind, _ in self.steps if kind == "send")

    @property
    def expected_received(self) -> list[Any]:
        return [value for kind, value in self.steps if kind == "recv"]


def _tick(
    symbol: str, price: float, ts_event: int, size: float | None, venue: str, kind: TickKind
) -> Tick:
    return Tick(symbol, price, ts_event, 0, size, venue, kind)


CONVERSATIONS: dict[str, Conversation] = {
    "binance": Conversation(
        adapter=lambda: BinanceSpot(["BTCUSDT", "ETHUSDT"], streams=("trade", "bookTicker")),
        steps=[
            (
                "recv",
                {
                    "method": "SUBSCRIBE",
                    "params": [
                        "btcusdt@trade",
                        "btcusdt@bookTicker",
                        "ethusdt@trade",
                        "ethusdt@bookTicker",
                    ],
                    "id": 1,
                },
            ),
            ("send", BINANCE_REPLY),
            ("send", BINANCE_TRADE),
            ("send", "{oops"),
            ("send", BINANCE_BOOK.encode()),
            ("send", BINANCE_MINI_TICKER),
            ("send", BINANCE_TRADE.replace('"37123.45000000"', '"-3"')),
            ("send", BINANCE_ERROR),
            ("send", BINANCE_AGG_COMBINED),
        ],
        ticks=[
            _tick("BTCUSDT", 37123.45, 1_700_000_000_121_000_000, 0.0025, "binance", TRADE),
            _tick("BTCUSDT", (37123.44 + 37123.46) / 2.0, AT_RECV, None, "binance", QUOTE),
            _tick("ETHUSDT", 2050.1, 1_700_000_000_455_000_000, 1.5, "binance", TRADE),
        ],
        rejects={"malformed": 1, "bad_price": 1, "venue_error": 1},
        skipped=1,
    ),
    "coinbase": Conversation(
        adapter=lambda: CoinbaseExchange(["BTC-USD", "ETH-USD"]),
        steps=[
            (
                "recv",
                {
                    "type": "subscribe",
                    "product_ids": ["BTC-USD", "ETH-USD"],
                    "channels": ["matches", "ticker", "heartbeat"],
                },
            ),
            ("send", COINBASE_SUBSCRIPTIONS),
            ("send", COINBASE_LAST_MATCH),
            ("send", COINBASE_HEARTBEAT),
            ("send", "\x00garbage"),
            ("send", COINBASE_TICKER),
            ("send", COINBASE_L2),
            ("send", COINBASE_MATCH.replace("2014-11-07T08:19:27.028459Z", "yesterday")),
            ("send", COINBASE_ERROR),
            ("send", COINBASE_MATCH.encode()),
        ],
        ticks=[
            _tick("ETH-USD", 1933.93, 1_689_509_997_255_067_000, 0.00251665, "coinbase", TRADE),
            _tick(
                "ETH-USD",
                (1285.04 + 1285.27) / 2.0,
                1_666_222_102_061_769_000,
                None,
                "coinbase",
                QUOTE,
            ),
            _tick("BTC-USD", 400.23, 1_415_348_367_028_459_000, 5.23512, "coinbase", TRADE),
        ],
        rejects={"malformed": 1, "bad_timestamp": 1, "venue_error": 1},
        skipped=1,
    ),
    "alpaca": Conversation(
        adapter=lambda: AlpacaStocks(["AAPL", "AMD"], key="PKTEST", secret="s3cr3t"),
        steps=[
            ("send", ALPACA_CONNECTED),
            ("recv", {"action": "auth", "key": "PKTEST", "secret": "s3cr3t"}),
            ("send", ALPACA_AUTHENTICATED),
            (
                "recv",
                {"action": "subscribe", "trades": ["AAPL", "AMD"], "quotes": ["AAPL", "AMD"]},
            ),
            ("send", ALPACA_SUBSCRIPTION),
            ("send", f"[{ALPACA_TRADE},{ALPACA_BAR}]"),
            ("send", '{"T":"t"}'),
            ("send", f"[{ALPACA_QUOTE.replace('87.68', '0')}]"),
            ("send", '[{"T":"error","code":405,"msg":"symbol limit exceeded"}]'),
            ("send", f"[{ALPACA_QUOTE}]".encode()),
        ],
        ticks=[
            _tick("AAPL", 126.55, 1_614_009_104_208_000_000, 1.0, "alpaca", TRADE),
            _tick("AMD", (87.66 + 87.68) / 2.0, 1_614_009_105_335_689_322, None, "alpaca", QUOTE),
        ],
        rejects={"malformed": 1, "bad_price": 1, "venue_error": 1},
        skipped=1,
    ),
    "polygon": Conversation(
        adapter=lambda: PolygonStocks(["AAPL", "MSFT"], api_key="pk_test"),
        steps=[
            ("send", POLYGON_CONNECTED),
            ("recv", {"action": "auth", "params": "pk_test"}),
            ("send", POLYGON_AUTHENTICATED),
            ("recv", {"action": "subscribe", "params": "T.AAPL,Q.AAPL,T.MSFT,Q.MSFT"}),
            ("send", POLYGON_SUBSCRIBED),
            ("send", f"[{POLYGON_TRADE},{POLYGON_AGG},{POLYGON_QUOTE}]"),
            ("send", "[{]"),
            ("send", f"[{POLYGON_TRADE.replace('1748476801234', '-1')}]"),
            ("send", f"[{POLYGON_TRADE_2}]".encode()),
        ],
        ticks=[
            _tick("AAPL", 192.31, 1_748_476_801_234_000_000, 100.0, "polygon", TRADE),
            _tick(
                "MSFT", (415.02 + 415.08) / 2.0, 1_748_476_801_240_000_000, None, "polygon", QUOTE
            ),
            _tick("AAPL", 192.35, 1_748_476_801_301_000_000, 100.0, "polygon", TRADE),
        ],
        rejects={"malformed": 1, "bad_timestamp": 1},
        skipped=1,
    ),
}


class ScriptedServer:
    """Plays one script per connection (the last one again for any further connection) and
    records, per connection, what the client sent. After its script a connection is closed
    by the server if ``close_after`` says so, else held open until the client leaves."""

    def __init__(self, scripts: list[list[tuple[str, Any]]], close_after: list[bool]) -> None:
        self.scripts = scripts
        self.close_after = close_after
        self.received: list[list[Any]] = []

    async def handler(self, ws: ServerConnection) -> None:
        index = min(len(self.received), len(self.scripts) - 1)
        received: list[Any] = []
        self.received.append(received)
        for kind, value in self.scripts[index]:
            if kind == "send":
                await ws.send(value)
            else:
                received.append(json.loads(await ws.recv()))
        if not self.close_after[index]:
            await ws.wait_closed()


def _normalize(ticks: Sequence[Tick]) -> list[Tick]:
    return [
        dataclasses.replace(
            t, ts_recv=0, ts_event=AT_RECV if t.ts_event == t.ts_recv else t.ts_event
        )
        for t in ticks
    ]


async def _collect(feed: WebSocketFeed, count: int, timeout: float = 5.0) -> list[Tick]:
    got: list[Tick] = []
    async with asyncio.timeout(timeout):
        async for tick in feed:
            got.append(tick)
            if len(got) == count:
                break
    return got


@pytest.mark.parametrize("venue", VENUE_IDS)
async def test_feed_end_to_end(venue: str) -> None:
    talk = CONVERSATIONS[venue]
    server = ScriptedServer([talk.steps], close_after=[False])
    adapter = talk.adapter()
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        before = time.time_ns()
        async with WebSocketFeed(f"ws://127.0.0.1:{port}", adapter) as feed:
            ticks = await _collect(feed, len(talk.ticks))
            after = time.time_ns()
            assert feed.messages == talk.sent
            assert feed.rejects.summary() == talk.rejects
            assert feed.reconnects == 0
    assert server.received == [talk.expected_received]
    assert _normalize(ticks) == talk.ticks
    assert all(before <= t.ts_recv <= after for t in ticks)
    assert getattr(adapter, "skipped", None) == talk.skipped


@pytest.mark.parametrize("venue", VENUE_IDS)
async def test_feed_reconnects_and_subscribes_again(venue: str) -> None:
    talk = CONVERSATIONS[venue]
    # first connection: the handshake and the first data message, then the server hangs up;
    # second connection: the handshake again and the rest of the data
    last_recv = max(i for i, step in enumerate(talk.steps) if step[0] == "recv")
    first_data = last_recv + 2  # after the subscription's acknowledgement
    first = talk.steps[: first_data + 1]
    second = talk.steps[:first_data] + talk.steps[first_data + 1 :]
    server = ScriptedServer([first, second], close_after=[True, False])
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        backoff = Backoff(initial=0.01, maximum=0.05)
        feed = WebSocketFeed(f"ws://127.0.0.1:{port}", talk.adapter(), backoff=backoff, seed=1)
        async with feed:
            ticks = await _collect(feed, len(talk.ticks))
            assert feed.reconnects == 1
            assert feed.rejects.summary() == talk.rejects
    assert server.received == [talk.expected_received, talk.expected_received]
    assert _normalize(ticks) == talk.ticks
