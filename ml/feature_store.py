"""The Feast feature store over the dbt mart: apply, materialize, historical and online reads.

The repo definition lives in ``feature_repo/`` (``feature_store*.yaml`` + ``features.py``),
shipped in the package (:func:`sentinance.resources.feature_repo_dir`). Its YAML names the
registry, online store and PostgreSQL location as ``${SENTINANCE_*}`` variables; here they are
filled from the settings (:func:`feast_environment`) without touching the process environment,
and ``features.py`` is imported with the settings' values set only while it runs.

The online store is chosen by ``SENTINANCE_FEAST_ONLINE_STORE``: ``sqlite`` (default, a file in
the state dir), ``postgres`` (the warehouse, schema ``feast_online``) or ``redis`` (at
``SENTINANCE_FEAST_REDIS``, ``host:port[,db=0,...]``); each has its own YAML next to
``feature_store.yaml`` and its own registry file.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, Project, RepoConfig
from feast.data_source import DataSource
from feast.repo_operations import get_repo_files

from sentinance import faults, services
from sentinance.catalog import FORECASTER
from sentinance.resources import feature_repo_dir
from sentinance.settings import Settings, get_settings, temporary_environment

log = logging.getLogger(__name__)

_ONLINE_TS_SUFFIX = "__ts"
ONLINE_STORES = {
    "sqlite": "feature_store.yaml",
    "postgres": "feature_store.postgres.yaml",
    "redis": "feature_store.redis.yaml",
}


def feast_environment(settings: Settings) -> dict[str, str]:
    """The variables the repo's YAML and ``features.py`` read, for this state."""
    return {
        **settings.environment(),
        "SENTINANCE_FEAST_DIR": str(settings.feast_dir),
        **services.pg_params(settings).env(),
    }


def repo_config(settings: Settings) -> RepoConfig:
    """The configured YAML with its ``${SENTINANCE_*}`` filled from ``settings`` (as ``feast`` would from the env)."""
    repo = feature_repo_dir()
    text = (repo / ONLINE_STORES[settings.feast_online_store]).read_text()
    values = feast_environment(settings)
    config = RepoConfig(**yaml.safe_load(re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)))
    config.repo_path = repo
    return config


def query(settings: Settings, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """Run a read-only query on the warehouse and return the rows as a DataFrame."""
    with services.connect(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        columns = [c.name for c in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def feature_store(settings: Settings | None = None) -> FeatureStore:
    """A FeatureStore on the Feast repo, its state in ``settings.feast_dir``, with the configured online store."""
    settings = settings or get_settings()
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(feature_repo_dir()), config=repo_config(settings))


def _repo_objects(settings: Settings) -> list[Any]:
    """The Feast objects defined in the repo's files (as `feast apply` collects them), for ``settings``."""
    objects: list[Any] = []
    for path in get_repo_files(feature_repo_dir()):
        spec = importlib.util.spec_from_file_location(f"sentinance_feature_repo_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        with temporary_environment(settings.environment()):
            spec.loader.exec_module(module)
        for value in vars(module).values():
            is_feast = isinstance(value, (Project, Entity, DataSource, FeatureView, FeatureService))
            if is_feast and not any(value is seen for seen in objects):
                objects.append(value)
    return objects


def apply(settings: Settings | None = None) -> dict:
    """`feast apply` in-process: register the repo's objects and create the online tables."""
    settings = settings or get_settings()
    store = feature_store(settings)
    objects = _repo_objects(settings)
    store.apply(objects)
    names = sorted(f"{type(o).__name__}:{o.name}" for o in objects)
    log.info("feast apply: %s", ", ".join(names))
    return {"project": store.project, "objects": names, "sequence_length": settings.sequence_length}


def _arm_online_store_fault(settings: Settings, store: FeatureStore) -> None:
    """With ``SENTINANCE_FAULT`` at ``feast-materialize``: reach it when the materialization opens the SQLite
    online store to write, Feast having marked the view as materializing (an audit hook, the one place Feast
    lets code in; only the fault suite arms it)."""
    if faults.armed(settings, "feast-materialize") is None or settings.feast_online_store != "sqlite":
        return
    online_store = Path(store.config.online_store.path).resolve()

    def on_audit(event: str, args: tuple) -> None:
        if event == "sqlite3.connect" and Path(args[0]).resolve() == online_store:
            faults.reach(settings, "feast-materialize")

    sys.addaudithook(on_audit)


def materialize(settings: Settings | None = None, end: datetime | None = None) -> dict:
    """Load the latest mart rows up to ``end`` into the online store (incremental).

    ``end`` defaults to one period (the contract's interval) after the mart's latest event. The first run of a view
    loads the window ``[end - ttl, end]`` (Feast would use the wall clock instead of
    ``end``); later runs continue from the previous run's end.
    """
    settings = settings or get_settings()
    store = feature_store(settings)
    if end is None:
        latest = query(settings, f"SELECT max({FORECASTER.timestamp}) AS latest FROM {FORECASTER.mart}")["latest"].iloc[
            0
        ]
        end = pd.Timestamp(latest).to_pydatetime() + FORECASTER.period
    view = store.get_feature_view(FORECASTER.feature_view)
    _arm_online_store_fault(settings, store)
    start = view.most_recent_end_time
    if start is None:
        start = end - view.ttl
        store.materialize(start_date=start, end_date=end, feature_views=[FORECASTER.feature_view])
    else:
        store.materialize_incremental(end_date=end, feature_views=[FORECASTER.feature_view])
    log.info("materialized %s from %s to %s", FORECASTER.feature_view, start, end)
    return {"feature_view": FORECASTER.feature_view, "start": start.isoformat(), "end": end.isoformat()}


def historical_features(settings: Settings | None, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of the feature service onto ``entity_df``.

    ``entity_df`` has ``instrument_id`` and ``event_timestamp`` (tz-aware) plus any label
    columns, which are passed through. Each row gets the latest feature row at or before
    its timestamp and within the view's TTL.
    """
    store = feature_store(settings)
    entity_df = entity_df.assign(**{FORECASTER.timestamp: pd.to_datetime(entity_df[FORECASTER.timestamp], utc=True)})
    job = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(FORECASTER.feature_service)
    )
    frame = job.to_df()
    frame[FORECASTER.timestamp] = pd.to_datetime(frame[FORECASTER.timestamp], utc=True)
    return frame.sort_values([FORECASTER.timestamp, FORECASTER.entity_key], ignore_index=True)


def online_features(settings: Settings | None, instrument_ids: Sequence[str]) -> pd.DataFrame:
    """The latest materialized feature row per instrument, with its ``event_timestamp``.

    Instruments missing from the online store come back with null features and NaT.
    """
    store = feature_store(settings)
    response = store.get_online_features(
        features=store.get_feature_service(FORECASTER.feature_service),
        entity_rows=[{FORECASTER.entity_key: i} for i in instrument_ids],
    )
    frame = response.to_df(include_event_timestamps=True)
    ts_columns = [c for c in frame.columns if c.endswith(_ONLINE_TS_SUFFIX)]
    seconds = frame[ts_columns].max(axis=1).where(lambda s: s > 0)
    frame[FORECASTER.timestamp] = pd.to_datetime(seconds, unit="s", utc=True)
    return frame.drop(columns=ts_columns)
