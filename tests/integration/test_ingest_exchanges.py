"""The ``ingest`` flow on recorded exchange responses (tests/fixtures/exchanges/): five exchanges, ten assets,
two intervals, candles and trades; capture -> replay bit-identical; bans; candles and trades independent.

The only fake is the network boundary: recorded responses served below ccxt (a ``requests`` adapter);
ccxt, the flow, GX, Delta and Prefect run for real. Each test has a state dir of its own (a setting).
"""

from __future__ import annotations

import json
import tempfile
import time
from urllib.parse import parse_qsl

import pandas as pd
import pytest
from support.exchanges import (
    ASSETS,
    END,
    ERRORS,
    EXCHANGES,
    FIXTURES,
    INTERVALS,
    START,
    UNIVERSE,
    files,
    universe_env,
    upstream,
)

from sentinance import catalog, lake
from sentinance.catalog import CANDLE_KEYS, TRADE_KEYS
from sentinance.pipelines.flows.ingest import IngestIncomplete, ingest
from sentinance.pipelines.sources.exchanges.capture import RecordReplayAdapter
from sentinance.pipelines.sources.exchanges.limits import DEFAULT_BAN_SECONDS
from sentinance.settings import Settings, get_settings

WINDOW = {"start": START.to_pydatetime(), "end": END.to_pydatetime()}
KRAKEN_HISTORY = FIXTURES / "kraken_history"
DAYS = (END - START) / pd.Timedelta(days=1)  # a new series' history: the captured window


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SENTINANCE_HOME", tempfile.mkdtemp(prefix="sentinance-exchanges-"))
    for key, value in universe_env().items():
        monkeypatch.setenv(key, value)
    return get_settings()


def _bronze(settings: Settings, table: catalog.Table, keys: list[str]) -> pd.DataFrame:
    return lake.read(table.path(settings)).sort_values(keys, ignore_index=True)


def test_live_capture_replays_bit_identically_for_five_exchanges_ten_assets_two_intervals(
    home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = upstream()
    live = ingest(source="live", client_options={"upstream": network, "pace": False}, **WINDOW)
    captured = files(UNIVERSE)
    assert files(home.capture_dir / live.capture.rsplit("/", 1)[-1]) == captured, "capture == the recorded run"

    candles = _bronze(home, catalog.CANDLES, CANDLE_KEYS)
    trades = _bronze(home, catalog.TRADES, TRADE_KEYS)
    assert set(candles["exchange"]) == set(trades["exchange"]) == set(EXCHANGES)
    assert candles.groupby(["exchange", "interval"])["symbol"].nunique().eq(len(ASSETS)).all()
    assert sorted(candles["interval"].unique()) == sorted(INTERVALS)
    assert trades.groupby("exchange")["symbol"].nunique().eq(len(ASSETS)).all()
    per_series = candles.groupby(["exchange", "symbol", "interval"]).size().unstack()
    assert (per_series["1h"] == 2).all() and (per_series["5m"] == 27).all()  # 00:15 was still open at the server
    assert candles[candles["exchange"] == "binance"]["quote_volume"].notna().all()
    assert candles[candles["exchange"].isin(["binance", "kraken"])]["trade_count"].notna().all()
    assert trades["side"].isin(["buy", "sell"]).all() and (trades["trade_time"] < END).all()
    assert live.failures == {} and live.candles.landed == len(candles) == 5 * 10 * (27 + 2)

    sent = [dict(parse_qsl(key.partition("?")[2])) | {"path": key.split("?")[0]} for key, _ in network.report.requests]
    agg_trades = [q for q in sent if q["path"].endswith("/api/v3/aggTrades")]
    for q in agg_trades:  # a startTime always with an endTime less than an hour later, never with fromId
        assert ("fromId" in q) != ("startTime" in q)
        assert "fromId" in q or 0 <= int(q["endTime"]) - int(q["startTime"]) < 3_600_000
    coinbase = [q for q in sent if q["path"].endswith("/products/BTC-USD/trades")]
    assert {q["limit"] for q in coinbase} == {"1000", "1"}, "full pages; one-trade probes to find the window"
    assert sum(q["limit"] == "1000" for q in coinbase) == 2  # the newest page, then the window's older part

    # a replay of the capture, offline, into another state dir lands the same rows
    captures = home.capture_dir
    monkeypatch.setenv("SENTINANCE_HOME", tempfile.mkdtemp(prefix="sentinance-replay-"))
    replayed = ingest(source="replay", client_options={"capture_root": captures})
    again = get_settings()
    for table, keys in ((catalog.CANDLES, CANDLE_KEYS), (catalog.TRADES, TRADE_KEYS)):
        before, after = _bronze(home, table, keys), _bronze(again, table, keys)
        columns = [c for c in before.columns if c not in ("source", "ingested_at", "flow_run_id")]
        pd.testing.assert_frame_equal(before[columns], after[columns])
        assert after["source"].eq("replay").all() and before["source"].eq("live").all()
    assert (replayed.candles.landed, replayed.trades.landed) == (live.candles.landed, live.trades.landed)
    report = json.loads(json.dumps(list(replayed.series.values())))
    assert len(report) == 5 * 10 * 3 and {r["status"] for r in report} == {"landed"}


BANS = {  # scenario: the banned exchange and its Retry-After (None: the default pause)
    "binance-418-ban": ("binance", 120.0),
    "binance-429-long-retry-after": ("binance", 600.0),
    "kraken-too-many-requests": ("kraken", None),
    "kraken-temporary-lockout": ("kraken", None),
    "okx-50011": ("okx", None),
    "bybit-10006": ("bybit", None),
}


@pytest.mark.parametrize("scenario", BANS)
def test_a_ban_stops_that_exchange_until_retry_after_in_this_run_and_the_next(home: Settings, scenario: str) -> None:
    """418, 429 (Retry-After beyond two minutes too), Kraken's throttle and lockout answered with HTTP 200,
    OKX 50011, Bybit 10006: one request, no retry by the client or the task, a ban kept in the state dir
    until Retry-After; the next run sends that exchange nothing, and the other exchange goes on."""
    banned, retry_after = BANS[scenario]
    network = upstream(scenario)
    (throttled,) = RecordReplayAdapter("replay", [ERRORS / scenario / banned]).index
    one = {"exchanges": [banned, "coinbaseexchange"], "symbols": ["BTC"], "intervals": ["1h"], "include_trades": False}
    options = {"upstream": network, "pace": False}
    began = time.time()
    with pytest.raises(IngestIncomplete) as failed:
        ingest(source="live", client_options=options, **one, **WINDOW)
    result = failed.value.result
    series = f"{banned}:BTC/{EXCHANGES[banned]}:1h candles"
    assert list(result.failures) == [series] and "banned until" in result.failures[series]
    assert result.series["coinbaseexchange:BTC/USD:1h candles"]["landed"] == 2
    sent = [key for key, _ in network.report.requests]
    assert sent.count(throttled) == 1, "never retried"
    host = throttled.split(" ")[1].split("/")[0]
    assert [k for k in sent if host in k][-1] == throttled, "nothing more to that exchange"
    until = pd.Timestamp(result.bans[banned]["until"]).timestamp()
    wait = DEFAULT_BAN_SECONDS if retry_after is None else retry_after
    assert began + wait - 2 <= until <= time.time() + wait + 1
    assert banned in json.loads((home.home / "exchanges" / "bans.json").read_text())

    again = ingest(source="live", client_options=options, **one, **WINDOW)
    assert not [k for k in network.report.requests[len(sent) :] if host in k], "the next run sends nothing"
    assert again.series[series]["status"].startswith("skipped: banned until") and banned in again.bans


def test_a_trade_series_failing_never_discards_its_candles(home: Settings) -> None:
    """A truncated trades page fails that trade series only (ccxt alone would read it as no trades); the
    candles of the same symbol land, and the next run fetches the trades from their own watermark."""
    one = {"exchanges": ["binance"], "symbols": ["BTC"], **WINDOW}
    with pytest.raises(IngestIncomplete) as failed:
        ingest(source="replay", client_options={"replay_dirs": [ERRORS / "binance-trades-truncated", UNIVERSE]}, **one)
    result = failed.value.result
    assert (
        list(result.failures) == ["binance:BTC/USDT trades"]
        and "BadResponse" in result.failures["binance:BTC/USDT trades"]
    )
    assert result.candles.landed == 27 + 2 and result.trades.landed == 0

    later = ingest(
        source="replay",
        client_options={"replay_dirs": [UNIVERSE]},
        exchanges=["binance"],
        symbols=["BTC"],
        end=END,
        days=DAYS,
    )
    assert later.candles.received == 0, "candles are up to date from their own watermark"
    assert later.trades.landed > 0 and later.failures == {}


def test_kraken_history_beyond_its_720_candles_is_rebuilt_from_trades(home: Settings) -> None:
    """Kraken serves only its latest 720 candles: an older window comes from its trades, aggregated."""
    start, end = pd.Timestamp("2024-03-05T08:00Z"), pd.Timestamp("2024-03-05T08:30Z")
    result = ingest(
        source="replay",
        exchanges=["kraken"],
        symbols=["BTC"],
        intervals=["5m"],
        include_trades=False,
        start=start.to_pydatetime(),
        end=end.to_pydatetime(),
        client_options={"replay_dirs": [KRAKEN_HISTORY]},
    )
    candles = _bronze(home, catalog.CANDLES, CANDLE_KEYS)
    assert result.candles.landed == len(candles) == 6
    assert list(candles["open_time"]) == list(pd.date_range(start, end, freq="5min", inclusive="left"))
    assert candles["trade_count"].eq(3).all() and (candles["high"] >= candles["low"]).all()
