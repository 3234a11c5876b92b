"""What the lakehouse holds: tables with versions and rows, model aliases, and how to open each UI."""

from __future__ import annotations

import shlex
import sys
from datetime import datetime
from pathlib import Path

from sentinance import lake, services
from sentinance.catalog import FORECASTER, TABLES, VOLATILITY, ModelContract
from sentinance.settings import Settings

# the registered version's headline out-of-sample figures (newest walk-forward fold and pooled)
SUMMARY_METRICS = (
    "holdout_lstm_mape",
    "holdout_persistence_mape",
    "holdout_mape_ratio",
    "cv_mape_ratio",
    "holdout_lstm_directional_accuracy",
    "holdout_lstm_mae",
    "holdout_persistence_mae",
    "holdout_lstm_rank_ic_mean",
    "holdout_mape_ratio_seed_mean",
    "holdout_mape_ratio_seed_std",
    "backtest_lstm_long_flat_sharpe",
    "backtest_buy_and_hold_sharpe",
)
VOLATILITY_SUMMARY_METRICS = (
    "holdout_lstm_qlike",
    "holdout_har_qlike",
    "holdout_qlike_ratio",
    "cv_qlike_ratio",
    "holdout_qlike_ratio_seed_mean",
    "holdout_qlike_ratio_seed_std",
    "holdout_mse_ratio",
)


def _delta_status(settings: Settings) -> list[dict]:
    rows = []
    for table in TABLES:
        path = table.path(settings)
        rows.append({"table": f"delta:{table.id}", "version": lake.version(path), "rows": lake.row_count(path)})
    return rows


def warehouse_tables(settings: Settings) -> list[str]:
    """``schema.name`` of every table and view in the warehouse's lake, staging and marts schemas."""
    query = """
        SELECT table_schema || '.' || table_name
        FROM information_schema.tables
        WHERE table_schema IN ('lake', 'staging', 'marts') AND table_name NOT LIKE '\\_%'
        ORDER BY 1
    """
    with services.connect(settings) as conn:
        return [r[0] for r in conn.execute(query).fetchall()]


def _postgres_status(settings: Settings) -> list[dict]:
    names = warehouse_tables(settings)
    with services.connect(settings) as conn:
        return [
            {"table": f"postgres:{n}", "version": None, "rows": conn.execute(f"SELECT count(*) FROM {n}").fetchone()[0]}
            for n in names
        ]


def model_status(settings: Settings, contract: ModelContract = FORECASTER) -> dict | None:
    """A registered model's aliases with their versions and holdout metrics (None if unregistered);
    the forecaster's by default."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(
        tracking_uri=services.mlflow_tracking_uri(settings), registry_uri=services.mlflow_tracking_uri(settings)
    )
    try:
        model = client.get_registered_model(contract.name)
    except MlflowException:
        return None
    shown = VOLATILITY_SUMMARY_METRICS if contract == VOLATILITY else SUMMARY_METRICS
    versions = {}
    for alias, version in sorted(model.aliases.items()):
        run_id = client.get_model_version(contract.name, version).run_id
        metrics = client.get_run(run_id).data.metrics if run_id else {}
        versions[alias] = {
            "version": version,
            "metrics": {k: round(metrics[k], 6) for k in shown if k in metrics},
        }
    return {"name": contract.name, "aliases": versions}


def ui_commands(settings: Settings) -> dict[str, str]:
    """Exact shell commands that open each UI on this state, bound to loopback (see `sentinance ui --help`)."""
    cli = f"SENTINANCE_HOME={shlex.quote(str(settings.home))} {Path(sys.executable).parent / 'sentinance'} ui"
    return {
        "Prefect UI (http://127.0.0.1:4200)": f"{cli} prefect --port 4200",
        "MLflow UI (http://127.0.0.1:5000)": f"{cli} mlflow --port 5000",
        "dbt docs (http://127.0.0.1:8080)": f"{cli} dbt-docs --port 8080",
        "Jupyter Lab (http://127.0.0.1:8888)": f"{cli} jupyter --port 8888",
    }


def _run_row(flow: str, run) -> dict:
    seconds = (run.end_time - run.start_time).total_seconds() if run.start_time and run.end_time else None
    return {
        "id": str(run.id),
        "flow": flow,
        "run": run.name,
        "state": run.state_name,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "seconds": seconds,
    }


def _runs_from_api(limit: int) -> list[dict]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterId, FlowRunFilter, FlowRunFilterStartTime
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=False)),
            sort=FlowRunSort.START_TIME_DESC,
            limit=limit,
        )
        ids = list({run.flow_id for run in runs})
        named = client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=ids))) if ids else []
        flows = {f.id: f.name for f in named}
    return [_run_row(flows.get(run.flow_id, "?"), run) for run in runs]


async def _runs_from_database(limit: int) -> list[dict]:
    from prefect.server import models
    from prefect.server.database import provide_database_interface
    from prefect.server.schemas.filters import FlowRunFilter, FlowRunFilterStartTime
    from prefect.server.schemas.sorting import FlowRunSort

    async with provide_database_interface().session_context() as session:
        runs = await models.flow_runs.read_flow_runs(
            session=session,
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=False)),
            sort=FlowRunSort.START_TIME_DESC,
            limit=limit,
        )
        flows = {
            flow_id: (await models.flows.read_flow(session=session, flow_id=flow_id)).name
            for flow_id in {run.flow_id for run in runs}
        }
    return [_run_row(flows[run.flow_id], run) for run in runs]


def recent_flow_runs(limit: int = 10) -> list[dict]:
    """The latest started Prefect flow runs, newest first.

    From the Prefect API when ``PREFECT_API_URL`` is set, else straight from the local Prefect
    database under ``PREFECT_HOME`` (no server is started; none yet -> empty).
    """
    from prefect.settings import PREFECT_API_URL, get_current_settings
    from prefect.utilities.asyncutils import run_coro_as_sync

    if PREFECT_API_URL.value():
        return _runs_from_api(limit)
    url = get_current_settings().server.database.connection_url.get_secret_value()
    if url.startswith("sqlite") and not Path(url.split(":///", 1)[1]).exists():
        return []
    return run_coro_as_sync(_runs_from_database(limit))


def collect_status(settings: Settings, current_run: str | None = None) -> dict:
    """Everything :func:`render_summary` shows; ``current_run`` (a flow run id) is the run asking,
    listed as "this run" rather than by the state it has while it asks (Running)."""
    runs = [run | {"state": "this run"} if run["id"] == current_run else run for run in recent_flow_runs()]
    return {
        "home": str(settings.home),
        "tables": _delta_status(settings) + _postgres_status(settings),
        "model": model_status(settings),
        "volatility_model": model_status(settings, VOLATILITY),
        "flow_runs": runs,
        "ui": ui_commands(settings),
    }


def render_summary(status: dict) -> str:
    """Plain-text summary: rows per table, the registered model's aliases and metrics, UI commands."""
    lines = [f"State dir: {status['home']}", "", "Tables:"]
    for t in status["tables"]:
        version = "" if t["version"] is None else f"  (v{t['version']})"
        lines.append(f"  {t['table']:<45} {t['rows']:>10,} rows{version}")
    lines += ["", "Model registry:"]
    for model in (status["model"], status.get("volatility_model")):
        if not model or not model["aliases"]:
            continue
        for alias, info in model["aliases"].items():
            lines.append(f"  {model['name']} @{alias} = version {info['version']}")
            for key, value in info["metrics"].items():
                lines.append(f"      {key:<36} {value}")
    if not (status["model"] and status["model"]["aliases"]):
        lines.append("  no registered model yet")
    lines += ["", "Last flow runs (Prefect):"]
    if not status["flow_runs"]:
        lines.append("  none yet")
    for run in status["flow_runs"]:
        started = datetime.fromisoformat(str(run["start_time"])).strftime("%Y-%m-%d %H:%M UTC")
        took = "" if run["seconds"] is None else f"{run['seconds']:.0f}s"
        lines.append(f"  {started}  {run['flow']:<20} {run['run']:<28} {run['state']:<10} {took:>6}")
    lines += ["", "Open the UIs on this state:"]
    for name, command in status["ui"].items():
        lines += [f"  {name}:", f"    {command}"]
    return "\n".join(lines)
