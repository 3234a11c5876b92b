"""The market, surveillance and model-performance marts for real: bronze/gold Delta -> lake.* -> dbt.

A small hand-made lake: 12 days of hourly candles for three instruments (coinbase BTC/USD has
no candle on GAP_DAY, binance ETH/USDT none at GAP_HOUR), one anomaly and three predictions.
Beside them, other intervals aggregated from the same hours: 4h candles of binance BTC/USDT
every day, and binance ETH/USDT has 4h candles instead of hourly ones on COARSE_DAY.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sentinance import catalog, lake, services
from sentinance.catalog import MIRRORED
from sentinance.pipelines.warehouse.loader import load
from sentinance.pipelines.warehouse.marts import DbtBuildResult, MartsBuildError, build_marts, source_freshness
from sentinance.settings import Settings

D0 = pd.Timestamp("2024-03-01", tz="UTC")
DAYS = 12
GAP_DAY = 5
GAP_HOUR = 30
COARSE_DAY = 8
INSTRUMENTS = [("binance", "BTC/USDT", 60_000.0), ("coinbase", "BTC/USD", 60_000.0), ("binance", "ETH/USDT", 3_000.0)]
CDF = {"delta.enableChangeDataFeed": "true"}


def bronze_candles(first_hour: int, last_hour: int, ingested_at: pd.Timestamp) -> pd.DataFrame:
    """Bronze-shaped candles for hours [first_hour, last_hour); the same hour always gets the same values."""
    frames = []
    for seed, (exchange, symbol, price) in enumerate(INSTRUMENTS):
        rng = np.random.default_rng(seed)
        hours = np.arange(24 * (DAYS + 2))
        close = price * np.exp(np.cumsum(rng.normal(0, 0.01, hours.size)))
        open_ = np.r_[price, close[:-1]]
        frame = pd.DataFrame(
            {
                "exchange": exchange,
                "symbol": symbol,
                "interval": "1h",
                "open_time": D0 + pd.to_timedelta(hours, unit="h"),
                "open": open_,
                "high": np.maximum(open_, close) * 1.002,
                "low": np.minimum(open_, close) * 0.998,
                "close": close,
                "volume": rng.uniform(10, 20, hours.size),
                "trade_count": rng.integers(50, 100, hours.size),
                "source": "simulator",
                "ingested_at": ingested_at,
                "flow_run_id": None,
                "payload_hash": "h",
            }
        )
        missing = (hours // 24 == GAP_DAY) if exchange == "coinbase" else (hours == GAP_HOUR) & (symbol == "ETH/USDT")
        frames.append(frame[(hours >= first_hour) & (hours < last_hour) & ~missing])
    return pd.concat(frames, ignore_index=True)


def coarser(candles: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Candles of ``interval`` aggregated from hourly ones, as an exchange would serve them."""
    bucket = candles["open_time"].dt.floor(interval)
    groups = candles.groupby(["exchange", "symbol", bucket], sort=True)
    frame = groups.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        trade_count=("trade_count", "sum"),
        source=("source", "first"),
        ingested_at=("ingested_at", "max"),
        flow_run_id=("flow_run_id", "first"),
        payload_hash=("payload_hash", "first"),
    ).reset_index()
    return frame.assign(interval=interval)[candles.columns]


def with_other_intervals(hourly: pd.DataFrame) -> pd.DataFrame:
    """``hourly`` with binance BTC/USDT's 4h candles, and binance ETH/USDT's COARSE_DAY in 4h candles only."""
    btc = hourly[(hourly["exchange"] == "binance") & (hourly["symbol"] == "BTC/USDT")]
    eth_day = (hourly["symbol"] == "ETH/USDT") & (
        hourly["open_time"].dt.floor("D") == D0 + pd.Timedelta(days=COARSE_DAY)
    )
    return pd.concat([hourly[~eth_day], coarser(btc, "4h"), coarser(hourly[eth_day], "4h")], ignore_index=True)


def land(settings: Settings, candles: pd.DataFrame) -> None:
    lake.merge(catalog.CANDLES.path(settings), candles, catalog.CANDLE_KEYS, schema=catalog.CANDLES.schema)
    for name in MIRRORED:
        load(settings, name)


def fetch(settings: Settings, query: str, *params) -> pd.DataFrame:
    with services.connect(settings) as conn:
        cursor = conn.execute(query, params)
        return pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])


@pytest.fixture(scope="module")
def mart_settings(settings: Settings) -> Settings:
    return Settings(home=settings.home / "test_market_marts")


@pytest.fixture(scope="module")
def built(mart_settings: Settings) -> DbtBuildResult:
    """DAYS days of candles, an anomaly, two resolvable predictions and one for an hour not landed yet."""
    t = mart_settings
    lake.merge(
        catalog.ANOMALIES.path(t),
        pd.DataFrame(
            [
                {
                    "anomaly_id": "pump_and_dump:binance:BTC/USDT:2024-03-02T10:00Z",
                    "detector": "pump_and_dump",
                    "exchange": "binance",
                    "symbol": "BTC/USDT",
                    "start_time": D0 + pd.Timedelta(hours=34),
                    "end_time": D0 + pd.Timedelta(hours=36),
                    "score": 5.0,
                    "signals": "price_z,volume_z",
                    "evidence": json.dumps({"price_z": 5.0}),
                }
            ]
        ),
        catalog.ANOMALY_KEYS,
        schema=catalog.ANOMALIES.schema,
        configuration=CDF,
    )
    targets = [40, 41, 24 * DAYS]  # the last is the first hour after the landed days
    lake.merge(
        catalog.PREDICTIONS.path(t),
        pd.DataFrame(
            {
                "instrument_id": "binance:BTC/USDT",
                "feature_time": [D0 + pd.Timedelta(hours=h - 1) for h in targets],
                "target_time": [D0 + pd.Timedelta(hours=h) for h in targets],
                "predicted_log_return": [0.01, -0.01, 0.0],
                "predicted_close": [1.0, 1.0, 1.0],
                "model_name": "m",
                "model_version": "1",
                "model_alias": "champion",
                "scored_at": D0,
            }
        ),
        catalog.PREDICTION_KEYS,
        schema=catalog.PREDICTIONS.schema,
        configuration=CDF,
    )
    land(t, with_other_intervals(bronze_candles(0, 24 * DAYS, D0)))
    return build_marts(t)


def test_candles_and_daily_facts_show_gaps(built, mart_settings):
    candles = bronze_candles(0, 24 * DAYS, D0)
    landed = with_other_intervals(candles)
    facts = fetch(mart_settings, "SELECT * FROM marts.fct_candles")
    hourly = facts[facts["interval"] == "1h"]
    daily = fetch(mart_settings, "SELECT * FROM marts.fct_daily_metrics").set_index(["instrument_id", "date_day"])

    assert built.success and not built.failed
    assert (
        len(facts) == len(landed)
        and facts.groupby("interval").size().to_dict() == landed.groupby("interval").size().to_dict()
    )
    assert (facts["interval_seconds"] == facts["interval"].map({"1h": 3600, "4h": 14400})).all()
    eth = hourly[hourly["instrument_id"] == "binance:ETH/USDT"].set_index("open_time").sort_index()
    assert eth["log_return"].iloc[5] == pytest.approx(np.log(eth["close"].iloc[5] / eth["close"].iloc[4]))
    after_gap = eth.loc[D0 + pd.Timedelta(hours=GAP_HOUR + 1)]
    assert after_gap["follows_gap"] and pd.isna(after_gap["log_return"])

    assert len(daily) == len(INSTRUMENTS) * DAYS  # on the spine, the gap day included
    gap_day = (D0 + pd.Timedelta(days=GAP_DAY)).date()
    gap = daily.loc[("coinbase:BTC/USD", gap_day)]
    assert (gap["hours_observed"], gap["is_complete"], gap["volume"]) == (0, False, 0) and pd.isna(gap["close"])
    assert pd.isna(daily.loc[("coinbase:BTC/USD", (D0 + pd.Timedelta(days=GAP_DAY + 1)).date())]["log_return"])

    day = 3
    btc = candles[candles["exchange"] == "binance"].set_index(["symbol", "open_time"]).loc["BTC/USDT"]
    hours = btc[(btc.index >= D0 + pd.Timedelta(days=day)) & (btc.index < D0 + pd.Timedelta(days=day + 1))]
    returns = np.log(btc["close"] / btc["close"].shift()).loc[hours.index]
    typical = (hours["high"] + hours["low"] + hours["close"]) / 3
    row = daily.loc[("binance:BTC/USDT", (D0 + pd.Timedelta(days=day)).date())]
    assert row["hours_observed"] == 24 and row["is_complete"]
    assert (row["open"], row["close"]) == (pytest.approx(hours["open"].iloc[0]), pytest.approx(hours["close"].iloc[-1]))
    assert (row["high"], row["low"]) == (pytest.approx(hours["high"].max()), pytest.approx(hours["low"].min()))
    assert row["vwap"] == pytest.approx((typical * hours["volume"]).sum() / hours["volume"].sum())
    assert row["realized_volatility"] == pytest.approx(np.sqrt((returns**2).sum()))
    assert row["log_return"] == pytest.approx(np.log(hours["close"].iloc[-1] / btc["close"].iloc[24 * day - 1]))
    assert (row["volume"], row["trade_count"]) == (pytest.approx(hours["volume"].sum()), hours["trade_count"].sum())
    assert row["interval"] == "1h", "the finest interval of the day: its 4h candles are not counted again"


def test_a_day_without_finer_candles_is_built_from_a_coarser_interval(built, mart_settings):
    daily = fetch(mart_settings, "SELECT * FROM marts.fct_daily_metrics").set_index(["instrument_id", "date_day"])
    facts = fetch(mart_settings, "SELECT * FROM marts.fct_candles WHERE interval = '4h'").set_index(
        ["instrument_id", "open_time"]
    )
    day = (D0 + pd.Timedelta(days=COARSE_DAY)).date()
    four = facts.loc["binance:ETH/USDT"].sort_index()
    row = daily.loc[("binance:ETH/USDT", day)]
    assert (row["interval"], row["hours_observed"], row["is_complete"]) == ("4h", 24, True)
    assert (row["open"], row["close"]) == (pytest.approx(four["open"].iloc[0]), pytest.approx(four["close"].iloc[-1]))
    assert row["volume"] == pytest.approx(four["volume"].sum()) and row["trade_count"] == four["trade_count"].sum()
    # the first 4h candle follows none: five 4h returns, scaled to the day's six in the asset view
    assert row["returns_observed"] == 5
    assert row["realized_volatility"] == pytest.approx(np.sqrt((four["log_return"].dropna() ** 2).sum()))
    assets = fetch(
        mart_settings,
        "SELECT * FROM intermediate.int_daily_metrics_aggregated_to_assets WHERE asset = 'ETH' AND date_day = %s",
        day,
    ).iloc[0]
    assert assets["realized_volatility_24h"] == pytest.approx(row["realized_volatility"] * np.sqrt(6 / 5))
    assert daily.loc[("binance:ETH/USDT", (D0 + pd.Timedelta(days=COARSE_DAY - 1)).date())]["interval"] == "1h"


def test_fear_and_greed_and_the_market_overview(built, mart_settings):
    fg = fetch(mart_settings, "SELECT * FROM marts.fct_fear_and_greed ORDER BY date_day")
    overview = fetch(mart_settings, "SELECT * FROM marts.mart_market_overview ORDER BY date_day, asset")
    assets = fetch(
        mart_settings,
        "SELECT * FROM intermediate.int_daily_metrics_aggregated_to_assets WHERE asset = 'BTC' ORDER BY date_day",
    )

    assert len(fg) == DAYS
    assert fg["fear_greed_index"].iloc[:7].isna().all()  # fewer than min_history_days earlier days
    assert fg["fear_greed_index"].iloc[7:].between(0, 100).all()
    assert set(fg["fear_greed_label"].dropna()) <= {"Extreme Fear", "Fear", "Neutral", "Greed", "Extreme Greed"}
    volatility = assets["realized_volatility_24h"]
    day = 10  # volatility against its 30/90-day averages
    signal = np.log(volatility[day] / volatility[:day].mean())  # both averages span the 10 earlier days
    assert fg.loc[day, "volatility_signal"] == pytest.approx(signal)
    assert fg.loc[day, "volatility_score"] == pytest.approx(50 * (1 - np.tanh(signal / 0.6931)))

    assert len(overview) == 2 * DAYS
    per_day = overview.groupby("date_day")
    assert per_day["volume_dominance"].sum().to_numpy() == pytest.approx(1.0)
    assert (per_day["is_top_gainer"].sum() == 1).iloc[1:].all() and (per_day["is_top_loser"].sum() == 1).iloc[1:].all()
    top = overview[overview["is_top_gainer"]]
    assert (top["return_rank"] == 1).all()
    assert overview["fear_greed_index"].equals(overview["date_day"].map(fg.set_index("date_day")["fear_greed_index"]))


def test_anomalies_carry_their_candles_and_predictions_their_actuals(built, mart_settings):
    candles = bronze_candles(0, 24 * DAYS, D0).set_index(["exchange", "symbol", "open_time"]).sort_index()
    candles = candles.loc[("binance", "BTC/USDT")]
    anomaly = fetch(mart_settings, "SELECT * FROM marts.fct_anomalies").iloc[0]
    performance = fetch(mart_settings, "SELECT * FROM marts.fct_model_performance ORDER BY target_time")

    window = candles.iloc[34:37]
    assert (anomaly["instrument_id"], anomaly["duration_hours"], anomaly["signal_count"]) == ("binance:BTC/USDT", 3, 2)
    assert (anomaly["window_open"], anomaly["window_close"]) == (
        pytest.approx(window["open"].iloc[0]),
        pytest.approx(window["close"].iloc[-1]),
    )
    assert anomaly["evidence"] == {"price_z": 5.0}

    actual = np.log(candles["close"].iloc[40] / candles["close"].iloc[39])
    assert performance["is_resolved"].tolist() == [True, True, False]
    first = performance.iloc[0]
    assert first["actual_log_return"] == pytest.approx(actual)
    assert first["error"] == pytest.approx(0.01 - actual)
    assert first["persistence_log_return"] == pytest.approx(
        np.log(candles["close"].iloc[39] / candles["close"].iloc[38])
    )
    assert first["is_direction_correct"] == (actual > 0)


def test_source_freshness_warns_on_historic_or_missing_data(built, mart_settings):
    assert source_freshness(mart_settings) == {
        "bronze.candles": "warn",
        "silver.candle_features": "warn",
        "gold.predictions": "warn",
    }  # silver is empty here


def test_incremental_builds_equal_a_full_refresh(built, mart_settings):
    tables = {
        "fct_candles": "interval, open_time",
        "fct_daily_metrics": "date_day",
        "fct_model_performance": "target_time",
    }

    def snapshot() -> dict[str, pd.DataFrame]:
        return {
            t: fetch(mart_settings, f"SELECT * FROM marts.{t} ORDER BY instrument_id, {time}")
            for t, time in tables.items()
        }

    # xmin is the id of the transaction that wrote a row: an incremental run leaves the days before day 4 alone
    written = (
        "SELECT date_day, xmin::text AS xmin FROM marts.fct_daily_metrics WHERE instrument_id = 'binance:BTC/USDT'"
    )
    later = D0 + pd.Timedelta(days=30)
    corrected = bronze_candles(24 * 4, 24 * 4 + 1, later).assign(close=lambda f: f["close"] * 1.001)
    before = fetch(mart_settings, written).set_index("date_day")["xmin"]
    land(mart_settings, pd.concat([bronze_candles(24 * DAYS, 24 * (DAYS + 2), later), corrected]))
    build_marts(mart_settings)
    incremental = snapshot()
    after = fetch(mart_settings, written).set_index("date_day")["xmin"]
    assert [day.day for day in after.index if before.get(day) != after[day]] == list(range(5, DAYS + 3))
    build_marts(mart_settings, full_refresh=True)
    full = snapshot()

    for table in tables:
        pd.testing.assert_frame_equal(incremental[table], full[table], obj=table)
    assert len(full["fct_daily_metrics"]) == len(INSTRUMENTS) * (DAYS + 2)
    assert full["fct_model_performance"]["is_resolved"].all()  # its target hour has landed


def test_bad_candles_stop_the_marts_and_keep_the_last_good_build(built, mart_settings):
    before = fetch(mart_settings, "SELECT count(*) AS n, max(open_time) AS latest FROM marts.fct_candles")
    late = D0 + pd.Timedelta(days=40)  # after a silence longer than max_candle_gap_hours ...
    with services.connect(mart_settings) as conn:  # ... and with its high below its low
        conn.execute(
            "INSERT INTO lake.candles SELECT exchange, symbol, interval, %s, open, low * 0.9, low, close, "
            "volume, trade_count, source, ingested_at, flow_run_id, payload_hash FROM lake.candles "
            "WHERE exchange = 'binance' AND symbol = 'BTC/USDT' LIMIT 1",
            [late],
        )
    try:
        with pytest.raises(MartsBuildError) as failure:
            build_marts(mart_settings)
        message = str(failure.value)
        assert "ohlc_is_consistent_stg_bronze__candles" in message
        assert "no_gap_longer_than_stg_bronze__candles" in message
        assert failure.value.result.counts["skipped"] >= 1
        assert fetch(mart_settings, "SELECT count(*) AS n, max(open_time) AS latest FROM marts.fct_candles").equals(
            before
        )
    finally:
        with services.connect(mart_settings) as conn:
            conn.execute("DELETE FROM lake.candles WHERE open_time = %s", [late])
