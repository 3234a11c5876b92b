"""The lakehouse's Prefect tasks: each a thin wrapper over a plain function of its stage's module.

The stages stay testable without Prefect; the flows of :mod:`sentinance.pipelines.flows.stages` and
:mod:`sentinance.pipelines.flows.lakehouse` compose these tasks. Retries are declared here, on the
idempotent tasks only (warehouse load, dbt build, materialization; landing in :mod:`.ingest`), and
only for failures that may pass on their own (:mod:`.retry`): a failed dbt test or a bug fails
the run at once, and a brief PostgreSQL outage in the warehouse load retries the load, not the
Spark job before it.

A derived stage first compares its inputs (Delta versions, definitions, the serving model) with
those it last finished with (:mod:`sentinance.checkpoints`): unchanged, it does nothing and says
so, without starting Spark, dbt, Feast or a model. The stages' modules are imported inside the
tasks, so importing a flow (the CLI, a deployment) does not import every engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from sentinance import catalog, checkpoints, lake
from sentinance.pipelines.flows.retry import retrying
from sentinance.settings import Settings

if TYPE_CHECKING:
    from sentinance.ml import ab_testing, drift, score, train
    from sentinance.pipelines.warehouse import loader, marts
    from sentinance.spark_jobs.detectors import job as detectors
    from sentinance.spark_jobs.features import job as candle_features


def as_plain(result: Any) -> Any:
    """A flow's return value as plain data: dataclasses as dicts, recursively through dicts."""
    if is_dataclass(result):
        return asdict(result)
    if isinstance(result, dict):
        return {key: as_plain(value) for key, value in result.items()}
    return result


def _unchanged(settings: Settings, stage: str, inputs: Mapping[str, Any], nothing_new: bool = False) -> bool:
    """Whether ``stage`` already finished with these inputs, or its inputs changed without a new row to
    compute (``nothing_new``, e.g. the change feed holds only deletes); says so in the run's log."""
    if nothing_new or checkpoints.unchanged(settings, stage, inputs):
        get_run_logger().info("%s: no new input since its last run (%s): nothing to do", stage, dict(inputs))
        return True
    return False


def _versions(settings: Settings, *tables: catalog.Table) -> dict[str, int | None]:
    return {table.id: lake.version(table.path(settings)) for table in tables}


@task(cache_policy=NO_CACHE)
def build_silver(settings: Settings, full_refresh: bool) -> candle_features.FeatureRunResult:
    """PySpark features from bronze into silver (only the affected tail unless full_refresh)."""
    from sentinance.spark_jobs.features import job
    from sentinance.spark_jobs.session import get_spark

    inputs = _versions(settings, catalog.CANDLES)
    try:  # the earliest candle that changed since the last run bounds what the job reads
        previous = (checkpoints.recorded(settings, "silver") or {}).get(catalog.CANDLES.id)
        changed_since = lake.first_change(catalog.CANDLES.path(settings), previous, "open_time")
        nothing_new = changed_since is None
    except LookupError:  # no record, or the changes are gone: read everything
        changed_since, nothing_new = None, False
    if not full_refresh and _unchanged(settings, "silver", inputs, nothing_new):
        silver, cross = (
            lake.version(t.path(settings)) for t in (catalog.CANDLE_FEATURES, catalog.CROSS_EXCHANGE_FEATURES)
        )
        checkpoints.record(settings, "silver", inputs)
        return job.FeatureRunResult(0, 0, silver, 0, cross, False, skipped=True)
    result = job.compute_candle_features(
        get_spark(settings), settings, full_refresh=full_refresh, changed_since=changed_since
    )
    checkpoints.record(settings, "silver", inputs)
    return result


@task(cache_policy=NO_CACHE)
def detect_anomalies(settings: Settings) -> detectors.DetectorRunResult:
    """Pump-and-dump and wash-trading detectors over bronze into gold/anomalies (PySpark)."""
    from sentinance.spark_jobs.detectors import job
    from sentinance.spark_jobs.detectors.thresholds import load_thresholds
    from sentinance.spark_jobs.session import get_spark

    thresholds = load_thresholds(settings.detectors_config)
    inputs = {**_versions(settings, catalog.CANDLES, catalog.TRADES), "thresholds": asdict(thresholds)}
    previous = checkpoints.recorded(settings, "detectors") or {}
    try:  # the earliest candle or trade that changed since the last run: what the detectors recompute from
        changes = [
            lake.first_change(t.path(settings), previous.get(t.id), column) if lake.exists(t.path(settings)) else None
            for t, column in ((catalog.CANDLES, "open_time"), (catalog.TRADES, "trade_time"))
        ]
        changed_since = min((c for c in changes if c is not None), default=None)
        nothing_new = changed_since is None and previous.get("thresholds") == inputs["thresholds"]
    except LookupError:  # no record, or the changes are gone: detect over everything
        changed_since, nothing_new = None, False
    if _unchanged(settings, "detectors", inputs, nothing_new):
        path = catalog.ANOMALIES.path(settings)
        found = lake.read(path, columns=["detector"])["detector"].value_counts() if lake.exists(path) else {}
        checkpoints.record(settings, "detectors", inputs)
        return job.DetectorRunResult(
            {k: int(v) for k, v in dict(found).items()}, 0, 0, 0, lake.version(path), skipped=True
        )
    if previous.get("thresholds") != inputs["thresholds"]:
        changed_since = None  # other thresholds: every verdict may change
    result = job.run_detectors(get_spark(settings), settings, thresholds, changed_since)
    checkpoints.record(settings, "detectors", inputs)
    return result


@task(cache_policy=NO_CACHE, **retrying())
def load_warehouse(settings: Settings, name: str) -> loader.LoadResult:
    """COPY a lake table's changes since the last loaded Delta version into PostgreSQL (schema lake)."""
    from sentinance.pipelines.warehouse import loader

    return loader.load(settings, name)


def _marts_inputs(settings: Settings) -> dict[str, Any]:
    """What every mart is built from: the warehouse tables' loaded versions, the project, the contract."""
    from sentinance.pipelines.warehouse import loader
    from sentinance.resources import definitions_sha256

    return {
        "loaded": loader.loaded_versions(settings),
        "definitions": definitions_sha256(),
        "vars": json.dumps(catalog.dbt_vars(settings), sort_keys=True),
    }


@task(cache_policy=NO_CACHE, **retrying())
def build_marts(settings: Settings, full_refresh: bool) -> marts.DbtBuildResult:
    """dbt build: sources, staging and marts with their tests; raises naming any failed node."""
    from sentinance.pipelines.warehouse import marts

    inputs = _marts_inputs(settings)
    if not full_refresh and _unchanged(settings, "marts", inputs):
        return marts.DbtBuildResult(True, {}, skipped=True)
    result = marts.build_marts(settings, full_refresh=full_refresh)
    checkpoints.record(settings, "marts", inputs)
    return result


@task(cache_policy=NO_CACHE, **retrying())
def refresh_model_performance(settings: Settings) -> marts.DbtBuildResult:
    """Rebuild what the newly loaded predictions feed (fct_model_performance and its tests), so the mart
    includes this run's forecasts; the marts are then up to date with every input they read."""
    from sentinance.pipelines.warehouse import marts

    inputs = _marts_inputs(settings)
    if _unchanged(settings, "marts", inputs):
        return marts.DbtBuildResult(True, {}, skipped=True)
    result = marts.build_marts(settings, select="stg_gold__predictions+")
    checkpoints.record(settings, "marts", inputs)
    return result


def _features_inputs(settings: Settings) -> dict[str, Any]:
    """What the training-features mart is built from (the silver features, the project, the contract),
    the input of everything downstream of it: the online store, drift."""
    inputs = _marts_inputs(settings)
    return {**inputs, "loaded": inputs["loaded"].get(catalog.CANDLE_FEATURES.mirror)}


@task(cache_policy=NO_CACHE, **retrying())
def serve_features(settings: Settings, end: datetime) -> dict:
    """feast apply, then materialize the mart into the online store up to ``end``."""
    from sentinance.ml import feature_store

    inputs = {**_features_inputs(settings), "online_store": settings.feast_online_store}
    if _unchanged(settings, "online_store", inputs):
        return {"feature_view": catalog.FORECASTER.feature_view, "skipped": True}
    feature_store.apply(settings)
    result = feature_store.materialize(settings, end)
    checkpoints.record(settings, "online_store", inputs)
    return result


@task(cache_policy=NO_CACHE)
def train_model(settings: Settings) -> train.TrainResult:
    """LSTM on a point-in-time Feast training set, logged and registered in MLflow (an unchanged training
    set and parameters reuse the version they made instead of registering a copy). The serving model has
    then seen the data as it is: the next drift check waits for new data."""
    from sentinance.ml import train

    result = train.train_and_register(settings)
    checkpoints.record(settings, "drift", _drift_inputs(settings))
    return result


def _serving_versions(settings: Settings) -> dict[str, str | None]:
    from sentinance.ml import registry

    return {
        alias: getattr(registry.alias_version(settings, alias), "version", None)
        for alias in (registry.CHAMPION, registry.CHALLENGER)
    }


def _drift_inputs(settings: Settings) -> dict[str, Any]:
    return {**_features_inputs(settings), **_serving_versions(settings)}


@task(cache_policy=NO_CACHE)
def score_latest(settings: Settings) -> score.ScoreResult:
    """Batch scoring from the online store with the registry's champion (else challenger)."""
    from sentinance.ml import registry, score

    inputs = {"online_store": checkpoints.recorded(settings, "online_store"), **_serving_versions(settings)}
    if _unchanged(settings, "score", inputs):
        version, alias = registry.serving_version(settings)
        return score.ScoreResult(
            0, str(version.version), alias, lake.version(score.predictions_path(settings)), None, skipped=True
        )
    result = score.score_latest(settings)
    checkpoints.record(settings, "score", inputs)
    return result


@task(cache_policy=NO_CACHE)
def monitor_drift(settings: Settings) -> drift.DriftResult:
    """Feature (KS + PSI), prediction and performance drift, logged to MLflow and as an artifact; a window
    that has not changed since the last check is not compared again ("no new data", no retrain)."""
    from sentinance.ml import drift

    inputs = _drift_inputs(settings)
    if _unchanged(settings, "drift", inputs):
        return drift.DriftResult.no_new_data(inputs.get("champion") or inputs.get("challenger"))
    result = drift.check_drift(settings)
    create_markdown_artifact(
        key="drift-report", markdown=result.markdown, description="Feature, prediction and performance drift"
    )
    checkpoints.record(settings, "drift", inputs)
    return result


@task(cache_policy=NO_CACHE)
def compare_models(settings: Settings) -> ab_testing.ABResult:
    """A/B of champion vs challenger on the periods both forecast (paired t-test, Diebold-Mariano)."""
    from sentinance.ml import ab_testing

    serving = _serving_versions(settings)
    inputs = {**_features_inputs(settings), **_versions(settings, catalog.PREDICTIONS), **serving}
    if _unchanged(settings, "ab_test", inputs):
        return ab_testing.ABResult(
            ab_testing.SKIPPED,
            "no new forecasts or actuals since the last comparison",
            serving["champion"],
            serving["challenger"],
            0,
            0,
            ab_testing.MIN_PERIODS,
            None,
            False,
            "",
        )
    result = ab_testing.compare_champion_challenger(settings)
    checkpoints.record(settings, "ab_test", inputs)
    return result


@task(cache_policy=NO_CACHE)
def maintain_lake(settings: Settings) -> list[lake.MaintenanceResult]:
    """OPTIMIZE and VACUUM every table of the lake; the training sets registered versions were trained on stay
    readable at their recorded versions, so every registered version can still be reproduced."""
    from sentinance.ml import registry

    keep = {catalog.TRAINING_SETS.id: registry.recorded_training_set_versions(settings)}
    return [
        lake.maintain(settings, table, settings.lake_retention_hours, keep.get(table.id, ()))
        for table in catalog.TABLES
    ]
