"""Prefect state hooks of the stage flows: each run's outcome in the pipeline metrics (:mod:`sentinance.metrics`).

Hooks, not code in the flows: a flow records its duration and outcome however it ends (completed,
failed or crashed), and a failure to record is logged by Prefect without failing the flow.
"""

from __future__ import annotations

from typing import Any

from prefect import Flow
from prefect.client.schemas.objects import FlowRun
from prefect.states import State

from sentinance import metrics
from sentinance.settings import get_settings


def _record(flow: Flow, flow_run: FlowRun, state: State) -> None:
    started = flow_run.start_time or state.timestamp
    seconds = (state.timestamp - started).total_seconds()
    metrics.record_stage(get_settings(), flow.name, started.timestamp(), seconds, state.is_completed())


def stage_hooks() -> dict[str, Any]:
    """The ``@flow`` options that record the flow's runs as the stage of its name."""
    return {"on_completion": [_record], "on_failure": [_record], "on_crashed": [_record]}
