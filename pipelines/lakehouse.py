"""The main job: one Prefect flow, one task per stage, bronze -> silver -> marts -> features -> model.

Every task is a thin wrapper over a plain function of its stage's module, so the
stages are testable without Prefect and the flow stays a composition.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from sentinance import schemas
from sentinance.config import Settings, get_settings
from sentinance.ml import drift, feature_store, score, train
from sentinance.pipelines import bronze, marts, warehouse
from sentinance.spark_jobs import candle_features
from sentinance.spark_jobs.session import get_spark
from sentinance.status import collect_status, model_status, render_summary


def _plain(result: Any) -> Any:
    return asdict(result) if is_dataclass(result) else result


def default_end() -> datetime:
    """The current hour (exclusive end of the window): only closed candles land."""
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def ingest(settings: Settings, end: datetime, days: int) -> bronze.LandingResult:
    """Simulator -> Great Expectations checkpoint -> bronze Delta (incremental by watermark)."""
    return bronze.ingest_simulated(settings, end=end, days=days, flow_run_id=flow_run.get_id())


@task(cache_policy=NO_CACHE)
def build_silver(settings: Settings, full_refresh: bool) -> candle_features.FeatureRunResult:
    """PySpark features from bronze into silver (only the affected tail unless full_refresh)."""
    return candle_features.compute_candle_features(get_spark(settings), settings, full_refresh=full_refresh)


@task(cache_policy=NO_CACHE)
def load_warehouse(settings: Settings, layer: str, name: str) -> warehouse.LoadResult:
    """COPY a Delta table's changes since the last loaded version into PostgreSQL (schema lake)."""
    keys, schema = {
        "candle_features": (schemas.CANDLE_KEYS, schemas.SILVER_CANDLE_FEATURES),
        "predictions": (schemas.PREDICTION_KEYS, schemas.PREDICTIONS),
    }[name]
    return warehouse.load_table(settings, settings.table_path(layer, name), name, keys, schema)


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
    """KS + PSI between the training window and the latest window, logged to MLflow."""
    return drift.check_drift(settings)


@flow(name="lakehouse", log_prints=True)
def lakehouse(end: datetime | None = None, days: int = 90, full_refresh: bool = False) -> dict:
    """Run every stage once, incrementally; returns the per-stage results and the status."""
    settings = get_settings()
    logger = get_run_logger()
    end = end or default_end()
    results: dict[str, Any] = {}
    results["ingest"] = ingest(settings, end, days)
    results["silver"] = build_silver(settings, full_refresh)
    results["load_silver"] = load_warehouse(settings, "silver", "candle_features")
    results["marts"] = build_marts(settings, full_refresh)
    results["features"] = serve_features(settings, end + timedelta(seconds=1))
    if results["load_silver"].rows or not model_status(settings):
        results["train"] = train_model(settings)
    else:
        logger.info("no new features since the last training: the registered model is kept")
    results["score"] = score_latest(settings)
    results["load_predictions"] = load_warehouse(settings, "gold", "predictions")
    results["drift"] = monitor_drift(settings)
    status = collect_status(settings)
    summary = render_summary(status)
    create_markdown_artifact(key="lakehouse-summary", markdown=f"```\n{summary}\n```", description="Lakehouse run summary")
    logger.info("lakehouse run complete:\n%s", summary)
    return {"stages": {k: _plain(v) for k, v in results.items()}, "status": status, "summary": summary}


if __name__ == "__main__":
    print(lakehouse()["summary"])
