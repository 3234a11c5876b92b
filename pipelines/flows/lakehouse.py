"""The main job: the ``lakehouse`` flow, every stage once, bronze -> silver -> marts -> features -> model.

A composition of the stage flows of :mod:`sentinance.pipelines.flows.stages` (run as subflows) and two
tasks of :mod:`sentinance.pipelines.flows.tasks`, holding the state dir's write slot through every stage.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from sentinance.pipelines.flows.hooks import stage_hooks
from sentinance.pipelines.flows.ingest import default_end, ingest
from sentinance.pipelines.flows.stages import features, marts, score, state_slot, train
from sentinance.pipelines.flows.tasks import as_plain, compare_models, monitor_drift
from sentinance.settings import configure, get_settings
from sentinance.status import collect_status, model_status, render_summary


@flow(name="lakehouse", log_prints=True, **stage_hooks())
def lakehouse(end: datetime | None = None, days: int = 90, full_refresh: bool = False) -> dict:
    """Run every stage once, incrementally; returns the per-stage results and the status.

    ``ingest`` -> ``features`` -> ``marts`` -> drift (once a model exists) -> ``train`` (without a
    model or on drift) -> ``score`` -> champion-vs-challenger A/B, then a summary artifact.
    """
    settings = configure(get_settings())
    logger = get_run_logger()
    end = end or default_end()
    stages: dict[str, Any] = {}
    with state_slot():
        stages["ingest"] = as_plain(ingest(end=end, days=days))  # simulator candles + trades -> GX -> bronze
        stages.update(features(full_refresh=full_refresh))
        stages.update(marts(end=end, full_refresh=full_refresh))
        drift = monitor_drift(settings) if model_status(settings) else None
        stages["drift"] = as_plain(drift)
        if drift is None or drift.retrain:
            stages["train"] = train()
        else:
            logger.info("no drift: the registered model is kept")
        stages.update(score())
        stages["ab_testing"] = as_plain(compare_models(settings))
    status = collect_status(settings, current_run=flow_run.get_id())
    summary = render_summary(status)
    create_markdown_artifact(
        key="lakehouse-summary", markdown=f"```\n{summary}\n```", description="Lakehouse run summary"
    )
    logger.info("lakehouse run complete; summary in the 'lakehouse-summary' artifact")
    return {"stages": stages, "status": status, "summary": summary}


if __name__ == "__main__":
    print(lakehouse()["summary"])
