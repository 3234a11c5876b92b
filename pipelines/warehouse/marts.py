"""The dbt project (``dbt/``) run in-process: build the marts with their tests, check source freshness,
generate and serve the docs.

Everything dbt reads for this state comes from one place, :func:`dbt_environment`: the connection
(``SENTINANCE_PG_*``, from :func:`sentinance.services.pg_params`), the model contract and universe
(``SENTINANCE_DBT_VARS``, JSON of :func:`sentinance.catalog.dbt_vars`), and dbt's own
``DBT_PROJECT_DIR``, ``DBT_PROFILES_DIR``, ``DBT_TARGET_PATH`` and ``DBT_LOG_PATH``, so target/ and
logs/ go to the state dir, never into the repository. The runner sets them only for an invocation;
``sentinance env`` exports the same values for plain ``dbt``, which then writes to the same place.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sentinance import faults, services
from sentinance.catalog import dbt_vars
from sentinance.errors import SentinanceError
from sentinance.resources import dbt_project_dir
from sentinance.settings import Settings, temporary_environment

log = logging.getLogger(__name__)

FAILED_STATUSES = {"error", "fail", "runtime error"}


@dataclass(frozen=True)
class DbtBuildResult:
    success: bool
    counts: dict[str, int]  # nodes per status: success, pass, warn, skipped, ...
    failed: list[str] = field(default_factory=list)  # "<node> (<status>): <message>"
    skipped: bool = False  # nothing dbt reads had changed since the last build: dbt did not run


class MartsBuildError(SentinanceError):
    """dbt could not build the marts; the message names every failed node and test.

    ``transient`` when dbt could not run at all (e.g. the database was unreachable): a retry may pass.
    A failed model or test is not transient.
    """

    def __init__(self, message: str, result: DbtBuildResult | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.transient = result is None


def dbt_environment(settings: Settings) -> dict[str, str]:
    """What dbt, ``profiles.yml`` and ``dbt_project.yml`` read from the environment for this state."""
    project = str(dbt_project_dir())
    return {
        **services.pg_params(settings).env(),
        "SENTINANCE_DBT_VARS": json.dumps(dbt_vars(settings)),
        "DBT_PROJECT_DIR": project,
        "DBT_PROFILES_DIR": project,
        "DBT_TARGET_PATH": str(settings.dbt_target_dir),
        "DBT_LOG_PATH": str(settings.dbt_log_dir),
    }


def _fault_callbacks(settings: Settings) -> list[Callable[[Any], None]]:
    """With ``SENTINANCE_FAULT`` at ``dbt-build``: reach it once dbt has built an incremental model."""
    if faults.armed(settings, "dbt-build") is None:
        return []

    def on_event(message: Any) -> None:
        if message.info.name == "NodeFinished" and message.data.node_info.materialized == "incremental":
            faults.reach(settings, "dbt-build")

    return [on_event]


def _dbt(settings: Settings, *command: str):
    """Invoke one dbt command on the project with this state dir's paths and connection."""
    from dbt.cli.main import dbtRunner

    settings.dbt_target_dir.mkdir(parents=True, exist_ok=True)
    with temporary_environment(dbt_environment(settings)):
        return dbtRunner(callbacks=_fault_callbacks(settings)).invoke([*command, "--no-use-colors"])


def build_marts(settings: Settings, *, full_refresh: bool = False, select: str | None = None) -> DbtBuildResult:
    """``dbt build`` (models, then their tests, in DAG order); raises MartsBuildError if anything failed.

    A failing test skips everything downstream of it, so the marts keep their last good build.
    """
    command = ["build", *(["--full-refresh"] if full_refresh else []), *(["--select", select] if select else [])]
    outcome = _dbt(settings, *command)
    if outcome.result is None:
        raise MartsBuildError(f"dbt build could not run: {outcome.exception}") from outcome.exception
    results = outcome.result.results
    failed = [f"{r.node.name} ({r.status}): {r.message}" for r in results if r.status in FAILED_STATUSES]
    result = DbtBuildResult(
        success=outcome.success and not failed,
        counts=dict(Counter(str(r.status) for r in results)),
        failed=failed,
    )
    if not result.success:
        raise MartsBuildError("dbt build failed: " + "; ".join(failed or [str(outcome.exception)]), result)
    log.info("dbt build%s: %s", " --full-refresh" if full_refresh else "", result.counts)
    return result


def source_freshness(settings: Settings) -> dict[str, str]:
    """``dbt source freshness``: ``{"<source>.<table>": "pass" | "warn" | "error" | "runtime error"}`` for
    every source with a freshness check (warn-only here: simulated or replayed data may be historic)."""
    outcome = _dbt(settings, "source", "freshness")
    if outcome.result is None:
        raise MartsBuildError(f"dbt source freshness could not run: {outcome.exception}") from outcome.exception
    statuses = {f"{r.node.source_name}.{r.node.name}": str(r.status) for r in outcome.result.results}
    log.info("dbt source freshness: %s", statuses)
    return statuses


def generate_docs(settings: Settings) -> Path:
    """``dbt docs generate --static``; returns the self-contained page (opens offline, no server needed)."""
    outcome = _dbt(settings, "docs", "generate", "--static")
    if not outcome.success:
        raise MartsBuildError(f"dbt docs generate failed: {outcome.exception}")
    return settings.dbt_target_dir / "static_index.html"


def serve_docs(settings: Settings, port: int = 8080) -> None:
    """Serve the generated docs site on http://127.0.0.1:<port> until interrupted."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(settings.dbt_target_dir))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        log.info("dbt docs on http://127.0.0.1:%d", port)
        server.serve_forever()
