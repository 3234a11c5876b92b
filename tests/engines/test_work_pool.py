"""The deployments on a Prefect server with a process work pool and a worker (`sentinance serve
--work-pool`, started on loopback by the ``work_pool`` fixture, which runs them): a completed
`ingest/hourly` run triggers `features-and-marts/after-ingest` through the server's events,
`lakehouse/manual` runs by hand, and the API lists every run as completed by the pool's worker."""

from __future__ import annotations

from prefect import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from sentinance import catalog

DEPLOYMENTS = {
    "ingest/hourly",
    "features-and-marts/after-ingest",
    "train/daily",
    "train-volatility/daily",
    "score/hourly",
    "monitor/daily",
    "maintain/daily",
    "lakehouse/manual",
}


def test_ingest_triggers_features_and_marts_then_the_lakehouse_runs_on_the_worker(work_pool) -> None:
    with temporary_settings({PREFECT_API_URL: work_pool.api}), get_client(sync_client=True) as client:
        deployments = client.read_deployments()
        flows = {f.id: f.name for f in client.read_flows()}
        listed = {r.id: r for r in client.read_flow_runs()}
    assert {f"{flows[d.flow_id]}/{d.name}" for d in deployments} == DEPLOYMENTS
    assert {d.work_pool_name for d in deployments} == {work_pool.pool}

    ingest = work_pool.runs["ingest"]
    assert ingest.state.is_completed(), f"ingest/hourly ended {ingest.state.name}"
    (triggered,) = work_pool.runs["triggered"]
    assert triggered.state.is_completed(), f"features-and-marts ended {triggered.state.name}"
    manual = work_pool.runs["manual"]
    assert manual.state.is_completed(), f"lakehouse/manual ended {manual.state.name}"
    for run in (ingest, triggered, manual):  # listed by the API, run by the pool's worker
        assert listed[run.id].state.is_completed()
        assert run.work_pool_name == work_pool.pool and run.deployment_id is not None
    rows = work_pool.rows
    assert rows[catalog.CANDLE_FEATURES.id] == rows[catalog.CANDLES.id] > 0 and rows[catalog.PREDICTIONS.id] == 9
