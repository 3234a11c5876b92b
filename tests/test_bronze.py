"""Landing into bronze Delta: incremental, idempotent, quarantining, never losing a row."""

from __future__ import annotations

import json

import pandas as pd

from sentinance import lake
from sentinance.pipelines.bronze import ingest_simulated, land_candles, watermarks
from sentinance.pipelines.simulator import simulate_candles
from sentinance.schemas import BRONZE_CANDLES, CANDLE_KEYS

END = pd.Timestamp("2025-06-01T00:00Z")
MARKET = ["open", "high", "low", "close", "volume", "trade_count"]


def _accounted(r) -> bool:
    return r.received == r.inserted + r.updated + r.unchanged + r.quarantined + r.duplicates_dropped


def _bronze(settings) -> pd.DataFrame:
    return lake.read(settings.table_path("bronze", "candles")).sort_values(CANDLE_KEYS, ignore_index=True)


def test_incremental_ingest_is_idempotent_and_equals_a_full_run(fresh_settings):
    settings = fresh_settings
    first = ingest_simulated(settings, end=END, days=10, flow_run_id="run-1")
    expected = simulate_candles(END - pd.Timedelta(days=10), END, seed=settings.seed)
    assert first.inserted == first.received == len(expected) and first.quarantined == 0 and _accounted(first)
    assert first.labels_inserted >= 0
    path = settings.table_path("bronze", "candles")
    version = lake.version(path)

    rerun = ingest_simulated(settings, end=END + pd.Timedelta(minutes=30), days=10)  # same closed hours
    assert (rerun.received, rerun.inserted, rerun.updated) == (0, 0, 0)
    assert lake.version(path) == version

    replay = land_candles(settings, expected, source="replay", flow_run_id=None)
    assert replay.unchanged == len(expected) and replay.inserted == replay.updated == 0 and _accounted(replay)
    assert lake.version(path) == version, "replaying identical candles commits nothing"

    later = END + pd.Timedelta(hours=6)
    extended = ingest_simulated(settings, end=later, days=10, flow_run_id="run-2")
    new_hours = simulate_candles(END, later, seed=settings.seed)
    assert extended.received == extended.inserted == len(new_hours) and extended.updated == 0

    bronze = _bronze(settings)
    full = simulate_candles(END - pd.Timedelta(days=10), later, seed=settings.seed)
    pd.testing.assert_frame_equal(
        bronze[[*CANDLE_KEYS, *MARKET]],
        full.sort_values(CANDLE_KEYS, ignore_index=True)[[*CANDLE_KEYS, *MARKET]],
        check_dtype=False,
    )
    assert bronze["source"].eq("simulator").all() and bronze["payload_hash"].str.len().eq(64).all()
    assert set(bronze["flow_run_id"]) == {"run-1", "run-2"}
    last = full.groupby(["exchange", "symbol", "interval"])["open_time"].max()
    assert watermarks(settings) == {key: ts for key, ts in last.items()}


def test_labels_are_landed_once(fresh_settings):
    settings = fresh_settings
    start = pd.Timestamp("2025-01-01T00:00Z")
    result = ingest_simulated(settings, end=start + pd.Timedelta(days=120), days=120)
    path = settings.table_path("bronze", "simulator_labels")
    labels = lake.read(path)
    assert result.labels_inserted == len(labels) >= 1 and labels["episode_id"].is_unique
    version = lake.version(path)
    ingest_simulated(settings, end=start + pd.Timedelta(days=120), days=120)
    assert lake.version(path) == version


def test_bad_input_is_quarantined_and_no_row_is_lost(fresh_settings):
    settings = fresh_settings
    good = simulate_candles(END - pd.Timedelta(days=1), END, seed=settings.seed)
    raw = good.head(20).astype({"open": object, "high": object}).reset_index(drop=True)
    raw.loc[0, "open"] = "n/a"                                  # non-numeric string
    raw.loc[1, "high"] = str(raw.loc[1, "high"])                # numeric string: coerced, valid
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
    quarantine = lake.read(settings.table_path("bronze", "quarantine_candles"))
    by_reason = quarantine.groupby("failed_expectations").size().to_dict()
    assert by_reason["not_null_open"] == 1 and by_reason["not_null_close"] == 1
    assert by_reason["volume_non_negative"] == 1 and by_reason["unique_candle_key"] == 2
    assert by_reason["high_gte_open,high_gte_close,low_lte_open,low_lte_close"] == 1
    assert quarantine["flow_run_id"].eq("bad-1").all() and quarantine["source"].eq("replay").all()
    assert json.loads(quarantine.loc[quarantine["failed_expectations"] == "not_null_open", "raw_record"].iloc[0])[
        "open"] == "n/a"

    bronze = _bronze(settings)
    assert len(bronze) == 15 and not bronze.duplicated(CANDLE_KEYS).any()
    assert bronze["high"].ge(bronze["low"]).all()
    assert lake.read(settings.table_path("bronze", "candles")).columns.tolist() == BRONZE_CANDLES.names


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
