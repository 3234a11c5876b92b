"""Shared fixtures: every test session gets its own state dir (lake, PostgreSQL, MLflow, Feast)."""

from __future__ import annotations

import os
import tempfile

# Must precede any import of sentinance: the package derives PREFECT_HOME etc. from it.
os.environ["SENTINANCE_HOME"] = tempfile.mkdtemp(prefix="sentinance-test-")

from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from sentinance.config import Settings, get_settings  # noqa: E402

RECORDED = Path(__file__).parent / "recorded"
LAKEHOUSE_END = datetime(2026, 1, 20, tzinfo=timezone.utc)
LAKEHOUSE_DAYS = 21


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The session's shared state dir (one embedded PostgreSQL for the whole run)."""
    return get_settings()


@pytest.fixture
def fresh_settings() -> Settings:
    """An empty state dir of the test's own, for tests that need a clean lake.

    Not under pytest's tmp_path: that is mode 0700, and pgserver (running PostgreSQL as its
    own user when the tests run as root) could not use a data directory inside it.
    """
    return Settings(home=Path(tempfile.mkdtemp(prefix="sentinance-fresh-")))


@pytest.fixture(scope="session")
def lakehouse_run(settings: Settings) -> dict:
    """One run of the whole `lakehouse` flow on a small window, shared by the tests that need a full lake."""
    from sentinance.pipelines.lakehouse import lakehouse

    return lakehouse(end=LAKEHOUSE_END, days=LAKEHOUSE_DAYS)


@pytest.fixture(scope="session")
def spark(settings: Settings):
    from sentinance.spark_jobs.session import get_spark

    session = get_spark(settings)
    yield session
    session.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop Prefect's ephemeral API server while pytest's output streams are still open.

    Prefect stops it at interpreter exit otherwise, logging to a stream pytest has closed.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    APILogWorker.drain_all(timeout=10)  # ship the last logs and events while the API is still up
    EventsWorker.drain_all(timeout=10)
    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()
