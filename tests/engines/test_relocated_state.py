"""A state dir is relocatable: `sentinance backup` of the state the work pool's runs built, `sentinance
restore` into another directory, the original deleted, and scoring runs from the copy; the
restored MLflow store names only the copy (its Default experiment included), and a model version
whose artifacts are gone is a one-line error."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support.servers import state_env, stop_embedded_postgres

from sentinance import catalog, lake, services
from sentinance.errors import MissingInputError
from sentinance.ml import registry
from sentinance.ml.score import score_latest
from sentinance.settings import Settings

CLI_SECONDS = 600


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sentinance.cli", *args],
        env=state_env(home),
        capture_output=True,
        text=True,
        timeout=CLI_SECONDS,
    )


def _mlflow_text(settings: Settings) -> str:
    """Every recorded location, tag and source of the state's MLflow store, as one text."""
    services.mlflow_tracking_uri(settings)  # opened here (moved, if it was elsewhere)
    with sqlite3.connect(settings.mlflow_dir / "mlflow.db") as conn:
        return "\n".join(
            str(value)
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            for row in conn.execute(f"SELECT * FROM {table}").fetchall()
            for value in row
        )


@pytest.fixture(scope="module")
def restored(work_pool) -> tuple[Path, Settings]:
    """The work pool's state, backed up, restored into a new directory, the original deleted."""
    manual = work_pool.runs.get("manual")
    assert manual and manual.state.is_completed(), "the work pool's lakehouse run failed"
    original = work_pool.home
    archive = Path(tempfile.mkdtemp(prefix="sentinance-backups-")) / "state.tar.gz"
    done = _cli("backup", str(archive), home=original)
    assert done.returncode == 0, done.stderr[-3000:]
    copy = Path(tempfile.mkdtemp(prefix="sentinance-restored-")) / "state"
    done = _cli("restore", str(archive), home=copy)
    assert done.returncode == 0, done.stderr[-3000:]
    stop_embedded_postgres(original)
    shutil.rmtree(original)
    return original, Settings(home=copy)


def test_a_restored_state_scores_without_its_original(restored) -> None:
    original, settings = restored
    restored_version = lake.version(catalog.PREDICTIONS.path(settings))
    scored = score_latest(settings)  # the same forecasts as the original's: nothing to rewrite
    assert scored.rows == 9 and scored.delta_version == restored_version
    recorded = _mlflow_text(settings)
    assert str(original) not in recorded and str(settings.home) in recorded
    default = registry.client(settings).get_experiment("0").artifact_location
    assert default == f"{services.mlflow_artifact_root(settings)}/0"  # not ./mlruns/0 in the working directory


def test_a_version_without_its_artifacts_is_a_one_line_error(restored) -> None:
    _, settings = restored
    version, _ = registry.serving_version(settings)
    uri = registry.client(settings).get_model_version_download_uri(version.name, version.version)
    shutil.rmtree(uri.removeprefix("file://"))
    with pytest.raises(MissingInputError, match=f"artifacts of {version.name} v{version.version} are missing") as e:
        score_latest(settings)
    assert "\n" not in str(e.value)
    done = _cli("score", home=settings.home)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1] == f"sentinance score: error: {e.value}"
