"""The silver feature job on a small bronze table: TA-Lib values, then incremental == full refresh."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import talib
from deltalake import DeltaTable

from sentinance import lake
from sentinance.config import INTERVAL, Settings, canonical_symbol
from sentinance.schemas import BRONZE_CANDLES, CANDLE_KEYS, SERIES_KEYS, SILVER_CANDLE_FEATURES
from sentinance.spark_jobs.candle_features import compute_candle_features
from sentinance.spark_jobs.indicators import log_return

START = pd.Timestamp("2024-01-01", tz="UTC")
HOURS, EXTRA = 200, 24
WARMUP_ROWS = 19  # sma_20 needs 20 rows
# (exchange, asset, first hour): BTC and ETH on every exchange; SOL on kraken only, started
# late so it is still in RSI warm-up when the increment arrives
SERIES = [(ex, asset, 0) for ex in ("binance", "coinbase", "kraken") for asset in ("BTC", "ETH")]
SERIES.append(("kraken", "SOL", HOURS - 10))
FEATURES = ["log_return", "sma_20", "rsi_14", "rsi_avg_gain", "rsi_avg_loss", "basis_bps"]


def _candles(hours: slice) -> pd.DataFrame:
    """Bronze rows of ``hours``, cut from one fixed random walk per asset (plus venue noise)."""
    rng = np.random.default_rng(11)
    total = HOURS + EXTRA
    asset_walk = {a: p * np.exp(np.cumsum(rng.normal(0, 0.006, total))) for a, p in
                  (("BTC", 60_000.0), ("ETH", 3_000.0), ("SOL", 150.0))}
    frames = []
    for exchange, asset, first in SERIES:
        close = asset_walk[asset] * np.exp(rng.normal(0, 5e-4, total))
        frame = pd.DataFrame({"open_time": START + pd.to_timedelta(np.arange(total), "h"), "close": close})
        frame = frame.iloc[max(first, hours.start or 0):hours.stop]
        frames.append(frame.assign(exchange=exchange, symbol=canonical_symbol(exchange, asset)))
    rows = pd.concat(frames, ignore_index=True)
    rows = rows.assign(
        interval=INTERVAL, open=rows["close"], high=rows["close"] * 1.001, low=rows["close"] * 0.999,
        volume=10.0, trade_count=100, source="simulator", ingested_at=pd.Timestamp.now(tz="UTC"),
        flow_run_id="test",
        payload_hash=[hashlib.sha256(repr(r).encode()).hexdigest() for r in rows.itertuples(index=False)],
    )
    return rows[BRONZE_CANDLES.names]


def _ingest(settings: Settings, hours: slice) -> None:
    lake.merge(settings.table_path("bronze", "candles"), _candles(hours), CANDLE_KEYS,
               schema=BRONZE_CANDLES, partition_by=["exchange"], change_column="payload_hash")


def _silver(settings: Settings) -> pd.DataFrame:
    return lake.read(settings.table_path("silver", "candle_features")).sort_values(CANDLE_KEYS, ignore_index=True)


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory) -> dict[str, object]:
    """First run, increment, then full refresh, with silver after each (one lake for all checks)."""
    settings = Settings(home=tmp_path_factory.mktemp("silver") / "state")
    _ingest(settings, slice(0, HOURS))
    first = compute_candle_features(spark, settings)
    first_silver = _silver(settings)
    _ingest(settings, slice(HOURS, HOURS + EXTRA))
    increment = compute_candle_features(spark, settings)
    incremental_silver = _silver(settings)
    noop = compute_candle_features(spark, settings)
    refresh = compute_candle_features(spark, settings, full_refresh=True)
    return dict(settings=settings, first=first, first_silver=first_silver, increment=increment,
                incremental_silver=incremental_silver, noop=noop, refresh=refresh, refreshed_silver=_silver(settings))


def test_first_run_matches_talib(runs: dict) -> None:
    silver = runs["first_silver"]
    assert runs["first"].rows_written == len(silver) == 6 * HOURS + 10 and runs["first"].series == 7
    assert list(silver.columns) == SILVER_CANDLE_FEATURES.names
    for _, series in silver.groupby(SERIES_KEYS):
        close = series["close"].to_numpy()
        for column, expected in (("rsi_14", talib.RSI(close, 14)), ("sma_20", talib.SMA(close, 20)),
                                 ("log_return", log_return(close))):
            np.testing.assert_allclose(series[column].to_numpy(dtype=float), expected, rtol=1e-9, equal_nan=True)
        warmup = np.arange(len(series)) < WARMUP_ROWS
        np.testing.assert_array_equal(series["is_warmup"].to_numpy(), warmup)
    assert (silver["asset"] == silver["symbol"].str.split("/").str[0]).all()
    config = DeltaTable(runs["settings"].table_path("silver", "candle_features")).metadata().configuration
    assert config.get("delta.enableChangeDataFeed") == "true"


def test_basis_is_relative_to_the_cross_exchange_mean(runs: dict) -> None:
    silver = runs["first_silver"]
    by_hour = silver.groupby(["asset", "open_time"])["basis_bps"]
    np.testing.assert_allclose(by_hour.sum(), 0, atol=1e-6)
    assert silver.loc[silver["asset"] == "BTC", "basis_bps"].abs().max() > 1  # venues do differ
    assert (silver.loc[silver["asset"] == "SOL", "basis_bps"] == 0).all()  # one venue: no basis


def test_increment_writes_only_new_rows_equal_to_full_refresh(runs: dict) -> None:
    increment, incremental, refreshed = runs["increment"], runs["incremental_silver"], runs["refreshed_silver"]
    assert increment.rows_written == 7 * EXTRA and increment.series == 7 and not increment.full_refresh
    assert len(incremental) == 6 * (HOURS + EXTRA) + 10 + EXTRA
    old = incremental["open_time"] < START + pd.Timedelta(hours=HOURS)
    assert (incremental.loc[old, "computed_at"] == runs["first_silver"]["computed_at"].iloc[0]).all()
    assert runs["noop"].rows_written == 0 and runs["noop"].silver_version == increment.silver_version
    assert runs["refresh"].rows_written == len(refreshed) == len(incremental) and runs["refresh"].full_refresh
    pd.testing.assert_frame_equal(incremental[CANDLE_KEYS], refreshed[CANDLE_KEYS])
    for column in FEATURES:
        np.testing.assert_allclose(incremental[column], refreshed[column], rtol=1e-9, atol=1e-12, equal_nan=True)
    pd.testing.assert_series_equal(incremental["is_warmup"], refreshed["is_warmup"])
