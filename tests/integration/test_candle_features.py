"""The silver feature job on a small bronze table: TA-Lib values, cross-exchange features, gaps,
zero volume, then incremental (with a lagging exchange) == full refresh, and the job as a
spark-submit application on either Delta backend. Then the simulator's candles of three intervals:
TA-Lib per series of each, annualisation and gaps per interval, cross-exchange rows that never
mix intervals, increments per (exchange, symbol, interval) series."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib
from deltalake import DeltaTable, write_deltalake

from sentinance import catalog, lake
from sentinance.catalog import CANDLE_KEYS, CROSS_EXCHANGE_KEYS, SERIES_KEYS
from sentinance.pipelines.sources.simulator import simulate_candles
from sentinance.settings import INTERVAL_SECONDS, Settings, Universe
from sentinance.spark_jobs.features import job as candle_features
from sentinance.spark_jobs.features.job import compute_candle_features
from sentinance.spark_jobs.features.series import LOOKBACK, series_features

START = pd.Timestamp("2024-01-01", tz="UTC")
HOURS, EXTRA, LAG = 200, 24, 5
# (exchange, asset, first hour): BTC and ETH on every exchange; SOL on kraken only, started
# late so it is still warming up when the increment arrives
SERIES = [(ex, asset, 0) for ex in ("binance", "coinbase", "kraken") for asset in ("BTC", "ETH")]
SERIES.append(("kraken", "SOL", HOURS - 10))
LAGGING = ("coinbase", "BTC")  # its last LAG hours of the first window land with the increment
MISSING = {("binance", "BTC"): (50, 51)}  # hours with no candle
NAN_CLOSE = {("coinbase", "ETH"): 60}  # a candle without a close: a gap too
NO_VOLUME = {("kraken", "ETH"): range(100, 140), ("kraken", "SOL"): range(HOURS - 6, HOURS - 4)}
FEATURES = [n for n in catalog.CANDLE_FEATURES.schema.names if n not in (*CANDLE_KEYS, "asset", "computed_at")]


def _candles(hours: slice, lagging_until: int, total: int = HOURS + EXTRA) -> pd.DataFrame:
    """Bronze rows of ``hours`` (< ``total``), cut from one fixed random walk per asset (plus venue noise)."""
    rng = np.random.default_rng(11)
    asset_walk = {
        a: p * np.exp(np.cumsum(rng.normal(0, 0.006, total)))
        for a, p in (("BTC", 60_000.0), ("ETH", 3_000.0), ("SOL", 150.0))
    }
    frames = []
    for exchange, asset, first in SERIES:
        close = asset_walk[asset] * np.exp(rng.normal(0, 5e-4, total))
        volume = rng.gamma(2.0, 10.0, total)
        volume[list(NO_VOLUME.get((exchange, asset), []))] = 0.0
        if (exchange, asset) in NAN_CLOSE:
            close[NAN_CLOSE[exchange, asset]] = np.nan
        frame = pd.DataFrame(
            {
                "open_time": START + pd.to_timedelta(np.arange(total), "h"),
                "close": close,
                "volume": volume,
                "spread": np.abs(rng.normal(0, 0.002, total)),
            }
        )
        stop = lagging_until if (exchange, asset) == LAGGING else hours.stop
        frame = frame.iloc[max(first, hours.start) : stop].drop(
            index=list(MISSING.get((exchange, asset), [])), errors="ignore"
        )
        frames.append(frame.assign(exchange=exchange, symbol=Universe().symbol(exchange, asset)))
    rows = pd.concat(frames, ignore_index=True)
    rows = rows.assign(
        interval="1h",
        open=rows["close"],
        high=rows["close"] * (1 + rows["spread"]),
        low=rows["close"] * (1 - rows["spread"]),
        trade_count=100,
        quote_volume=np.nan,
        source="simulator",
        ingested_at=pd.Timestamp.now(tz="UTC"),
        flow_run_id="test",
        payload_hash=[hashlib.sha256(repr(r).encode()).hexdigest() for r in rows.itertuples(index=False)],
    )
    return rows[catalog.CANDLES.schema.names]


def _talib(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray) -> dict[str, np.ndarray]:
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    upper, _, lower = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    return {
        "rsi_14": talib.RSI(close, 14),
        "sma_20": talib.SMA(close, 20),
        "ema_20": talib.EMA(close, 20),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": hist,
        "bb_upper": upper,
        "bb_lower": lower,
        "atr_14": talib.ATR(high, low, close, 14),
        "obv": talib.OBV(close, volume),
    }


def _matches_talib(series: pd.DataFrame, candles: pd.DataFrame, key: tuple) -> None:
    """Silver rows of one series equal TA-Lib on its bronze candles (MACD near 0: bounded in units of the price)."""
    inputs = [candles[c].to_numpy() for c in ("high", "low", "close", "volume")]
    for column, reference in _talib(*inputs).items():
        np.testing.assert_allclose(
            series[column].to_numpy(dtype=float),
            reference,
            rtol=1e-9,
            atol=1e-12 * inputs[2].max(),
            equal_nan=True,
            err_msg=f"{key} {column}",
        )


def _ingest(settings: Settings, hours: slice, lagging_until: int) -> None:
    lake.merge(
        catalog.CANDLES.path(settings),
        _candles(hours, lagging_until),
        CANDLE_KEYS,
        schema=catalog.CANDLES.schema,
        partition_by=["exchange"],
        change_column="payload_hash",
    )


def _silver(settings: Settings, name: str = "candle_features") -> pd.DataFrame:
    keys = CANDLE_KEYS if name == "candle_features" else CROSS_EXCHANGE_KEYS
    return lake.read(catalog.table(f"silver/{name}").path(settings)).sort_values(keys, ignore_index=True)


def _valid_bronze(settings: Settings) -> pd.DataFrame:
    bronze = lake.read(catalog.CANDLES.path(settings)).dropna(subset=["high", "low", "close", "volume"])
    return bronze.assign(asset=bronze["symbol"].str.split("/").str[0]).sort_values(CANDLE_KEYS, ignore_index=True)


def _same_features(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same rows and features within 1e-9 (%B within 1e-9 absolute: its bands' spread can be tiny,
    and rolling sums started at another row differ in their last bits; docs/features.md)."""
    pd.testing.assert_frame_equal(actual[CANDLE_KEYS], expected[CANDLE_KEYS])
    for column in FEATURES:
        np.testing.assert_allclose(
            actual[column].astype(float),
            expected[column].astype(float),
            rtol=1e-9,
            atol=1e-9 if column == "bb_pct_b" else 1e-12,
            equal_nan=True,
            err_msg=column,
        )


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory) -> dict[str, object]:
    """First run (coinbase BTC lagging), increment, no-op, full refresh, with silver after each."""
    settings = Settings(home=tmp_path_factory.mktemp("silver") / "state")
    _ingest(settings, slice(0, HOURS), lagging_until=HOURS - LAG)
    first_bronze = _valid_bronze(settings)
    first = compute_candle_features(spark, settings)
    first_silver, first_cross = _silver(settings), _silver(settings, "cross_exchange_features")
    _ingest(settings, slice(HOURS - LAG, HOURS + EXTRA), lagging_until=HOURS + EXTRA)
    increment = compute_candle_features(spark, settings)
    incremental_silver, incremental_cross = _silver(settings), _silver(settings, "cross_exchange_features")
    noop = compute_candle_features(spark, settings)
    refresh = compute_candle_features(spark, settings, full_refresh=True)
    return dict(
        settings=settings,
        first_bronze=first_bronze,
        first=first,
        first_silver=first_silver,
        first_cross=first_cross,
        increment=increment,
        incremental_silver=incremental_silver,
        incremental_cross=incremental_cross,
        noop=noop,
        refresh=refresh,
        refreshed_silver=_silver(settings),
        refreshed_cross=_silver(settings, "cross_exchange_features"),
    )


def test_first_run_matches_talib_and_the_definitions(runs: dict) -> None:
    silver, bronze = runs["first_silver"], runs["first_bronze"]
    assert runs["first"].rows_written == len(silver) == len(bronze) and runs["first"].series == 7
    assert list(silver.columns) == catalog.CANDLE_FEATURES.schema.names
    config = DeltaTable(catalog.CANDLE_FEATURES.path(runs["settings"])).metadata().configuration
    assert config.get("delta.enableChangeDataFeed") == "true"
    for key, series in silver.groupby(SERIES_KEYS):
        candles = bronze.loc[(bronze[SERIES_KEYS] == key).all(axis=1)].reset_index(drop=True)
        _matches_talib(series, candles, key)
        expected = series_features(candles, "1h")
        pd.testing.assert_frame_equal(series[expected.columns].reset_index(drop=True), expected, check_dtype=False)
        np.testing.assert_array_equal(series["is_warmup"], np.arange(len(series)) < LOOKBACK)
    assert (silver["asset"] == silver["symbol"].str.split("/").str[0]).all()


def test_gaps_and_zero_volume(runs: dict) -> None:
    silver = runs["first_silver"].set_index(["exchange", "symbol", "open_time"])

    def hour(h: int) -> pd.Timestamp:
        return START + pd.Timedelta(hours=h)

    assert silver.loc[("binance", "BTC/USDT", hour(52)), "gap_bars"] == 2
    assert silver.loc[("coinbase", "ETH/USD", hour(61)), "gap_bars"] == 1  # the NaN close is a gap
    assert ("coinbase", "ETH/USD", hour(60)) not in silver.index
    assert pd.isna(silver.loc[("binance", "BTC/USDT", hour(0)), "gap_bars"])
    assert silver["gap_bars"].fillna(0).sum() == 3
    kraken_eth = silver.loc[("kraken", "ETH/USD")]
    nothing_traded = (kraken_eth.index >= hour(123)) & (kraken_eth.index < hour(140))
    assert kraken_eth.loc[nothing_traded, ["vwap_24", "volume_zscore_24"]].isna().all(axis=None)
    assert kraken_eth.loc[(kraken_eth.index >= hour(23)) & ~nothing_traded, "vwap_24"].notna().all()


def test_cross_exchange_features_and_basis(runs: dict) -> None:
    silver, cross = runs["first_silver"], runs["first_cross"]
    assert list(cross.columns) == catalog.CROSS_EXCHANGE_FEATURES.schema.names
    bronze = runs["first_bronze"].assign(notional=lambda f: f["close"] * f["volume"])
    hours = (
        bronze.groupby(CROSS_EXCHANGE_KEYS)
        .agg(
            exchange_count=("exchange", "nunique"),
            total_volume=("volume", "sum"),
            notional=("notional", "sum"),
            max_close=("close", "max"),
            min_close=("close", "min"),
        )
        .reset_index()
    )
    vwap = (hours["notional"] / hours["total_volume"]).where(hours["total_volume"] > 0)
    expected = hours.assign(consolidated_vwap=vwap, spread_bps=(hours["max_close"] - hours["min_close"]) / vwap * 1e4)
    pd.testing.assert_frame_equal(
        cross.drop(columns="computed_at"),
        expected[catalog.CROSS_EXCHANGE_FEATURES.schema.names[:-1]],
        check_dtype=False,
        rtol=1e-9,
    )
    merged = silver.merge(cross[[*CROSS_EXCHANGE_KEYS, "consolidated_vwap"]], on=CROSS_EXCHANGE_KEYS)
    np.testing.assert_allclose(
        merged["basis_bps"], (merged["close"] / merged["consolidated_vwap"] - 1) * 1e4, rtol=1e-9, equal_nan=True
    )
    sol = merged[merged["asset"] == "SOL"]
    np.testing.assert_allclose(sol["basis_bps"].dropna(), 0, atol=1e-9)  # one venue: no basis
    assert sol["basis_bps"].isna().sum() == 2  # nothing traded: no consolidated price
    assert silver.loc[silver["asset"] == "BTC", "basis_bps"].abs().max() > 1  # venues do differ
    assert (cross.loc[cross["asset"] == "BTC", "exchange_count"] <= 3).all()


def test_increment_writes_the_tail_and_equals_full_refresh(runs: dict) -> None:
    increment, incremental, refreshed = runs["increment"], runs["incremental_silver"], runs["refreshed_silver"]
    assert not increment.full_refresh and increment.series == 7
    # new rows, the lagging exchange's catch-up, the other BTC venues' rows of those hours
    assert increment.rows_written == 7 * EXTRA + LAG + 2 * LAG
    assert increment.cross_exchange_rows == 3 * EXTRA + LAG
    old = runs["first_silver"].set_index(CANDLE_KEYS)["computed_at"]
    now = incremental.set_index(CANDLE_KEYS)["computed_at"]
    rebased = (now.loc[old.index] != old).groupby(level=["exchange", "symbol"]).sum()
    assert rebased[rebased > 0].to_dict() == {("binance", "BTC/USDT"): LAG, ("kraken", "BTC/USD"): LAG}

    assert runs["noop"].rows_written == 0 and runs["noop"].silver_version == increment.silver_version
    assert runs["noop"].cross_exchange_version == increment.cross_exchange_version
    assert runs["refresh"].rows_written == len(refreshed) == len(incremental) and runs["refresh"].full_refresh
    _same_features(incremental, refreshed)
    pd.testing.assert_frame_equal(
        runs["incremental_cross"].drop(columns="computed_at"),
        runs["refreshed_cross"].drop(columns="computed_at"),
        rtol=1e-12,
    )


def test_a_bounded_increment_reads_its_window_only_and_equals_a_full_refresh(spark, tmp_path_factory) -> None:
    """The change data feed's earliest new candle bounds the read to the files its window needs; a series
    silent for longer than that window (kraken ETH, back after 400 hours) falls back to reading everything."""
    settings = Settings(home=tmp_path_factory.mktemp("bounded") / "state")
    bronze = catalog.CANDLES.path(settings)

    def silent(rows: pd.DataFrame) -> pd.Series:
        return (rows["exchange"] == "kraken") & (rows["symbol"] == "ETH/USD")

    for part in (slice(0, 200), slice(200, 400), slice(400, 600)):  # one file per exchange and landing
        rows = _candles(part, part.stop, total=624)
        lake.upsert(
            settings, catalog.CANDLES, rows[~silent(rows)] if part.start else rows, change_column="payload_hash"
        )
    compute_candle_features(spark, settings)
    landed = lake.version(bronze)
    lake.upsert(settings, catalog.CANDLES, _candles(slice(600, 624), 624, total=624), change_column="payload_hash")

    since = lake.first_change(bronze, landed, "open_time")
    assert since == START + pd.Timedelta(hours=600)
    assert lake.first_change(bronze, lake.version(bronze), "open_time") is None
    bound = since - pd.Timedelta(hours=2 * (LOOKBACK + 1))
    assert len(lake.files_since(bronze, "open_time", bound)) < len(DeltaTable(bronze).file_uris())
    increment = compute_candle_features(spark, settings, changed_since=since)
    assert not increment.full_refresh and increment.series == 7
    incremental = _silver(settings)
    compute_candle_features(spark, settings, full_refresh=True)
    refreshed = _silver(settings)
    pd.testing.assert_frame_equal(incremental[CANDLE_KEYS], refreshed[CANDLE_KEYS])
    for column in FEATURES:
        np.testing.assert_allclose(
            incremental[column].astype(float),
            refreshed[column].astype(float),
            rtol=1e-9,
            atol=1e-12,
            equal_nan=True,
            err_msg=column,
        )


def test_an_older_silver_schema_is_replaced_by_a_full_recompute(spark, tmp_path_factory) -> None:
    settings = Settings(home=tmp_path_factory.mktemp("old-silver") / "state")
    _ingest(settings, slice(0, 30), lagging_until=30)
    path = catalog.CANDLE_FEATURES.path(settings)
    older = lake.read(catalog.CANDLES.path(settings), columns=[*CANDLE_KEYS, "close"])
    write_deltalake(path, older, partition_by=["exchange"], configuration={"delta.enableChangeDataFeed": "true"})
    result = compute_candle_features(spark, settings)
    assert result.full_refresh and result.rows_written == len(older)
    assert _silver(settings).columns.tolist() == catalog.CANDLE_FEATURES.schema.names
    assert DeltaTable(path).metadata().configuration.get("delta.enableChangeDataFeed") == "true"


DELTA_SPARK_JARS = os.environ.get("SENTINANCE_DELTA_SPARK_JARS", "")


@pytest.mark.parametrize(
    "backend",
    [
        "delta-rs",
        pytest.param(
            "delta-spark",
            marks=pytest.mark.skipif(
                not DELTA_SPARK_JARS,
                reason="the delta-spark connector's jars are not reachable here (no Maven): set "
                "SENTINANCE_DELTA_SPARK_JARS to delta-spark and delta-storage jars to run it",
            ),
        ),
    ],
)
def test_spark_submit_runs_the_job_on_either_delta_backend(runs: dict, backend: str, tmp_path_factory) -> None:
    """The job as a spark-submit application, on a copy of the module's bronze: a full build
    then a no-op increment, equal to the in-process full refresh."""
    home = tmp_path_factory.mktemp(f"submit-{backend}") / "state"
    bronze = catalog.CANDLES.path(runs["settings"])
    shutil.copytree(bronze, catalog.CANDLES.path(Settings(home=home)))
    env = {
        **os.environ,
        "SENTINANCE_HOME": str(home),
        "SENTINANCE_DELTA_BACKEND": backend,
        "PYSPARK_PYTHON": sys.executable,
    }
    submit = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        "local[2]",
        "--conf",
        "spark.driver.host=127.0.0.1",
        "--conf",
        "spark.sql.session.timeZone=UTC",
    ]
    if backend == "delta-spark":
        submit += ["--jars", DELTA_SPARK_JARS]
    job = str(Path(candle_features.__file__))
    for _ in range(2):
        done = subprocess.run(
            [*submit, job], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-3000:]
    assert f"Delta IO through {backend}" in done.stdout and "nothing to do" in done.stdout
    submitted = _silver(Settings(home=home))
    refreshed = runs["refreshed_silver"]
    _same_features(submitted, refreshed)


# -- several intervals ---------------------------------------------------------------------------

INTERVALS = ("5m", "1h", "4h")
MULTI = Universe(assets=("BTC", "XRP"))  # XRP: parameters from its name
T0 = pd.Timestamp("2025-03-01", tz="UTC")
T1, T2 = T0 + pd.Timedelta(days=40), T0 + pd.Timedelta(days=42)


def _simulated(start: pd.Timestamp, end: pd.Timestamp, intervals: tuple[str, ...]) -> pd.DataFrame:
    """Bronze rows of the simulator's candles of ``intervals`` (5m only over the last 4 days: it is dense)."""
    frames = [
        simulate_candles(
            max(start, T2 - pd.Timedelta(days=4)) if i == "5m" else start, end, seed=7, universe=MULTI, interval=i
        )
        for i in intervals
    ]
    rows = pd.concat(frames, ignore_index=True)
    return rows.assign(
        source="simulator",
        ingested_at=pd.Timestamp.now(tz="UTC"),
        flow_run_id="test",
        payload_hash=[hashlib.sha256(repr(r).encode()).hexdigest() for r in rows.itertuples(index=False)],
    )[catalog.CANDLES.schema.names]


def _land(settings: Settings, rows: pd.DataFrame) -> None:
    lake.merge(
        catalog.CANDLES.path(settings), rows, CANDLE_KEYS, schema=catalog.CANDLES.schema, partition_by=["exchange"]
    )


@pytest.fixture(scope="module")
def interval_runs(spark, tmp_path_factory) -> dict[str, object]:
    """Three intervals of two assets on three exchanges: a first run, an increment of 5m and 1h
    only, one of 4h only, and a full refresh."""
    settings = Settings(home=tmp_path_factory.mktemp("intervals") / "state")
    _land(settings, _simulated(T0, T1, INTERVALS))
    first = compute_candle_features(spark, settings)
    before = _silver(settings)
    _land(settings, _simulated(T1, T2, ("5m", "1h")))
    fine = compute_candle_features(spark, settings)
    after_fine = _silver(settings)
    _land(settings, _simulated(T1, T2, ("4h",)))
    coarse = compute_candle_features(spark, settings)
    incremental, incremental_cross = _silver(settings), _silver(settings, "cross_exchange_features")
    refresh = compute_candle_features(spark, settings, full_refresh=True)
    return dict(
        settings=settings,
        first=first,
        before=before,
        fine=fine,
        after_fine=after_fine,
        coarse=coarse,
        incremental=incremental,
        incremental_cross=incremental_cross,
        refresh=refresh,
        refreshed=_silver(settings),
        refreshed_cross=_silver(settings, "cross_exchange_features"),
        bronze=_valid_bronze(settings),
    )


def test_every_interval_matches_talib_counted_in_its_own_candles(interval_runs: dict) -> None:
    silver, bronze = interval_runs["refreshed"], interval_runs["bronze"]
    assert set(silver["interval"]) == set(INTERVALS) and silver.groupby(SERIES_KEYS).ngroups == 3 * 2 * 3
    for key, series in silver.groupby(SERIES_KEYS):
        interval = key[2]
        candles = bronze.loc[(bronze[SERIES_KEYS] == key).all(axis=1)].reset_index(drop=True)
        _matches_talib(series, candles, key)
        close = candles["close"].to_numpy()
        # annualised with the interval's periods per year; gaps counted in intervals
        periods = 365 * 86400 / INTERVAL_SECONDS[interval]
        returns = pd.Series(np.log(close)).diff()
        np.testing.assert_allclose(
            series["realized_vol_24"].to_numpy(dtype=float),
            returns.rolling(24).std().to_numpy() * np.sqrt(periods),
            rtol=1e-9,
            equal_nan=True,
        )
        steps = candles["open_time"].diff() / pd.Timedelta(seconds=INTERVAL_SECONDS[interval]) - 1
        np.testing.assert_array_equal(series["gap_bars"].to_numpy(dtype=float)[1:], steps.to_numpy()[1:])
    assert silver.loc[silver["interval"] == "5m", "gap_bars"].max() > 0  # the simulator's empty 5 minutes


def test_cross_exchange_features_never_mix_intervals(interval_runs: dict) -> None:
    cross, bronze = interval_runs["refreshed_cross"], interval_runs["bronze"]
    expected = bronze.groupby(CROSS_EXCHANGE_KEYS).agg(
        exchange_count=("exchange", "nunique"), total_volume=("volume", "sum")
    )
    joined = cross.set_index(CROSS_EXCHANGE_KEYS).join(expected, rsuffix="_bronze", how="outer")
    assert len(joined) == len(cross) == len(expected)
    assert (joined["exchange_count"] == joined["exchange_count_bronze"]).all()
    np.testing.assert_allclose(joined["total_volume"], joined["total_volume_bronze"], rtol=1e-12)
    four = cross[cross["interval"] == "4h"]
    assert (four["open_time"] == four["open_time"].dt.floor("4h")).all() and four["exchange_count"].max() == 3


def test_increments_run_per_series_and_equal_a_full_refresh(interval_runs: dict) -> None:
    bronze = interval_runs["bronze"]
    new = bronze[bronze["open_time"] >= T1].groupby("interval").size()
    fine, coarse = interval_runs["fine"], interval_runs["coarse"]
    assert not fine.full_refresh and fine.series == 2 * 2 * 3  # the 5m and 1h series only
    assert fine.rows_written == new["5m"] + new["1h"]
    assert coarse.series == 2 * 3 and coarse.rows_written == new["4h"]
    before, after = (interval_runs[k].set_index(CANDLE_KEYS)["computed_at"] for k in ("before", "after_fine"))
    untouched = after.loc[before.index] == before
    assert untouched.all(), "an increment rewrites no earlier row of a series (every exchange delivered)"
    assert (after.xs("4h", level="interval").index.get_level_values("open_time") < T1).all()

    incremental, refreshed = interval_runs["incremental"], interval_runs["refreshed"]
    _same_features(incremental, refreshed)
    pd.testing.assert_frame_equal(
        interval_runs["incremental_cross"].drop(columns="computed_at"),
        interval_runs["refreshed_cross"].drop(columns="computed_at"),
        rtol=1e-12,
    )
