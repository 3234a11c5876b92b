"""The lakehouse's stages as Prefect flows: thin compositions of the tasks of :mod:`sentinance.pipelines.flows.tasks`.

Each stage flow holds the state dir's single-writer lock (:func:`writing`, an OS lock that dies with
its holder) while it runs, so the triggered feature build, training, scoring and monitoring never
write silver, the warehouse, the online store or the registry at once; the ``lakehouse`` flow holds
it for its whole run and its stage subflows re-enter it; ``ingest`` holds it while it lands. The
flows do not retry: their idempotent tasks do (:mod:`.tasks`), so a brief outage repeats one step,
not the stage. A stage killed half-way is redone by the next run: every step either converges from
the state of its inputs or commits at once (docs/reliability.md). Every flow's run, however it ends,
is recorded in the pipeline metrics (:mod:`.hooks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from uuid import UUID

from prefect import flow, get_client, get_run_logger
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed

from sentinance import faults
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
from sentinance.settings import Settings, configure, get_settings
from sentinance.state_lock import Holder, crashed_holder, state_lock
from sentinance.status import model_status

_closed: set[str] = set()  # the flow runs of killed writers this process has set Crashed


def mark_crashed(holder: Holder) -> list[UUID]:
    """Set a killed writer's flow run and its subflow runs Crashed, as nothing else will (a local run has
    no heartbeat); returns those it changed."""
    message = f"its process (pid {holder.pid}) died holding the state lock; the next run redoes its work"
    with get_client(sync_client=True) as client:
        try:
            parent = client.read_flow_run(UUID(holder.flow_run_id))
        except ObjectNotFound:  # recorded on another Prefect API
            return []
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id]))
        )
        changed = [run.id for run in [parent, *children] if not (run.state and run.state.is_final())]
        for run_id in changed:
            client.set_flow_run_state(run_id, Crashed(message=message), force=True)
    return changed


@contextmanager
def writing(settings: Settings) -> Iterator[None]:
    """Hold the state dir's single-writer lock (re-entrant: subflows share their parent's), and close the
    Prefect runs of a writer found dead holding it."""
    logger = get_run_logger()
    with state_lock(settings, notify=logger.warning):
        crashed = crashed_holder(settings)
        if crashed is not None and crashed.flow_run_id and crashed.flow_run_id not in _closed:
            _closed.add(crashed.flow_run_id)
            if closed := mark_crashed(crashed):
                logger.warning("set %d flow run(s) of the killed writer Crashed", len(closed))
        yield


@flow(name="features", log_prints=True, **stage_hooks())
def features(full_refresh: bool = False) -> dict:
    """Spark features and detectors from bronze into silver/gold, then the lake's changes loaded into PostgreSQL."""
    settings = configure(get_settings())
    with writing(settings):
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
    with writing(settings):
        return as_plain(
            {
                "marts": build_marts(settings, full_refresh),
                "features": serve_features(settings, end + timedelta(seconds=1)),
            }
        )


@flow(name="features-and-marts", log_prints=True, **stage_hooks())
def features_and_marts(end: datetime | None = None, full_refresh: bool = False) -> dict:
    """The ``features`` then the ``marts`` flow (as subflows), holding the state lock for both."""
    with writing(configure(get_settings())):
        return {**features(full_refresh=full_refresh), **marts(end=end, full_refresh=full_refresh)}


@flow(name="train", log_prints=True, **stage_hooks())
def train() -> dict:
    """Train the LSTM on the marts, register it in MLflow and gate it (challenger / champion)."""
    settings = configure(get_settings())
    with writing(settings):
        return as_plain(train_model(settings))


@flow(name="train-volatility", log_prints=True, **stage_hooks())
def train_volatility() -> dict:
    """Train the volatility model against HAR-RV on its mart, register it in MLflow and gate it (skipped while
    the mart has too little history)."""
    settings = configure(get_settings())
    with writing(settings):
        return as_plain(train_volatility_model(settings))


@flow(name="score", log_prints=True, **stage_hooks())
def score() -> dict:
    """Score the latest online features with the serving models (the forecaster, and the volatility model once
    one is registered), load the predictions and the backtests into PostgreSQL and refresh the marts they
    feed (model performance, backtests), which then hold this run's forecasts and versions too."""
    settings = configure(get_settings())
    with writing(settings):
        scored = {"score": score_latest(settings)}
        faults.reach(settings, "predictions-load")
        scored["load_predictions"] = load_warehouse(settings, "predictions")
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
    with writing(settings):
        return as_plain({"drift": monitor_drift(settings), "ab_testing": compare_models(settings)})


@flow(name="maintain", log_prints=True)
def maintain() -> dict:
    """OPTIMIZE and VACUUM the lake (retention SENTINANCE_LAKE_RETENTION_HOURS); see docs/lineage.md."""
    settings = configure(get_settings())
    with writing(settings):
        return {"tables": [as_plain(result) for result in maintain_lake(settings)]}
