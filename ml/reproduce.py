"""Retrain a registered version from its records and check its out-of-sample metrics.

A version's tags name its training set (Delta path, ``training_set_id``, Delta version),
its parameters (``train_params``, seed included), the source Delta versions, the git commit
and the hash of the dbt and Feast definitions. :func:`reproduce` reads the training set
back by Delta time travel, reruns the walk-forward evaluation with the recorded parameters
and compares every out-of-sample metric (per fold, newest fold, pooled) and epoch count with
the recorded one. On the
same machine (CPU, same thread count, deterministic kernels) they agree bit for bit; the
default tolerance, 1e-6 relative, leaves room only for a different BLAS build.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sentinance.catalog import FORECASTER
from sentinance.errors import MissingInputError
from sentinance.ml import registry, training_set
from sentinance.ml.registry import TRAIN_PARAMS_TAG
from sentinance.ml.train import TrainParams, walk_forward
from sentinance.resources import definitions_sha256
from sentinance.settings import Settings, get_settings

log = logging.getLogger(__name__)

TOLERANCE = 1e-6


@dataclass(frozen=True)
class ReproduceResult:
    version: str
    training_set_id: str
    delta_version: int
    compared: int  # metrics compared
    max_relative_error: float
    worst_metric: str
    tolerance: float
    definitions_changed: bool  # the dbt/Feast definitions now differ from the recorded hash

    @property
    def reproduced(self) -> bool:
        return self.max_relative_error <= self.tolerance


def reproduce(settings: Settings | None, version: str, *, tolerance: float = TOLERANCE) -> ReproduceResult:
    """Retrain ``version`` of the forecaster from its recorded training set and parameters."""
    settings = settings or get_settings()
    client = registry.client(settings)
    tags = client.get_model_version(FORECASTER.name, version).tags
    missing = {TRAIN_PARAMS_TAG, "training_set_id", "training_set_path", "training_set_delta_version"} - set(tags)
    if missing:
        raise MissingInputError(f"{FORECASTER.name} v{version} has no reproducibility records {sorted(missing)}")
    ref = training_set.TrainingSetRef(
        tags["training_set_id"], tags["training_set_path"], int(tags["training_set_delta_version"]), rows=0
    )
    params = TrainParams.from_json(tags[TRAIN_PARAMS_TAG])
    recorded = client.get_run(client.get_model_version(FORECASTER.name, version).run_id).data.metrics
    retrained = walk_forward(training_set.load(ref), params).metrics
    errors = {
        k: abs(v - recorded[k]) / max(abs(recorded[k]), 1e-12)
        for k, v in retrained.items()
        if not k.endswith("_train_seconds")
    }
    worst = max(errors, key=lambda k: errors[k])
    definitions_changed = tags.get("definitions_sha256") != definitions_sha256()
    result = ReproduceResult(
        version,
        ref.training_set_id,
        ref.delta_version,
        len(errors),
        errors[worst],
        worst,
        tolerance,
        definitions_changed,
    )
    log.info(
        "reproduced %s v%s: %d metrics, max relative error %.2e (%s)%s",
        FORECASTER.name,
        version,
        len(errors),
        errors[worst],
        worst,
        "; the definitions changed since" if definitions_changed else "",
    )
    return result
