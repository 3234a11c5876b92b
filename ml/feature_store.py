"""The Feast feature store over the models' dbt marts: apply, materialize, historical and online reads.

Each model contract (:data:`sentinance.catalog.MODELS`) has a feature view over its mart and a
feature service; the volatility model's service joins the forecaster's view and its own.

The repo definition lives in ``feature_repo/`` (``feature_store*.yaml`` + ``features.py``),
shipped in the package (:func:`sentinance.resources.feature_repo_dir`). Its YAML names the
registry, online store and PostgreSQL location as ``${SENTINANCE_*}`` variables; here they are
filled from the settings (:func:`feast_environment`) without touching the process environment,
and ``features.py`` is imported with the settings' values set only while it runs.

One :class:`~feast.FeatureStore` per settings is built and reused by the process
(:func:`feature_store`): building one re-reads the YAML and the registry, which cost an online read
of one instrument ~100 ms. :func:`apply` is ``feast apply`` itself (the CLI's plan-and-apply), so
the registry, its record of the online store's tables and a ``feast plan`` afterwards agree.

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
import sys
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, Project, RepoConfig
from feast.constants import FEAST_FS_YAML_FILE_PATH_ENV_NAME
from feast.data_source import DataSource
from feast.feature_view import DUMMY_ENTITY
from feast.repo_contents import RepoContents
from feast.repo_operations import apply_total_with_repo_instance, get_repo_files

from sentinance import faults, services
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
    """The variables the repo's YAML and ``features.py`` read for this state, and where the ``feast`` CLI
    finds the repo (its ``--chdir``) and the YAML of the configured online store (its ``-f``)."""
    registry_type, registry = registry_location(settings)
    repo = feature_repo_dir()
    return {
        **settings.environment(),
        "SENTINANCE_FEAST_DIR": str(settings.feast_dir),
        "SENTINANCE_FEAST_REGISTRY_TYPE": registry_type,
        "SENTINANCE_FEAST_REGISTRY": registry,
        **services.pg_params(settings).env(),
        "FEATURE_REPO_DIR_ENV_VAR": str(repo),
        FEAST_FS_YAML_FILE_PATH_ENV_NAME: str(repo / ONLINE_STORES[settings.feast_online_store]),
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
    """The FeatureStore on the Feast repo for these settings (state in ``settings.feast_dir``, the configured
    online store), built once per process and reused; it re-reads the registry after its cache TTL (60 s)."""
    return _feature_store((settings or get_settings()).model_dump_json())


@lru_cache(maxsize=16)
def _feature_store(settings_json: str) -> FeatureStore:
    settings = Settings.model_validate_json(settings_json)  # the given values, not the environment's
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


def _repo_contents(objects: list[Any]) -> RepoContents:
    """The objects as `feast apply` hands them to the store (with Feast's placeholder entity, as it adds it)."""

    def of(kind: type) -> list[Any]:
        return [o for o in objects if isinstance(o, kind)]

    return RepoContents(
        projects=of(Project),
        data_sources=of(DataSource),
        feature_views=of(FeatureView),
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=[*of(Entity), DUMMY_ENTITY],
        feature_services=of(FeatureService),
        permissions=[],
    )


def apply(settings: Settings | None = None) -> dict:
    """``feast apply`` in-process: sync the registry with the repo (objects removed from ``features.py`` are
    deleted), create the online tables and record them in the registry, as the CLI does."""
    settings = settings or get_settings()
    store = feature_store(settings)
    objects = _repo_objects(settings)
    apply_total_with_repo_instance(store, store.project, store.registry, _repo_contents(objects), False)
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


def materialize(settings: Settings | None = None, end: datetime | None = None) -> dict[str, dict[str, str]]:
    """Load the latest rows of every model's mart up to ``end`` into the online store (incremental);
    returns the window loaded per feature view.

    ``end`` defaults to one period (the contract's interval) after the mart's latest event. The first run of a view
    loads the window ``[end - ttl, end]`` (Feast would use the wall clock instead of
    ``end``); later runs continue from the previous run's end.
    """
    settings = settings or get_settings()
    store = feature_store(settings)
    _arm_online_store_fault(settings, store)
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

    Instruments missing from the online store (from any of the service's views) come back with null
    features and NaT; with a service over several views, ``event_timestamp`` is the oldest of the
    views' rows: a forecast is as old as the oldest input it used. The read is Feast's alone: the
    feature service comes from the process's copy (:func:`_feature_service`), and the answer becomes
    one float block rather than a column per feature (pandas took ten times Feast's read).
    """
    settings = settings or get_settings()
    response = feature_store(settings).get_online_features(
        features=_feature_service(settings.model_dump_json(), contract.feature_service),
        entity_rows=[{contract.entity_key: i} for i in instrument_ids],
    )
    values = response.to_dict(include_event_timestamps=True)
    views = [c.served_columns(settings.sequence_length) for c in _views_of(contract)]
    names = [column for columns in views for column in columns]  # the service's columns, in the contracts' order
    frame = pd.DataFrame(
        np.array([values[c] for c in names], dtype=np.float64).T.reshape(-1, len(names)), columns=names
    )
    frame.insert(0, contract.entity_key, values[contract.entity_key])
    per_view = np.array(
        [
            np.array([values[f"{c}{_ONLINE_TS_SUFFIX}"] for c in columns], dtype=np.float64).max(axis=0, initial=0)
            for columns in views
        ]
    ).reshape(len(views), -1)
    seconds = np.where((per_view > 0).all(axis=0), per_view.min(axis=0, initial=np.inf), np.nan)
    frame[contract.timestamp] = pd.to_datetime(seconds, unit="s", utc=True)
    return frame


def _views_of(contract: ModelContract) -> list[ModelContract]:
    """The contracts whose feature views the contract's service joins, an extended contract's first."""
    return [*(_views_of(contract.extends) if contract.extends else []), contract]


@lru_cache(maxsize=16)
def _feature_service(settings_json: str, name: str) -> FeatureService:
    """A feature service as the registry holds it, once per process: its definition changes only with the
    code and the settings (a registry lookup rebuilds it from protobuf, ~10 ms with Feast's type checks)."""
    return _feature_store(settings_json).get_feature_service(name, allow_cache=True)
