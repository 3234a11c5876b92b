"""Manipulation detectors: robust statistics, thresholds, each detector on crafted data, scoring, and
the Spark job on a small simulated lake (bronze -> gold/anomalies -> lake.anomalies)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from sentinance import catalog, lake, services
from sentinance.pipelines.sources.simulator import simulate_candles, simulate_labels, simulate_trades
from sentinance.pipelines.warehouse import loader as warehouse
from sentinance.settings import Settings, get_settings
from sentinance.spark_jobs.detectors.detection import rolling_robust_z
from sentinance.spark_jobs.detectors.job import hourly_trade_statistics, run_detectors
from sentinance.spark_jobs.detectors.pump_and_dump import detect_pumps
from sentinance.spark_jobs.detectors.scoring import score_detections
from sentinance.spark_jobs.detectors.thresholds import (
    DetectorThresholds,
    PumpAndDumpThresholds,
    WashTradingThresholds,
    load_thresholds,
)
from sentinance.spark_jobs.detectors.wash_trading import BENFORD, DIGIT_COLUMNS, detect_wash

QUIET = (pd.Timestamp("2024-02-01", tz="UTC"), pd.Timestamp("2024-02-10", tz="UTC"))  # no ETH pump in seed 7
PEAK = 140  # hour of the injected pump's peak (a calm hour for the other venues)


def test_rolling_robust_z_uses_only_earlier_values():
    values = np.r_[np.tile([1.0, 2.0, 3.0], 10), 12.0, np.nan, 2.0]

    z = rolling_robust_z(values, window=30, min_periods=5)

    assert np.isnan(z[:5]).all() and not np.isnan(z[5:31]).any()
    assert z[30] == pytest.approx((12 - 2) / 1.4826)  # median 2, MAD 1 of the 30 values before it
    assert np.isnan(z[31])
    assert rolling_robust_z(np.r_[np.zeros(10), 1.0], 10, 5, min_scale=0.5)[-1] == pytest.approx(2.0)


def test_thresholds_default_and_override_from_toml(tmp_path, monkeypatch):
    config = tmp_path / "detectors.toml"
    config.write_text("[pump_and_dump]\nprice_z = 4\nreversal_hours = 6\n\n[wash_trading]\nmin_signals = 3\n")
    monkeypatch.setenv("SENTINANCE_DETECTORS_CONFIG", str(config))

    thresholds = load_thresholds(get_settings().detectors_config)

    assert thresholds.pump_and_dump == replace(PumpAndDumpThresholds(), price_z=4.0, reversal_hours=6)
    assert thresholds.wash_trading == replace(WashTradingThresholds(), min_signals=3)
    assert load_thresholds() == DetectorThresholds()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[spoofing]\nx = 1\n", r"unknown detector section\(s\) \['spoofing'\]"),
        ("[wash_trading]\nbenford = 1\n", r"unknown threshold\(s\) \['benford'\]"),
        ("[wash_trading]\nmin_signals = 2.5\n", r"min_signals = 2.5 \(expected int\)"),
        ("[pump_and_dump]\nprice_z = 'high'\n", r"price_z = 'high' \(expected float\)"),
    ],
)
def test_a_bad_thresholds_file_is_refused_clearly(tmp_path, text, error):
    config = tmp_path / "detectors.toml"
    config.write_text(text)
    with pytest.raises(ValueError, match=error):
        load_thresholds(config)


def quiet_eth_candles() -> pd.DataFrame:
    return simulate_candles(*QUIET, seed=7, assets=("ETH",))


def inject_pump(
    candles: pd.DataFrame, venue_share: float, follower_share: float, *, reverse: bool = True, volume: float = 6.0
) -> pd.DataFrame:
    """A 4-hour convex run-up to +8 % peaking at PEAK (on binance: venue_share of it, elsewhere follower_share),
    then, with ``reverse``, a 2-hour collapse; volume multiplied on binance over the episode."""
    hour = ((candles["open_time"] - QUIET[0]) / pd.Timedelta(hours=1)).astype(int)
    j = hour - (PEAK - 3)
    rise, fall = ((j + 1) / 4) ** 2, (1 - (j - 3) / 2) if reverse else np.ones(len(j))
    shape = np.select([(j >= 0) & (j <= 3), (j > 3) & ((j <= 5) | (not reverse))], [rise, fall], default=0.0)
    share = np.where(candles["exchange"] == "binance", venue_share, follower_share)
    busy = (candles["exchange"] == "binance") & (j >= 0) & (j <= 5)
    return candles.assign(
        close=candles["close"] * np.exp(0.08 * share * shape), volume=candles["volume"] * np.where(busy, volume, 1.0)
    )


def test_the_quiet_window_has_no_pump():
    assert detect_pumps(quiet_eth_candles(), PumpAndDumpThresholds()).empty


def test_a_venue_led_pump_with_followers_and_a_dump_is_detected():
    pumped = inject_pump(quiet_eth_candles(), venue_share=1.0, follower_share=0.4)

    found = detect_pumps(pumped, PumpAndDumpThresholds())

    assert len(found) == 1
    anomaly = found.iloc[0]
    evidence = json.loads(anomaly["evidence"])
    assert (anomaly["detector"], anomaly["exchange"], anomaly["symbol"]) == ("pump_and_dump", "binance", "ETH/USDT")
    assert anomaly["start_time"] <= QUIET[0] + pd.Timedelta(hours=PEAK) <= anomaly["end_time"]
    assert anomaly["end_time"] <= QUIET[0] + pd.Timedelta(hours=PEAK + 2)
    assert anomaly["anomaly_id"] == f"pump_and_dump:binance:ETH/USDT:{anomaly['start_time']:%Y-%m-%dT%H:%MZ}"
    assert evidence["confirmations"] == 2 and evidence["reversal"] >= 0.5
    assert anomaly["signals"] == "price_z,volume_z,excess_z,reversal,cross_exchange_confirmed"


@pytest.mark.parametrize(
    ("case", "pump"),
    [
        ("market-wide move", dict(venue_share=1.0, follower_share=1.0)),
        ("no reversal", dict(venue_share=1.0, follower_share=0.4, reverse=False)),
        ("no volume", dict(venue_share=1.0, follower_share=0.4, volume=1.0)),
        ("no follower: a bad print", dict(venue_share=1.0, follower_share=0.0)),
    ],
)
def test_what_is_not_a_pump_and_dump(case, pump):
    assert detect_pumps(inject_pump(quiet_eth_candles(), **pump), PumpAndDumpThresholds()).empty, case


def hourly_statistics(hours: int, washed: dict[int, float]) -> pd.DataFrame:
    """One series' hourly trade statistics: organic hours (Benford-like digits, no round or repeated sizes)
    and, at the hours in ``washed``, that share of extra self-matched trades of round size."""
    rng = np.random.default_rng(3)
    trades = rng.integers(30, 40, hours)
    digits = np.array([rng.multinomial(n, BENFORD / BENFORD.sum()) for n in trades])
    volume = rng.lognormal(3, 0.3, hours)
    washed_trades = np.array([round(trades[h] * washed.get(h, 0)) for h in range(hours)])
    digits[:, 0] += washed_trades
    frame = pd.DataFrame(digits, columns=DIGIT_COLUMNS).assign(
        exchange="kraken",
        symbol="BTC/USD",
        hour=pd.date_range("2024-01-01", periods=hours, freq="h", tz="UTC"),
        trades=trades + washed_trades,
        volume=volume * (1 + 2 * (washed_trades > 0)),
        high=101.0,
        low=100.0,
        round_trades=washed_trades,
        repeat_trades=washed_trades,
    )
    return frame


def test_hours_of_round_repeated_trades_are_one_wash_trading_episode():
    found = detect_wash(hourly_statistics(80, {60: 0.5, 61: 0.6, 62: 0.5, 70: 0.0}), WashTradingThresholds())

    assert len(found) == 1
    anomaly = found.iloc[0]
    assert (anomaly["start_time"], anomaly["end_time"]) == (
        pd.Timestamp("2024-01-03 12:00", tz="UTC"),
        pd.Timestamp("2024-01-03 14:00", tz="UTC"),
    )
    assert {"round", "repeat", "no_impact"} <= set(anomaly["signals"].split(","))
    assert json.loads(anomaly["evidence"])["hours"] == 3


def test_a_single_signal_is_not_enough_and_an_early_hour_has_no_baseline():
    hourly = hourly_statistics(80, {10: 0.5, 60: 0.5})
    hourly.loc[60, "round_trades"] = 0  # repeated sizes, but not round, normal volume
    hourly.loc[60, "volume"] = hourly.loc[59, "volume"]

    assert detect_wash(hourly, WashTradingThresholds()).empty  # hour 10 is before min_baseline_hours


def test_scores_count_matched_anomalies_and_found_episodes():
    t = pd.Timestamp("2024-01-01", tz="UTC")
    labels = pd.DataFrame(
        {
            "episode_id": ["a", "b"],
            "kind": "pump_and_dump",
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "start_time": [t, t + pd.Timedelta(days=5)],
            "end_time": [t + pd.Timedelta(hours=4), t + pd.Timedelta(days=5, hours=4)],
        }
    )
    anomalies = pd.DataFrame(
        {
            "detector": "pump_and_dump",
            "exchange": ["binance", "binance", "kraken"],
            "symbol": ["BTC/USDT", "BTC/USDT", "BTC/USD"],
            "start_time": [t + pd.Timedelta(hours=3), t + pd.Timedelta(days=2), t],
            "end_time": [t + pd.Timedelta(hours=6), t + pd.Timedelta(days=2), t],
        }
    )

    (score,) = score_detections(anomalies, labels, ["pump_and_dump"])

    assert (score.anomalies, score.true_positives, score.episodes, score.episodes_found) == (3, 1, 2, 1)
    assert (score.precision, score.recall, score.f1) == (pytest.approx(1 / 3), pytest.approx(0.5), pytest.approx(0.4))


def test_hourly_trade_statistics_in_spark(spark):
    t = pd.Timestamp("2024-01-01 10:15", tz="UTC")
    sizes = [1000.0, 0.2, 12.345, 12.345, 0.0055, 999.9999]
    trades = spark.createDataFrame(
        pd.DataFrame(
            {
                "exchange": "kraken",
                "symbol": "BTC/USD",
                "trade_time": [t + pd.Timedelta(minutes=i) for i in range(6)],
                "price": [100.0, 101.0, 99.0, 100.0, 100.5, 100.0],
                "size": sizes,
            }
        )
    )

    (row,) = hourly_trade_statistics(trades, round_significant_digits=2).collect()

    assert (row["trades"], row["volume"], row["high"], row["low"]) == (6, pytest.approx(sum(sizes)), 101.0, 99.0)
    assert [row[c] for c in DIGIT_COLUMNS] == [3, 1, 0, 0, 1, 0, 0, 0, 1]
    assert (row["round_trades"], row["repeat_trades"]) == (3, 2)


def test_the_spark_job_finds_the_simulated_episodes_and_keeps_gold_in_sync(spark, fresh_settings, tmp_path):
    start, end = pd.Timestamp("2024-01-04", tz="UTC"), pd.Timestamp("2024-01-12", tz="UTC")
    lineage = dict(source="simulator", ingested_at=start, flow_run_id=None, payload_hash="h")
    lake.merge(
        catalog.CANDLES.path(fresh_settings),
        simulate_candles(start, end, seed=7, assets=("ETH",)).assign(**lineage),
        catalog.CANDLE_KEYS,
        schema=catalog.CANDLES.schema,
    )
    lake.merge(
        catalog.TRADES.path(fresh_settings),
        simulate_trades(start, end, seed=7, assets=("ETH",)).assign(**lineage),
        catalog.TRADE_KEYS,
        schema=catalog.TRADES.schema,
    )
    labels = simulate_labels(start, end, seed=7, assets=("ETH",))
    gold = catalog.ANOMALIES.path(fresh_settings)

    first = run_detectors(spark, fresh_settings)
    again = run_detectors(spark, fresh_settings)

    found = lake.read(gold).sort_values("start_time", ignore_index=True)
    assert first.anomalies == {"wash_trading": 1, "pump_and_dump": 1} and first.inserted == 2
    assert [
        s.f1
        for s in score_detections(
            found, labels[labels["start_time"] > start + pd.Timedelta(days=1)], ["pump_and_dump", "wash_trading"]
        )
    ] == [1.0, 1.0]
    assert (again.inserted, again.updated, again.deleted, again.gold_version) == (0, 0, 0, first.gold_version)
    assert warehouse.load(fresh_settings, "anomalies").rows == 2

    strict = tmp_path / "strict.toml"
    strict.write_text("[wash_trading]\nmin_signals = 5\n")
    stricter = run_detectors(spark, fresh_settings, load_thresholds(strict))
    loaded = warehouse.load(fresh_settings, "anomalies")

    assert (stricter.anomalies, stricter.deleted) == ({"pump_and_dump": 1}, 1)
    assert (loaded.mode, loaded.deleted) == ("incremental", 1)
    with services.connect(fresh_settings) as conn:
        assert conn.execute("SELECT detector FROM lake.anomalies").fetchall() == [("pump_and_dump",)]


def test_an_increment_recomputes_only_what_new_data_can_change(spark, tmp_path):
    """Detecting from the earliest changed candle or trade gives the gold table a full run gives."""
    incremental, full = (Settings(home=tmp_path / name / "state") for name in ("incremental", "full"))
    lineage = dict(
        source="simulator", ingested_at=pd.Timestamp("2024-01-01", tz="UTC"), flow_run_id=None, payload_hash="h"
    )

    def land(settings: Settings, start: str, end: str) -> None:
        window = (pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"))
        lake.upsert(settings, catalog.CANDLES, simulate_candles(*window, seed=7, assets=("ETH",)).assign(**lineage))
        lake.upsert(settings, catalog.TRADES, simulate_trades(*window, seed=7, assets=("ETH",)).assign(**lineage))

    for settings in (incremental, full):
        land(settings, "2024-01-01", "2024-01-09")
    run_detectors(spark, incremental)
    versions = {t.id: lake.version(t.path(incremental)) for t in (catalog.CANDLES, catalog.TRADES)}
    for settings in (incremental, full):
        land(settings, "2024-01-09", "2024-01-12")
    changed = [
        lake.first_change(catalog.table(table_id).path(incremental), version, column)
        for (table_id, version), column in zip(versions.items(), ("open_time", "trade_time"), strict=True)
    ]
    since = min(changed)
    assert since == pd.Timestamp("2024-01-09", tz="UTC")

    increment = run_detectors(spark, incremental, changed_since=since)
    everything = run_detectors(spark, full)

    gold = [
        lake.read(catalog.ANOMALIES.path(s)).sort_values("anomaly_id", ignore_index=True) for s in (incremental, full)
    ]
    pd.testing.assert_frame_equal(*gold)
    assert increment.anomalies == everything.anomalies and len(gold[0]) >= 2
