"""Shared fixtures of every tier. The session gets its own state dir (lake, PostgreSQL, MLflow, Feast,
Prefect); tests that need a clean one take ``fresh_settings``.

Tiers are folders, and each test is marked with its folder's name (``pytest -m unit``):

- ``unit``: code alone, no server and no engine;
- ``data``: the landing contracts (Great Expectations) on good and bad data;
- ``integration``: one stage against the real engines (Delta, Spark, PostgreSQL, dbt, Feast, Prefect);
- ``model``: training, evaluation, the gate, and the model's behaviour;
- ``e2e``: the whole flow, the CLI, the notebooks and the UIs;
- ``engines``: real servers started on loopback (a Spark standalone cluster, a Prefect server with a
  work pool and a worker, Debian's PostgreSQL and Redis), the manifests' validation, a moved state.
- ``faults``: runs killed at named points and rerun, against an uninterrupted run's fingerprint.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.volatility import volatility_mart

from sentinance import lake
from sentinance.catalog import (
    CANDLE_FEATURES,
    CANDLES,
    FORECASTER,
    PREDICTIONS,
    VOLATILITY,
    ModelContract,
    instrument_id,
)
from sentinance.settings import Settings, configure, get_settings

# Before Prefect, Spark or MLflow is imported by a test module: the session's state dir and the
# tools' environment. Not under pytest's tmp dirs: pytest keeps their root 0700, which the embedded
# PostgreSQL (run as its own system user when the tests run as root) cannot traverse.
SESSION = configure(get_settings(home=tempfile.mkdtemp(prefix="sentinance-test-")))

TIERS = ("unit", "data", "integration", "model", "e2e", "engines", "faults")
LAKEHOUSE_END = datetime(2026, 1, 20, tzinfo=UTC)
LAKEHOUSE_DAYS = 21


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the folder it lives in under tests/."""
    root = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(root).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


def new_settings(prefix: str, **overrides) -> Settings:
    """Settings on an empty state dir of their own (see SESSION for where)."""
    return get_settings(home=tempfile.mkdtemp(prefix=f"sentinance-{prefix}-"), **overrides)


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The session's shared state dir (one embedded PostgreSQL for the whole run)."""
    return SESSION


@pytest.fixture
def fresh_settings() -> Settings:
    """An empty state dir of the test's own, for tests that need a clean lake."""
    return new_settings("fresh")


@pytest.fixture(scope="session")
def lakehouse_window() -> tuple[datetime, int]:
    """(end, days) of the session's lakehouse run."""
    return LAKEHOUSE_END, LAKEHOUSE_DAYS


@pytest.fixture(scope="session")
def lakehouse_run(settings: Settings) -> dict:
    """One run of the whole `lakehouse` flow on a small window, shared by the tests that need a full lake."""
    from sentinance.pipelines.flows.lakehouse import lakehouse

    return lakehouse(end=LAKEHOUSE_END, days=LAKEHOUSE_DAYS)


@pytest.fixture(scope="session")
def spark(settings: Settings):
    from sentinance.spark_jobs.session import get_spark

    session = get_spark(settings)
    yield session
    session.stop()


# -- a synthetic training-features mart, for the feature store and the model ----------------------


@dataclass(frozen=True)
class SyntheticMart:
    """Rows shaped like the mart contract for BTC on three exchanges, ending (exclusive) at ``end``."""

    end: datetime
    sequence_length: int
    rows: pd.DataFrame


def garch_returns(
    rng: np.random.Generator, hours: int, vol: float, alpha: float = 0.1, beta: float = 0.88
) -> np.ndarray:
    """Hourly returns with GARCH(1, 1) variance around a long-run volatility ``vol``."""
    variance, returns = vol**2, np.empty(hours)
    for t in range(hours):
        returns[t] = np.sqrt(variance) * rng.standard_normal()
        variance = vol**2 * (1 - alpha - beta) + alpha * returns[t] ** 2 + beta * variance
    return returns


def synthetic_mart(
    end: datetime, hours: int = 480, sequence_length: int = 8, seed: int = 11, garch: bool = False
) -> pd.DataFrame:
    """Each exchange's log price is a shared random walk plus a mean-reverting basis (AR(1),
    phi 0.5), so the next return is partly predictable from ``basis_bps``. With ``garch`` the walk's
    steps have clustered volatility (GARCH(1, 1), 50 bps an hour in the long run) that dominates the
    basis, so the next day's realised volatility is partly predictable from the last days'."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(end=end - timedelta(hours=1), periods=hours, freq="h", tz="UTC")
    steps = garch_returns(rng, hours, 0.005) if garch else rng.normal(0, 0.001, hours)
    market = np.log(30_000) + np.cumsum(steps)
    universe = SESSION.universe
    exchanges = tuple(universe.exchanges)
    basis = np.zeros((len(exchanges), hours))
    for t in range(1, hours):
        basis[:, t] = 0.5 * basis[:, t - 1] + rng.normal(0, 30, len(exchanges))
    closes = np.exp(market + basis / 1e4)
    mean_close = closes.mean(axis=0)
    frames = []
    for i, exchange in enumerate(exchanges):
        symbol = universe.symbol(exchange, "BTC")
        close = pd.Series(closes[i])
        change = close.diff()
        gain = change.clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
        loss = (-change.clip(upper=0)).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
        frame = pd.DataFrame(
            {
                FORECASTER.entity_key: instrument_id(exchange, symbol),
                "exchange": exchange,
                "symbol": symbol,
                "asset": "BTC",
                FORECASTER.timestamp: times,
                "close": close,
                "log_return": np.log(close).diff(),
                "rsi_14": 100 - 100 / (1 + gain / loss),
                "sma_ratio": close / close.rolling(20).mean() - 1,
                "basis_bps": (close / mean_close - 1) * 1e4,
            }
        )
        warmup = frame.index < 20
        for feature in FORECASTER.features:
            for lag in range(sequence_length):
                frame[f"{feature}_lag_{lag}"] = frame[feature].shift(lag)
        frame[FORECASTER.label] = frame["log_return"].shift(-1)
        lags = [c for c in frame.columns if "_lag_" in c]
        frame["is_complete"] = ~warmup & frame[lags].notna().all(axis=1)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[FORECASTER.mart_columns(sequence_length)]


def write_mart(settings: Settings, mart: pd.DataFrame, contract: ModelContract = FORECASTER) -> None:
    """(Re)create the contract's mart table with ``mart``'s rows."""
    from sentinance import services

    types = {contract.timestamp: "timestamptz", "is_complete": "boolean"}
    columns = ", ".join(
        f"{c} {types.get(c, 'text' if mart[c].dtype == object else 'double precision')}" for c in mart.columns
    )
    schema = contract.mart.split(".")[0]
    with services.connect(settings) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        cur.execute(f"DROP TABLE IF EXISTS {contract.mart}")
        cur.execute(f"CREATE TABLE {contract.mart} ({columns})")
        cur.execute(f"CREATE UNIQUE INDEX ON {contract.mart} ({contract.entity_key}, {contract.timestamp})")  # as dbt's
        rows = mart.astype(object).where(mart.notna(), None).itertuples(index=False)
        with cur.copy(f"COPY {contract.mart} ({', '.join(mart.columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def write_marts(settings: Settings, forecaster_rows: pd.DataFrame, sequence_length: int) -> None:
    """Both models' marts: the forecaster's rows, and the volatility mart computed from them."""
    write_mart(settings, forecaster_rows)
    write_mart(settings, volatility_mart(forecaster_rows, sequence_length), VOLATILITY)


@pytest.fixture(scope="session")
def synthetic_training_set() -> pd.DataFrame:
    """The synthetic mart's complete, labelled rows (sequence length 8), as a training set has them."""
    rows = synthetic_mart(datetime(2026, 1, 20, tzinfo=UTC), sequence_length=8)
    labelled = rows[rows["is_complete"] & rows[FORECASTER.label].notna()]
    return labelled.sort_values([FORECASTER.timestamp, FORECASTER.entity_key], ignore_index=True)


@pytest.fixture(scope="module")
def ml_settings() -> Iterator[tuple[Settings, SyntheticMart]]:
    """A state dir of the module's own (PostgreSQL, Feast, MLflow, lake) holding the synthetic mart at a
    sequence length of 8 (and the volatility mart computed from it); the marts are applied and
    materialized into the online store."""
    from sentinance.ml import feature_store

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    mart = SyntheticMart(end, 8, synthetic_mart(end, sequence_length=8))
    settings = new_settings("ml", sequence_length=mart.sequence_length)
    write_marts(settings, mart.rows, mart.sequence_length)
    feature_store.apply(settings)
    feature_store.materialize(settings, end)
    return settings, mart


@pytest.fixture(scope="module")
def volatility_settings() -> tuple[Settings, SyntheticMart]:
    """A state dir of the module's own holding 60 days of the synthetic market with GARCH volatility at a
    sequence length of 8: both marts, applied and materialized. ``rows`` is the volatility mart."""
    from sentinance.ml import feature_store

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    forecaster_rows = synthetic_mart(end, hours=60 * 24, sequence_length=8, seed=5, garch=True)
    settings = new_settings("volatility", sequence_length=8)
    write_marts(settings, forecaster_rows, 8)
    feature_store.apply(settings)
    feature_store.materialize(settings, end)
    return settings, SyntheticMart(end, 8, volatility_mart(forecaster_rows, 8))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop Prefect's ephemeral API server while pytest's output streams are still open.

    Prefect stops it at interpreter exit otherwise, logging to a stream pytest has closed.
    """
    if "prefect" not in sys.modules:  # a tier that never started Prefect
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    APILogWorker.drain_all(timeout=10)  # ship the last logs and events while the API is still up
    EventsWorker.drain_all(timeout=10)
    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()


# -- a Prefect server with a process work pool and its worker (engines tier) ----------------------

WORK_POOL = "sentinance-process"
POOL_RUN_SECONDS = 1200
POOL_DAYS = 21  # of history: enough for the model's walk-forward folds


@dataclass(frozen=True)
class WorkPool:
    """A Prefect server on loopback, `sentinance serve --work-pool` (deployments + one worker) on the state
    dir ``home``, and the flow runs its worker ran: ``ingest`` (`ingest/hourly`), ``triggered`` (the
    `features-and-marts/after-ingest` run its completion triggered), ``manual`` (`lakehouse/manual`);
    ``rows`` counts the tables they wrote, right after them (a later test may move the state dir away)."""

    api: str
    home: Path
    pool: str
    runs: dict
    rows: dict[str, int]


def _finished_runs(flow: str, deployment: str, seconds: float) -> list:
    """The flow runs of ``flow``/``deployment`` once there are some and all are finished."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowFilter, FlowFilterName

    deadline = time.monotonic() + seconds
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
            )
        if runs and all(r.state.is_final() for r in runs):
            return runs
        assert time.monotonic() < deadline, (
            f"no finished {flow}/{deployment} run: see test-artifacts/prefect-worker.log"
        )
        time.sleep(2)


@pytest.fixture(scope="session")
def work_pool() -> Iterator[WorkPool]:
    """Started once for the tests that need it, its runs made once; the state dir is its own (embedded
    PostgreSQL). The runs keep the deployments' wall-clock windows (up to the current hour), as
    scheduled runs would."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from support.servers import (
        START_SECONDS,
        online_workers,
        prefect_server,
        sentinance,
        state_env,
        stop_embedded_postgres,
    )

    home = Path(tempfile.mkdtemp(prefix="sentinance-pool-"))
    with prefect_server(Path(tempfile.mkdtemp(prefix="sentinance-prefect-server-"))) as api:
        env = state_env(home, PREFECT_API_URL=api, PREFECT_WORKER_QUERY_SECONDS="2")
        with sentinance("serve", "--work-pool", WORK_POOL, log_name="prefect-worker", env=env) as worker:
            deadline = time.monotonic() + START_SECONDS
            while not online_workers(api, WORK_POOL):  # the pool exists once the deployments are registered
                assert worker.poll() is None, "`sentinance serve --work-pool` exited: see test-artifacts/"
                assert time.monotonic() < deadline, "no worker came online: see test-artifacts/prefect-worker.log"
                time.sleep(1)
            with temporary_settings({PREFECT_API_URL: api}):  # only while triggering: other tests keep theirs
                runs = {
                    "ingest": run_deployment("ingest/hourly", parameters={"days": POOL_DAYS}, timeout=POOL_RUN_SECONDS)
                }
                if runs["ingest"].state.is_completed():
                    runs["triggered"] = _finished_runs("features-and-marts", "after-ingest", POOL_RUN_SECONDS)
                    runs["manual"] = run_deployment(
                        "lakehouse/manual", parameters={"days": POOL_DAYS}, timeout=POOL_RUN_SECONDS
                    )
            paths = {t.id: t.path(Settings(home=home)) for t in (CANDLES, CANDLE_FEATURES, PREDICTIONS)}
            rows = {table: lake.row_count(path) for table, path in paths.items() if lake.exists(path)}
            yield WorkPool(api, home, WORK_POOL, runs, rows)
    if home.exists():
        stop_embedded_postgres(home)
