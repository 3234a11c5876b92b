"""The lakehouse's flows as scheduled Prefect deployments, served against this state dir.

The ``ingest`` flow (:mod:`sentinance.pipelines.flows.ingest`), the stage flows
(:mod:`sentinance.pipelines.flows.stages`) and the ``lakehouse`` flow (:mod:`sentinance.pipelines.flows.lakehouse`)
are deployed as they are; each holds the state dir's single-writer lock while it writes
(:mod:`sentinance.state_lock`). Schedules are in UTC:

- ``ingest/hourly``: every hour at :05 (``days=90``, ``source=simulator``);
- ``features-and-marts/after-ingest``: whenever an ``ingest/hourly`` run completes (event trigger),
  the ``features`` then the ``marts`` flow (``full_refresh=False``);
- ``train/daily``: 02:30;
- ``score/hourly``: every hour at :35;
- ``monitor/daily``: 03:00, drift then the champion-vs-challenger A/B comparison;
- ``maintain/daily``: 04:00, OPTIMIZE and VACUUM of every lake table (``SENTINANCE_LAKE_RETENTION_HOURS``);
- ``lakehouse/manual``: by hand, the UI's "Run" or ``prefect deployment run lakehouse/manual``
  (``days=90``, ``full_refresh=False``).

Runs that overlap — of one deployment or of several — wait for the lock (at most ``SENTINANCE_LOCK_WAIT``
seconds), which dies with its holder. No Prefect concurrency limit is used: its slots outlive a killed
holder (their leases live in the server's memory), and one crash would stall a schedule for good.
"""

from __future__ import annotations

from prefect import serve as prefect_serve
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from sentinance.pipelines.flows.ingest import ingest
from sentinance.pipelines.flows.lakehouse import lakehouse
from sentinance.pipelines.flows.stages import features_and_marts, maintain, monitor, score, train

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
        deploy(score, "hourly", "score", schedules=[Cron("35 * * * *", timezone="UTC")]),
        deploy(monitor, "daily", "monitor", schedules=[Cron("0 3 * * *", timezone="UTC")]),
        deploy(maintain, "daily", "maintain", schedules=[Cron("0 4 * * *", timezone="UTC")]),
        deploy(lakehouse, "manual", "lakehouse", parameters={"days": 90, "full_refresh": False}),
    ]


def serve(limit: int | None = None) -> None:
    """Register the deployments on the Prefect API and run their flows as scheduled (blocks until stopped)."""
    prefect_serve(*deployments(), limit=limit)
