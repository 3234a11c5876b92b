"""The Feast feature store over the models' dbt marts: apply, materialize, historical and online reads.

Each model contract (:data:`sentinance.catalog.MODELS`) has a feature view over its mart and a
feature service; the volatility model's service joins the forecaster's view and its own.

The repo definition lives in ``feature_repo/`` (``feature_store*.yaml`` + ``features.py``),
shipped in the package (:func:`sentinance.resources.feature_repo_dir`). Its YAML names the
registry, online store and PostgreSQL location as ``${SENTINANCE_*}`` variables; here they are
filled from the settings (:func:`feast_environment`) without touching the process environment,
and ``features.py`` is imported with the settings' values set only while it runs.

The online store is chosen by ``SENTINANCE_FEAST_ONLINE_STORE``: ``sqlite`` (default, a file in
the state dir), ``postgres`` (the warehouse, schema ``feast_online``) or ``redis`` (at
``SENTINANCE_FEAST_REDIS``, ``host:port[,db=0,...]``); each has its own YAML next to
``feature_store.yaml`` and its own registry (it records how far each view was materialized): a
file in the state dir, or, with ``SENTINANCE_DATABASE_URL``, Feast's SQL registry in that
PostgreSQL (schema ``feast_registry``, ``feast_registry_postgres``, ``feast_registry_redis``).
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import pandas as pd
import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, Project, RepoConfig
from feast.data_source import DataSource
from feast.repo_operations import get_repo_files

from sentinance import services
from sentinance.catalog import FORECASTER, MODELS, ModelContract
from sentinance.resources import feature_repo_dir
from sentinance.settings import Settings, get_settings, temporary_environment

log = logging.getLogger(__name__)

_ONLINE_TS_SUFFIX = "__ts"
ONLINE_STORES = {
    "sqlite": "feature_store.yaml",
    "postgres": "feature_store.postgres.yaml",
    "redis": "feature_store.redis.yaml",
}
REGISTRIES = {"sqlite": "registry", "postgres": "registry-postgres", "redis": "registry-redis"}


def registry_location(settings: Settings) -> tuple[str, str]:
    """(registry type, path) of the configured online store's registry: a file in the state dir, or a
    schema of ``SENTINANCE_DATABASE_URL`` for Feast's SQL registry."""
    name = REGISTRIES[settings.feast_online_store]
    if not settings.database_url:
        return "file", str(settings.feast_dir / f"{name}.db")
    from sqlalchemy.engine import URL

    params = services.pg_params(settings)
    schema = f"feast_{name.replace('-', '_')}"
    query = {"host": params.host, "port": str(params.port), "options": f"-csearch_path={schema}"}
    url = URL.create("postgresql+psycopg", params.user, params.password or None, database=params.dbname, query=query)
    return "sql", url.render_as_string(hide_password=False)


def feast_environment(settings: Settings) -> dict[str, str]:
    """The variables the repo's YAML and ``features.py`` read, for this state."""
    registry_type, registry = registry_location(settings)
    return {
        **settings.environment(),
        "SENTINANCE_FEAST_DIR": str(settings.feast_dir),
        "SENTINANCE_FEAST_REGISTRY_TYPE": registry_type,
        "SENTINANCE_FEAST_REGISTRY": registry,
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
    config = repo_config(settings)
    if config.registry.registry_type == "sql":  # Feast creates its tables, not their schema
        schema = parse_qs(urlparse(config.registry.path).query)["options"][0].partition("=")[2]
        with services.connect(settings, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return FeatureStore(repo_path=str(feature_repo_dir()), config=config)


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


def materialize(settings: Settings | None = None, end: datetime | None = None) -> dict[str, dict[str, str]]:
    """Load the latest rows of every model's mart up to ``end`` into the online store (incremental);
    returns the window loaded per feature view.

    ``end`` defaults to one period (the contract's interval) after the mart's latest event. The first run of a view
    loads the window ``[end - ttl, end]`` (Feast would use the wall clock instead of
    ``end``); later runs continue from the previous run's end.
    """
    settings = settings or get_settings()
    store = feature_store(settings)
    windows = {}
    for contract in MODELS:
        until = end
        if until is None:
            latest = query(settings, f"SELECT max({contract.timestamp}) AS latest FROM {contract.mart}")["latest"]
            until = pd.Timestamp(latest.iloc[0]).to_pydatetime() + contract.period
        view = store.get_feature_view(contract.feature_view)
        start = view.most_recent_end_time
        if start is None:
            start = until - view.ttl
            store.materialize(start_date=start, end_date=until, feature_views=[contract.feature_view])
        else:
            store.materialize_incremental(end_date=until, feature_views=[contract.feature_view])
        log.info("materialized %s from %s to %s", contract.feature_view, start, until)
        windows[contract.feature_view] = {"start": start.isoformat(), "end": until.isoformat()}
    return windows


def historical_features(
    settings: Settings | None, entity_df: pd.DataFrame | str, contract: ModelContract = FORECASTER
) -> pd.DataFrame:
    """Point-in-time join of the contract's feature service onto ``entity_df``.

    ``entity_df`` has ``instrument_id`` and ``event_timestamp`` (tz-aware) plus any label
    columns, which are passed through: a DataFrame, or a SQL query on the warehouse, which Feast
    reads in place instead of uploading the rows first. Each row gets, from each of the service's
    views, the latest feature row at or before its timestamp and within the view's TTL.
    """
    store = feature_store(settings)
    if isinstance(entity_df, pd.DataFrame):
        entity_df = entity_df.assign(**{contract.timestamp: pd.to_datetime(entity_df[contract.timestamp], utc=True)})
    job = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(contract.feature_service)
    )
    frame = job.to_df()
    frame[contract.timestamp] = pd.to_datetime(frame[contract.timestamp], utc=True)
    return frame.sort_values([contract.timestamp, contract.entity_key], ignore_index=True)


def online_features(
    settings: Settings | None, instrument_ids: Sequence[str], contract: ModelContract = FORECASTER
) -> pd.DataFrame:
    """The latest materialized feature row per instrument, with its ``event_timestamp``.

    Instruments missing from the online store (from any of the service's views) come back with NaT;
    with a service over several views, ``event_timestamp`` is the oldest of the views' rows: a
    forecast is as old as the oldest input it used.
    """
    store = feature_store(settings)
    response = store.get_online_features(
        features=store.get_feature_service(contract.feature_service),
        entity_rows=[{contract.entity_key: i} for i in instrument_ids],
    )
    frame = response.to_df(include_event_timestamps=True)
    per_view = pd.concat(
        [
            frame[[f"{f.name}{_ONLINE_TS_SUFFIX}" for f in store.get_feature_view(view).features]].max(axis=1)
            for view in contract.feature_views
        ],
        axis=1,
    ).where(lambda seconds: seconds > 0)
    frame[contract.timestamp] = pd.to_datetime(per_view.min(axis=1, skipna=False), unit="s", utc=True)
    return frame.drop(columns=[c for c in frame.columns if c.endswith(_ONLINE_TS_SUFFIX)])
