"""Silver features with PySpark: bronze candles -> ``silver/candle_features`` and ``silver/cross_exchange_features``.

- ``candle_features``: one row per valid bronze candle, per series ``(exchange, symbol,
  interval)`` in ``open_time`` order, with the feature set of :mod:`.series_features`
  (applied per series through ``applyInPandas``: exact recursions, one definition per
  indicator in :mod:`.indicators`) and ``basis_bps``, the candle's deviation from its
  period's consolidated price (the same interval's candles of every exchange);
- ``cross_exchange_features``: one row per ``(asset, interval, open_time)``, see
  :mod:`.cross_exchange`.

A bronze candle missing any of high, low, close or volume (null or NaN) is treated as
missing: a gap, counted in the next candle's ``gap_bars``. Feature definitions, warm-up
and the gap policy: ``docs/features.md``.

Incremental runs (the default) take per series the silver watermark (last ``open_time``)
and the recursions' state in that row (:data:`.series_features.STATE_COLUMNS`); bronze rows
after the watermark are new. Only the tail is recomputed: the new rows plus the
``LOOKBACK`` rows before them, the recursions resumed from the state, and the periods the
new rows touch in the cross-exchange table. Written are the new rows, the cross-exchange
rows of their periods, and the other exchanges' silver rows of those periods with their
``basis_bps`` updated (there are such rows when an exchange lagged behind and caught up: the
consolidated price of those periods moved). That equals a full refresh. Bronze rows
that arrive behind the watermark or change after being processed are picked up by
``full_refresh=True`` (recompute and upsert everything), which also replaces a silver table
written with an older schema.

Reads and writes go through :mod:`.delta_io` (delta-rs from the driver locally, the
delta-spark connector's ``MERGE INTO`` from the executors on a cluster), upserting by key
with the change data feed on (the warehouse loader reads it), the cross-exchange table
first, so a failed run is redone by the next. The workers import this module, so on a cluster the ``sentinance`` package
must be installed on the executors.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from sentinance import faults
from sentinance.catalog import (
    CANDLE_FEATURES,
    CANDLE_KEYS,
    CANDLES,
    CROSS_EXCHANGE_FEATURES,
    CROSS_EXCHANGE_KEYS,
    SERIES_KEYS,
)
from sentinance.errors import MissingInputError
from sentinance.settings import INTERVAL_SECONDS, Settings, configure, get_settings
from sentinance.spark_jobs.delta_io import delta_io
from sentinance.spark_jobs.features.cross_exchange import cross_exchange_features, with_basis
from sentinance.spark_jobs.features.series import LOOKBACK, STATE_COLUMNS, SeriesState, series_features
from sentinance.spark_jobs.session import get_spark

log = logging.getLogger(__name__)

INPUTS = ["high", "low", "close", "volume"]
# what applyInPandas returns per series: silver without the run time
SERIES_SCHEMA = from_arrow_schema(
    pa.schema([f for f in CANDLE_FEATURES.schema if f.name != "computed_at"]), prefer_timestamp_ntz=False
)


@dataclass(frozen=True)
class FeatureRunResult:
    """Rows upserted into each silver table, the series they belong to, the tables' versions
    after the run, and whether every row was recomputed (asked for, no silver table yet, or
    one with an older schema)."""

    rows_written: int
    series: int
    silver_version: int | None
    cross_exchange_rows: int
    cross_exchange_version: int | None
    full_refresh: bool
    skipped: bool = False  # bronze had not changed since the last run: no Spark job ran


def compute_candle_features(
    spark: SparkSession, settings: Settings, *, full_refresh: bool = False, changed_since: datetime | None = None
) -> FeatureRunResult:
    """Compute the features of new bronze candles (all with ``full_refresh``) into silver.

    ``changed_since``, the earliest open time among the bronze candles changed since the last run
    (from bronze's change data feed), bounds what is read to the window its new rows need: their
    series' last ``LOOKBACK`` silver rows and the candles after them. Without it, or when a series
    with new rows has fewer silver rows in that window than its look-back needs (a long gap, a young
    series), every row is read, as before.
    """
    io = delta_io(spark, settings)
    bronze_path, silver_path, cross_path = (
        t.path(settings) for t in (CANDLES, CANDLE_FEATURES, CROSS_EXCHANGE_FEATURES)
    )
    if not io.exists(bronze_path):
        raise MissingInputError(f"no bronze candles table at {bronze_path}: run `sentinance ingest` first")
    outdated = io.exists(silver_path) and io.columns(silver_path) != CANDLE_FEATURES.schema.names
    if outdated:
        log.warning("silver candle_features has an older schema: recomputing every row and replacing it")
    incremental = not full_refresh and not outdated and io.exists(silver_path)
    run_time = F.lit(datetime.now(UTC))

    since = _bound(settings, changed_since) if incremental and changed_since is not None else None
    candles = valid_candles(io.read(bronze_path, since))
    if incremental:
        silver = io.read(silver_path, since)
        state = io.materialize(_silver_state(silver))
        marked = _mark_new(candles, state)
        new_keys = io.materialize(marked.where("is_new").select(*CANDLE_KEYS, "asset"))
        if since is not None and _short(new_keys, state, io.read(silver_path)):
            log.info("silver features: a series with new candles has older silver rows than the window: reading all")
            candles, silver = valid_candles(io.read(bronze_path)), io.read(silver_path)
            marked = _mark_new(candles, io.materialize(_silver_state(silver)))
            new_keys = io.materialize(marked.where("is_new").select(*CANDLE_KEYS, "asset"))
        if new_keys.isEmpty():
            log.info("silver features: no bronze candles after the watermarks, nothing to do")
            return FeatureRunResult(0, 0, io.version(silver_path), 0, io.version(cross_path), False)
        periods = new_keys.select(*CROSS_EXCHANGE_KEYS).distinct()
        tail = _tail(marked, new_keys.select(*SERIES_KEYS).distinct())
        scope = candles.join(periods, CROSS_EXCHANGE_KEYS, "left_semi")
    else:
        tail, scope = candles.withColumn("is_new", F.lit(True)), candles
    cross = io.merge(
        cross_exchange_features(scope).withColumn("computed_at", run_time),
        cross_path,
        CROSS_EXCHANGE_KEYS,
        schema=CROSS_EXCHANGE_FEATURES.schema,
        configuration=CROSS_EXCHANGE_FEATURES.configuration,
        window=since,  # every row written is at or after the first change, hence after the bound
    )

    faults.reach(settings, "silver-write")
    features = per_series_features(with_basis(tail, cross.frame))
    if incremental:  # other exchanges' rows of the new rows' periods: their consolidated price moved
        rebased = silver.join(periods, CROSS_EXCHANGE_KEYS, "left_semi").join(new_keys, CANDLE_KEYS, "left_anti")
        features = features.unionByName(with_basis(rebased.drop("basis_bps", "computed_at"), cross.frame))
    rows = features.withColumn("computed_at", run_time)
    options = dict(
        schema=CANDLE_FEATURES.schema,
        partition_by=CANDLE_FEATURES.partition_by,
        configuration=CANDLE_FEATURES.configuration,
    )
    silver_written = (
        io.replace(rows, silver_path, **options)
        if outdated
        else io.merge(rows, silver_path, CANDLE_KEYS, window=since, **options)
    )
    result = FeatureRunResult(
        rows_written=silver_written.rows,
        series=len(silver_written.counts(SERIES_KEYS)),
        silver_version=silver_written.version,
        cross_exchange_rows=cross.rows,
        cross_exchange_version=cross.version,
        full_refresh=not incremental,
    )
    log.info("silver features: %s", result)
    return result


def valid_candles(bronze: DataFrame) -> DataFrame:
    """Bronze candles with every input present (the others are gaps), with their ``asset``."""
    present = reduce(lambda a, b: a & b, [F.col(c).isNotNull() & ~F.isnan(c) for c in INPUTS])
    return bronze.where(present).select(*CANDLE_KEYS, F.substring_index("symbol", "/", 1).alias("asset"), *INPUTS)


def per_series_features(tail: DataFrame) -> DataFrame:
    """The new rows of ``tail`` (``is_new``, with their ``basis_bps``) with every per-series
    feature, one pandas batch per series."""
    return tail.groupBy(*SERIES_KEYS).applyInPandas(_series_rows, SERIES_SCHEMA)


def _series_rows(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.sort_values("open_time", ignore_index=True)
    first_new = int(np.argmax(rows["is_new"].to_numpy(dtype=bool)))  # earlier rows come first
    state = None
    if "state_close" in rows:
        state = SeriesState.from_values({name: rows[f"state_{name}"].iat[0] for name in STATE_COLUMNS})
    features = series_features(rows, rows["interval"].iat[0], state, first_new)
    kept = rows.loc[first_new:, [*CANDLE_KEYS, "asset", "close", "volume", "basis_bps"]].reset_index(drop=True)
    return pd.concat([kept, features], axis=1)


def _silver_state(silver: DataFrame) -> DataFrame:
    """Per series: the watermark, the recursions' state after the last silver row, and
    ``tail_start``, the first of the last ``LOOKBACK`` silver rows."""
    last = F.max_by(F.struct("open_time", *STATE_COLUMNS), "open_time")
    tail_start = F.array_min(F.max_by("open_time", "open_time", LOOKBACK))
    return (
        silver.groupBy(*SERIES_KEYS)
        .agg(last.alias("last"), tail_start.alias("tail_start"), F.count("*").alias("rows"))
        .select(
            *SERIES_KEYS,
            F.col("last.open_time").alias("watermark"),
            "tail_start",
            "rows",
            *(F.col(f"last.{name}").alias(f"state_{name}") for name in STATE_COLUMNS),
        )
    )


def _bound(settings: Settings, changed_since: datetime) -> tuple[str, datetime]:
    """The bounded read's start: twice the look-back of the longest interval before the first change."""
    longest = max(INTERVAL_SECONDS[interval] for interval in settings.universe.intervals)
    return "open_time", changed_since - timedelta(seconds=2 * (LOOKBACK + 1) * longest)


def _short(new_keys: DataFrame, state: DataFrame, silver: DataFrame) -> bool:
    """Whether a series with new candles lacks look-back in the bounded window while the whole silver
    table has older rows of it (a long gap before its new candles)."""
    series = new_keys.select(*SERIES_KEYS).distinct()
    covered = state.where(F.col("rows") >= LOOKBACK).select(*SERIES_KEYS)
    uncertain = series.join(covered, SERIES_KEYS, "left_anti").join(state, SERIES_KEYS, "left")
    if uncertain.isEmpty():  # the steady state: every series with new candles has its look-back in the window
        return False
    earlier = silver.join(uncertain.select(*SERIES_KEYS, "tail_start"), SERIES_KEYS)
    return not earlier.where(F.col("tail_start").isNull() | (F.col("open_time") < F.col("tail_start"))).isEmpty()


def _mark_new(candles: DataFrame, state: DataFrame) -> DataFrame:
    """``candles`` with ``is_new`` (after the series' watermark) and the series' ``state_*`` columns."""
    return (
        candles.join(state.drop("rows"), SERIES_KEYS, "left")
        .withColumn("is_new", F.col("watermark").isNull() | (F.col("open_time") > F.col("watermark")))
        .drop("watermark")
    )


def _tail(rows: DataFrame, series: DataFrame) -> DataFrame:
    """Rows to recompute of ``series``: the new rows (``is_new``) and the ``LOOKBACK`` before them."""
    recent = F.col("tail_start").isNull() | (F.col("open_time") >= F.col("tail_start"))
    return rows.where(recent).drop("tail_start").join(series, SERIES_KEYS, "left_semi")


def main(argv: list[str] | None = None) -> FeatureRunResult:
    """``python -m sentinance.spark_jobs.features.job [--full-refresh]``; also runs as
    ``PYSPARK_PYTHON=.venv/bin/python spark-submit spark_jobs/candle_features.py``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-refresh", action="store_true", help="recompute every row")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    settings = configure(get_settings())
    spark = get_spark(settings)
    log.info("Spark %s on %s, Delta IO through %s", spark.version, spark.sparkContext.master, settings.delta_backend)
    try:
        return compute_candle_features(spark, settings, full_refresh=args.full_refresh)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
