"""The lakehouse's Prefect tasks: each a thin wrapper over a plain function of its stage's module.

The stages stay testable without Prefect; the flows of :mod:`sentinance.pipelines.flows.stages` and
:mod:`sentinance.pipelines.flows.lakehouse` compose these tasks. Retries are declared here, on the
idempotent tasks only (warehouse load, dbt build, materialization; landing in :mod:`.ingest`), and
only for failures that may pass on their own (:mod:`.retry`): a failed dbt test or a bug fails
the run at once, and a brief PostgreSQL outage in the warehouse load retries the load, not the
Spark job before it.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from sentinance import metrics
from sentinance.ml import ab_testing, drift, feature_store, score, train
from sentinance.pipelines.flows.retry import retrying
from sentinance.pipelines.warehouse import loader as warehouse
from sentinance.pipelines.warehouse import marts
from sentinance.settings import Settings
from sentinance.spark_jobs.detectors import job as detectors
from sentinance.spark_jobs.features import job as candle_features
from sentinance.spark_jobs.session import get_spark


def as_plain(result: Any) -> Any:
    """A flow's return value as plain data: dataclasses as dicts, recursively through dicts."""
    if is_dataclass(result):
        return asdict(result)
    if isinstance(result, dict):
        return {key: as_plain(value) for key, value in result.items()}
    return result


@task(cache_policy=NO_CACHE)
def build_silver(settings: Settings, full_refresh: bool) -> candle_features.FeatureRunResult:
    """PySpark features from bronze into silver (only the affected tail unless full_refresh)."""
    return candle_features.compute_candle_features(get_spark(settings), settings, full_refresh=full_refresh)


@task(cache_policy=NO_CACHE)
def detect_anomalies(settings: Settings) -> detectors.DetectorRunResult:
    """Pump-and-dump and wash-trading detectors over bronze into gold/anomalies (PySpark)."""
    return detectors.run_detectors(get_spark(settings), settings)


@task(cache_policy=NO_CACHE, **retrying())
def load_warehouse(settings: Settings, name: str) -> warehouse.LoadResult:
    """COPY a lake table's changes since the last loaded Delta version into PostgreSQL (schema lake)."""
    return warehouse.load(settings, name)


@task(cache_policy=NO_CACHE, **retrying())
def build_marts(settings: Settings, full_refresh: bool) -> marts.DbtBuildResult:
    """dbt build: sources, staging and marts with their tests; raises naming any failed node."""
    return marts.build_marts(settings, full_refresh=full_refresh)


@task(cache_policy=NO_CACHE, **retrying())
def serve_features(settings: Settings, end: datetime) -> dict:
    """feast apply, then materialize the mart into the online store up to ``end``."""
    feature_store.apply(settings)
    return feature_store.materialize(settings, end)


@task(cache_policy=NO_CACHE)
def train_model(settings: Settings) -> train.TrainResult:
    """LSTM on a point-in-time Feast training set, logged and registered in MLflow; the gate's outcome
    goes to the pipeline metrics."""
    result = train.train_and_register(settings)
    metrics.record_gate(settings, result.version, result.gate["promoted"])
    return result


@task(cache_policy=NO_CACHE)
def score_latest(settings: Settings) -> score.ScoreResult:
    """Batch scoring from the online store with the registry's champion (else challenger); the version
    and alias served go to the pipeline metrics."""
    result = score.score_latest(settings)
    metrics.record_serving(settings, result.model_version, result.model_alias)
    return result


@task(cache_policy=NO_CACHE)
def monitor_drift(settings: Settings) -> drift.DriftResult:
    """Feature (KS + PSI), prediction and performance drift, logged to MLflow and as an artifact."""
    result = drift.check_drift(settings)
    metrics.record_drift(settings, result.psi, result.prediction and result.prediction["psi"], result.retrain)
    create_markdown_artifact(
        key="drift-report", markdown=result.markdown, description="Feature, prediction and performance drift"
    )
    return result


@task(cache_policy=NO_CACHE)
def compare_models(settings: Settings) -> ab_testing.ABResult:
    """A/B of champion vs challenger on the hours both forecast (paired t-test, Diebold-Mariano)."""
    return ab_testing.compare_champion_challenger(settings)
