"""The catalog: every table and the model contract declared once, and consistent with itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from sentinance import catalog
from sentinance.catalog import FORECASTER, MIRRORED, TABLES
from sentinance.settings import INTERVAL_SECONDS, Settings


def test_every_table_is_declared_once_with_its_keys_and_partitions_in_its_schema(tmp_path) -> None:
    assert len({t.id for t in TABLES}) == len(TABLES)
    for table in TABLES:
        if table.schema is not None:
            assert set(table.keys) <= set(table.schema.names), table.id
            assert set(table.partition_by) <= set(table.schema.names), table.id
        assert catalog.table(table.id) is table
        assert table.path(Settings(home=tmp_path)) == str(tmp_path.resolve() / "lake" / table.layer / table.name)
    with pytest.raises(KeyError, match="no table 'bronze/nope'"):
        catalog.table("bronze/nope")


def test_what_the_warehouse_mirrors_has_keys_and_a_change_feed() -> None:
    assert list(MIRRORED) == [
        "candles",
        "simulator_labels",
        "candle_features",
        "cross_exchange_features",
        "anomalies",
        "predictions",
    ]
    for name, table in MIRRORED.items():
        assert table.keys and table.schema is not None, name
        assert table.change_feed, name  # the loader reads the changes, never diffs a whole snapshot


def test_the_raw_records_are_the_bronze_tables_without_lineage() -> None:
    lineage = {f.name for f in catalog.LINEAGE_FIELDS}
    assert [n for n in catalog.CANDLES.schema.names if n not in lineage] == [
        *catalog.CANDLE_COLUMNS,
        *catalog.OPTIONAL_CANDLE_COLUMNS,
    ]
    assert set(catalog.TRADE_KEYS) <= set(catalog.TRADE_COLUMNS)


def test_the_model_contract_names_its_columns_once() -> None:
    columns = FORECASTER.mart_columns(3)
    assert len(columns) == len(set(columns))
    assert FORECASTER.lag_columns("rsi_14", 3) == ["rsi_14_lag_2", "rsi_14_lag_1", "rsi_14_lag_0"]
    served = FORECASTER.served_columns(3)
    assert served[0] == "close" and len(served) == 1 + 3 * len(FORECASTER.features)
    assert set(served) < set(columns) and FORECASTER.label in columns and FORECASTER.label not in served
    silver = set(catalog.CANDLE_FEATURES.schema.names)
    assert set(FORECASTER.features) - silver == {"sma_ratio"}  # the one derived in the mart (close / sma_20 - 1)


def test_the_contract_s_interval_keys_its_view_and_sets_its_period() -> None:
    assert FORECASTER.feature_view == f"instrument_{FORECASTER.interval}_features" == "instrument_1h_features"
    assert FORECASTER.period == timedelta(seconds=INTERVAL_SECONDS[FORECASTER.interval]) == timedelta(hours=1)
    four = replace(FORECASTER, interval="4h")
    assert (four.feature_view, four.period) == ("instrument_4h_features", timedelta(hours=4))


def test_dbt_receives_the_contract_and_the_universe(tmp_path) -> None:
    settings = Settings(home=tmp_path, sequence_length=5, exchanges={"okx": "USDT"})
    assert catalog.dbt_vars(settings) == {
        "exchanges": ["okx"],
        "interval_seconds": INTERVAL_SECONDS,
        "anomaly_interval": "1h",
        "model": {
            "features": list(FORECASTER.features),
            "label": FORECASTER.label,
            "interval": "1h",
            "interval_seconds": 3600,
            "sequence_length": 5,
        },
    }
