"""The ``ingest`` flow on recorded exchange responses (tests/fixtures/exchanges/): five exchanges, ten assets,
two intervals, candles and trades; capture -> replay bit-identical; bans; candles and trades independent.

The only fake is the network boundary: recorded responses served below ccxt (a ``requests`` adapter);
ccxt, the flow, GX, Delta and Prefect run for real. Each test has a state dir of its own (a setting).
"""

from __future__ import annotations

import json
import tempfile

import pandas as pd
import pytest
from support.exchanges import ASSETS, END, EXCHANGES, INTERVALS, START, UNIVERSE, files, universe_env, upstream

from sentinance import catalog, lake
from sentinance.catalog import CANDLE_KEYS, TRADE_KEYS
from sentinance.pipelines.flows.ingest import IngestIncomplete, ingest
from sentinance.settings import Settings, get_settings

WINDOW = {"start": START.to_pydatetime(), "end": END.to_pydatetime()}
MARKET = ["open", "high", "low", "close", "volume", "trade_count", "quote_volume", "payload_hash"]


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
    live = ingest(source="live", client_options={"upstream": upstream(), "pace": False}, **WINDOW)
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
