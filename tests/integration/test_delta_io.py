"""The Spark jobs' Delta IO on the local backend (delta-rs), and the connector backend's SQL
through Spark's own parser; the connector runs for real in test_candle_features' spark-submit
test where its jars are given."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from sentinance import lake
from sentinance.settings import Settings
from sentinance.spark_jobs.delta_io import DeltaRsIO, create_statement, delta_io, merge_statement

SCHEMA = pa.schema([("exchange", pa.string()), ("key", pa.int64()), ("value", pa.float64())])
CDF = {"delta.enableChangeDataFeed": "true"}


def _frame(spark, rows: list[tuple[str, int, float]]):
    return spark.createDataFrame(rows, "exchange string, key int, value double")  # int: cast to the schema


def test_merge_creates_upserts_and_deletes_the_missing_keys_in_one_commit(spark, tmp_path) -> None:
    io, path = delta_io(spark, Settings(home=tmp_path)), str(tmp_path / "table")
    assert isinstance(io, DeltaRsIO) and not io.exists(path) and io.version(path) is None
    first = io.merge(
        _frame(spark, [("a", 1, 1.0), ("b", 2, 2.0), ("b", 3, 3.0)]),
        path,
        ["key"],
        schema=SCHEMA,
        partition_by=["exchange"],
        configuration=CDF,
    )
    assert (first.rows, first.inserted, first.version) == (3, 3, 0) and io.columns(path) == SCHEMA.names
    assert DeltaTable(path).metadata().partition_columns == ["exchange"]
    assert DeltaTable(path).metadata().configuration == CDF

    same = io.merge(_frame(spark, [("a", 1, 1.0)]), path, ["key"], schema=SCHEMA, change_column="value")
    assert (same.inserted, same.updated) == (0, 0)
    synced = io.merge(
        _frame(spark, [("a", 1, 1.5), ("c", 4, 4.0)]),
        path,
        ["key"],
        schema=SCHEMA,
        change_column="value",
        delete_missing=True,
    )
    assert (synced.inserted, synced.updated, synced.deleted) == (1, 1, 2)
    assert sorted(synced.frame.collect()) == sorted(io.read(path).collect())
    assert lake.read(path).sort_values("key")["value"].tolist() == [1.5, 4.0]
    changes = pa.table(DeltaTable(path).load_cdf(starting_version=synced.version).read_all()).to_pandas()
    assert sorted(changes["_change_type"]) == ["delete", "delete", "insert", "update_postimage", "update_preimage"]


def test_replace_overwrites_rows_and_schema(spark, tmp_path) -> None:
    io, path = delta_io(spark, Settings(home=tmp_path)), str(tmp_path / "table")
    io.merge(_frame(spark, [("a", 1, 1.0)]), path, ["key"], schema=SCHEMA)
    wider = pa.schema([*SCHEMA, ("note", pa.string())])
    replaced = io.replace(
        _frame(spark, [("b", 2, 2.0)]).selectExpr("*", "'x' AS note"),
        path,
        schema=wider,
        partition_by=["exchange"],
        configuration=CDF,
    )
    assert (replaced.rows, replaced.version) == (1, 1) and io.columns(path) == wider.names
    assert lake.read(path).to_dict("records") == [{"exchange": "b", "key": 2, "value": 2.0, "note": "x"}]


@pytest.mark.parametrize(
    "statement",
    [
        merge_statement("/lake/silver/t`x", "src", ["exchange", "key"], ["value", "note"], delete_missing=True),
        merge_statement("/lake/silver/t", "src", ["key"], None, delete_missing=False),
        merge_statement(
            "/lake/silver/t", "src", ["key"], "value", True, ("start_time", datetime(2026, 1, 1, tzinfo=UTC))
        ),
        create_statement("CREATE TABLE", "/lake/silver/t", "src", ["exchange"], CDF),
        create_statement("CREATE OR REPLACE TABLE", "/lake/silver/t", "src", [], None),
    ],
)
def test_the_connector_statements_are_valid_spark_sql(spark, statement: str) -> None:
    """Spark's own SQL parser accepts what the connector backend runs (executing them needs the jars)."""
    plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(statement).toString()
    assert ("MergeIntoTable" in plan) == statement.startswith("MERGE")
    assert ("deleteaction" in plan) == ("NOT MATCHED BY SOURCE" in statement)
    assert ("enableChangeDataFeed,true" in plan) == ("TBLPROPERTIES" in statement)
    assert "[delta, /lake/silver/t" in plan  # a path-based Delta table, its backquote escaped
