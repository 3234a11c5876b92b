"""The MLflow side shared by training, scoring and monitoring: store, experiments, aliases,
and the lineage record (Delta versions, git commit, definitions hash) of a trained version."""

from __future__ import annotations

import logging

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel

from sentinance import lake, services
from sentinance.catalog import CANDLE_FEATURES, CANDLES, FORECASTER
from sentinance.errors import MissingInputError
from sentinance.resources import definitions_sha256, git
from sentinance.settings import Settings

log = logging.getLogger(__name__)

TRAINING_EXPERIMENT = "sentinance-forecasting"
MONITORING_EXPERIMENT = "sentinance-monitoring"
CHAMPION, CHALLENGER = "champion", "challenger"
TRAIN_PARAMS_TAG = "train_params"  # a version's TrainParams as JSON: what reproduces and identifies it
SOURCE_TABLES = (CANDLES, CANDLE_FEATURES)  # the lake tables a training set is derived from
REGISTRATION_TAG, COMPLETE = "registration", "complete"  # a version tag set last, once its aliases and tags are


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
        return client(settings).get_model_version_by_alias(FORECASTER.name, alias)
    except MlflowException:
        return None


def serving_version(settings: Settings) -> tuple[ModelVersion, str]:
    """The model version to serve and its alias: champion, else challenger (shadow scoring)."""
    for alias in (CHAMPION, CHALLENGER):
        version = alias_version(settings, alias)
        if version is not None:
            return version, alias
        log.info("no %s version of %s", alias, FORECASTER.name)
    raise MissingInputError(
        f"{FORECASTER.name} has neither a {CHAMPION} nor a {CHALLENGER} version: run `sentinance train` first"
    )


def version_trained_on(settings: Settings, training_set_id: str, params_json: str) -> ModelVersion | None:
    """The registered version trained on this training set with these parameters, if there is one. Found by
    its training run's tags, so a version that a killed run registered but never finished (no tags and no
    alias yet) is found too."""
    registry = client(settings)
    try:
        versions = registry.search_model_versions(f"name = '{FORECASTER.name}'")
    except MlflowException:
        return None
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        if version.run_id and version.status == "READY":
            tags = registry.get_run(version.run_id).data.tags
            if tags.get("training_set_id") == training_set_id and tags.get(TRAIN_PARAMS_TAG) == params_json:
                return version
    return None


def recorded_training_set_versions(settings: Settings) -> list[int]:
    """The gold/training_sets versions registered model versions were trained on: maintenance must keep
    them readable, so that every version can be reproduced by time travel."""
    found = client(settings).search_model_versions(f"name = '{FORECASTER.name}'")
    return sorted({int(v.tags["training_set_delta_version"]) for v in found if "training_set_delta_version" in v.tags})


def load_model(version: ModelVersion) -> PyFuncModel:
    return mlflow.pyfunc.load_model(f"models:/{FORECASTER.name}/{version.version}")


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
