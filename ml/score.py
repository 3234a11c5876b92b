"""Batch scoring from the Feast online store's latest rows with the registry's aliases.

The same code serves each target (:mod:`sentinance.ml.targets`): the return forecaster into the
gold Delta table ``predictions``, the volatility model into ``volatility_predictions``. The
champion serves; the challenger, when it is another version, shadow-scores the same inputs so
the two can be compared on the same targets (:mod:`sentinance.ml.ab_testing`). Without a
champion the challenger serves alone. Predictions (Change Data Feed on) are merged on
(instrument_id, target_time, model_version): rescoring the same period adds no row, and rewrites
one (with its new ``scored_at``) only when its forecast or its version's alias changed.
``target_time`` is the first period the forecast covers, one interval of the model contract
after its features'.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion

from sentinance import lake
from sentinance.catalog import PREDICTIONS
from sentinance.ml import feature_store, registry
from sentinance.ml.model import to_sequences
from sentinance.ml.targets import RETURNS, Target
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


def predict(
    version: ModelVersion, alias: str, online: pd.DataFrame, scored_at: pd.Timestamp, target: Target = RETURNS
) -> pd.DataFrame:
    """Prediction rows of one version for feature rows (``instrument_id``, ``event_timestamp``, lag
    columns, ``close`` for returns), skipping rows with incomplete inputs."""
    model = registry.load_model(version)
    meta = model.metadata.metadata
    x = to_sequences(online, int(meta["sequence_length"]), tuple(meta["features"]))
    usable = ~np.isnan(x).any(axis=(1, 2)) & online["event_timestamp"].notna().to_numpy()
    if not usable.all():
        log.warning("no complete online features for %s", online.loc[~usable, "instrument_id"].tolist())
    rows, x = online[usable].reset_index(drop=True), x[usable]
    predicted = np.asarray(model.predict(x), dtype=np.float64).reshape(-1) if len(x) else np.empty(0)
    contract = target.contract
    return pd.DataFrame(
        {
            "instrument_id": rows["instrument_id"],
            "feature_time": rows["event_timestamp"],
            "target_time": rows["event_timestamp"] + contract.period,
            **target.served(rows, predicted),
            "model_name": contract.name,
            "model_version": str(version.version),
            "model_alias": alias,
            "scored_at": scored_at,
        }
    )[list(contract.predictions.schema.names)]


def score_latest(settings: Settings | None = None, target: Target = RETURNS) -> ScoreResult:
    """Forecast the target's next span (a period's return, a day's volatility) for every instrument of its
    mart from its latest online features."""
    settings = settings or get_settings()
    contract = target.contract
    version, alias = registry.serving_version(settings, contract.name)
    challenger = registry.alias_version(settings, registry.CHALLENGER, contract.name)
    shadow = challenger if alias == registry.CHAMPION and challenger and challenger.version != version.version else None
    if alias != registry.CHAMPION:
        log.warning("no champion yet: shadow scoring with %s v%s (@%s)", contract.name, version.version, alias)
    instruments = feature_store.query(
        settings, f"SELECT DISTINCT {contract.entity_key} FROM {contract.mart} ORDER BY {contract.entity_key}"
    )[contract.entity_key].tolist()
    online = feature_store.online_features(settings, instruments, contract)
    scored_at = pd.Timestamp(datetime.now(UTC))
    served = predict(version, alias, online, scored_at, target)
    frames = [served, *([predict(shadow, registry.CHALLENGER, online, scored_at, target)] if shadow else [])]
    predictions = pd.concat(frames, ignore_index=True)
    window = ("target_time", predictions["target_time"].min()) if len(predictions) else None  # part of the key
    result = lake.upsert(
        settings, contract.predictions, predictions, change_column=[contract.prediction, "model_alias"], window=window
    )
    log.info(
        "scored %d instruments with %s v%s (@%s)%s",
        len(served),
        contract.name,
        version.version,
        alias,
        f", shadow v{shadow.version} (@{registry.CHALLENGER})" if shadow else "",
    )
    return ScoreResult(len(served), str(version.version), alias, result.version, shadow and str(shadow.version))
