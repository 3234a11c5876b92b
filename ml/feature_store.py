"""The Feast feature store over the dbt mart: apply, materialize, historical and online reads.

The repo definition lives in ``feature_repo/`` (``feature_store.yaml`` + ``features.py``);
its YAML reads the registry, online store and PostgreSQL location from environment
variables, which :func:`feature_store` sets from the settings.

The online store is chosen by ``SENTINANCE_FEAST_ONLINE_STORE``: ``sqlite`` (default, a
file in the state dir), ``postgres`` (the warehouse, schema ``feast_online``) or ``redis``
(at ``SENTINANCE_FEAST_REDIS``, ``host:port[,db=0,...]``); each has its own YAML next to
``feature_store.yaml`` and its own registry file.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from feast import Entity, FeatureService, FeatureStore, FeatureView, Project
from feast.data_source import DataSource
from feast.repo_operations import get_repo_files

from sentinance import services
from sentinance.config import Settings, get_settings, sequence_length

log = logging.getLogger(__name__)

FEATURE_REPO = Path(__file__).resolve().parents[1] / "feature_repo"
MART_TABLE = "marts.fct_training_features"
FEATURE_VIEW = "instrument_hourly_features"
FEATURE_SERVICE = "lstm_forecaster_v1"
ENTITY_KEY = "instrument_id"
TIMESTAMP = "event_timestamp"
_ONLINE_TS_SUFFIX = "__ts"
ONLINE_STORES = {
    "sqlite": "feature_store.yaml",
    "postgres": "feature_store.postgres.yaml",
    "redis": "feature_store.redis.yaml",
}


def online_store_kind() -> str:
    """The configured online store (SENTINANCE_FEAST_ONLINE_STORE, default sqlite)."""
    kind = os.environ.get("SENTINANCE_FEAST_ONLINE_STORE", "sqlite").strip().lower()
    if kind not in ONLINE_STORES:
        raise ValueError(f"SENTINANCE_FEAST_ONLINE_STORE must be one of {sorted(ONLINE_STORES)}, got {kind!r}")
    if kind == "redis" and not os.environ.get("SENTINANCE_FEAST_REDIS"):
        raise ValueError("SENTINANCE_FEAST_ONLINE_STORE=redis needs SENTINANCE_FEAST_REDIS=host:port[,db=0,...]")
    return kind


def query(settings: Settings, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """Run a read-only query on the warehouse and return the rows as a DataFrame."""
    with services.connect(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        columns = [c.name for c in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def feature_store(settings: Settings | None = None) -> FeatureStore:
    """A FeatureStore on ``feature_repo/`` whose state lives in ``settings.feast_dir``,
    with the configured online store."""
    settings = settings or get_settings()
    yaml_file = FEATURE_REPO / ONLINE_STORES[online_store_kind()]
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update({"SENTINANCE_FEAST_DIR": str(settings.feast_dir), **services.pg_params(settings).env()})
    return FeatureStore(repo_path=str(FEATURE_REPO), fs_yaml_file=yaml_file)


def _repo_objects() -> list[Any]:
    """The Feast objects defined in the repo's files (as `feast apply` collects them)."""
    objects: list[Any] = []
    for path in get_repo_files(FEATURE_REPO):
        spec = importlib.util.spec_from_file_location(f"sentinance_feature_repo_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for value in vars(module).values():
            is_feast = isinstance(value, (Project, Entity, DataSource, FeatureView, FeatureService))
            if is_feast and not any(value is seen for seen in objects):
                objects.append(value)
    return objects


def apply(settings: Settings | None = None) -> dict:
    """`feast apply` in-process: register the repo's objects and create the online tables."""
    store = feature_store(settings)
    objects = _repo_objects()
    store.apply(objects)
    names = sorted(f"{type(o).__name__}:{o.name}" for o in objects)
    log.info("feast apply: %s", ", ".join(names))
    return {"project": store.project, "objects": names, "sequence_length": sequence_length()}


def materialize(settings: Settings | None = None, end: datetime | None = None) -> dict:
    """Load the latest mart rows up to ``end`` into the online store (incremental).

    ``end`` defaults to one hour after the mart's latest event. The first run of a view
    loads the window ``[end - ttl, end]`` (Feast would use the wall clock instead of
    ``end``); later runs continue from the previous run's end.
    """
    settings = settings or get_settings()
    store = feature_store(settings)
    if end is None:
        latest = query(settings, f"SELECT max({TIMESTAMP}) AS latest FROM {MART_TABLE}")["latest"].iloc[0]
        end = pd.Timestamp(latest).to_pydatetime() + timedelta(hours=1)
    view = store.get_feature_view(FEATURE_VIEW)
    start = view.most_recent_end_time
    if start is None:
        start = end - view.ttl
        store.materialize(start_date=start, end_date=end, feature_views=[FEATURE_VIEW])
    else:
        store.materialize_incremental(end_date=end, feature_views=[FEATURE_VIEW])
    log.info("materialized %s from %s to %s", FEATURE_VIEW, start, end)
    return {"feature_view": FEATURE_VIEW, "start": start.isoformat(), "end": end.isoformat()}


def historical_features(settings: Settings | None, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of the feature service onto ``entity_df``.

    ``entity_df`` has ``instrument_id`` and ``event_timestamp`` (tz-aware) plus any label
    columns, which are passed through. Each row gets the latest feature row at or before
    its timestamp and within the view's TTL.
    """
    store = feature_store(settings)
    entity_df = entity_df.assign(**{TIMESTAMP: pd.to_datetime(entity_df[TIMESTAMP], utc=True)})
    job = store.get_historical_features(entity_df=entity_df, features=store.get_feature_service(FEATURE_SERVICE))
    frame = job.to_df()
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    return frame.sort_values([TIMESTAMP, ENTITY_KEY], ignore_index=True)


def online_features(settings: Settings | None, instrument_ids: Sequence[str]) -> pd.DataFrame:
    """The latest materialized feature row per instrument, with its ``event_timestamp``.

    Instruments missing from the online store come back with null features and NaT.
    """
    store = feature_store(settings)
    response = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE),
        entity_rows=[{ENTITY_KEY: i} for i in instrument_ids],
    )
    frame = response.to_df(include_event_timestamps=True)
    ts_columns = [c for c in frame.columns if c.endswith(_ONLINE_TS_SUFFIX)]
    seconds = frame[ts_columns].max(axis=1).where(lambda s: s > 0)
    frame[TIMESTAMP] = pd.to_datetime(seconds, unit="s", utc=True)
    return frame.drop(columns=ts_columns)
