"""The MLflow side shared by training, scoring and monitoring: store, experiments, aliases,
and the lineage record (Delta versions, git commit, definitions hash) of a trained version."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel

from sentinance import lake, services
from sentinance.catalog import CANDLE_FEATURES, CANDLES, FORECASTER
from sentinance.errors import MissingInputError
from sentinance.resources import dbt_project_dir, feature_repo_dir, git
from sentinance.settings import Settings

log = logging.getLogger(__name__)

TRAINING_EXPERIMENT = "sentinance-forecasting"
MONITORING_EXPERIMENT = "sentinance-monitoring"
CHAMPION, CHALLENGER = "champion", "challenger"
SOURCE_TABLES = (CANDLES, CANDLE_FEATURES)  # the lake tables a training set is derived from


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


def alias_version(settings: Settings, alias: str, name: str = FORECASTER.name) -> ModelVersion | None:
    """The version of the registered model ``name`` behind ``alias``, or None."""
    try:
        return client(settings).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def serving_version(settings: Settings, name: str = FORECASTER.name) -> tuple[ModelVersion, str]:
    """The version of the registered model ``name`` to serve and its alias: champion, else challenger
    (shadow scoring)."""
    for alias in (CHAMPION, CHALLENGER):
        version = alias_version(settings, alias, name)
        if version is not None:
            return version, alias
        log.info("no %s version of %s", alias, name)
    raise MissingInputError(f"{name} has neither a {CHAMPION} nor a {CHALLENGER} version: run `sentinance train` first")


def load_model(version: ModelVersion) -> PyFuncModel:
    return mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")


def _definitions() -> dict[str, Path]:
    """What the mart and the feature service are built from, by name: a change here changes the features."""
    dbt = dbt_project_dir()
    return {
        "dbt/dbt_project.yml": dbt / "dbt_project.yml",
        "dbt/models": dbt / "models",
        "dbt/macros": dbt / "macros",
        "feature_repo": feature_repo_dir(),
    }


def definitions_sha256() -> str:
    """Hash of the dbt project's and the Feast repo's files (works without git, from an installed wheel too)."""
    digest = hashlib.sha256()
    for name, root in _definitions().items():
        files = (
            [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        )
        for path in sorted(files):
            digest.update(f"{name}/{path.relative_to(root)}".encode() if path != root else name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def lineage(settings: Settings) -> dict[str, str]:
    """Tags that pin what a training run read: source Delta versions, code commit and definitions."""
    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", "dbt", "feature_repo") if commit else None
    return {
        **{
            f"delta_version.{table.layer}.{table.name}": str(lake.version(table.path(settings)))
            for table in SOURCE_TABLES
        },
        "git_commit": commit or "unknown",
        "git_definitions_dirty": "unknown" if dirty is None else str(bool(dirty)).lower(),
        "definitions_sha256": definitions_sha256(),
    }
