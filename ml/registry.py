"""The MLflow side shared by training, scoring and monitoring: store, experiments, aliases,
and the lineage record (Delta versions, git commit, definitions hash) of a trained version."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel

from sentinance import lake, services
from sentinance.catalog import CANDLE_FEATURES, CANDLES, FORECASTER, MODELS
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


def version_trained_on(
    settings: Settings, training_set_id: str, params_json: str, name: str = FORECASTER.name
) -> ModelVersion | None:
    """The version of the registered model ``name`` trained on this training set with these parameters, if
    there is one. Found by its training run's tags, so a version that a killed run registered but never
    finished (no tags and no alias yet) is found too."""
    registry = client(settings)
    try:
        versions = registry.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        if version.run_id and version.status == "READY":
            tags = registry.get_run(version.run_id).data.tags
            if tags.get("training_set_id") == training_set_id and tags.get(TRAIN_PARAMS_TAG) == params_json:
                return version
    return None


def recorded_training_set_versions(settings: Settings) -> list[int]:
    """The gold/training_sets versions registered model versions (of every model) were trained on:
    maintenance must keep them readable, so that every version can be reproduced by time travel."""
    found = [v for model in MODELS for v in client(settings).search_model_versions(f"name = '{model.name}'")]
    return sorted({int(v.tags["training_set_delta_version"]) for v in found if "training_set_delta_version" in v.tags})


def require_artifacts(version: ModelVersion) -> None:
    """Raise a one-line error if the version's model files are gone (a state dir copied without them);
    MLflow itself would list nothing, or fail deep inside loading."""
    uri = MlflowClient().get_model_version_download_uri(version.name, version.version)
    if uri.startswith("file:") and not (Path(url2pathname(urlparse(uri).path)) / "MLmodel").is_file():
        raise MissingInputError(
            f"the artifacts of {version.name} v{version.version} are missing ({uri}): restore the state "
            "dir with `sentinance restore`, or train again with `sentinance train`"
        )


def load_model(version: ModelVersion) -> PyFuncModel:
    require_artifacts(version)
    return mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")


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
