"""Exchange connectors against recorded responses in each API's wire format (tests/recorded/<exchange>/).

Responses are served through httpx's transport layer (``httpx.MockTransport``); time is a fake
clock passed to the clients, so rate limiting and backoff run instantly and are asserted.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from support.exchanges import (
    CASES,
    EXCHANGES,
    NOW,
    RECORDED,
    T0,
    FakeClock,
    H,
    RecordedServer,
    Reply,
    client_for,
    hours,
    ms,
    one_page,
)

from sentinance.catalog import CANDLE_COLUMNS
from sentinance.pipelines.sources.exchanges import fetch_candles, fetch_series, make_client
from sentinance.pipelines.sources.exchanges.binance import BinanceClient
from sentinance.pipelines.sources.exchanges.coinbase import CoinbaseClient
from sentinance.pipelines.sources.exchanges.http import (
    PRICE_COLUMNS,
    ExchangeError,
    MalformedPayload,
    RetryPolicy,
    TokenBucket,
)
from sentinance.pipelines.sources.exchanges.kraken import KrakenClient
from sentinance.pipelines.sources.simulator import simulate_candles
from sentinance.settings import Universe

# -- every exchange ---------------------------------------------------------------------------


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_success_page(exchange: str) -> None:
    case = CASES[exchange]
    client, server, clock = client_for(exchange, one_page(case, Reply(case.page)))
    frame = client.candles(case.symbol, *case.window)
    assert list(frame.columns) == CANDLE_COLUMNS
    assert len(frame) == case.rows and len(server.requests) == 1
    assert frame[["exchange", "symbol", "interval"]].drop_duplicates().values.tolist() == [
        [exchange, case.symbol, "1h"]
    ]
    assert frame["open_time"].is_monotonic_increasing and frame["open_time"].dt.tz is not None
    assert not frame[PRICE_COLUMNS].isna().any(axis=None)
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert clock.sleeps == []


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_pagination_dedup_and_open_candle(exchange: str) -> None:
    case = CASES[exchange]
    client, server, _ = client_for(exchange, case.pages, page_limit=case.page_limit)
    frame = client.candles(case.symbol, T0, T0 + 6 * H)
    assert frame["open_time"].tolist() == case.paged_times
    assert len(server.requests) == len(case.pages)
    assert frame["open_time"].is_unique


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_empty_page(exchange: str) -> None:
    case = CASES[exchange]
    client, _, _ = client_for(exchange, case.empty)
    frame = client.candles(case.symbol, *case.window)
    assert frame.empty and list(frame.columns) == CANDLE_COLUMNS


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_error_body_names_exchange_endpoint_and_problem(exchange: str, caplog: pytest.LogCaptureFixture) -> None:
    case = CASES[exchange]
    file, status, message = case.error
    client, server, _ = client_for(exchange, one_page(case, Reply(file, status)))
    with caplog.at_level(logging.ERROR), pytest.raises(ExchangeError) as raised:
        fetch_candles(exchange, case.symbol, *case.window, client=client)
    error = raised.value
    assert (error.exchange, error.symbol, error.status) == (exchange, case.symbol, status)
    assert message in str(error) and exchange in str(error) and error.endpoint in str(error)
    assert len(server.requests) == 1  # client errors are not retried
    assert f"candles of {exchange}:{case.symbol} failed" in caplog.text


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_429_waits_retry_after_then_succeeds(exchange: str) -> None:
    case = CASES[exchange]
    routes = one_page(case, Reply(case.rate_limited, 429, {"Retry-After": "3"}), Reply(case.page))
    client, server, clock = client_for(exchange, routes)
    frame = client.candles(case.symbol, *case.window)
    assert len(frame) == case.rows and len(server.requests) == 2
    assert clock.sleeps == [3.0]


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_5xx_retries_with_backoff_until_exhausted(exchange: str) -> None:
    case = CASES[exchange]
    clock = FakeClock()
    client, server, _ = client_for(
        exchange,
        one_page(case, Reply(case.unavailable, 503)),
        clock=clock,
        retry=RetryPolicy(attempts=4, backoff=0.5),
        limiter=TokenBucket(1000, 1000, clock=clock, sleep=clock.sleep),
    )
    with pytest.raises(ExchangeError, match="gave up after 4 attempts: HTTP 503"):
        client.candles(case.symbol, *case.window)
    assert len(server.requests) == 4
    assert len(clock.sleeps) == 3
    for attempt, slept in enumerate(clock.sleeps, start=1):
        cap = 0.5 * 2 ** (attempt - 1)
        assert cap / 2 <= slept <= cap  # exponential, jittered


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_malformed_json(exchange: str) -> None:
    case = CASES[exchange]
    client, _, _ = client_for(exchange, one_page(case, Reply(case.truncated)))
    with pytest.raises(MalformedPayload, match="not valid JSON") as raised:
        client.candles(case.symbol, *case.window)
    assert raised.value.exchange == exchange


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_missing_fields(exchange: str) -> None:
    case = CASES[exchange]
    client, _, _ = client_for(exchange, one_page(case, Reply(case.missing_fields)))
    with pytest.raises(MalformedPayload, match="fields") as raised:
        client.candles(case.symbol, *case.window)
    assert case.symbol in str(raised.value)


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_strings_and_nulls_in_numbers_are_kept_as_nulls(exchange: str, caplog: pytest.LogCaptureFixture) -> None:
    case = CASES[exchange]
    client, _, _ = client_for(exchange, one_page(case, Reply(case.bad_numbers)))
    with caplog.at_level(logging.WARNING):
        frame = client.candles(case.symbol, *case.window)
    assert len(frame) == case.rows  # no row dropped
    assert int(frame[PRICE_COLUMNS].isna().sum().sum()) == 2
    assert "unparseable fields" in caplog.text and "quarantine" in caplog.text


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_replay_reproduces_the_capture_run(exchange: str, tmp_path: Path) -> None:
    case = CASES[exchange]
    captures = tmp_path / "captures"
    client, _, _ = client_for(exchange, case.pages, page_limit=case.page_limit, mode="capture", capture_dir=captures)
    captured = client.candles(case.symbol, T0, T0 + 6 * H)
    files = sorted(
        p
        for p in (captures / exchange / case.symbol.replace("/", "-")).glob("*.json")
        if not p.name.endswith(".meta.json")
    )
    assert len(files) == len(case.pages)

    # days later, offline: any HTTP request would fail the test
    replayer, server, _ = client_for(
        exchange, [], clock=FakeClock(NOW + 10 * 86400), page_limit=case.page_limit, mode="replay", capture_dir=captures
    )
    replayed = replayer.candles(case.symbol, T0, T0 + 6 * H)
    pd.testing.assert_frame_equal(replayed, captured)
    assert server.requests == []


def test_capture_layout_keeps_the_raw_body(tmp_path: Path) -> None:
    case = CASES["binance"]
    client, _, _ = client_for("binance", case.pages, page_limit=3, mode="capture", capture_dir=tmp_path)
    client.candles(case.symbol, T0, T0 + 6 * H)
    first = tmp_path / "binance" / "BTC-USDT" / f"klines-1h-{ms(0)}.json"
    assert first.read_bytes() == (RECORDED / "binance" / "klines-p1.json").read_bytes()
    assert first.with_suffix(".meta.json").exists()


def test_replay_without_capture_fails_clearly(tmp_path: Path) -> None:
    client = make_client("coinbase", mode="replay", capture_dir=tmp_path)
    with pytest.raises(ExchangeError, match="replay: no capture"):
        client.candles("BTC/USD", T0, T0 + 3 * H)


# -- Binance ----------------------------------------------------------------------------------


def test_binance_requests_and_values() -> None:
    case = CASES["binance"]
    client, server, _ = client_for("binance", case.pages, page_limit=3)
    frame = client.candles("BTC/USDT", T0, T0 + 6 * H)
    first = server.requests[0].url.params
    assert dict(first) == {
        "symbol": "BTCUSDT",
        "interval": "1h",
        "startTime": str(ms(0)),
        "endTime": str(ms(6) - 1),
        "limit": "3",
    }
    assert [int(r.url.params["startTime"]) for r in server.requests] == [ms(0), ms(3), ms(5)]
    row = frame.iloc[0]
    assert (row.open, row.high, row.low, row.close, row.volume, row.trade_count) == (
        61130.99,
        61376.44,
        60777.0,
        61095.45,
        1084.57732,
        62412,
    )


def test_binance_agg_trades_paged_by_from_id() -> None:
    routes = [
        ("/api/v3/aggTrades", {"startTime": ms(0)}, [Reply("aggtrades-p1.json")]),
        ("/api/v3/aggTrades", {"fromId": 2921483004}, [Reply("aggtrades-p2.json")]),
    ]
    client, server, _ = client_for("binance", routes, page_limit=3)
    trades = client.trades("BTC/USDT", T0, T0 + timedelta(minutes=1))
    assert len(server.requests) == 2
    assert trades["trade_id"].tolist() == [2921483001, 2921483002, 2921483003, 2921483004]
    assert trades["price"].iloc[1] == 61131.0 and trades["amount"].iloc[1] == 0.2


def test_binance_rate_limiter_charges_request_weight() -> None:
    clock = FakeClock()
    bucket = TokenBucket(BinanceClient.rate, BinanceClient.capacity, clock=clock, sleep=clock.sleep)
    for _ in range(3000):  # klines weight 2: the whole 6000-weight minute in one burst
        bucket.acquire(2)
    assert clock.sleeps == []
    bucket.acquire(2)
    assert clock.sleeps == [pytest.approx(0.02)]  # 100 weight/s refill


def test_retry_after_beyond_the_cap_fails_instead_of_waiting() -> None:
    case = CASES["binance"]
    client, server, clock = client_for("binance", one_page(case, Reply(case.rate_limited, 429, {"Retry-After": "600"})))
    with pytest.raises(ExchangeError, match="Retry-After 600s"):
        client.candles(case.symbol, *case.window)
    assert clock.sleeps == [] and len(server.requests) == 1


# -- Coinbase ---------------------------------------------------------------------------------


def test_coinbase_newest_first_pages_sorted_and_windowed() -> None:
    case = CASES["coinbase"]
    client, server, _ = client_for("coinbase", case.pages, page_limit=3)
    frame = client.candles("BTC/USD", T0, T0 + 6 * H)
    params = [dict(r.url.params) for r in server.requests]
    assert params == [
        {"granularity": "3600", "start": "2024-03-01T00:00:00Z", "end": "2024-03-01T03:00:00Z"},
        {"granularity": "3600", "start": "2024-03-01T03:00:00Z", "end": "2024-03-01T06:00:00Z"},
    ]
    # rows are [time, low, high, open, close, volume]
    row = frame.iloc[0]
    assert (row.open, row.high, row.low, row.close, row.volume) == (61121.51, 61368.9, 60771.1, 61082.05, 471.60218803)
    assert frame["trade_count"].isna().all() and str(frame["trade_count"].dtype) == "Int64"


def test_coinbase_timeout_is_retried() -> None:
    case = CASES["coinbase"]
    client, server, clock = client_for("coinbase", one_page(case, Reply(timeout=True), Reply(case.page)))
    frame = client.candles("BTC/USD", *case.window)
    assert len(frame) == 3 and len(server.requests) == 2
    assert len(clock.sleeps) == 1 and 0.25 <= clock.sleeps[0] <= 0.5


def test_coinbase_trades_paged_by_after_cursor() -> None:
    routes = [
        ("/products/BTC-USD/trades", {"after": 620316004}, [Reply("trades-p2.json")]),
        ("/products/BTC-USD/trades", {}, [Reply("trades-p1.json")]),
    ]
    client, server, _ = client_for("coinbase", routes, page_limit=3)
    trades = client.trades("BTC/USD", T0 + 2 * H, T0 + 3 * H)
    assert [r.url.params.get("after") for r in server.requests] == [None, "620316004"]
    assert trades["trade_id"].tolist() == [620316002, 620316003, 620316004, 620316005, 620316006]
    assert trades["time"].is_monotonic_increasing


# -- Kraken -----------------------------------------------------------------------------------


def test_kraken_backfills_from_trades_by_last_cursor() -> None:
    case = CASES["kraken"]
    client, server, clock = client_for("kraken", case.pages)
    frame = client.candles("BTC/USD", T0, T0 + 6 * H)
    since = str(int(T0.timestamp()) - 1)
    assert dict(server.requests[0].url.params) == {"pair": "XBTUSD", "interval": "60", "since": since}
    assert [r.url.params.get("since") for r in server.requests[1:]] == ["1709251200000000000", "1709256611904516829"]
    expected = pd.DataFrame(
        {
            "open": [61121.5, 61300.0, 61500.0, 61609.9, 61700.1],
            "high": [61350.0, 61410.0, 61600.0, 61797.4, 62146.2],
            "low": [61080.1, 61300.0, 61500.0, 61441.0, 61690.0],
            "close": [61080.1, 61410.0, 61600.0, 61700.1, 62040.0],
            "volume": [0.365, 0.25, 0.32, 95.83270331, 143.22018734],
        }
    )
    np.testing.assert_allclose(frame[PRICE_COLUMNS].to_numpy(), expected.to_numpy())
    assert frame["trade_count"].tolist() == [3, 2, 2, 3111, 4478]
    assert clock.sleeps == [1.0, 1.0]  # ~1 request/s public limit


def test_kraken_last_ohlc_entry_is_never_final() -> None:
    case = CASES["kraken"]
    # two hours later the 05:00 entry would be closed by the clock, but Kraken's last entry is the open one
    client, _, _ = client_for("kraken", one_page(case, Reply(case.page)), clock=FakeClock(NOW + 2 * 3600))
    frame = client.candles("BTC/USD", T0 + 3 * H, T0 + 6 * H)
    assert frame["open_time"].tolist() == hours(3, 4)


def test_kraken_rate_limit_in_body_is_retried() -> None:
    case = CASES["kraken"]
    client, server, clock = client_for("kraken", one_page(case, Reply(case.rate_limited), Reply(case.page)))
    frame = client.candles("BTC/USD", *case.window)
    assert len(frame) == 2 and len(server.requests) == 2
    backoff, limiter = clock.sleeps  # a jittered backoff, then the 1 request/s bucket tops up the rest
    assert 0.25 <= backoff <= 0.5 and backoff + limiter == pytest.approx(1.0)


# -- naming, registry, contract ---------------------------------------------------------------


def test_instrument_naming_and_interval_codes() -> None:
    assert BinanceClient.market(Universe().symbol("binance", "BTC")) == "BTCUSDT"
    assert CoinbaseClient.product(Universe().symbol("coinbase", "ETH")) == "ETH-USD"
    assert KrakenClient.pair(Universe().symbol("kraken", "BTC")) == "XBTUSD"
    assert KrakenClient.result_keys("BTC/USD") == ("XBTUSD", "XXBTZUSD")
    assert KrakenClient.result_keys("SOL/USD")[0] == "SOLUSD"
    codes = {name: make_client(name).interval_code("1h") for name in EXCHANGES}
    assert codes == {"binance": "1h", "coinbase": 3600, "kraken": 60}
    with pytest.raises(ValueError, match="intervals"):
        make_client("coinbase").interval_code("4h")


def test_fetch_candles_matches_the_simulator_contract() -> None:
    case = CASES["binance"]
    clock = FakeClock()
    server = RecordedServer("binance", case.pages)
    frame = fetch_candles(
        "binance",
        "BTC/USDT",
        T0,
        T0 + 6 * H,
        transport=httpx.MockTransport(server),
        page_limit=3,
        sleep=clock.sleep,
        clock=clock,
    )
    simulated = simulate_candles(T0, T0 + 2 * H, seed=7, exchanges=["binance"], assets=["BTC"])
    assert list(frame.columns) == list(simulated.columns) == CANDLE_COLUMNS
    for column in CANDLE_COLUMNS:
        if column != "trade_count":  # nullable Int64 here: some APIs lack it
            assert frame[column].dtype == simulated[column].dtype, column


def test_fetch_series_records_failures_per_series() -> None:
    binance, kraken = CASES["binance"], CASES["kraken"]
    routes = {"binance": one_page(binance, Reply(binance.page)), "kraken": one_page(kraken, Reply(kraken.error[0]))}
    clock = FakeClock()

    def transport(request: httpx.Request) -> httpx.Response:
        exchange = "binance" if request.url.host == "api.binance.com" else "kraken"
        return RecordedServer(exchange, routes[exchange])(request)

    result = fetch_series(
        {("binance", "BTC/USDT"): binance.window, ("kraken", "BTC/USD"): kraken.window},
        transport=httpx.MockTransport(transport),
        sleep=clock.sleep,
        clock=clock,
    )
    assert len(result.candles) == 3
    assert list(result.failures) == ["kraken:BTC/USD"]
    assert "EQuery:Unknown asset pair" in result.failures["kraken:BTC/USD"]


@pytest.mark.parametrize(
    ("start", "symbol", "message"),
    [
        (datetime(2024, 3, 1), "BTC/USDT", "timezone-aware"),
        (T0 + timedelta(minutes=30), "BTC/USDT", "aligned"),
        (T0, "BTCUSDT", "BASE/QUOTE"),
    ],
)
def test_bad_input_is_rejected(start: datetime, symbol: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_client("binance").candles(symbol, start, T0 + 3 * H)
