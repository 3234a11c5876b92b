"""The whole `lakehouse` flow on an external PostgreSQL (Debian's server on 127.0.0.1, password
authentication) through ``SENTINANCE_DATABASE_URL``: the warehouse, dbt's marts, the MLflow backend
store (schema ``mlflow``), Feast's SQL registry and its PostgreSQL offline and online stores all
live in it, and nothing of them in the state dir. Then Redis (Debian's redis-server on 127.0.0.1)
as the online store: Feast materializes into it and scoring reads from it, with the forecasts the
SQLite online store gives."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.servers import postgres, redis

from sentinance import catalog, lake, services
from sentinance.catalog import FORECASTER, MODELS
from sentinance.ml import feature_store, registry, score
from sentinance.pipelines.flows.lakehouse import lakehouse
from sentinance.settings import Settings, get_settings, temporary_environment


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    """(PostgreSQL URL, Redis host:port), both started for this module."""
    with tempfile.TemporaryDirectory(prefix="sentinance-servers-") as directory:
        root = Path(directory)
        with postgres(root / "postgres") as url, redis(root / "redis") as redis_url:
            yield url, redis_url


@pytest.fixture(scope="module")
def external(servers: tuple[str, str], lakehouse_window) -> tuple[Settings, dict]:
    """One `lakehouse` run on a state dir of its own whose database is the external PostgreSQL."""
    url, _ = servers
    end, days = lakehouse_window
    home = tempfile.mkdtemp(prefix="sentinance-external-")
    values = {"SENTINANCE_HOME": home, "SENTINANCE_DATABASE_URL": url, "SENTINANCE_FEAST_ONLINE_STORE": "postgres"}
    with temporary_environment(values):
        result = lakehouse(end=end, days=days)
        return get_settings(), result


def _scalar(settings: Settings, sql: str):
    with services.connect(settings) as conn:
        return conn.execute(sql).fetchone()[0]


def test_the_whole_flow_keeps_warehouse_registry_and_stores_in_the_external_database(external) -> None:
    settings, result = external
    assert services.pg_params(settings).host == "127.0.0.1" and not settings.postgres_dir.exists()
    rows = lake.row_count(catalog.CANDLE_FEATURES.path(settings))
    assert _scalar(settings, f"SELECT count(*) FROM {FORECASTER.mart}") == rows > 0
    assert _scalar(settings, "SELECT count(*) FROM lake.predictions") == 9
    # MLflow's backend store: its tables in schema mlflow, none in the state dir; artifacts in the state dir
    assert services.mlflow_tracking_uri(settings).startswith("postgresql+psycopg://")
    assert not (settings.mlflow_dir / "mlflow.db").exists()
    version = result["stages"]["train"]["version"]
    found = f"SELECT count(*) FROM mlflow.model_versions WHERE name = '{FORECASTER.name}' AND version = {version}"
    assert _scalar(settings, found) == 1
    assert _scalar(settings, "SELECT artifact_location FROM mlflow.experiments WHERE experiment_id = 0") == (
        f"{services.mlflow_artifact_root(settings)}/0"
    )
    # Feast: the SQL registry and the online store in the database, no registry file
    assert feature_store.registry_location(settings)[0] == "sql" and not list(settings.feast_dir.glob("*.db"))
    views = _scalar(settings, "SELECT count(*) FROM feast_registry_postgres.feature_views")
    online = _scalar(
        settings,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'feast_online'",
    )
    assert views == len(MODELS) and online >= 1  # one feature view per model contract


def _forecasts(settings: Settings) -> pd.DataFrame:
    """The serving version's forecasts from ``settings``' online store (applied and materialized first)."""
    feature_store.apply(settings)
    feature_store.materialize(settings)
    instruments = feature_store.query(settings, f"SELECT DISTINCT instrument_id FROM {FORECASTER.mart}")
    online = feature_store.online_features(settings, sorted(instruments["instrument_id"]))
    version, alias = registry.serving_version(settings)
    return score.predict(version, alias, online, pd.Timestamp.now(tz="UTC")).sort_values("instrument_id")


def test_redis_serves_the_forecasts_sqlite_serves(external, servers: tuple[str, str]) -> None:
    settings, _ = external
    with_redis = get_settings(**{**settings.model_dump(), "feast_online_store": "redis", "feast_redis": servers[1]})
    with_sqlite = get_settings(**{**settings.model_dump(), "feast_online_store": "sqlite"})
    expected = _forecasts(with_sqlite)
    assert (with_sqlite.feast_dir / "online_store.db").is_file()

    feature_store.apply(with_redis)
    feature_store.materialize(with_redis)
    served = score.score_latest(with_redis)  # reads the online features from Redis
    found = lake.read(catalog.PREDICTIONS.path(settings), version=served.delta_version)
    latest = (found["scored_at"] == found["scored_at"].max()) & (found["model_version"] == served.model_version)
    found = found[latest].sort_values("instrument_id")
    assert served.rows == len(expected) == 9
    assert found["instrument_id"].tolist() == expected["instrument_id"].tolist()
    np.testing.assert_allclose(found["predicted_log_return"], expected["predicted_log_return"], rtol=1e-12)
    assert (found["feature_time"].to_numpy() == expected["feature_time"].to_numpy()).all()
