"""What the lakehouse holds: tables with versions and rows, model aliases, and how to open each UI."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from sentinance import lake, services
from sentinance.config import MODEL_NAME, Settings

DELTA_TABLES = [
    ("bronze", "candles"),
    ("bronze", "quarantine_candles"),
    ("bronze", "simulator_labels"),
    ("silver", "candle_features"),
    ("gold", "predictions"),
]
REPO_ROOT = Path(__file__).resolve().parent.parent


def _delta_status(settings: Settings) -> list[dict]:
    rows = []
    for layer, name in DELTA_TABLES:
        path = settings.table_path(layer, name)
        rows.append({"table": f"delta:{layer}/{name}", "version": lake.version(path), "rows": lake.row_count(path)})
    return rows


def _postgres_status(settings: Settings) -> list[dict]:
    query = """
        SELECT table_schema || '.' || table_name
        FROM information_schema.tables
        WHERE table_schema IN ('lake', 'staging', 'marts') AND table_name NOT LIKE '\\_%'
        ORDER BY 1
    """
    with services.connect(settings) as conn:
        names = [r[0] for r in conn.execute(query).fetchall()]
        return [{"table": f"postgres:{n}", "version": None,
                 "rows": conn.execute(f"SELECT count(*) FROM {n}").fetchone()[0]} for n in names]


def model_status(settings: Settings) -> dict | None:
    """The registered forecaster's aliases with their versions and holdout metrics (None if unregistered)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=services.mlflow_tracking_uri(settings),
                          registry_uri=services.mlflow_tracking_uri(settings))
    try:
        model = client.get_registered_model(MODEL_NAME)
    except MlflowException:
        return None
    versions = {}
    for alias, version in sorted(model.aliases.items()):
        run_id = client.get_model_version(MODEL_NAME, version).run_id
        metrics = client.get_run(run_id).data.metrics if run_id else {}
        versions[alias] = {"version": version, "metrics": {k: round(v, 6) for k, v in sorted(metrics.items())
                                                           if k.startswith(("holdout_", "persistence_"))}}
    return {"name": MODEL_NAME, "aliases": versions}


def ui_commands(settings: Settings) -> dict[str, str]:
    """Exact shell commands that open each UI on this state, bound to loopback."""
    bin_dir = Path(sys.executable).parent
    home = shlex.quote(str(settings.home))
    return {
        "Prefect UI (http://127.0.0.1:4200)":
            f"SENTINANCE_HOME={home} PREFECT_HOME={home}/prefect {bin_dir}/prefect server start --host 127.0.0.1",
        "MLflow UI (http://127.0.0.1:5000)":
            f"{bin_dir}/mlflow ui --host 127.0.0.1 --port 5000 "
            f"--backend-store-uri {services.mlflow_tracking_uri(settings)} "
            f"--default-artifact-root {services.mlflow_artifact_root(settings)}",
        "dbt docs (http://127.0.0.1:8080)": f"SENTINANCE_HOME={home} {bin_dir}/sentinance ui dbt-docs --port 8080",
        "Jupyter Lab": f"SENTINANCE_HOME={home} {bin_dir}/jupyter lab --ip 127.0.0.1 {REPO_ROOT / 'notebooks'}",
    }


def collect_status(settings: Settings) -> dict:
    return {
        "home": str(settings.home),
        "tables": _delta_status(settings) + _postgres_status(settings),
        "model": model_status(settings),
        "ui": ui_commands(settings),
    }


def render_summary(status: dict) -> str:
    """Plain-text summary: rows per table, the registered model's aliases and metrics, UI commands."""
    lines = [f"State dir: {status['home']}", "", "Tables:"]
    for t in status["tables"]:
        version = "" if t["version"] is None else f"  (v{t['version']})"
        lines.append(f"  {t['table']:<45} {t['rows']:>10,} rows{version}")
    lines += ["", "Model registry:"]
    model = status["model"]
    if not model or not model["aliases"]:
        lines.append("  no registered model yet")
    else:
        for alias, info in model["aliases"].items():
            lines.append(f"  {model['name']} @{alias} = version {info['version']}")
            for key, value in info["metrics"].items():
                lines.append(f"      {key:<36} {value}")
    lines += ["", "Open the UIs on this state:"]
    for name, command in status["ui"].items():
        lines += [f"  {name}:", f"    {command}"]
    return "\n".join(lines)
