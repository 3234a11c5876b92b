"""The lakehouse's stages as scheduled Prefect deployments, served against this state dir.

The ``ingest`` flow (:mod:`sentinance.pipelines.ingest`) and the ``lakehouse`` flow are deployed
as they are; the other flows here are thin compositions of the tasks of
:mod:`sentinance.pipelines.lakehouse`. Schedules are in UTC:

- ``ingest/hourly``: every hour at :05 (``days=90``, ``source=simulator``);
- ``features-and-marts/after-ingest``: whenever an ``ingest/hourly`` run completes (event trigger),
  the ``features`` then the ``marts`` flow (``full_refresh=False``);
- ``train/daily``: 02:30;
- ``score/hourly``: every hour at :35;
- ``monitor/daily``: 03:00, drift then the champion-vs-challenger A/B comparison;
- ``lakehouse/manual``: by hand, the UI's "Run" or ``prefect deployment run lakehouse/manual``
  (``days=90``, ``full_refresh=False``).

Every deployment runs at most one flow run at a time (later ones queue). The flows defined here
hold the state dir's single write slot (the global concurrency limit ``sentinance-state``) while
they run, so the triggered feature build, training, scoring and monitoring never write silver,
the warehouse, the online store or the registry at once; ``ingest`` writes bronze only (Delta
readers see a consistent snapshot meanwhile). Flow retries are for scheduled runs: the CLI runs
the same flows with ``retries=0`` so that a mistake is reported at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta

from prefect import flow, get_client
from prefect import serve as prefect_serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.concurrency.sync import concurrency
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.exceptions import ObjectAlreadyExists
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from sentinance.config import get_settings
from sentinance.pipelines.ingest import default_end, ingest
from sentinance.pipelines.warehouse import WAREHOUSE_TABLES
from sentinance.pipelines.lakehouse import (
    _plain,
    build_marts,
    build_silver,
    compare_models,
    detect_anomalies,
    lakehouse,
    load_warehouse,
    monitor_drift,
    score_latest,
    serve_features,
    train_model,
)

STATE_LIMIT = "sentinance-state"
STATE_WAIT_SECONDS = 3600  # a stage waiting longer for the write slot fails (and is retried)
TAGS = ["sentinance"]
ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def ensure_state_limit() -> None:
    """Create the global concurrency limit that serialises writers of the state dir (once)."""
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(STATE_LIMIT, 1)
        except ObjectAlreadyExists:  # created concurrently by another stage
            pass


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


@flow(name="features", retries=1, retry_delay_seconds=120, log_prints=True)
def features(full_refresh: bool = False) -> dict:
    """Spark features and detectors from bronze into silver/gold, then the lake's changes COPY-loaded into PostgreSQL."""
    settings = get_settings()
    with state_slot():
        results = {"silver": build_silver(settings, full_refresh), "anomalies": detect_anomalies(settings)}
        results.update({f"load_{name}": load_warehouse(settings, name) for name in WAREHOUSE_TABLES})
    return {stage: _plain(result) for stage, result in results.items()}


@flow(name="marts", retries=1, retry_delay_seconds=120, log_prints=True)
def marts(end: datetime | None = None, full_refresh: bool = False) -> dict:
    """dbt build of staging and marts (with tests), then the marts materialized into Feast's online store."""
    settings = get_settings()
    end = end or default_end()
    with state_slot():
        results = {
            "marts": build_marts(settings, full_refresh),
            "features": serve_features(settings, end + timedelta(seconds=1)),
        }
    return {stage: _plain(result) for stage, result in results.items()}


@flow(name="features-and-marts", log_prints=True)
def features_and_marts(end: datetime | None = None, full_refresh: bool = False) -> dict:
    """The ``features`` then the ``marts`` flow (as subflows), holding the write slot for both."""
    with state_slot():
        return {**features(full_refresh=full_refresh), **marts(end=end, full_refresh=full_refresh)}


@flow(name="train", retries=1, retry_delay_seconds=600, log_prints=True)
def train() -> dict:
    """Train the LSTM on the marts, register it in MLflow and gate it (challenger / champion)."""
    with state_slot():
        return _plain(train_model(get_settings()))


@flow(name="score", retries=1, retry_delay_seconds=120, log_prints=True)
def score() -> dict:
    """Score the latest online features with the serving model and load the predictions into PostgreSQL."""
    settings = get_settings()
    with state_slot():
        results = {
            "score": score_latest(settings),
            "load_predictions": load_warehouse(settings, "predictions"),
        }
    return {stage: _plain(result) for stage, result in results.items()}


@flow(name="monitor", retries=1, retry_delay_seconds=300, log_prints=True)
def monitor() -> dict:
    """Feature, prediction and performance drift, and the champion-vs-challenger A/B comparison."""
    settings = get_settings()
    with state_slot():
        results = {"drift": monitor_drift(settings), "ab_test": compare_models(settings)}
    return {stage: _plain(result) for stage, result in results.items()}


# a completed run of the ingest/hourly deployment (not ingest runs of the CLI or of the lakehouse flow)
AFTER_INGEST = DeploymentEventTrigger(
    name="after-ingest",
    expect={"prefect.flow-run.Completed"},
    match_related=[
        {"prefect.resource.role": "flow", "prefect.resource.name": "ingest"},
        {"prefect.resource.role": "deployment", "prefect.resource.name": "hourly"},
    ],
)


def deployments() -> list[RunnerDeployment]:
    """Every deployment of the lakehouse, with its schedule or trigger, parameters and tags."""

    def deploy(flow_, name: str, stage: str, **options) -> RunnerDeployment:
        return flow_.to_deployment(
            name, tags=[*TAGS, stage], concurrency_limit=ONE_AT_A_TIME,
            entrypoint_type=EntrypointType.MODULE_PATH, **options,
        )

    return [
        deploy(ingest, "hourly", "ingest", schedules=[Cron("5 * * * *", timezone="UTC")],
               parameters={"days": 90, "source": "simulator"}),
        deploy(features_and_marts, "after-ingest", "features", triggers=[AFTER_INGEST],
               parameters={"full_refresh": False}),
        deploy(train, "daily", "train", schedules=[Cron("30 2 * * *", timezone="UTC")]),
        deploy(score, "hourly", "score", schedules=[Cron("35 * * * *", timezone="UTC")]),
        deploy(monitor, "daily", "monitor", schedules=[Cron("0 3 * * *", timezone="UTC")]),
        deploy(lakehouse, "manual", "lakehouse", parameters={"days": 90, "full_refresh": False}),
    ]


def serve(limit: int | None = None) -> None:
    """Register the deployments on the Prefect API and run their flows as scheduled (blocks until stopped)."""
    ensure_state_limit()
    prefect_serve(*deployments(), limit=limit)
