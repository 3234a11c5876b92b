"""Deterministic fault injection, for the fault suite (``tests/faults/``, ``docs/reliability.md``).

``SENTINANCE_FAULT=<point>`` makes a run ``SIGKILL`` its own process group when it reaches that point
(:data:`sentinance.settings.FAULT_POINTS`, each a call of :func:`reach` in the code), as an operator's
``kill -9`` of the run would: Spark's JVM and Python workers and Prefect's ephemeral server die with
it, the embedded PostgreSQL (its own session) does not. ``postgres@<point>`` instead kills the
embedded PostgreSQL's postmaster and lets the run go on into the outage. Unset, :func:`reach` does
nothing. The kill is triggered by reaching the point, never by timing, so every run of a case dies
in the same place.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from sentinance.settings import FAULT_POINTS, Settings

log = logging.getLogger(__name__)


def armed(settings: Settings, point: str) -> str | None:
    """The target (``group`` or ``postgres``) the fault setting aims at ``point``, or None."""
    if point not in FAULT_POINTS:
        raise ValueError(f"unknown fault point {point!r}; known: {', '.join(FAULT_POINTS)}")
    if settings.fault is None:
        return None
    target, _, wanted = settings.fault.rpartition("@")
    return (target or "group") if wanted == point else None


def reach(settings: Settings, point: str) -> None:
    """A named point of a run: kill what ``SENTINANCE_FAULT`` aims at it, if anything."""
    target = armed(settings, point)
    if target is None:
        return
    print(f"sentinance: fault injection: SIGKILL to the {target} at {point}", file=sys.stderr, flush=True)
    if target == "postgres":
        from sentinance import services

        services.kill_embedded_postgres(settings)
        return
    os.killpg(os.getpgrp(), signal.SIGKILL)
