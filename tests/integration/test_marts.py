"""The dbt project for real: silver Delta -> lake.candle_features -> staging -> marts.fct_training_features."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sentinance import catalog, lake, services
from sentinance.catalog import FORECASTER, MIRRORED
from sentinance.pipelines.warehouse.loader import load, load_table
from sentinance.pipelines.warehouse.marts import DbtBuildResult, MartsBuildError, build_marts, generate_docs
from sentinance.resources import dbt_project_dir
from sentinance.settings import Settings

T0 = pd.Timestamp("2024-03-01", tz="UTC")
INSTRUMENTS = [("binance", "BTC/USDT"), ("coinbase", "BTC/USD")]
GAP_HOUR = 30  # binance has no candle for this hour
WARMUP = 20  # hours without sma_20 / rsi_14
MART = FORECASTER.mart
HOUR = "(extract(epoch FROM event_timestamp - %s) / 3600)::int"  # hours since T0


def silver_frame(start: int, end: int) -> pd.DataFrame:
    """Silver-shaped features for both instruments, hours [start, end); the same hour always gets the same values."""
    frames = []
    for seed, (exchange, symbol) in enumerate(INSTRUMENTS):
        rng = np.random.default_rng(seed)
        hours = np.arange(200)
        log_return = rng.normal(0, 0.01, hours.size)
        close = 100 * np.exp(np.cumsum(log_return))
        frame = pd.DataFrame(
            {
                "exchange": exchange,
                "symbol": symbol,
                "interval": "1h",
                "open_time": T0 + pd.to_timedelta(hours, unit="h"),
                "asset": "BTC",
                "close": close,
                "volume": rng.uniform(1, 10, hours.size),
                "log_return": np.where(hours == 0, np.nan, log_return),
                "sma_20": pd.Series(close).rolling(WARMUP).mean().where(hours >= WARMUP),
                "rsi_14": np.where(hours >= WARMUP, rng.uniform(20, 80, hours.size), np.nan),
                "rsi_avg_gain": 0.1,
                "rsi_avg_loss": 0.1,
                "basis_bps": rng.normal(0, 5, hours.size),
                "is_warmup": hours < WARMUP,
                "computed_at": T0,
            }
        )
        keep = (hours >= start) & (hours < end) & ~((exchange == "binance") & (hours == GAP_HOUR))
        frames.append(frame[keep])
    return pd.concat(frames, ignore_index=True)


def land(settings: Settings, frame: pd.DataFrame) -> None:
    """Merge into the silver Delta table (change data feed on) and load lake.candle_features."""
    path = catalog.CANDLE_FEATURES.path(settings)
    frame = frame.reindex(columns=catalog.CANDLE_FEATURES.schema.names)  # the features not made here are null
    lake.merge(
        path,
        frame,
        catalog.CANDLE_KEYS,
        schema=catalog.CANDLE_FEATURES.schema,
        configuration={"delta.enableChangeDataFeed": "true"},
    )
    load_table(settings, path, "candle_features", catalog.CANDLE_KEYS, catalog.CANDLE_FEATURES.schema)


def fetch(settings: Settings, query: str, *params) -> list[tuple]:
    with services.connect(settings) as conn:
        return conn.execute(query, params).fetchall()


def mart_row(settings: Settings, instrument: str, hour: int) -> dict:
    with services.connect(settings) as conn:
        cursor = conn.execute(
            f"SELECT * FROM {MART} WHERE instrument_id = %s AND event_timestamp = %s",
            [instrument, T0 + pd.Timedelta(hours=hour)],
        )
        return dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))


@pytest.fixture(scope="module")
def mart_settings(settings: Settings) -> Settings:
    """A state dir (and PostgreSQL) of this module's own: the marts' schemas and tables have fixed names."""
    return Settings(home=settings.home / "test_marts")


@pytest.fixture(scope="module")
def built(mart_settings: Settings) -> DbtBuildResult:
    """60 hours of two instruments, binance missing GAP_HOUR, built from scratch (the other sources empty)."""
    land(mart_settings, silver_frame(0, 60))
    for name in MIRRORED:
        load(mart_settings, name)
    return build_marts(mart_settings)


def test_the_mart_has_exactly_the_catalogs_columns_and_its_unit_tests_pass(built, mart_settings):
    columns = fetch(
        mart_settings,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s ORDER BY ordinal_position",
        *MART.split("."),
    )
    assert [c for (c,) in columns] == FORECASTER.mart_columns(mart_settings.sequence_length)
    results = json.loads((mart_settings.dbt_target_dir / "run_results.json").read_text())["results"]
    unit_tests = {
        r["unique_id"].split(".")[-1]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")
    }
    assert unit_tests == {
        "test_training_features_lag_over_a_gap_free_grid": "pass",
        "test_training_features_of_a_4h_contract_step_by_4_hours": "pass",
        "test_fear_and_greed_scores_a_volatility_spike_as_fear": "pass",
    }


def test_build_creates_the_training_features(built, mart_settings):
    silver = silver_frame(0, 60).set_index(["exchange", "open_time"])

    def value(exchange: str, hour: int, column: str) -> float:
        return silver.loc[(exchange, T0 + pd.Timedelta(hours=hour)), column]

    assert built.success and not built.failed and built.counts["pass"] >= 15
    assert fetch(mart_settings, f"SELECT instrument_id, count(*) FROM {MART} GROUP BY 1 ORDER BY 1") == [
        ("binance:BTC/USDT", 59),
        ("coinbase:BTC/USD", 60),
    ]

    row = mart_row(mart_settings, "coinbase:BTC/USD", 40)
    assert (row["exchange"], row["symbol"], row["asset"]) == ("coinbase", "BTC/USD", "BTC")
    assert row["rsi_14_lag_0"] == row["rsi_14"] == pytest.approx(value("coinbase", 40, "rsi_14"))
    assert row["rsi_14_lag_3"] == pytest.approx(value("coinbase", 37, "rsi_14"))
    assert row["basis_bps_lag_23"] == pytest.approx(value("coinbase", 17, "basis_bps"))
    assert row["sma_ratio"] == pytest.approx(value("coinbase", 40, "close") / value("coinbase", 40, "sma_20") - 1)
    assert row["next_log_return"] == pytest.approx(value("coinbase", 41, "log_return"))

    after_gap = mart_row(mart_settings, "binance:BTC/USDT", GAP_HOUR + 1)
    assert after_gap["log_return_lag_1"] is None  # the missing hour, not the hour before it
    assert after_gap["log_return_lag_2"] == pytest.approx(value("binance", GAP_HOUR - 1, "log_return"))
    assert mart_row(mart_settings, "binance:BTC/USDT", GAP_HOUR - 1)["next_log_return"] is None
    assert mart_row(mart_settings, "binance:BTC/USDT", 59)["next_log_return"] is None

    # complete from the first hour whose 24 lags are all past warm-up (43) and, for binance, clear of the gap
    complete = fetch(
        mart_settings,
        f"SELECT instrument_id, min({HOUR}), count(*) FROM {MART} WHERE is_complete GROUP BY 1 ORDER BY 1",
        T0,
    )
    assert complete == [
        ("binance:BTC/USDT", GAP_HOUR + 24, 60 - GAP_HOUR - 24),
        ("coinbase:BTC/USD", WARMUP + 23, 60 - WARMUP - 23),
    ]


def test_incremental_build_equals_a_full_refresh(built, mart_settings):
    # xmin is the id of the transaction that wrote a row: an incremental run leaves old hours alone
    versions = f"SELECT {HOUR}, xmin::text FROM {MART} WHERE instrument_id = 'coinbase:BTC/USD' ORDER BY 1"
    land(mart_settings, silver_frame(60, 65))
    before = dict(fetch(mart_settings, versions, T0))

    build_marts(mart_settings)
    after = dict(fetch(mart_settings, versions, T0))
    incremental = fetch(mart_settings, f"SELECT * FROM {MART} ORDER BY instrument_id, event_timestamp")
    build_marts(mart_settings, full_refresh=True)
    full = fetch(mart_settings, f"SELECT * FROM {MART} ORDER BY instrument_id, event_timestamp")

    assert [hour for hour in after if before.get(hour) != after[hour]] == [59, 60, 61, 62, 63, 64]
    assert len(incremental) == 59 + 60 + 2 * 5
    assert incremental == full
    assert mart_row(mart_settings, "binance:BTC/USDT", 59)["next_log_return"] is not None


def test_a_failing_data_test_raises_and_keeps_the_last_good_mart(built, mart_settings):
    before = fetch(mart_settings, f"SELECT count(*), max(event_timestamp) FROM {MART}")
    bad_hour = T0 + pd.Timedelta(hours=500)
    with services.connect(mart_settings) as conn:
        conn.execute(
            "INSERT INTO lake.candle_features SELECT exchange, symbol, interval, %s, asset, close, volume, "
            "log_return, sma_20, 150.0, rsi_avg_gain, rsi_avg_loss, basis_bps, is_warmup, computed_at "
            "FROM lake.candle_features WHERE rsi_14 IS NOT NULL LIMIT 1",
            [bad_hour],
        )
    try:
        with pytest.raises(MartsBuildError, match="value_between_stg_silver__candle_features_rsi_14") as failure:
            build_marts(mart_settings)
        assert failure.value.result.counts["skipped"] >= 1  # the mart and its tests did not run
        assert fetch(mart_settings, f"SELECT count(*), max(event_timestamp) FROM {MART}") == before
    finally:
        with services.connect(mart_settings) as conn:
            conn.execute("DELETE FROM lake.candle_features WHERE open_time = %s", [bad_hour])


def test_docs_are_generated_into_the_state_dir(built, mart_settings):
    index = generate_docs(mart_settings)

    assert index.parent == mart_settings.dbt_target_dir
    assert "fct_training_features" in index.read_text()
    assert not any((dbt_project_dir() / name).exists() for name in ("target", "logs", "dbt_packages"))
