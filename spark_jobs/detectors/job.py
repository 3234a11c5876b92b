"""Market-manipulation detectors: bronze candles and trades -> ``lake/gold/anomalies`` with PySpark.

- pump-and-dump (:mod:`.pump_and_dump`) on the hourly ``bronze/candles``, one ``applyInPandas``
  group per asset, so each venue is compared with the other venues of its asset;
- wash trading (:mod:`.wash_trading`) on ``bronze/trades``: Spark aggregates every trade into
  hourly statistics per series (:func:`hourly_trade_statistics`), then one group per series.
  Skipped while there is no trades table.

Thresholds come from :func:`.thresholds.load_thresholds` (defaults, overridable by a
TOML file in ``SENTINANCE_DETECTORS_CONFIG``). Every run detects over the whole bronze history
(the baselines are trailing windows, so an episode's verdict depends only on data up to its
end) and synchronises gold with the result in one merge (:mod:`.delta_io`, change data feed
on): new and changed anomalies are merged, unchanged ones are not rewritten, and those no
longer detected (bronze corrected, thresholds changed) are deleted, which the change feed
carries to the warehouse.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from sentinance.catalog import ANOMALIES, ANOMALY_INTERVAL, ANOMALY_KEYS, CANDLES, TRADES
from sentinance.errors import MissingInputError
from sentinance.settings import Settings, configure, get_settings
from sentinance.spark_jobs.delta_io import DeltaIO, delta_io
from sentinance.spark_jobs.detectors.pump_and_dump import detect_pumps
from sentinance.spark_jobs.detectors.thresholds import (
    DetectorThresholds,
    PumpAndDumpThresholds,
    WashTradingThresholds,
    load_thresholds,
)
from sentinance.spark_jobs.detectors.wash_trading import DIGIT_COLUMNS, DIGITS, detect_wash
from sentinance.spark_jobs.session import get_spark

log = logging.getLogger(__name__)

ANOMALY_SCHEMA = from_arrow_schema(ANOMALIES.schema, prefer_timestamp_ntz=False)


@dataclass(frozen=True)
class DetectorRunResult:
    anomalies: dict[str, int]  # anomalies per detector now in gold
    inserted: int
    updated: int
    deleted: int
    gold_version: int | None
    skipped: bool = False  # bronze had not changed since the last run: no Spark job ran


def run_detectors(
    spark: SparkSession,
    settings: Settings,
    thresholds: DetectorThresholds | None = None,
    changed_since: datetime | None = None,
) -> DetectorRunResult:
    """Detect over bronze and synchronise ``gold/anomalies`` with the result.

    With ``changed_since`` (the earliest candle or trade that changed since the last run) only the
    anomalies that data may change are recomputed: those starting after ``horizon`` before it, read
    from the candles and trades their trailing baselines need (:func:`recompute_from`).
    """
    thresholds = thresholds or load_thresholds(settings.detectors_config)
    candles_path, trades_path = CANDLES.path(settings), TRADES.path(settings)
    io = delta_io(spark, settings)
    if not io.exists(candles_path):
        raise MissingInputError(f"no bronze candles table at {candles_path}: run `sentinance ingest` first")
    cut = None if changed_since is None else recompute_from(changed_since, thresholds)
    since = None if cut is None else cut - _look_back(thresholds)
    found = [pump_anomalies(io.read(candles_path, since and ("open_time", since)), thresholds.pump_and_dump)]
    if io.exists(trades_path):
        found.append(wash_anomalies(io.read(trades_path, since and ("trade_time", since)), thresholds.wash_trading))
    else:
        log.info("no bronze trades table at %s: wash-trading detection skipped", trades_path)
    anomalies = reduce(DataFrame.unionByName, found)
    if cut is not None:
        anomalies = anomalies.where(F.col("start_time") >= F.lit(cut))
    result = _synchronise(io, ANOMALIES.path(settings), anomalies, cut)
    log.info("manipulation detectors%s: %s", "" if cut is None else f" from {cut}", result)
    return result


def recompute_from(changed_since: datetime, thresholds: DetectorThresholds) -> datetime:
    """The earliest start of an anomaly that data changed from ``changed_since`` on can change: a pump is
    judged on the hours after its peak (the reversal), and flagged hours close together form one episode."""
    pump = thresholds.pump_and_dump
    return changed_since - timedelta(hours=pump.reversal_hours + 1 + 4 * pump.max_run_up_hours)


def _look_back(thresholds: DetectorThresholds) -> timedelta:
    """The history an hour's statistics read: the trailing baseline and the longest run-up before it."""
    pump, wash = thresholds.pump_and_dump, thresholds.wash_trading
    return timedelta(hours=max(pump.baseline_hours + pump.max_run_up_hours, wash.baseline_hours) + 1)


def pump_anomalies(candles: DataFrame, thresholds: PumpAndDumpThresholds) -> DataFrame:
    """Pump-and-dump anomalies of bronze-shaped candles, per asset: the hourly ones only (its
    windows count hours; ANOMALY_INTERVAL), whichever other intervals bronze holds."""
    return (
        candles.where(F.col("close").isNotNull() & (F.col("interval") == ANOMALY_INTERVAL))
        .select(
            "exchange", "symbol", "open_time", "close", "volume", F.substring_index("symbol", "/", 1).alias("asset")
        )
        .groupBy("asset")
        .applyInPandas(_per_group(detect_pumps, thresholds), ANOMALY_SCHEMA)
    )


def hourly_trade_statistics(trades: DataFrame, round_significant_digits: int) -> DataFrame:
    """Per (exchange, symbol, hour): trades, volume, high, low, first-significant-digit counts
    (digit_1 .. digit_9), trades of round size and trades whose size recurs in the hour."""
    size = F.col("size")
    exponent = F.floor(F.log10(size) + 1e-9)
    mantissa = size / F.pow(F.lit(10.0), exponent)  # in [1, 10)
    scaled = mantissa * 10 ** (round_significant_digits - 1)
    per_trade = (
        trades.where((F.col("size") > 0) & (F.col("price") > 0))
        .select("exchange", "symbol", "price", "size", F.date_trunc("hour", "trade_time").alias("hour"))
        .withColumn("digit", F.least(F.floor(mantissa), F.lit(9)).cast("int"))
        .withColumn("is_round", F.abs(scaled - F.round(scaled)) < 1e-6)
        .withColumn("is_repeat", F.count("*").over(Window.partitionBy("exchange", "symbol", "hour", "size")) > 1)
    )
    return per_trade.groupBy("exchange", "symbol", "hour").agg(
        F.count("*").alias("trades"),
        F.sum("size").alias("volume"),
        F.max("price").alias("high"),
        F.min("price").alias("low"),
        *(
            F.count(F.when(F.col("digit") == int(d), 1)).alias(name)
            for d, name in zip(DIGITS, DIGIT_COLUMNS, strict=True)
        ),
        F.count(F.when(F.col("is_round"), 1)).alias("round_trades"),
        F.count(F.when(F.col("is_repeat"), 1)).alias("repeat_trades"),
    )


def wash_anomalies(trades: DataFrame, thresholds: WashTradingThresholds) -> DataFrame:
    """Wash-trading anomalies of bronze-shaped trades, per series."""
    return (
        hourly_trade_statistics(trades, thresholds.round_significant_digits)
        .groupBy("exchange", "symbol")
        .applyInPandas(_per_group(detect_wash, thresholds), ANOMALY_SCHEMA)
    )


def _per_group(detect: Callable[[pd.DataFrame, object], pd.DataFrame], thresholds: object):
    """``detect`` with its thresholds bound, as a plain function for ``applyInPandas``."""

    def apply(group: pd.DataFrame) -> pd.DataFrame:
        return detect(group, thresholds)

    return apply


def _synchronise(io: DeltaIO, path: str, anomalies: DataFrame, cut: datetime | None) -> DetectorRunResult:
    """Make the gold table hold exactly ``anomalies`` (from ``cut`` on, if given): one merge that inserts,
    updates the changed evidence and deletes the anomalies no longer found."""
    written = io.merge(
        anomalies.orderBy(*ANOMALY_KEYS),
        path,
        ANOMALY_KEYS,
        schema=ANOMALIES.schema,
        change_column="evidence",
        configuration=ANOMALIES.configuration,
        delete_missing=True,
        window=None if cut is None else ("start_time", cut),
    )
    counts = {row["detector"]: row["count"] for row in io.read(path).groupBy("detector").count().collect()}
    return DetectorRunResult(counts, written.inserted, written.updated, written.deleted, written.version)


def main(argv: list[str] | None = None) -> DetectorRunResult:
    """``python -m sentinance.spark_jobs.detectors.job``; also runs as
    ``PYSPARK_PYTHON=.venv/bin/python spark-submit spark_jobs/detectors/job.py``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="TOML file of thresholds (default: SENTINANCE_DETECTORS_CONFIG)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    settings = configure(get_settings())
    spark = get_spark(settings)
    try:
        return run_detectors(spark, settings, load_thresholds(args.config or settings.detectors_config))
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
