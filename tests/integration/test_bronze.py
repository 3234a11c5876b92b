"""Landing into bronze Delta: incremental, idempotent, quarantining, never losing a row."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
from deltalake import write_deltalake

from sentinance import catalog, lake
from sentinance.catalog import CANDLE_KEYS, TRADE_KEYS
from sentinance.pipelines.landing.bronze import land_candles, land_trades, report_gaps, watermarks
from sentinance.pipelines.landing.simulator_labels import land_simulator_labels
from sentinance.pipelines.sources.simulator import simulate_candles, simulate_trades

END = pd.Timestamp("2025-06-01T00:00Z")
MARKET = ["open", "high", "low", "close", "volume", "trade_count"]


def _accounted(r) -> bool:
    return r.received == r.inserted + r.updated + r.unchanged + r.quarantined + r.duplicates_dropped


def _bronze(settings) -> pd.DataFrame:
    return lake.read(catalog.CANDLES.path(settings)).sort_values(CANDLE_KEYS, ignore_index=True)


def test_replaying_identical_candles_commits_nothing(fresh_settings):
    settings = fresh_settings
    candles = simulate_candles(END - pd.Timedelta(days=1), END, seed=settings.seed)
    first = land_candles(settings, candles, source="simulator", flow_run_id="run-1")
    assert first.inserted == first.received == len(candles) and first.quarantined == 0 and _accounted(first)
    path = catalog.CANDLES.path(settings)
    version = lake.version(path)

    replay = land_candles(settings, candles.sample(frac=1, random_state=2), source="replay", flow_run_id=None)
    assert replay.unchanged == len(candles) and replay.inserted == replay.updated == 0 and _accounted(replay)
    assert lake.version(path) == version
    assert _bronze(settings)["flow_run_id"].eq("run-1").all()
    last = candles.groupby(["exchange", "symbol", "interval"])["open_time"].max()
    assert watermarks(settings) == dict(last.items())


def test_bad_input_is_quarantined_and_no_row_is_lost(fresh_settings):
    settings = fresh_settings
    good = simulate_candles(END - pd.Timedelta(days=1), END, seed=settings.seed)
    raw = good.head(20).astype({"open": object, "high": object}).reset_index(drop=True)
    raw.loc[0, "open"] = "n/a"  # non-numeric string
    raw.loc[1, "high"] = str(raw.loc[1, "high"])  # numeric string: coerced, valid
    raw.loc[2, "close"] = None
    raw.loc[3, "volume"] = -1.0
    raw.loc[4, ["high", "low"]] = [raw.loc[4, "low"], raw.loc[4, "high"]]  # high < low
    exact_dupes = raw.iloc[[10, 11]]
    conflict = raw.iloc[[12]].assign(volume=raw.loc[12, "volume"] + 1)
    records = pd.concat([raw, exact_dupes, conflict], ignore_index=True).sample(frac=1, random_state=1)

    result = land_candles(settings, records, source="replay", flow_run_id="bad-1")

    assert result.received == len(records) == 23
    assert result.duplicates_dropped == 2
    assert result.quarantined == 6  # 4 bad rows + both sides of the conflicting pair
    assert result.inserted == 20 - 5 and _accounted(result)
    quarantine = lake.read(catalog.QUARANTINE_CANDLES.path(settings))
    by_reason = quarantine.groupby("failed_expectations").size().to_dict()
    assert by_reason["not_null_open"] == 1 and by_reason["not_null_close"] == 1
    assert by_reason["volume_non_negative"] == 1 and by_reason["unique_candle_key"] == 2
    assert by_reason["high_gte_open,high_gte_close,low_lte_open,low_lte_close"] == 1
    assert quarantine["flow_run_id"].eq("bad-1").all() and quarantine["source"].eq("replay").all()
    assert (
        json.loads(quarantine.loc[quarantine["failed_expectations"] == "not_null_open", "raw_record"].iloc[0])["open"]
        == "n/a"
    )

    bronze = _bronze(settings)
    assert len(bronze) == 15 and not bronze.duplicated(CANDLE_KEYS).any()
    assert bronze["high"].ge(bronze["low"]).all()
    assert lake.read(catalog.CANDLES.path(settings)).columns.tolist() == catalog.CANDLES.schema.names

    again = land_candles(settings, records, source="replay", flow_run_id="bad-2")  # a rerun of the landing
    assert again.quarantined == 6 and again.inserted == 0 and _accounted(again)
    assert lake.read(catalog.QUARANTINE_CANDLES.path(settings))["flow_run_id"].eq("bad-1").all(), "kept once"


def test_corrected_candle_updates_in_place(fresh_settings):
    settings = fresh_settings
    candles = simulate_candles(END - pd.Timedelta(hours=6), END, seed=settings.seed)
    land_candles(settings, candles, source="simulator", flow_run_id=None)
    corrected = candles.iloc[[3]].assign(volume=candles["volume"].iloc[3] * 1.5)
    result = land_candles(settings, corrected, source="replay", flow_run_id="fix")
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 0)
    bronze = _bronze(settings)
    assert len(bronze) == len(candles)
    row = bronze.merge(corrected[CANDLE_KEYS], on=CANDLE_KEYS)
    assert row["volume"].iloc[0] == corrected["volume"].iloc[0] and row["source"].iloc[0] == "replay"


def test_empty_batch(fresh_settings):
    result = land_candles(fresh_settings, simulate_candles(END, END, seed=1), source="simulator", flow_run_id=None)
    assert result.received == result.inserted == 0 and result.bronze_version is None
    assert watermarks(fresh_settings) == {}


# -- trades, late rows, gap report, labels -------------------------------------------------------


def test_trades_land_idempotently_and_bad_trades_are_quarantined(fresh_settings):
    settings = fresh_settings
    trades = simulate_trades(
        END - pd.Timedelta(hours=4), END, seed=settings.seed, exchanges=["coinbase"], assets=["ETH"]
    )
    first = land_trades(settings, trades, source="simulator", flow_run_id="t-1")
    assert first.inserted == first.received == len(trades) and _accounted(first)
    assert first.series == {"coinbase:ETH/USD": {"landed": len(trades), "quarantined": 0}}
    path = catalog.TRADES.path(settings)
    version = lake.version(path)

    again = land_trades(settings, trades.sample(frac=1, random_state=3), source="replay", flow_run_id="t-2")
    assert again.unchanged == len(trades) and again.late == len(trades) and lake.version(path) == version

    bad = trades.head(3).astype({"price": object}).reset_index(drop=True)
    bad.loc[0, "price"] = None
    bad.loc[1, "size"] = -1.0
    bad.loc[2, "price"] = bad.loc[2, "price"] * 1.5  # a corrected trade updates in place
    overlap = trades.iloc[3:6]  # an overlapping page: unchanged
    result = land_trades(settings, pd.concat([bad, overlap, overlap]), source="live", flow_run_id="t-3")
    assert (result.received, result.duplicates_dropped, result.quarantined) == (9, 3, 2) and _accounted(result)
    assert (result.updated, result.unchanged, result.inserted) == (1, 3, 0)

    bronze = lake.read(path)
    assert len(bronze) == len(trades) and not bronze.duplicated(TRADE_KEYS).any()
    assert bronze.columns.tolist() == catalog.TRADES.schema.names and "is_wash" not in bronze
    quarantine = lake.read(catalog.QUARANTINE_TRADES.path(settings))
    assert sorted(quarantine["failed_expectations"]) == ["not_null_price", "size_positive"]
    assert quarantine["flow_run_id"].eq("t-3").all()


def test_late_candles_merge_and_are_counted(fresh_settings):
    settings = fresh_settings
    candles = simulate_candles(
        END - pd.Timedelta(hours=12), END, seed=settings.seed, exchanges=["kraken"], assets=["BTC"]
    )
    newer, older = candles.tail(6), candles.head(6)
    land_candles(settings, newer, source="simulator", flow_run_id=None)
    late = land_candles(settings, older.iloc[::-1], source="simulator", flow_run_id=None)  # late and reversed
    assert late.late == late.inserted == len(older)
    assert _bronze(settings)["open_time"].tolist() == sorted(candles["open_time"])


def test_gap_report_lists_runs_of_missing_candles(fresh_settings):
    settings = fresh_settings
    start = END - pd.Timedelta(hours=10)
    candles = simulate_candles(start, END, seed=settings.seed, exchanges=["binance"], assets=["BTC", "ETH"])
    hours = sorted(candles["open_time"].unique())
    drop = candles["symbol"].eq("ETH/USDT") & candles["open_time"].isin([hours[2], hours[3], hours[7]])
    land_candles(settings, candles[~drop], source="simulator", flow_run_id=None)
    windows = {
        ("binance", "BTC/USDT", "1h"): (start, END),
        ("binance", "ETH/USDT", "1h"): (start, END),
        ("binance", "SOL/USDT", "1h"): (END - pd.Timedelta(hours=2), END),
    }
    gaps = report_gaps(settings, windows, flow_run_id="g-1")
    eth = gaps[gaps["symbol"] == "ETH/USDT"]
    assert eth[["gap_start", "gap_end", "missing"]].values.tolist() == [
        [hours[2], hours[3], 2],
        [hours[7], hours[7], 1],
    ]
    assert gaps.loc[gaps["symbol"] == "SOL/USDT", "missing"].tolist() == [2]  # a series with nothing landed
    assert "BTC/USDT" not in set(gaps["symbol"])
    report = catalog.GAP_REPORT.path(settings)
    logged = lake.read(report)
    assert len(logged) == len(gaps) == 3 and logged["flow_run_id"].eq("g-1").all()
    assert logged.columns.tolist() == catalog.GAP_REPORT.schema.names

    version = lake.version(report)
    assert len(report_gaps(settings, windows, flow_run_id="g-2")) == 3 and lake.version(report) == version
    late = candles[drop & candles["open_time"].eq(hours[2])]  # a late candle fills the first missing hour
    land_candles(settings, late, source="replay", flow_run_id=None)
    later = {key: (hours[3], END) for key in windows if key[1] != "SOL/USDT"}  # starts inside the first gap
    report_gaps(settings, later, flow_run_id="g-3")  # which is checked whole again, from its start
    kept = lake.read(report).sort_values(["symbol", "gap_start"])
    assert kept[["symbol", "gap_start", "missing", "flow_run_id"]].values.tolist() == [
        ["ETH/USDT", hours[3], 1, "g-3"],  # what is left of the gap that shrank (the old row went)
        ["ETH/USDT", hours[7], 1, "g-1"],  # unchanged: not rewritten
        ["SOL/USDT", END - pd.Timedelta(hours=2), 2, "g-1"],  # not checked this time: left as it was
    ]


def test_simulator_labels_land_episodes_and_wash_trades_once(fresh_settings):
    settings = fresh_settings
    start, end = pd.Timestamp("2025-03-01T00:00Z"), pd.Timestamp("2025-04-01T00:00Z")
    inserted = land_simulator_labels(settings, start, end)
    episodes = lake.read(catalog.SIMULATOR_LABELS.path(settings))
    wash = lake.read(catalog.SIMULATOR_TRADE_LABELS.path(settings))
    assert inserted == len(episodes) + len(wash) and set(episodes["kind"]) == {"pump_and_dump", "wash_trading"}
    assert set(wash["episode_id"]) <= set(episodes["episode_id"]) and not wash.duplicated(TRADE_KEYS).any()
    assert land_simulator_labels(settings, start, end) == 0


def test_quote_volume_joins_an_older_table_in_place_and_leaves_its_hashes(fresh_settings):
    """A bronze table from before quote_volume: the next landing adds the column; records without it keep
    their payload hash, so rows landed before are unchanged, not rewritten."""
    settings = fresh_settings
    candles = simulate_candles(END - pd.Timedelta(hours=6), END, seed=settings.seed)
    old = pa.schema([f for f in catalog.CANDLES.schema if f.name != "quote_volume"])
    first = land_candles(settings, candles, source="simulator", flow_run_id="run-1")
    path = catalog.CANDLES.path(settings)
    write_deltalake(
        path,
        lake.read(path).drop(columns="quote_volume").pipe(pa.Table.from_pandas, schema=old, preserve_index=False),
        mode="overwrite",
        schema_mode="overwrite",
    )
    assert "quote_volume" not in lake.read(path).columns

    again = land_candles(settings, candles.assign(quote_volume=None), source="replay", flow_run_id="run-2")
    assert again.unchanged == first.inserted and again.updated == 0
    corrected = land_candles(settings, candles.head(1).assign(quote_volume=123.5), source="live", flow_run_id="run-3")
    assert corrected.updated == 1
    landed = _bronze(settings)
    assert landed["quote_volume"].notna().sum() == 1 and landed["flow_run_id"].eq("run-1").sum() == len(candles) - 1
