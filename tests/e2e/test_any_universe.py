"""End to end on a universe of ten assets and two intervals: the simulator's 1h and 4h candles land
through the bronze checkpoint, then the `features-and-marts` flow runs silver, the warehouse, dbt and
Feast on them.

Until the ingest flow plans every interval of the universe, the candles are landed with
``bronze.land`` directly, as the flow lands them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sentinance import catalog, lake
from sentinance.catalog import FORECASTER
from sentinance.ml import feature_store
from sentinance.ml.feature_store import query  # the warehouse as a DataFrame
from sentinance.pipelines.flows.stages import features_and_marts
from sentinance.pipelines.landing import bronze
from sentinance.pipelines.sources.simulator import simulate_candles
from sentinance.settings import Settings, temporary_environment

ASSETS = ("BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "AVAX", "DOT", "LINK", "LTC")
INTERVALS = ("1h", "4h")
START, END = pd.Timestamp("2025-06-01", tz="UTC"), pd.Timestamp("2025-06-15", tz="UTC")
SERIES = 3 * len(ASSETS)  # the three simulated exchanges


@pytest.fixture(scope="module")
def lake_of_ten(settings: Settings) -> dict:
    settings = Settings(home=settings.home / "any_universe", assets=ASSETS, intervals=INTERVALS)
    landed = {
        interval: bronze.land_candles(
            settings,
            simulate_candles(START, END, seed=settings.seed, universe=settings.universe, interval=interval),
            source="simulator",
            flow_run_id=None,
        )
        for interval in INTERVALS
    }
    with temporary_environment(settings.environment()):
        stages = features_and_marts(end=END.to_pydatetime())
    return {"settings": settings, "landed": landed, "stages": stages}


def test_bronze_silver_and_the_warehouse_hold_every_series_of_both_intervals(lake_of_ten: dict) -> None:
    settings, landed, stages = lake_of_ten["settings"], lake_of_ten["landed"], lake_of_ten["stages"]
    assert all(result.quarantined == 0 for result in landed.values())
    bronze_rows = lake.read(catalog.CANDLES.path(settings), columns=[*catalog.SERIES_KEYS])
    series = bronze_rows.drop_duplicates()
    assert series.groupby("interval").size().to_dict() == dict.fromkeys(INTERVALS, SERIES)
    silver = lake.read(catalog.CANDLE_FEATURES.path(settings), columns=[*catalog.CANDLE_KEYS, "realized_vol_24"])
    assert len(silver) == len(bronze_rows) and stages["silver"]["series"] == SERIES * len(INTERVALS)
    # annualised per interval: 4h candles see the same market, so about the same yearly volatility
    vol = silver.dropna().groupby("interval")["realized_vol_24"].median()
    assert 0.7 < vol["4h"] / vol["1h"] < 1.4, vol
    cross = lake.read(catalog.CROSS_EXCHANGE_FEATURES.path(settings))
    assert cross.groupby("interval")["asset"].nunique().to_dict() == dict.fromkeys(INTERVALS, len(ASSETS))
    counts = query(settings, "SELECT interval, count(*) AS n FROM lake.candle_features GROUP BY interval")
    assert counts.set_index("interval")["n"].to_dict() == silver.groupby("interval").size().to_dict()


def test_daily_metrics_count_each_day_once_whatever_the_intervals(lake_of_ten: dict) -> None:
    settings = lake_of_ten["settings"]
    candles = query(
        settings,
        "SELECT instrument_id, interval, (open_time AT TIME ZONE 'UTC')::date AS date_day, sum(volume) AS volume "
        "FROM marts.fct_candles GROUP BY 1, 2, 3",
    ).pivot_table(index=["instrument_id", "date_day"], columns="interval", values="volume")
    daily = query(settings, "SELECT * FROM marts.fct_daily_metrics").set_index(["instrument_id", "date_day"])
    assert len(daily.index.unique(level="instrument_id")) == SERIES
    observed = daily[daily["hours_observed"] > 0]
    assert observed["interval"].eq("1h").all(), "the finest interval of each day"
    # the simulator's 1h and 4h candles aggregate the same trades: counting both would double the volume
    both = candles.loc[observed.index]
    np.testing.assert_allclose(observed["volume"], both["1h"], rtol=1e-9)
    np.testing.assert_allclose(observed["volume"], both["4h"], rtol=1e-9)
    overview = query(settings, "SELECT date_day, count(*) AS assets FROM marts.mart_market_overview GROUP BY 1")
    assert overview["assets"].eq(len(ASSETS)).all()
    index = query(settings, "SELECT fear_greed_index FROM marts.fct_fear_and_greed ORDER BY date_day")
    assert index["fear_greed_index"].dropna().between(0, 100).all() and index["fear_greed_index"].notna().any()


def test_the_forecaster_s_mart_and_feature_view_serve_its_interval_for_every_instrument(lake_of_ten: dict) -> None:
    settings = lake_of_ten["settings"]
    silver = lake.read(catalog.CANDLE_FEATURES.path(settings), columns=[*catalog.CANDLE_KEYS])
    own = silver[silver["interval"] == FORECASTER.interval]
    mart = query(settings, f"SELECT instrument_id, event_timestamp, close FROM {FORECASTER.mart}")
    assert len(mart) == len(own) and mart["instrument_id"].nunique() == SERIES

    store = feature_store.feature_store(settings)
    assert store.get_feature_view(FORECASTER.feature_view).ttl == 6 * FORECASTER.period
    latest = mart.sort_values("event_timestamp").groupby("instrument_id").tail(1).set_index("instrument_id")
    online = feature_store.online_features(settings, list(latest.index)).set_index(FORECASTER.entity_key)
    pd.testing.assert_series_equal(
        online["event_timestamp"], pd.to_datetime(latest["event_timestamp"], utc=True), check_names=False
    )
    np.testing.assert_allclose(online.loc[latest.index, "close"], latest["close"].astype(float), rtol=1e-12)
