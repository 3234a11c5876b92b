"""Silver candle features: bronze candles -> ``lake/silver/candle_features`` with PySpark.

One row per bronze candle (``schemas.SILVER_CANDLE_FEATURES``), per series
``(exchange, symbol, interval)`` in ``open_time`` order:

- ``log_return``, ``sma_20``: Spark window functions (definitions in :mod:`.indicators`);
- ``rsi_14`` and its Wilder state ``rsi_avg_gain``/``rsi_avg_loss``: ``applyInPandas``
  calling :func:`.indicators.wilder_rsi` per series (an exact recursion);
- ``basis_bps``: ``(close / mean close of the asset over all exchanges at that hour - 1)
  * 1e4``. USDT is treated as USD (binance quotes USDT, coinbase and kraken USD), so
  the basis includes the USDT/USD spread;
- ``is_warmup``: any of ``log_return``, ``sma_20``, ``rsi_14`` is null.

Gaps: indicators run over consecutive *available* rows. A missing hour is not filled:
the next ``log_return`` spans the gap and SMA/RSI count rows, not hours. Bronze rows
without a close are treated as missing. Time-based lags (NULL for a missing hour) are
the dbt mart's job.

Incremental runs (the default) take per series the silver watermark (last
``open_time``); bronze rows after it are new. The job recomputes only the tail: the new
rows plus the previous ``LOOKBACK`` rows (the SMA window), resuming RSI from the last
silver row's state ``(close, rsi_avg_gain, rsi_avg_loss)``, and writes only the new
rows, which equal a full refresh. Bronze rows that arrive behind the watermark or
change after being processed, and the basis of an hour whose other exchanges arrive in
a later run, are picked up by ``full_refresh=True`` (recompute and upsert everything).

Writes go through :func:`sentinance.lake.merge` with the change data feed on (the
warehouse loader reads it). The workers import this module, so on a cluster the
``sentinance`` package must be installed on the executors.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from sentinance import lake
from sentinance.config import Settings, get_settings
from sentinance.schemas import CANDLE_KEYS, SERIES_KEYS, SILVER_CANDLE_FEATURES
from sentinance.spark_jobs.indicators import RSI_PERIOD, SMA_PERIOD, RsiState, wilder_rsi
from sentinance.spark_jobs.session import get_spark, read_delta

log = logging.getLogger(__name__)

# Earlier rows an increment recomputes: the SMA window, which also covers every row of a
# series still in RSI warm-up (its silver state is null, so RSI restarts from its first row).
LOOKBACK = max(SMA_PERIOD - 1, RSI_PERIOD)
HOUR_KEYS = ["asset", "interval", "open_time"]
STATE_COLUMNS = ["watermark", "prev_close", "prev_avg_gain", "prev_avg_loss"]
RSI_COLUMNS = ["rsi_14", "rsi_avg_gain", "rsi_avg_loss"]
SILVER_OPTIONS = {"delta.enableChangeDataFeed": "true"}


@dataclass(frozen=True)
class FeatureRunResult:
    """Rows upserted into silver, their series, the silver version after the run, and
    whether every row was recomputed (asked for, or no silver table yet)."""

    rows_written: int
    series: int
    silver_version: int | None
    full_refresh: bool


def compute_candle_features(
    spark: SparkSession, settings: Settings, *, full_refresh: bool = False
) -> FeatureRunResult:
    """Compute the features of new bronze candles (all with ``full_refresh``) into silver."""
    bronze_path = settings.table_path("bronze", "candles")
    silver_path = settings.table_path("silver", "candle_features")
    if not lake.exists(bronze_path):
        raise FileNotFoundError(f"no bronze candles table at {bronze_path}")
    run_time = datetime.now(timezone.utc)
    bronze = (
        read_delta(spark, settings, bronze_path)
        .where(F.col("close").isNotNull())
        .select(*CANDLE_KEYS, F.substring_index("symbol", "/", 1).alias("asset"), "close", "volume")
    )
    incremental = not full_refresh and lake.exists(silver_path)
    state = _silver_state(read_delta(spark, settings, silver_path)) if incremental else None
    features = _with_basis(_with_rsi(_with_windows(_tail(bronze, state))), bronze)
    rows = features.select(
        *(name for name in SILVER_CANDLE_FEATURES.names if name not in ("is_warmup", "computed_at")),
        (F.col("log_return").isNull() | F.col("sma_20").isNull() | F.col("rsi_14").isNull()).alias("is_warmup"),
        F.lit(run_time).alias("computed_at"),
    ).toArrow()
    merged = lake.merge(
        silver_path, rows, keys=CANDLE_KEYS, schema=SILVER_CANDLE_FEATURES, partition_by=["exchange"],
        configuration=SILVER_OPTIONS,
    )
    result = FeatureRunResult(
        rows_written=rows.num_rows,
        series=rows.select(SERIES_KEYS).group_by(SERIES_KEYS).aggregate([]).num_rows,
        silver_version=merged.version,
        full_refresh=not incremental,
    )
    log.info("silver candle features: %s", result)
    return result


def _silver_state(silver: DataFrame) -> DataFrame:
    """Per series: the watermark and the RSI state after the last silver row.

    Collected (one row per series) so the plans that use it start from a local relation.
    """
    last = F.max_by(F.struct("open_time", "close", "rsi_avg_gain", "rsi_avg_loss"), "open_time")
    state = silver.groupBy(*SERIES_KEYS).agg(last.alias("last")).select(
        *SERIES_KEYS,
        *(F.col(f"last.{src}").alias(dst) for src, dst in zip(
            ["open_time", "close", "rsi_avg_gain", "rsi_avg_loss"], STATE_COLUMNS)),
    )
    return silver.sparkSession.createDataFrame(state.toArrow())


def _tail(bronze: DataFrame, state: DataFrame | None) -> DataFrame:
    """Rows to recompute: new rows (``is_new``) plus up to ``LOOKBACK`` earlier ones per series."""
    if state is None:
        return bronze.select("*", *(F.lit(None).cast(t).alias(c) for c, t in zip(
            STATE_COLUMNS, ["timestamp", "double", "double", "double"])), F.lit(True).alias("is_new"))
    candles = bronze.join(state, SERIES_KEYS, "left").withColumn(
        "is_new", F.col("watermark").isNull() | (F.col("open_time") > F.col("watermark")))
    fresh = candles.where("is_new")
    latest_first = Window.partitionBy(*SERIES_KEYS).orderBy(F.col("open_time").desc())
    earlier = (
        candles.where(~F.col("is_new"))
        .withColumn("rank", F.row_number().over(latest_first))
        .where(F.col("rank") <= LOOKBACK)
        .drop("rank")
        .join(fresh.select(*SERIES_KEYS).distinct(), SERIES_KEYS, "left_semi")
    )
    return fresh.unionByName(earlier)


def _with_windows(tail: DataFrame) -> DataFrame:
    """``log_return`` and ``sma_20`` (NULL until the window holds ``SMA_PERIOD`` rows)."""
    in_order = Window.partitionBy(*SERIES_KEYS).orderBy("open_time")
    sma_window = in_order.rowsBetween(-(SMA_PERIOD - 1), Window.currentRow)
    close = F.col("close")
    return tail.select(
        "*",
        F.log(close / F.lag(close).over(in_order)).alias("log_return"),
        F.when(F.count(close).over(sma_window) == SMA_PERIOD, F.avg(close).over(sma_window)).alias("sma_20"),
    )


def _with_rsi(rows: DataFrame) -> DataFrame:
    """The new rows only, with ``rsi_14`` and its state (one pandas batch per series)."""
    kept = [f for f in rows.schema.fields if f.name not in (*STATE_COLUMNS, "is_new")]
    schema = StructType([*kept, *(StructField(name, DoubleType()) for name in RSI_COLUMNS)])
    return rows.groupBy(*SERIES_KEYS).applyInPandas(_series_rsi, schema)


def _series_rsi(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.sort_values("open_time", ignore_index=True)
    fresh = rows["is_new"].to_numpy(dtype=bool)
    close = rows["close"].to_numpy(dtype=float)
    first = rows.iloc[0]
    if pd.isna(first["prev_avg_gain"]):  # no resumable state: the tail is the whole series
        values = [v[fresh] for v in wilder_rsi(close)]
    else:
        state = RsiState(first["prev_close"], first["prev_avg_gain"], first["prev_avg_loss"])
        values = wilder_rsi(close[fresh], state=state)
    out = rows.loc[fresh].drop(columns=[*STATE_COLUMNS, "is_new"])
    return out.assign(**dict(zip(RSI_COLUMNS, values)))


def _with_basis(features: DataFrame, bronze: DataFrame) -> DataFrame:
    """``basis_bps`` against the mean close over all exchanges' bronze rows at that hour."""
    hours = features.select(*HOUR_KEYS).distinct()
    mean_close = (
        bronze.join(hours, HOUR_KEYS, "left_semi").groupBy(*HOUR_KEYS).agg(F.avg("close").alias("mean_close"))
    )
    basis = (F.col("close") / F.col("mean_close") - 1) * 1e4
    return features.join(mean_close, HOUR_KEYS, "left").withColumn("basis_bps", basis)


def main(argv: list[str] | None = None) -> FeatureRunResult:
    """``python -m sentinance.spark_jobs.candle_features [--full-refresh]``; also runs as
    ``PYSPARK_PYTHON=.venv/bin/python spark-submit spark_jobs/candle_features.py``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-refresh", action="store_true", help="recompute every row")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    settings = get_settings()
    spark = get_spark(settings)
    try:
        return compute_candle_features(spark, settings, full_refresh=args.full_refresh)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
