"""The lakehouse's stages as Prefect flows: thin compositions of the tasks of :mod:`sentinance.pipelines.flows.tasks`.

Each stage flow holds the state dir's single write slot (the global concurrency limit
``sentinance-state``) while it runs, so the triggered feature build, training, scoring and
monitoring never write silver, the warehouse, the online store or the registry at once; the
``lakehouse`` flow holds it for its whole run and its stage subflows re-enter it. ``ingest``
writes bronze only (Delta readers see a consistent snapshot meanwhile). The flows do not retry:
their idempotent tasks do (:mod:`.tasks`), so a brief outage repeats one step, not the stage. Every
flow's run, however it ends, is recorded in the pipeline metrics (:mod:`.hooks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import datetime, timedelta

from prefect import flow, get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists

from sentinance.catalog import FORECASTER, MIRRORED, VOLATILITY
from sentinance.pipelines.flows.hooks import stage_hooks
from sentinance.pipelines.flows.ingest import default_end
from sentinance.pipelines.flows.tasks import (
    as_plain,
    build_marts,
    build_silver,
    compare_models,
    detect_anomalies,
    load_warehouse,
    maintain_lake,
    monitor_drift,
    refresh_model_performance,
    score_latest,
    score_volatility,
    serve_features,
    train_model,
    train_volatility_model,
)
from sentinance.settings import configure, get_settings
from sentinance.status import model_status

STATE_LIMIT = "sentinance-state"
STATE_WAIT_SECONDS = 3600  # a stage waiting longer for the write slot fails (and is retried)


def ensure_state_limit() -> None:
    """Create the global concurrency limit that serialises writers of the state dir (once)."""
    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):  # or created concurrently
        client.upsert_global_concurrency_limit_by_name(STATE_LIMIT, 1)


_holding_slot: ContextVar[bool] = ContextVar("sentinance_state_slot", default=False)


@contextmanager
def state_slot() -> Iterator[None]:
    """Hold the state dir's single write slot for the block (re-entrant: subflows share their parent's)."""
    if _holding_slot.get():
        yield
        return
    ensure_state_limit()
    with concurrency(STATE_LIMIT, occupy=1, timeout_seconds=STATE_WAIT_SECONDS, strict=True):
        token = _holding_slot.set(True)
        try:
            yield
        finally:
            _holding_slot.reset(token)


@flow(name="features", log_prints=True, **stage_hooks())
def features(full_refresh: bool = False) -> dict:
    """Spark features and detectors from bronze into silver/gold, then the lake's changes loaded into PostgreSQL."""
    settings = configure(get_settings())
    with state_slot():
        return as_plain(
            {
                "silver": build_silver(settings, full_refresh),
                "anomalies": detect_anomalies(settings),
                "load": {name: load_warehouse(settings, name) for name in MIRRORED},
            }
        )


@flow(name="marts", log_prints=True, **stage_hooks())
def marts(end: datetime | None = None, full_refresh: bool = False) -> dict:
    """dbt build of staging and marts (with tests), then the marts materialized into Feast's online store
    up to ``end`` (default: the start of the current period of the forecaster's interval)."""
    settings = configure(get_settings())
    end = end or default_end(FORECASTER.interval)
    with state_slot():
        return as_plain(
            {
                "marts": build_marts(settings, full_refresh),
                "features": serve_features(settings, end + timedelta(seconds=1)),
            }
        )


@flow(name="features-and-marts", log_prints=True, **stage_hooks())
def features_and_marts(end: datetime | None = None, full_refresh: bool = False) -> dict:
    """The ``features`` then the ``marts`` flow (as subflows), holding the write slot for both."""
    with state_slot():
        return {**features(full_refresh=full_refresh), **marts(end=end, full_refresh=full_refresh)}


@flow(name="train", log_prints=True, **stage_hooks())
def train() -> dict:
    """Train the LSTM on the marts, register it in MLflow and gate it (challenger / champion)."""
    with state_slot():
        return as_plain(train_model(configure(get_settings())))


@flow(name="train-volatility", log_prints=True, **stage_hooks())
def train_volatility() -> dict:
    """Train the volatility model against HAR-RV on its mart, register it in MLflow and gate it (skipped while
    the mart has too little history)."""
    with state_slot():
        return as_plain(train_volatility_model(configure(get_settings())))


@flow(name="score", log_prints=True, **stage_hooks())
def score() -> dict:
    """Score the latest online features with the serving models (the forecaster, and the volatility model once
    one is registered), load the predictions and the backtests into PostgreSQL and refresh the marts they
    feed (model performance, backtests), which then hold this run's forecasts and versions too."""
    settings = configure(get_settings())
    with state_slot():
        scored = {"score": score_latest(settings), "load_predictions": load_warehouse(settings, "predictions")}
        if model_status(settings, VOLATILITY):
            scored["score_volatility"] = score_volatility(settings)
            scored["load_volatility_predictions"] = load_warehouse(settings, "volatility_predictions")
        scored["load_backtests"] = load_warehouse(settings, "backtests")  # of this run's training, if any
        scored["model_performance"] = refresh_model_performance(settings)
        return as_plain(scored)


@flow(name="monitor", log_prints=True, **stage_hooks())
def monitor() -> dict:
    """Feature, prediction and performance drift, and the champion-vs-challenger A/B comparison."""
    settings = configure(get_settings())
    with state_slot():
        return as_plain({"drift": monitor_drift(settings), "ab_testing": compare_models(settings)})


@flow(name="maintain", log_prints=True)
def maintain() -> dict:
    """OPTIMIZE and VACUUM the lake (retention SENTINANCE_LAKE_RETENTION_HOURS); see docs/lineage.md."""
    settings = configure(get_settings())
    with state_slot():
        return {"tables": [as_plain(result) for result in maintain_lake(settings)]}
