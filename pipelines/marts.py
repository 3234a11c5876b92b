"""The dbt project (``dbt/``) run in-process: build the marts with their tests, check source freshness,
generate and serve the docs.

dbt's own files (target/, logs/) go to the state dir, never into the repository, and the
connection comes from :func:`sentinance.services.pg_params` through ``SENTINANCE_PG_*``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sentinance import services
from sentinance.config import Settings, sequence_length

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt"
FAILED_STATUSES = {"error", "fail", "runtime error"}


@dataclass(frozen=True)
class DbtBuildResult:
    success: bool
    counts: dict[str, int]                            # nodes per status: success, pass, warn, skipped, ...
    failed: list[str] = field(default_factory=list)   # "<node> (<status>): <message>"


class MartsBuildError(RuntimeError):
    """dbt could not build the marts; the message names every failed node and test."""

    def __init__(self, message: str, result: DbtBuildResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _dbt(settings: Settings, *command: str):
    """Invoke one dbt command on the project with this state dir's paths and connection."""
    from dbt.cli.main import dbtRunner

    settings.dbt_target_dir.mkdir(parents=True, exist_ok=True)
    args = [
        *command,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(settings.dbt_target_dir),
        "--log-path", str(settings.home / "dbt" / "logs"),
        "--no-use-colors",
    ]
    if command[0] in ("build", "run", "compile", "docs", "source"):  # the same vars everywhere keep partial parsing
        args += ["--vars", json.dumps({"sequence_length": sequence_length()})]
    with _environment(services.pg_params(settings).env()):
        return dbtRunner().invoke(args)


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
