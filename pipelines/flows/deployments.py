"""The lakehouse's flows as scheduled Prefect deployments, served against this state dir.

The ``ingest`` flow (:mod:`sentinance.pipelines.flows.ingest`), the stage flows
(:mod:`sentinance.pipelines.flows.stages`) and the ``lakehouse`` flow (:mod:`sentinance.pipelines.flows.lakehouse`)
are deployed as they are; each holds the state dir's single-writer lock while it writes
(:mod:`sentinance.state_lock`). Schedules are in UTC:

- ``ingest/hourly``: every hour at :05 (``days=90``, ``source=simulator``);
- ``features-and-marts/after-ingest``: whenever an ``ingest/hourly`` run completes (event trigger),
  the ``features`` then the ``marts`` flow (``full_refresh=False``);
- ``train/daily``: 02:30;
- ``train-volatility/daily``: 02:45, the volatility model;
- ``score/hourly``: every hour at :35;
- ``monitor/daily``: 03:00, drift then the champion-vs-challenger A/B comparison;
- ``maintain/daily``: 04:00, OPTIMIZE and VACUUM of every lake table (``SENTINANCE_LAKE_RETENTION_HOURS``);
- ``lakehouse/manual``: by hand, the UI's "Run" or ``prefect deployment run lakehouse/manual``
  (``days=90``, ``full_refresh=False``).

Runs that overlap — of one deployment or of several — wait for the lock (at most ``SENTINANCE_LOCK_WAIT``
seconds), which dies with its holder. No Prefect concurrency limit is used: its slots outlive a killed
holder (their leases live in the server's memory), and one crash would stall a schedule for good.

:func:`serve` runs their flows in this process's subprocesses; :func:`deploy_to_work_pool` registers
them on a process work pool instead, whose workers (``prefect worker start --pool …``, any number, on
any machine with this package and the state dir) run them.
"""

from __future__ import annotations

from contextlib import suppress
from uuid import UUID

from prefect import deploy as prefect_deploy
from prefect import get_client
from prefect import serve as prefect_serve
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.exceptions import ObjectAlreadyExists
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType
from prefect.workers.process import ProcessWorker

from sentinance.pipelines.flows.ingest import ingest
from sentinance.pipelines.flows.lakehouse import lakehouse
from sentinance.pipelines.flows.stages import (
    features_and_marts,
    maintain,
    monitor,
    score,
    train,
    train_volatility,
)

TAGS = ["sentinance"]


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
        return flow_.to_deployment(name, tags=[*TAGS, stage], entrypoint_type=EntrypointType.MODULE_PATH, **options)

    return [
        deploy(
            ingest,
            "hourly",
            "ingest",
            schedules=[Cron("5 * * * *", timezone="UTC")],
            parameters={"days": 90, "source": "simulator"},
        ),
        deploy(
            features_and_marts, "after-ingest", "features", triggers=[AFTER_INGEST], parameters={"full_refresh": False}
        ),
        deploy(train, "daily", "train", schedules=[Cron("30 2 * * *", timezone="UTC")]),
        deploy(train_volatility, "daily", "train", schedules=[Cron("45 2 * * *", timezone="UTC")]),
        deploy(score, "hourly", "score", schedules=[Cron("35 * * * *", timezone="UTC")]),
        deploy(monitor, "daily", "monitor", schedules=[Cron("0 3 * * *", timezone="UTC")]),
        deploy(maintain, "daily", "maintain", schedules=[Cron("0 4 * * *", timezone="UTC")]),
        deploy(lakehouse, "manual", "lakehouse", parameters={"days": 90, "full_refresh": False}),
    ]


def serve(limit: int | None = None) -> None:
    """Register the deployments on the Prefect API and run their flows as scheduled (blocks until stopped)."""
    prefect_serve(*deployments(), limit=limit)


def deploy_to_work_pool(work_pool: str) -> list[UUID]:
    """Register the deployments on the Prefect API for the process work pool ``work_pool`` (created if
    missing); its workers import the flows from this package (module entrypoints, no code storage)."""
    pool = WorkPoolCreate(
        name=work_pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template()
    )
    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):
        client.create_work_pool(work_pool=pool)
    return prefect_deploy(*deployments(), work_pool_name=work_pool, ignore_warnings=True)
