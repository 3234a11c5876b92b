"""Each tool's own CLI on the live state (the session's, after one `lakehouse` run), as a data engineer
runs it: `sentinance services up`, then `eval "$(sentinance env)"`, then plain `dbt`, `feast`, `mlflow`
and `prefect` from a directory that is not the project's, with nothing else in the environment.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.servers import free_port, started

from sentinance import services
from sentinance.catalog import FORECASTER
from sentinance.ml import feature_store, registry, serving
from sentinance.resources import dbt_project_dir
from sentinance.settings import Settings
from sentinance.supervisor import state_file, wait_for_http

BIN = Path(sys.executable).parent
SERVER_SECONDS = 120


def _sentinance(*args: str) -> str:
    done = subprocess.run([str(BIN / "sentinance"), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def services_up(lakehouse_run: dict, settings: Settings) -> Iterator[dict]:
    """`sentinance services up` on the session's state, `down` afterwards."""
    _sentinance("services", "up", "--prefect-port", str(free_port()), "--metrics-port", str(free_port()))
    try:
        yield json.loads(_sentinance("services", "status", "--json"))
    finally:
        _sentinance("services", "down")


@pytest.fixture(scope="module")
def tool_env(services_up: dict) -> dict[str, str]:
    """The exports of `sentinance env` over a bare environment (PATH to the tools, HOME, locale)."""
    exports = [shlex.split(line)[1] for line in _sentinance("env").splitlines() if line.startswith("export ")]
    bare = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": os.environ["HOME"], "LANG": "C.UTF-8"}
    return {**bare, **dict(item.split("=", 1) for item in exports)}


def _tool(env: dict[str, str], *command: str, timeout: float = 600) -> str:
    """A tool's own CLI, run from an empty directory (not the project's) with only ``env``."""
    done = subprocess.run(
        list(command), env=env, cwd=tempfile.mkdtemp(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(command)}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def test_services_keep_postgres_and_a_prefect_server_until_down(services_up: dict, settings: Settings) -> None:
    assert services_up["pid"] != os.getpid() and state_file(settings).is_file()
    assert services_up["postgres"] == services.database_url(settings)  # the embedded server, on its socket
    assert httpx.get(f"{services_up['prefect']}/health").status_code == 200
    assert "sentinance_series_freshness_seconds" in httpx.get(services_up["metrics"]).text
    assert f"running (pid {services_up['pid']}" in _sentinance("services", "up")  # already up: the same services


def test_dbt_build_writes_target_and_logs_into_the_state_dir(tool_env: dict[str, str], settings: Settings) -> None:
    before = (settings.dbt_target_dir / "run_results.json").stat().st_mtime
    out = _tool(tool_env, "dbt", "build")
    assert "Completed successfully" in out
    results = json.loads((settings.dbt_target_dir / "run_results.json").read_text())
    assert (
        results["args"]["which"] == "build" and (settings.dbt_target_dir / "run_results.json").stat().st_mtime > before
    )
    assert all(r["status"] in ("success", "pass") for r in results["results"])
    assert (settings.dbt_log_dir / "dbt.log").is_file()
    assert not any((dbt_project_dir() / name).exists() for name in ("target", "logs"))


def test_feast_plan_then_materialize_incremental(tool_env: dict[str, str], settings: Settings) -> None:
    out = _tool(tool_env, "feast", "plan")
    assert "No changes to infrastructure" in out
    # the registry diff lists only what Feast itself reports for every materialized view (FeatureView.__eq__)
    assert not any(line.startswith(("Created", "Deleted")) for line in out.splitlines()), out
    store = feature_store.feature_store(settings)
    end = store.get_feature_view(FORECASTER.feature_view).most_recent_end_time + timedelta(hours=1)
    _tool(tool_env, "feast", "materialize-incremental", end.isoformat())
    assert store.get_feature_view(FORECASTER.feature_view).most_recent_end_time == end


def test_mlflow_models_serve_the_registered_model(tool_env: dict[str, str], settings: Settings) -> None:
    version, alias = registry.serving_version(settings)
    ids = feature_store.query(settings, f"SELECT DISTINCT instrument_id FROM {FORECASTER.mart}")["instrument_id"]
    x = serving.model_input(feature_store.online_features(settings, sorted(ids)))
    port = free_port()
    model = f"models:/{FORECASTER.name}@{alias}"
    command = ["mlflow", "models", "serve", "-m", model, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with started(command, "mlflow-models-serve", env=tool_env) as server:
        wait_for_http(f"http://127.0.0.1:{port}/ping", SERVER_SECONDS, server)
        answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": x}, timeout=60)
    assert answer.status_code == 200, answer.text
    expected = registry.load_model(version).predict(np.asarray(x, dtype=np.float32))
    np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=1e-6)


def test_prefect_flow_run_ls_shows_the_lakehouse_runs(tool_env: dict[str, str]) -> None:
    runs = json.loads(_tool(tool_env, "prefect", "flow-run", "ls", "--flow-name", "lakehouse", "-o", "json"))
    assert "Completed" in {run["state"]["name"] for run in runs}, runs
