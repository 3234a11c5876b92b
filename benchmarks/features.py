"""Benchmark: rows/s of the whole silver feature set in Spark, against TA-Lib and pandas on the same data.

For each size, one run of this script generates hourly candles of 9 series (3 exchanges x 3
assets, one aligned grid of hours) and writes them to one Parquet file, then times:

* **spark** - the job's own plan (``valid_candles`` -> ``cross_exchange_features`` and
  ``with_basis`` -> ``per_series_features``, as a full refresh computes it) on
  ``SENTINANCE_SPARK_MASTER`` (default ``local[*]``), from reading the Parquet file to a
  ``noop`` sink: every feature computed, no Delta write (Delta IO is benchmarked with the lake);
* **talib** - the same features in one Python thread: TA-Lib for every indicator it has
  (SMA, EMA, RSI, MACD, BBANDS, ATR, OBV, ROCR for returns, SUM for VWAP, STDDEV for the
  volatilities and z-score), numpy for the rest, pandas groupby for the cross-exchange part;
* **pandas** - the same features written idiomatically in pandas (``rolling``, ``ewm``;
  Wilder smoothing as ``ewm(alpha=1/n)``, so not TA-Lib's seeding), one thread.

The baselines run in fresh processes (their peak RSS is ``ru_maxrss`` of that process,
which includes the data). Spark's peak memory is the JVM's and the Python workers' high-water
RSS (``VmHWM``), which only grow over the run: sizes go in increasing order. Printed: rows/s,
the time ratios spark/talib and pandas/talib, and Spark's fixed costs (session start; the
same plan on 9 x 200 rows, cold and warm).

    .venv/bin/python benchmarks/features.py [--sizes 1e5 1e6 1e7]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sentinance.catalog import CROSS_EXCHANGE_KEYS, SERIES_KEYS
from sentinance.settings import configure, get_settings, interval_seconds
from sentinance.spark_jobs.features.series import SECONDS_PER_YEAR

START = pd.Timestamp("2020-01-01", tz="UTC")
UNIVERSE = get_settings().universe
INTERVAL = UNIVERSE.intervals[0]
ASSETS = UNIVERSE.assets
SERIES = [(exchange, asset) for exchange in UNIVERSE.exchanges for asset in ASSETS]
PERIODS_PER_YEAR = SECONDS_PER_YEAR / interval_seconds(INTERVAL)


def generate(rows: int, path: Path) -> None:
    """``rows`` candles (a geometric random walk per asset, venue noise, gamma volumes) as Parquet."""
    rng = np.random.default_rng(7)
    hours = rows // len(SERIES)
    walks = {a: 1_000.0 * np.exp(np.cumsum(rng.normal(0, 0.006, hours))) for a in ASSETS}
    tables = []
    for exchange, asset in SERIES:
        close = walks[asset] * np.exp(rng.normal(0, 5e-4, hours))
        spread = np.abs(rng.normal(0, 0.002, hours))
        tables.append(
            pa.table(
                {
                    "exchange": pa.array([exchange] * hours).dictionary_encode(),
                    "symbol": pa.array([f"{asset}/USD"] * hours).dictionary_encode(),
                    "interval": pa.array([INTERVAL] * hours).dictionary_encode(),
                    "open_time": pa.array(START + pd.to_timedelta(np.arange(hours), "h"), pa.timestamp("us", "UTC")),
                    "high": close * (1 + spread),
                    "low": close * (1 - spread),
                    "close": close,
                    "volume": rng.gamma(2.0, 10.0, hours),
                }
            )
        )
    pq.write_table(pa.concat_tables(tables), path, row_group_size=1 << 20)


def _load(path: Path) -> pd.DataFrame:
    frame = pq.read_table(path).to_pandas()
    symbols = frame["symbol"].cat.categories
    return frame.assign(asset=frame["symbol"].cat.rename_categories([s.split("/")[0] for s in symbols]))


def _cross(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Consolidated VWAP, spread and exchange count per hour, and each candle's basis (pandas)."""
    frame = frame.assign(notional=frame["close"] * frame["volume"])
    by_hour = frame.groupby(CROSS_EXCHANGE_KEYS, observed=True, sort=False)
    hours = by_hour.agg(
        exchange_count=("exchange", "nunique"),
        total_volume=("volume", "sum"),
        notional=("notional", "sum"),
        max_close=("close", "max"),
        min_close=("close", "min"),
    )
    vwap = (hours["notional"] / hours["total_volume"]).where(hours["total_volume"] > 0)
    hours = hours.assign(consolidated_vwap=vwap, spread_bps=(hours["max_close"] - hours["min_close"]) / vwap * 1e4)
    volume = by_hour["volume"].transform("sum").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        prices = np.where(volume > 0, by_hour["notional"].transform("sum").to_numpy() / volume, np.nan)
    return hours, (frame["close"].to_numpy() / prices - 1) * 1e4


def talib_features(path: Path) -> tuple[float, float]:
    """Seconds for every feature with TA-Lib (single thread), and the process's peak RSS in MB."""
    import talib

    frame = _load(path)
    started = time.perf_counter()
    out: dict[str, list[np.ndarray]] = {}
    for _, series in frame.groupby(SERIES_KEYS, sort=False, observed=True):
        h, low, c, v = (series[k].to_numpy() for k in ("high", "low", "close", "volume"))
        t = series["open_time"].to_numpy(dtype="datetime64[us]").astype(np.int64)
        values = {"gap_bars": np.diff(t, prepend=t[0]) // 3_600_000_000 - 1}
        for horizon in (1, 4, 24):
            ratio = talib.ROCR(c, horizon)
            values[f"simple_return_{horizon}"], values[f"log_return_{horizon}"] = ratio - 1, np.log(ratio)
        values["sma_20"], values["ema_20"], values["rsi_14"] = talib.SMA(c, 20), talib.EMA(c, 20), talib.RSI(c, 14)
        values["macd"], values["macd_signal"], values["macd_hist"] = talib.MACD(c, 12, 26, 9)
        upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            values["bb_pct_b"] = np.where(upper > lower, (c - lower) / (upper - lower), np.nan)
            values["bb_bandwidth"] = (upper - lower) / middle
            traded = talib.SUM(v, 24)
            values["vwap_24"] = np.where(traded > 0, talib.SUM((h + low + c) / 3 * v, 24) / traded, np.nan)
            deviation = talib.STDDEV(v, 24) * np.sqrt(24 / 23)
            values["volume_zscore_24"] = np.where(deviation > 0, (v - talib.SMA(v, 24)) / deviation, np.nan)
        values["bb_upper"], values["bb_lower"] = upper, lower
        values["atr_14"], values["obv"] = talib.ATR(h, low, c, 14), talib.OBV(c, v)
        for w in (24, 168):
            sample = np.sqrt(w / (w - 1) * PERIODS_PER_YEAR)  # STDDEV is the population one
            values[f"realized_vol_{w}"] = talib.STDDEV(values["log_return_1"], w) * sample
        for name, array in values.items():
            out.setdefault(name, []).append(array)
    features = {name: np.concatenate(arrays) for name, arrays in out.items()}
    _, features["basis_bps"] = _cross(frame)
    return time.perf_counter() - started, _peak_rss_mb()


def pandas_features(path: Path) -> tuple[float, float]:
    """Seconds for every feature in idiomatic pandas (single thread), and the peak RSS in MB."""
    frame = _load(path)
    started = time.perf_counter()
    parts = []
    for _, series in frame.groupby(SERIES_KEYS, sort=False, observed=True):
        c, h, low, v = series["close"], series["high"], series["low"], series["volume"]
        f = pd.DataFrame(index=series.index)
        f["gap_bars"] = series["open_time"].diff() / pd.Timedelta(hours=1) - 1
        for horizon in (1, 4, 24):
            f[f"simple_return_{horizon}"] = c.pct_change(horizon)
            f[f"log_return_{horizon}"] = np.log(c / c.shift(horizon))
        f["sma_20"], std_20 = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
        f["ema_20"] = c.ewm(span=20, adjust=False).mean()
        diff = c.diff()
        gain = diff.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
        loss = (-diff).clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
        f["rsi_14"] = 100 * gain / (gain + loss)
        f["macd"] = c.ewm(span=12, adjust=False).mean() - c.ewm(span=26, adjust=False).mean()
        f["macd_signal"] = f["macd"].ewm(span=9, adjust=False).mean()
        f["macd_hist"] = f["macd"] - f["macd_signal"]
        f["bb_upper"], f["bb_lower"] = f["sma_20"] + 2 * std_20, f["sma_20"] - 2 * std_20
        f["bb_pct_b"] = (c - f["bb_lower"]) / (f["bb_upper"] - f["bb_lower"])
        f["bb_bandwidth"] = (f["bb_upper"] - f["bb_lower"]) / f["sma_20"]
        prev = c.shift()
        true_range = pd.concat([h - low, (h - prev).abs(), (low - prev).abs()], axis=1).max(axis=1)
        f["atr_14"] = true_range.ewm(alpha=1 / 14, adjust=False).mean()
        f["obv"] = (np.sign(diff).fillna(0) * v).cumsum() + v.iloc[0]
        f["vwap_24"] = ((h + low + c) / 3 * v).rolling(24).sum() / v.rolling(24).sum()
        for w in (24, 168):
            f[f"realized_vol_{w}"] = f["log_return_1"].rolling(w).std() * np.sqrt(PERIODS_PER_YEAR)
        f["volume_zscore_24"] = (v - v.rolling(24).mean()) / v.rolling(24).std()
        parts.append(f)
    features = pd.concat(parts)
    _, features["basis_bps"] = _cross(frame)
    return time.perf_counter() - started, _peak_rss_mb()


def spark_features(spark, path: Path) -> float:
    """Seconds for the job's plan from the Parquet file to a noop sink."""
    from pyspark.sql import functions as F

    from sentinance.spark_jobs.features.cross_exchange import cross_exchange_features, with_basis
    from sentinance.spark_jobs.features.job import per_series_features, valid_candles

    started = time.perf_counter()
    candles = valid_candles(spark.read.parquet(str(path)))
    tail = with_basis(candles.withColumn("is_new", F.lit(True)), cross_exchange_features(candles))
    features = per_series_features(tail)
    features.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _high_water_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def _spark_memory() -> tuple[float, float]:
    """High-water RSS (MB) of the JVM and of the largest Python worker under this process."""
    import psutil

    children = psutil.Process().children(recursive=True)
    jvm = [_high_water_mb(p.pid) for p in children if "java" in p.name()]
    workers = [_high_water_mb(p.pid) for p in children if "python" in p.name()]
    return max(jvm, default=0.0), max(workers, default=0.0)


def _in_fresh_process(function, path: Path) -> tuple[float, float]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, (path,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e5, 1e6, 1e7], help="rows per run")
    args = parser.parse_args()
    from sentinance.spark_jobs.session import get_spark

    workdir = Path(tempfile.mkdtemp(prefix="sentinance-bench-features-"))
    started = time.perf_counter()
    spark = get_spark(configure(get_settings()))
    session_start = time.perf_counter() - started
    generate(9 * 200, workdir / "tiny.parquet")
    cold, warm = (spark_features(spark, workdir / "tiny.parquet") for _ in range(2))
    print(
        f"Spark {spark.version} on {spark.sparkContext.master}, {os.cpu_count()} cores; fixed costs: "
        f"session start {session_start:.1f} s, 9 x 200 rows cold {cold:.1f} s, warm {warm:.1f} s"
    )
    print(f"{'rows':>10} {'engine':>7} {'seconds':>8} {'rows/s':>11} {'x talib':>8}  peak memory")
    for size in sorted(int(s) for s in args.sizes):
        path = workdir / f"candles-{size}.parquet"
        generate(size, path)
        rows = pq.read_metadata(path).num_rows
        talib_s, talib_mb = _in_fresh_process(talib_features, path)
        pandas_s, pandas_mb = _in_fresh_process(pandas_features, path)
        spark_s = spark_features(spark, path)
        jvm_mb, worker_mb = _spark_memory()
        for engine, seconds, memory in (
            ("talib", talib_s, f"{talib_mb:,.0f} MB (process RSS)"),
            ("pandas", pandas_s, f"{pandas_mb:,.0f} MB (process RSS)"),
            (
                "spark",
                spark_s,
                f"JVM {jvm_mb:,.0f} MB, largest Python worker {worker_mb:,.0f} MB, "
                f"driver {_peak_rss_mb():,.0f} MB (high-water so far)",
            ),
        ):
            print(
                f"{rows:>10,} {engine:>7} {seconds:>8.2f} {rows / seconds:>11,.0f} {seconds / talib_s:>8.1f}  {memory}",
                flush=True,
            )
        path.unlink()
    spark.stop()


if __name__ == "__main__":
    main()
