"""The MLflow side shared by training, scoring and monitoring: store, experiments, aliases,
and the lineage record (Delta versions, git commit, definitions hash) of a trained version."""

from __future__ import annotations

import hashlib
import logging
import subprocess

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel

from sentinance import lake, services
from sentinance.config import MODEL_NAME, Settings
from sentinance.status import REPO_ROOT

log = logging.getLogger(__name__)

TRAINING_EXPERIMENT = "sentinance-forecasting"
MONITORING_EXPERIMENT = "sentinance-monitoring"
CHAMPION, CHALLENGER = "champion", "challenger"
# what the mart and the feature service are built from: a change here changes the features
DEFINITIONS = ("dbt/dbt_project.yml", "dbt/models", "dbt/macros", "feature_repo")
SOURCE_TABLES = (("bronze", "candles"), ("silver", "candle_features"))


def client(settings: Settings) -> MlflowClient:
    """A client on the state dir's MLflow store (also made the process default)."""
    mlflow.set_tracking_uri(services.mlflow_tracking_uri(settings))
    mlflow.set_registry_uri(services.mlflow_tracking_uri(settings))
    return MlflowClient()


def experiment(settings: Settings, name: str) -> str:
    """Point MLflow at the state dir's store; return the experiment's id (created if needed)."""
    client(settings)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(name, artifact_location=f"{services.mlflow_artifact_root(settings)}/{name}")


def alias_version(settings: Settings, alias: str) -> ModelVersion | None:
    """The version behind ``alias``, or None."""
    try:
        return client(settings).get_model_version_by_alias(MODEL_NAME, alias)
    except MlflowException:
        return None


def serving_version(settings: Settings) -> tuple[ModelVersion, str]:
    """The model version to serve and its alias: champion, else challenger (shadow scoring)."""
    for alias in (CHAMPION, CHALLENGER):
        version = alias_version(settings, alias)
        if version is not None:
            return version, alias
        log.info("no %s version of %s", alias, MODEL_NAME)
    raise LookupError(f"{MODEL_NAME} has neither a {CHAMPION} nor a {CHALLENGER} version: train first")


def load_model(version: ModelVersion) -> PyFuncModel:
    return mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version.version}")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def definitions_sha256() -> str:
    """Hash of the dbt project and the Feast repo files (works without git)."""
    digest = hashlib.sha256()
    for entry in DEFINITIONS:
        root = REPO_ROOT / entry
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        for path in sorted(files):
            digest.update(str(path.relative_to(REPO_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def lineage(settings: Settings) -> dict[str, str]:
    """Tags that pin what a training run read: source Delta versions, code commit and definitions."""
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--", *DEFINITIONS) if commit else None
    return {
        **{f"delta_version.{layer}.{name}": str(lake.version(settings.table_path(layer, name)))
           for layer, name in SOURCE_TABLES},
        "git_commit": commit or "unknown",
        "git_definitions_dirty": "unknown" if dirty is None else str(bool(dirty)).lower(),
        "definitions_sha256": definitions_sha256(),
    }
