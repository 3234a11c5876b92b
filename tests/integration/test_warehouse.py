"""Delta -> PostgreSQL loader on the session's embedded PostgreSQL: full, incremental (CDF), noop, deletes,
additive schema evolution, rollback."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from sentinance import catalog, lake, services
from sentinance.pipelines.warehouse.loader import SchemaChangeError, load_table
from sentinance.settings import Settings

CDF = {"delta.enableChangeDataFeed": "true"}
T0 = pd.Timestamp("2024-01-01", tz="UTC")


@pytest.fixture
def table(settings: Settings) -> Iterator[str]:
    """A lake table name of the test's own, dropped (with its load state) afterwards."""
    name = f"test_{uuid.uuid4().hex[:8]}"
    yield name
    with services.connect(settings) as conn:
        conn.execute(f"DROP TABLE IF EXISTS lake.{name}")
        conn.execute("DELETE FROM lake._load_state WHERE table_name = %s", [name])


def candles(hours: range, close: float = 100.0) -> pd.DataFrame:
    """Silver-shaped rows of binance BTC/USDT for the given hours, every close set to ``close``."""
    n = len(hours)
    return pd.DataFrame(
        {
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "interval": "1h",
            "open_time": [T0 + pd.Timedelta(hours=h) for h in hours],
            "asset": "BTC",
            "close": close,
            "volume": 1.5,
            "log_return": [None] * n,
            "sma_20": [None] * n,
            "rsi_14": 55.0,
            "rsi_avg_gain": 0.2,
            "rsi_avg_loss": 0.1,
            "basis_bps": -3.25,
            "is_warmup": False,
            "computed_at": T0,
        }
    ).reindex(columns=catalog.CANDLE_FEATURES.schema.names)  # the other features are null


def predictions(hours: range, predicted: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "instrument_id": "kraken:ETH/USD",
            "feature_time": [T0 + pd.Timedelta(hours=h) for h in hours],
            "target_time": [T0 + pd.Timedelta(hours=h + 1) for h in hours],
            "predicted_log_return": predicted,
            "predicted_close": None,
            "model_name": "forecaster",
            "model_version": "3",
            "model_alias": "champion",
            "scored_at": T0,
        }
    )


def fetch(settings: Settings, query: str) -> list[tuple]:
    with services.connect(settings) as conn:
        return conn.execute(query).fetchall()


def loaded_version(settings: Settings, table: str) -> int:
    return fetch(settings, f"SELECT loaded_version FROM lake._load_state WHERE table_name = '{table}'")[0][0]


def test_first_load_is_a_full_snapshot_and_a_second_load_a_noop(settings, tmp_path, table):
    path = str(tmp_path / "predictions")
    lake.merge(
        path, predictions(range(3), 0.01), catalog.PREDICTION_KEYS, schema=catalog.PREDICTIONS.schema, configuration=CDF
    )

    first = load_table(settings, path, table, catalog.PREDICTION_KEYS, catalog.PREDICTIONS.schema)
    second = load_table(settings, path, table, catalog.PREDICTION_KEYS, catalog.PREDICTIONS.schema)

    assert (first.mode, first.rows, first.from_version, first.to_version) == ("full", 3, None, 0)
    assert (second.mode, second.rows, second.from_version, second.to_version) == ("noop", 0, 0, 0)
    assert loaded_version(settings, table) == 0
    rows = fetch(settings, f"SELECT feature_time, predicted_log_return, predicted_close FROM lake.{table} ORDER BY 1")
    assert rows == [(T0 + pd.Timedelta(hours=h), 0.01, None) for h in range(3)]
    columns = dict(
        fetch(
            settings,
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = 'lake' AND table_name = '{table}'",
        )
    )
    assert columns["feature_time"] == "timestamp with time zone"
    assert columns["predicted_log_return"] == "double precision"

    with services.connect(settings) as conn:  # the warehouse copy is lost: the next load rebuilds it
        conn.execute(f"DROP TABLE lake.{table}")
    rebuilt = load_table(settings, path, table, catalog.PREDICTION_KEYS, catalog.PREDICTIONS.schema)
    assert (rebuilt.mode, rebuilt.rows, rebuilt.from_version) == ("full", 3, None)


def test_without_a_delta_table_yet_the_warehouse_table_is_created_empty(settings, tmp_path, table):
    result = load_table(settings, str(tmp_path / "not_yet"), table, catalog.PREDICTION_KEYS, catalog.PREDICTIONS.schema)

    assert (result.mode, result.rows, result.from_version, result.to_version) == ("absent", 0, None, None)
    assert fetch(settings, f"SELECT count(*) FROM lake.{table}") == [(0,)]


def test_incremental_load_applies_only_the_changes_since_the_loaded_version(settings, tmp_path, table):
    path = str(tmp_path / "candle_features")

    def merge(frame: pd.DataFrame) -> None:
        lake.merge(path, frame, catalog.CANDLE_KEYS, schema=catalog.CANDLE_FEATURES.schema, configuration=CDF)

    merge(candles(range(4)))
    load_table(settings, path, table, catalog.CANDLE_KEYS, catalog.CANDLE_FEATURES.schema)
    merge(candles(range(3, 6), close=101.0))  # hour 3 changes, hours 4-5 are new
    merge(candles(range(3, 4), close=102.0))  # hour 3 changes again: the latest change wins

    result = load_table(settings, path, table, catalog.CANDLE_KEYS, catalog.CANDLE_FEATURES.schema)

    assert (result.mode, result.rows, result.from_version, result.to_version) == ("incremental", 3, 0, 2)
    closes = fetch(settings, f"SELECT extract(hour FROM open_time)::int, close FROM lake.{table} ORDER BY 1")
    assert closes == [(0, 100.0), (1, 100.0), (2, 100.0), (3, 102.0), (4, 101.0), (5, 101.0)]

    merge(candles(range(3)))  # a new Delta version whose rows are unchanged
    replay = load_table(settings, path, table, catalog.CANDLE_KEYS, catalog.CANDLE_FEATURES.schema)
    assert (replay.mode, replay.rows, replay.to_version) == ("incremental", 0, 3)
    assert load_table(settings, path, table, catalog.CANDLE_KEYS, catalog.CANDLE_FEATURES.schema).mode == "noop"
    assert fetch(settings, f"SELECT count(*) FROM lake.{table}") == [(6,)]


def test_without_change_data_feed_every_new_version_is_a_full_reload(settings, tmp_path, table, caplog):
    path = str(tmp_path / "no_cdf")
    lake.merge(path, candles(range(2)), catalog.CANDLE_KEYS, schema=catalog.CANDLE_FEATURES.schema)
    load_table(settings, path, table, catalog.CANDLE_KEYS, catalog.CANDLE_FEATURES.schema)
    lake.merge(path, candles(range(1, 3), close=99.0), catalog.CANDLE_KEYS, schema=catalog.CANDLE_FEATURES.schema)

    with caplog.at_level(logging.INFO, logger="sentinance.pipelines.warehouse.loader"):
        result = load_table(settings, path, table, catalog.CANDLE_KEYS, catalog.CANDLE_FEATURES.schema)

    assert (result.mode, result.rows, result.from_version, result.to_version) == ("full", 2, 0, 1)  # hours 1, 2
    assert "change data feed (delta.enableChangeDataFeed) is not enabled" in caplog.text
    assert fetch(settings, f"SELECT close FROM lake.{table} ORDER BY open_time") == [(100.0,), (99.0,), (99.0,)]

    DeltaTable(path).delete("open_time < '2024-01-01T01:00:00Z'")
    reload = load_table(settings, path, table, catalog.CANDLE_KEYS, catalog.CANDLE_FEATURES.schema)
    assert (reload.mode, reload.rows, reload.deleted) == ("full", 0, 1)  # hour 0 is gone from the snapshot
    assert fetch(settings, f"SELECT count(*) FROM lake.{table}") == [(2,)]


def test_deletes_in_the_change_data_feed_are_applied(settings, tmp_path, table):
    path = str(tmp_path / "predictions")
    lake.merge(
        path, predictions(range(4), 0.01), catalog.PREDICTION_KEYS, schema=catalog.PREDICTIONS.schema, configuration=CDF
    )
    load_table(settings, path, table, catalog.PREDICTION_KEYS, catalog.PREDICTIONS.schema)
    DeltaTable(path).delete("feature_time >= '2024-01-01T02:00:00Z'")  # hours 2, 3 go
    write_deltalake(
        path,
        pa.Table.from_pandas(predictions(range(3, 5), 0.02), schema=catalog.PREDICTIONS.schema, preserve_index=False),
        mode="append",
    )  # hour 3 is back

    result = load_table(settings, path, table, catalog.PREDICTION_KEYS, catalog.PREDICTIONS.schema)

    assert (result.mode, result.rows, result.deleted) == ("incremental", 2, 1)
    assert fetch(
        settings, f"SELECT extract(hour FROM feature_time)::int, predicted_log_return FROM lake.{table} ORDER BY 1"
    ) == [(0, 0.01), (1, 0.01), (3, 0.02), (4, 0.02)]

    write_deltalake(
        path,
        pa.Table.from_pandas(predictions(range(1), 0.03), schema=catalog.PREDICTIONS.schema, preserve_index=False),
        mode="overwrite",
    )  # removes and re-adds
    overwritten = load_table(settings, path, table, catalog.PREDICTION_KEYS, catalog.PREDICTIONS.schema)
    assert (overwritten.mode, overwritten.rows, overwritten.deleted) == ("incremental", 1, 3)
    assert fetch(settings, f"SELECT predicted_log_return FROM lake.{table}") == [(0.03,)]


def test_a_new_nullable_column_is_added_in_place(settings, tmp_path, table, caplog):
    path = str(tmp_path / "evolving")
    v1 = pa.schema([pa.field("k", pa.string(), nullable=False), pa.field("v", pa.float64())])
    v2 = v1.append(pa.field("w", pa.float64()))
    v3 = v2.append(pa.field("z", pa.string()))  # declared before the Delta table has it
    write_deltalake(path, pa.table({"k": ["a", "b"], "v": [1.0, 2.0]}, schema=v1), configuration=CDF)
    load_table(settings, path, table, ["k"], v1)
    write_deltalake(
        path, pa.table({"k": ["c"], "v": [3.0], "w": [30.0]}, schema=v2), mode="append", schema_mode="merge"
    )

    with caplog.at_level(logging.INFO, logger="sentinance.pipelines.warehouse.loader"):
        result = load_table(settings, path, table, ["k"], v3)

    assert (result.mode, result.rows, result.added_columns) == ("incremental", 1, ("w", "z"))
    assert f"added column w double precision to lake.{table}" in caplog.text
    assert fetch(settings, f"SELECT k, v, w, z FROM lake.{table} ORDER BY k") == [
        ("a", 1.0, None, None),
        ("b", 2.0, None, None),
        ("c", 3.0, 30.0, None),
    ]
    assert load_table(settings, path, table, ["k"], v3).added_columns == ()


@pytest.mark.parametrize("change", ["retyped", "removed", "not null"])
def test_a_non_additive_schema_change_is_refused_and_changes_nothing(settings, tmp_path, table, change):
    path = str(tmp_path / "evolving")
    v1 = pa.schema([pa.field("k", pa.string(), nullable=False), pa.field("v", pa.float64())])
    declared = {
        "retyped": pa.schema([v1.field("k"), pa.field("v", pa.string())]),
        "removed": pa.schema([v1.field("k")]),
        "not null": v1.append(pa.field("w", pa.float64(), nullable=False)),
    }[change]
    write_deltalake(path, pa.table({"k": ["a"], "v": [1.0]}, schema=v1), configuration=CDF)
    load_table(settings, path, table, ["k"], v1)
    write_deltalake(path, pa.table({"k": ["b"], "v": [2.0]}, schema=v1), mode="append")

    with pytest.raises(SchemaChangeError, match=f"lake.{table} cannot follow the declared schema.*drop the table"):
        load_table(settings, path, table, ["k"], declared)

    assert loaded_version(settings, table) == 0
    assert fetch(settings, f"SELECT * FROM lake.{table}") == [("a", 1.0)]


def test_a_failed_load_changes_nothing_and_the_next_load_resumes(settings, tmp_path, table):
    path = str(tmp_path / "predictions")

    def merge(frame: pd.DataFrame) -> None:
        lake.merge(path, frame, catalog.PREDICTION_KEYS, schema=catalog.PREDICTIONS.schema, configuration=CDF)

    merge(predictions(range(2), 0.01))
    load_table(settings, path, table, catalog.PREDICTION_KEYS, catalog.PREDICTIONS.schema)
    with services.connect(settings) as conn:  # PostgreSQL now rejects what the next version brings
        conn.execute(f"ALTER TABLE lake.{table} ADD CONSTRAINT small CHECK (abs(predicted_log_return) < 1)")
    merge(predictions(range(1, 3), 5.0))

    with pytest.raises(psycopg.errors.CheckViolation):
        load_table(settings, path, table, catalog.PREDICTION_KEYS, catalog.PREDICTIONS.schema)

    assert loaded_version(settings, table) == 0
    assert fetch(settings, f"SELECT predicted_log_return FROM lake.{table}") == [(0.01,), (0.01,)]
    with services.connect(settings) as conn:
        conn.execute(f"ALTER TABLE lake.{table} DROP CONSTRAINT small")
    result = load_table(settings, path, table, catalog.PREDICTION_KEYS, catalog.PREDICTIONS.schema)
    assert (result.mode, result.rows, result.from_version, result.to_version) == ("incremental", 2, 0, 1)
