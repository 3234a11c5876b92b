"""When a task retries: only on failures that may pass on their own, so a failed dbt test or a
bug fails the run at once, and a brief PostgreSQL outage repeats one idempotent step."""

from __future__ import annotations

from typing import Any

import psycopg

from sentinance.errors import TransientError

TRANSIENT = (TransientError, psycopg.OperationalError, ConnectionError, TimeoutError)
DELAYS = [5, 30]  # seconds before the first and the second retry


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: the error is transient (a server restarting, a dropped connection)."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, TRANSIENT) or bool(getattr(error, "transient", False))


def retrying() -> dict[str, Any]:
    """The ``@task`` options of an idempotent task that retries its transient failures."""
    return {"retries": len(DELAYS), "retry_delay_seconds": DELAYS, "retry_condition_fn": transient}
