"""Benchmark: precision, recall and F1 of the manipulation detectors against the simulator's labels.

One run simulates ``--days`` of hourly candles (3 exchanges x 3 assets) and the trades of the
last ``--trade-days`` for one seed into a temporary lake (bronze, written directly: the GX
checkpoint is benchmarked elsewhere), runs the Spark job (``spark_jobs/detectors.py``, the
thresholds of ``SENTINANCE_DETECTORS_CONFIG`` or the defaults) and scores ``gold/anomalies``
against ``simulate_labels`` (:mod:`sentinance.spark_jobs.detectors.scoring`: an anomaly matches an
episode of its kind on the same instrument when their windows overlap).

Scored: episodes that start at least ``baseline_hours`` after the data does (trades for wash
trading) and end ``reversal_hours`` before it ends, and the anomalies that start in that span.
Below the job's figures, ablations on the same data with the pure detectors: pump-and-dump
without its cross-exchange checks, and wash trading with each signal alone (``min_signals`` 1,
the other signals switched off).

    .venv/bin/python benchmarks/detectors.py [--seed 7] [--days 730] [--trade-days 183]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from sentinance import catalog, lake
from sentinance.pipelines.sources.simulator import simulate_candles, simulate_labels, simulate_trades
from sentinance.settings import Settings
from sentinance.spark_jobs.delta_io import delta_io
from sentinance.spark_jobs.detectors.job import hourly_trade_statistics, run_detectors
from sentinance.spark_jobs.detectors.pump_and_dump import detect_pumps
from sentinance.spark_jobs.detectors.scoring import DetectorScore, score_detections
from sentinance.spark_jobs.detectors.thresholds import DetectorThresholds, load_thresholds
from sentinance.spark_jobs.detectors.wash_trading import detect_wash
from sentinance.spark_jobs.session import get_spark

END = pd.Timestamp("2026-01-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)


def build_lake(settings: Settings, seed: int, days: int, trade_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Bronze candles and trades of one seed; returns the first candle's and the first trade's hour."""
    start, trades_start = END - pd.Timedelta(days=days), END - pd.Timedelta(days=trade_days)
    lineage = dict(source="simulator", ingested_at=pd.Timestamp.now(tz="UTC"), flow_run_id=None, payload_hash="-")
    lake.upsert(settings, catalog.CANDLES, simulate_candles(start, END, seed=seed).assign(**lineage))
    lake.upsert(settings, catalog.TRADES, simulate_trades(trades_start, END, seed=seed).assign(**lineage))
    return start, trades_start


def scored(
    anomalies: pd.DataFrame, labels: pd.DataFrame, detector: str, since: pd.Timestamp, until: pd.Timestamp
) -> DetectorScore:
    found = anomalies[(anomalies["detector"] == detector) & (anomalies["start_time"] >= since)]
    truth = labels[(labels["kind"] == detector) & (labels["start_time"] >= since) & (labels["end_time"] < until)]
    return score_detections(found, truth, [detector])[0]


def row(name: str, score: DetectorScore) -> str:
    return (
        f"  {name:<44} {score.anomalies:>9} {score.true_positives:>6} {score.episodes:>8} "
        f"{score.episodes_found:>6} {score.precision:>9.3f} {score.recall:>6.3f} {score.f1:>6.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=730, help="days of candles (pump-and-dump)")
    parser.add_argument("--trade-days", type=int, default=183, help="days of trades (wash trading)")
    args = parser.parse_args()
    thresholds = load_thresholds()
    with tempfile.TemporaryDirectory(prefix="sentinance-bench-detectors-") as home:
        measure(Settings(home=Path(home)), args.seed, args.days, args.trade_days, thresholds)


def measure(settings: Settings, seed: int, days: int, trade_days: int, thresholds: DetectorThresholds) -> None:
    """Build the lake, run the job, print the scores and the ablations."""
    pump, wash = thresholds.pump_and_dump, thresholds.wash_trading
    begun = time.perf_counter()
    start, trades_start = build_lake(settings, seed, days, trade_days)
    built = time.perf_counter()
    spark = get_spark(settings)
    run = run_detectors(spark, settings, thresholds)
    detected = time.perf_counter()
    anomalies = lake.read(catalog.ANOMALIES.path(settings))
    labels = simulate_labels(start, END, seed=seed)
    until = END - pump.reversal_hours * HOUR
    pump_since, wash_since = start + pump.baseline_hours * HOUR, trades_start + wash.baseline_hours * HOUR

    candles = lake.read(catalog.CANDLES.path(settings))
    by_asset = [group for _, group in candles.groupby(candles["symbol"].str.split("/").str[0])]
    hourly = hourly_trade_statistics(
        delta_io(spark, settings).read(catalog.TRADES.path(settings)), wash.round_significant_digits
    ).toPandas()
    hourly["hour"] = hourly["hour"].dt.tz_localize("UTC")
    series = [group for _, group in hourly.groupby(["exchange", "symbol"])]
    off = math.inf
    single = {
        "benford": dict(round_z=off, repeat_z=off, volume_z=off),
        "round": dict(benford_z=off, repeat_z=off, volume_z=off),
        "repeat": dict(benford_z=off, round_z=off, volume_z=off),
        "no_impact": dict(benford_z=off, round_z=off, repeat_z=off),
    }
    no_cross_exchange = replace(pump, excess_z=-off, lead_fraction=-off, min_confirmations=0)
    ablations = [
        (
            "pump_and_dump without cross-exchange checks",
            "pump_and_dump",
            pump_since,
            pd.concat([detect_pumps(g, no_cross_exchange) for g in by_asset]),
        ),
        *(
            (
                f"wash_trading, {signal} alone",
                "wash_trading",
                wash_since,
                pd.concat([detect_wash(g, replace(wash, min_signals=1, **others)) for g in series]),
            )
            for signal, others in single.items()
        ),
    ]

    print(
        f"seed {seed}: {days} days of candles from {start:%Y-%m-%d}, {trade_days} days of trades "
        f"({len(candles):,} candles, {int(hourly['trades'].sum()):,} trades)"
    )
    print(f"  lake built in {built - begun:.1f} s, Spark job in {detected - built:.1f} s: {run}")
    print(
        f"  {'detector':<44} {'anomalies':>9} {'TP':>6} {'episodes':>8} {'found':>6} "
        f"{'precision':>9} {'recall':>6} {'F1':>6}"
    )
    print(row("pump_and_dump (job)", scored(anomalies, labels, "pump_and_dump", pump_since, until)))
    print(row("wash_trading (job)", scored(anomalies, labels, "wash_trading", wash_since, until)))
    print("  ablations (pure detectors on the same bronze data):")
    for name, detector, since, found in ablations:
        print(row(name, scored(found, labels, detector, since, until)))
    spark.stop()


if __name__ == "__main__":
    main()
