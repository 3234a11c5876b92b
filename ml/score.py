"""Batch scoring from the Feast online store's latest rows with the registry's aliases.

The champion serves; the challenger, when it is another version, shadow-scores the same
inputs so the two can be compared on the same targets (:mod:`sentinance.ml.ab_testing`).
Without a champion the challenger serves alone. Predictions go to the gold Delta table
``predictions`` (Change Data Feed on), merged on (instrument_id, target_time,
model_version): rescoring the same period adds no row, and rewrites one (with its new
``scored_at``) only when its forecast or its version's alias changed. A forecast targets the
period after its features', one interval of the model contract later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion

from sentinance import lake
from sentinance.catalog import FORECASTER, PREDICTIONS
from sentinance.ml import feature_store, registry
from sentinance.ml.model import to_sequences
from sentinance.settings import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreResult:
    rows: int
    model_version: str
    model_alias: str
    delta_version: int
    shadow_version: str | None  # the challenger scored beside the champion, if any
    skipped: bool = False  # the online features and the serving versions had not changed: nothing scored


def predictions_path(settings: Settings) -> str:
    return PREDICTIONS.path(settings)


def predict(version: ModelVersion, alias: str, online: pd.DataFrame, scored_at: pd.Timestamp) -> pd.DataFrame:
    """Prediction rows of one version for feature rows (``instrument_id``, ``event_timestamp``,
    ``close``, lag columns), skipping rows with incomplete inputs."""
    model = registry.load_model(version)
    meta = model.metadata.metadata
    x = to_sequences(online, int(meta["sequence_length"]), tuple(meta["features"]))
    usable = ~np.isnan(x).any(axis=(1, 2)) & online["event_timestamp"].notna().to_numpy()
    if not usable.all():
        log.warning("no complete online features for %s", online.loc[~usable, "instrument_id"].tolist())
    rows, x = online[usable].reset_index(drop=True), x[usable]
    predicted = np.asarray(model.predict(x), dtype=np.float64).reshape(-1) if len(x) else np.empty(0)
    return pd.DataFrame(
        {
            "instrument_id": rows["instrument_id"],
            "feature_time": rows["event_timestamp"],
            "target_time": rows["event_timestamp"] + FORECASTER.period,
            "predicted_log_return": predicted,
            "predicted_close": rows["close"].astype("float64") * np.exp(predicted),
            "model_name": FORECASTER.name,
            "model_version": str(version.version),
            "model_alias": alias,
            "scored_at": scored_at,
        }
    )


def score_latest(settings: Settings | None = None) -> ScoreResult:
    """Forecast the next period for every instrument of the mart from its latest online features."""
    settings = settings or get_settings()
    version, alias = registry.serving_version(settings)
    challenger = registry.alias_version(settings, registry.CHALLENGER)
    shadow = challenger if alias == registry.CHAMPION and challenger and challenger.version != version.version else None
    if alias != registry.CHAMPION:
        log.warning("no champion yet: shadow scoring with %s v%s (@%s)", FORECASTER.name, version.version, alias)
    instruments = feature_store.query(
        settings, f"SELECT DISTINCT instrument_id FROM {FORECASTER.mart} ORDER BY instrument_id"
    )["instrument_id"].tolist()
    online = feature_store.online_features(settings, instruments)
    scored_at = pd.Timestamp(datetime.now(UTC))
    served = predict(version, alias, online, scored_at)
    frames = [served, *([predict(shadow, registry.CHALLENGER, online, scored_at)] if shadow else [])]
    predictions = pd.concat(frames, ignore_index=True)
    window = ("target_time", predictions["target_time"].min()) if len(predictions) else None  # part of the key
    result = lake.upsert(
        settings, PREDICTIONS, predictions, change_column=["predicted_log_return", "model_alias"], window=window
    )
    log.info(
        "scored %d instruments with %s v%s (@%s)%s",
        len(served),
        FORECASTER.name,
        version.version,
        alias,
        f", shadow v{shadow.version} (@{registry.CHALLENGER})" if shadow else "",
    )
    return ScoreResult(len(served), str(version.version), alias, result.version, shadow and str(shadow.version))
