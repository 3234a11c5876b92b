"""The deployments on a Prefect server with a process work pool and a worker (`sentinance serve
--work-pool`, started on loopback by the ``work_pool`` fixture): a completed `ingest/hourly` run
triggers `features-and-marts/after-ingest` through the server's events, `lakehouse/manual` runs by
hand, and the API lists every run as completed by the pool's worker. The runs keep the deployments'
wall-clock windows (the current hour), as a scheduled run would."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowFilter, FlowFilterName
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from sentinance import catalog, lake
from sentinance.settings import Settings

RUN_SECONDS = 1200
DAYS = 21  # of history: enough for the model's walk-forward folds
DEPLOYMENTS = {
    "ingest/hourly",
    "features-and-marts/after-ingest",
    "train/daily",
    "score/hourly",
    "monitor/daily",
    "lakehouse/manual",
}


def _runs(flow: str, deployment: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
        )


def _wait_for_final(flow: str, deployment: str, seconds: float = RUN_SECONDS) -> list:
    deadline = time.monotonic() + seconds
    while not (runs := _runs(flow, deployment)) or not all(r.state.is_final() for r in runs):
        assert time.monotonic() < deadline, (
            f"no finished {flow}/{deployment} run: see test-artifacts/prefect-worker.log"
        )
        time.sleep(2)
    return runs


@pytest.fixture(scope="module")
def api(work_pool) -> Iterator[str]:
    with temporary_settings({PREFECT_API_URL: work_pool.api}):
        yield work_pool.api


def test_ingest_triggers_features_and_marts_then_the_lakehouse_runs_on_the_worker(api: str, work_pool) -> None:
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments()
        flows = {f.id: f.name for f in client.read_flows()}
    assert {f"{flows[d.flow_id]}/{d.name}" for d in deployments} == DEPLOYMENTS
    assert {d.work_pool_name for d in deployments} == {"sentinance-process"}

    ingest = run_deployment("ingest/hourly", parameters={"days": DAYS}, timeout=RUN_SECONDS)
    assert ingest.state.is_completed(), f"ingest/hourly ended {ingest.state.name}"
    (triggered,) = _wait_for_final("features-and-marts", "after-ingest")
    assert triggered.state.is_completed(), f"features-and-marts ended {triggered.state.name}"
    manual = run_deployment("lakehouse/manual", parameters={"days": DAYS}, timeout=RUN_SECONDS)
    assert manual.state.is_completed(), f"lakehouse/manual ended {manual.state.name}"

    for run in (ingest, triggered, manual):
        assert run.work_pool_name == "sentinance-process" and run.deployment_id is not None
    settings = Settings(home=work_pool.home)
    assert lake.row_count(catalog.CANDLE_FEATURES.path(settings)) == lake.row_count(catalog.CANDLES.path(settings))
    assert lake.row_count(catalog.PREDICTIONS.path(settings)) == 9
