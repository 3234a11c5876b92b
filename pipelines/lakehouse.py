"""The main job: one Prefect flow, one task per stage, bronze -> silver -> marts -> features -> model.

Every task is a thin wrapper over a plain function of its stage's module, so the
stages are testable without Prefect and the flow stays a composition.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from sentinance.config import Settings, get_settings
from sentinance.ml import ab_test, drift, feature_store, score, train
from sentinance.pipelines import marts, warehouse
from sentinance.pipelines.ingest import default_end, ingest
from sentinance.spark_jobs import candle_features, detectors
from sentinance.spark_jobs.session import get_spark
from sentinance.status import collect_status, model_status, render_summary


def _plain(result: Any) -> Any:
    return asdict(result) if is_dataclass(result) else result


@task(cache_policy=NO_CACHE)
def build_silver(settings: Settings, full_refresh: bool) -> candle_features.FeatureRunResult:
    """PySpark features from bronze into silver (only the affected tail unless full_refresh)."""
    return candle_features.compute_candle_features(get_spark(settings), settings, full_refresh=full_refresh)


@task(cache_policy=NO_CACHE)
def detect_anomalies(settings: Settings) -> detectors.DetectorRunResult:
    """Pump-and-dump and wash-trading detectors over bronze into gold/anomalies (PySpark)."""
    return detectors.run_detectors(get_spark(settings), settings)


@task(cache_policy=NO_CACHE)
def load_warehouse(settings: Settings, name: str) -> warehouse.LoadResult:
    """COPY a lake table's changes since the last loaded Delta version into PostgreSQL (schema lake)."""
    return warehouse.load(settings, name)


@task(cache_policy=NO_CACHE)
def build_marts(settings: Settings, full_refresh: bool) -> marts.DbtBuildResult:
    """dbt build: sources, staging and marts with their tests; raises naming any failed node."""
    return marts.build_marts(settings, full_refresh=full_refresh)


@task(cache_policy=NO_CACHE)
def serve_features(settings: Settings, end: datetime) -> dict:
    """feast apply, then materialize the mart into the online store up to ``end``."""
    feature_store.apply(settings)
    return feature_store.materialize(settings, end)


@task(cache_policy=NO_CACHE)
def train_model(settings: Settings) -> train.TrainResult:
    """LSTM on a point-in-time Feast training set, logged and registered in MLflow."""
    return train.train_and_register(settings)


@task(cache_policy=NO_CACHE)
def score_latest(settings: Settings) -> score.ScoreResult:
    """Batch scoring from the online store with the registry's champion (else challenger)."""
    return score.score_latest(settings)


@task(cache_policy=NO_CACHE)
def monitor_drift(settings: Settings) -> drift.DriftResult:
    """Feature (KS + PSI), prediction and performance drift, logged to MLflow and as an artifact."""
    result = drift.check_drift(settings)
    create_markdown_artifact(key="drift-report", markdown=result.markdown,
                             description="Feature, prediction and performance drift")
    return result


@task(cache_policy=NO_CACHE)
def compare_models(settings: Settings) -> ab_test.ABResult:
    """A/B of champion vs challenger on the hours both forecast (paired t-test, Diebold-Mariano)."""
    return ab_test.compare_champion_challenger(settings)


@flow(name="lakehouse", log_prints=True)
def lakehouse(end: datetime | None = None, days: int = 90, full_refresh: bool = False) -> dict:
    """Run every stage once, incrementally; returns the per-stage results and the status."""
    settings = get_settings()
    logger = get_run_logger()
    end = end or default_end()
    results: dict[str, Any] = {}
    results["ingest"] = ingest(end=end, days=days)  # subflow: simulator candles + trades -> GX -> bronze
    results["silver"] = build_silver(settings, full_refresh)
    results["anomalies"] = detect_anomalies(settings)
    results["load"] = {name: load_warehouse(settings, name) for name in warehouse.WAREHOUSE_TABLES}
    results["marts"] = build_marts(settings, full_refresh)
    results["features"] = serve_features(settings, end + timedelta(seconds=1))
    results["drift"] = monitor_drift(settings) if model_status(settings) else None
    if results["drift"] is None or results["drift"].retrain:
        results["train"] = train_model(settings)
    else:
        logger.info("no drift: the registered model is kept")
    results["score"] = score_latest(settings)
    results["load_predictions"] = load_warehouse(settings, "predictions")
    results["ab_test"] = compare_models(settings)
    status = collect_status(settings)
    summary = render_summary(status)
    create_markdown_artifact(key="lakehouse-summary", markdown=f"```\n{summary}\n```", description="Lakehouse run summary")
    logger.info("lakehouse run complete; summary in the 'lakehouse-summary' artifact")
    stages = {k: {n: _plain(r) for n, r in v.items()} if isinstance(v, dict) else _plain(v) for k, v in results.items()}
    return {"stages": stages, "status": status, "summary": summary}


if __name__ == "__main__":
    print(lakehouse()["summary"])
