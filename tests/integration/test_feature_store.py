"""Feast over a synthetic training-features mart (conftest's ``ml_settings``) in a real PostgreSQL:
apply, materialize, point-in-time historical features and the online store."""

from __future__ import annotations

import pandas as pd
import pytest

from sentinance import services
from sentinance.catalog import FORECASTER
from sentinance.errors import SettingsError
from sentinance.ml import feature_store
from sentinance.settings import get_settings


def test_apply_registers_the_feature_service(ml_settings) -> None:
    settings, mart = ml_settings
    store = feature_store.feature_store(settings)
    service = store.get_feature_service(FORECASTER.feature_service)
    names = [f.name for projection in service.feature_view_projections for f in projection.features]
    assert names == FORECASTER.served_columns(mart.sequence_length)  # the catalog's contract, in order
    assert [projection.name for projection in service.feature_view_projections] == [FORECASTER.feature_view]
    assert (settings.feast_dir / "registry.db").exists()


def test_historical_features_are_point_in_time_correct(ml_settings) -> None:
    settings, mart = ml_settings
    rows = mart.rows[mart.rows["instrument_id"] == "kraken:BTC/USD"].set_index("event_timestamp")
    t0, t1 = rows.index[100], rows.index[101]
    entity_df = pd.DataFrame(
        {
            "instrument_id": ["kraken:BTC/USD", "kraken:BTC/USD"],
            "event_timestamp": [t0, t0 + (t1 - t0) / 2],  # on a row, and between two rows
            "label": [1.0, 2.0],
        }
    )
    result = feature_store.historical_features(settings, entity_df)
    assert len(result) == 2 and list(result["label"]) == [1.0, 2.0]
    for _, row in result.iterrows():
        assert row["basis_bps_lag_0"] == pytest.approx(rows.loc[t0, "basis_bps"])
        assert row["close"] == pytest.approx(rows.loc[t0, "close"])
        assert row["basis_bps_lag_0"] != pytest.approx(rows.loc[t1, "basis_bps"])


def test_online_features_hold_the_latest_row(ml_settings) -> None:
    settings, mart = ml_settings
    ids = sorted(mart.rows["instrument_id"].unique())
    online = feature_store.online_features(settings, [*ids, "nowhere:BTC/USD"])
    latest = mart.rows.sort_values("event_timestamp").groupby("instrument_id").tail(1).set_index("instrument_id")
    oldest = f"log_return_lag_{mart.sequence_length - 1}"
    for _, row in online.iloc[:-1].iterrows():
        expected = latest.loc[row["instrument_id"]]
        assert row["event_timestamp"] == expected["event_timestamp"]
        assert row["close"] == pytest.approx(expected["close"])
        assert row[oldest] == pytest.approx(expected[oldest])
    assert pd.isna(online.iloc[-1]["event_timestamp"]) and pd.isna(online.iloc[-1]["close"])


def test_materialize_is_incremental(ml_settings) -> None:
    settings, mart = ml_settings
    result = feature_store.materialize(settings, mart.end + FORECASTER.period)
    assert result["start"] == mart.end.isoformat()


def test_postgres_online_store_serves_what_sqlite_serves(ml_settings) -> None:
    settings, mart = ml_settings
    ids = sorted(mart.rows["instrument_id"].unique())
    expected = feature_store.online_features(settings, ids)
    in_postgres = settings.model_copy(update={"feast_online_store": "postgres"})
    store = feature_store.feature_store(in_postgres)
    assert store.config.online_store.type == "postgres" and store.config.online_store.db_schema == "feast_online"
    feature_store.apply(in_postgres)  # its own registry: nothing materialized yet
    ttl = store.get_feature_view(FORECASTER.feature_view).ttl
    assert ttl == 6 * FORECASTER.period  # six periods of the contract's interval
    assert feature_store.materialize(in_postgres, mart.end)["start"] == (mart.end - ttl).isoformat()
    served = feature_store.online_features(in_postgres, ids)
    pd.testing.assert_frame_equal(served[expected.columns], expected)
    with services.connect(settings) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'feast_online'"
        ).fetchone()[0]
    assert tables == 1


def test_online_store_is_chosen_by_configuration(ml_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, _ = ml_settings
    monkeypatch.setenv("SENTINANCE_FEAST_ONLINE_STORE", "redis")
    monkeypatch.delenv("SENTINANCE_FEAST_REDIS", raising=False)
    with pytest.raises(SettingsError, match="SENTINANCE_FEAST_REDIS"):
        get_settings(home=settings.home)
    monkeypatch.setenv("SENTINANCE_FEAST_REDIS", "redis.internal:6379,db=2")
    config = feature_store.feature_store(get_settings(home=settings.home)).config
    assert config.online_store.type == "redis" and config.online_store.connection_string == "redis.internal:6379,db=2"
    assert config.registry.path.endswith("registry-redis.db")
    monkeypatch.delenv("SENTINANCE_FEAST_ONLINE_STORE")
    assert feature_store.feature_store(get_settings(home=settings.home)).config.online_store.type == "sqlite"
