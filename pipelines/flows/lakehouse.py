"""The main job: the ``lakehouse`` flow, every stage once, bronze -> silver -> marts -> features -> models.

A composition of the stage flows of :mod:`sentinance.pipelines.flows.stages` (run as subflows) and two
tasks of :mod:`sentinance.pipelines.flows.tasks`, holding the state dir's single-writer lock through every
stage. Killed anywhere, it is rerun as it is: every stage redoes what the killed run left undone.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from sentinance import faults
from sentinance.catalog import VOLATILITY
from sentinance.pipelines.flows.hooks import stage_hooks
from sentinance.pipelines.flows.ingest import default_end, ingest
from sentinance.pipelines.flows.stages import features, marts, score, train, train_volatility, writing
from sentinance.pipelines.flows.tasks import as_plain, compare_models, monitor_drift
from sentinance.settings import configure, get_settings
from sentinance.status import collect_status, model_status, render_summary


@contextmanager
def _timed(timings: dict[str, dict[str, float]], stage: str) -> Iterator[None]:
    """Record the stage's wall time and the process's peak RSS after it (a high-water mark, MB)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        timings[stage] = {"seconds": round(time.perf_counter() - started, 3), "peak_rss_mb": round(peak, 1)}


@flow(name="lakehouse", log_prints=True, **stage_hooks())
def lakehouse(end: datetime | None = None, days: int = 90, full_refresh: bool = False) -> dict:
    """Run every stage once, incrementally; returns the per-stage results and the status.

    ``ingest`` -> ``features`` -> ``marts`` -> drift (once a model serves) -> ``train`` (without a
    serving model or on drift) -> ``train-volatility`` (without a volatility model or on drift) -> ``score``
    (both models) -> champion-vs-challenger A/B, then a summary artifact. A stage whose inputs did not
    change since its last run does nothing (:mod:`.tasks`); ``timings`` has each stage's wall time and
    the process's peak RSS after it.
    """
    settings = configure(get_settings())
    logger = get_run_logger()
    end = end or default_end()
    stages: dict[str, Any] = {}
    timings: dict[str, dict[str, float]] = {}
    with writing(settings):
        faults.reach(settings, "prefect-start")
        with _timed(timings, "ingest"):
            stages["ingest"] = as_plain(ingest(end=end, days=days))  # simulator candles + trades -> GX -> bronze
        with _timed(timings, "features"):
            stages.update(features(full_refresh=full_refresh))
        with _timed(timings, "marts"):
            stages.update(marts(end=end, full_refresh=full_refresh))
        with _timed(timings, "drift"):
            model = model_status(settings)
            drift = monitor_drift(settings) if model and model["aliases"] else None
        stages["drift"] = as_plain(drift)
        if drift is None or drift.retrain:
            with _timed(timings, "train"):
                stages["train"] = train()
        else:
            logger.info("no drift and no new data to learn from: the registered model is kept")
        if drift is None or drift.retrain or not model_status(settings, VOLATILITY):
            with _timed(timings, "train_volatility"):
                stages["train_volatility"] = train_volatility()
        with _timed(timings, "score"):
            stages.update(score())
        with _timed(timings, "ab_testing"):
            stages["ab_testing"] = as_plain(compare_models(settings))
    status = collect_status(settings, current_run=flow_run.get_id())
    summary = render_summary(status)
    create_markdown_artifact(
        key="lakehouse-summary", markdown=f"```\n{summary}\n```", description="Lakehouse run summary"
    )
    logger.info("lakehouse run complete; summary in the 'lakehouse-summary' artifact")
    return {"stages": stages, "timings": timings, "status": status, "summary": summary}


if __name__ == "__main__":
    print(lakehouse()["summary"])
