"""Batch scoring: the registry's champion (else challenger) on the Feast online store's latest rows.

Predictions go to the gold Delta table ``predictions`` (Change Data Feed on), merged on
(instrument_id, target_time, model_version) so rescoring the same hour is idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import mlflow
import numpy as np
import pandas as pd

from sentinance import lake, schemas
from sentinance.config import MODEL_NAME, Settings, get_settings
from sentinance.ml import feature_store
from sentinance.ml.model import to_sequences
from sentinance.ml.train import CHAMPION, serving_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreResult:
    rows: int
    model_version: str
    model_alias: str
    delta_version: int


def score_latest(settings: Settings | None = None) -> ScoreResult:
    """Forecast the next hour for every instrument of the mart from its latest online features."""
    settings = settings or get_settings()
    version, alias = serving_version(settings)
    if alias != CHAMPION:
        log.warning("no champion yet: shadow scoring with %s v%s (@%s)", MODEL_NAME, version.version, alias)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version.version}")
    meta = model.metadata.metadata
    instruments = feature_store.query(
        settings, f"SELECT DISTINCT instrument_id FROM {feature_store.MART_TABLE} ORDER BY instrument_id"
    )["instrument_id"].tolist()
    online = feature_store.online_features(settings, instruments)
    x = to_sequences(online, int(meta["sequence_length"]), tuple(meta["features"]))
    usable = ~np.isnan(x).any(axis=(1, 2)) & online["event_timestamp"].notna().to_numpy()
    if not usable.all():
        log.warning("no complete online features for %s", online.loc[~usable, "instrument_id"].tolist())
    online, x = online[usable].reset_index(drop=True), x[usable]
    predicted = np.asarray(model.predict(x), dtype=np.float64).reshape(-1) if len(x) else np.empty(0)
    predictions = pd.DataFrame(
        {
            "instrument_id": online["instrument_id"],
            "feature_time": online["event_timestamp"],
            "target_time": online["event_timestamp"] + timedelta(hours=1),
            "predicted_log_return": predicted,
            "predicted_close": online["close"].astype("float64") * np.exp(predicted),
            "model_name": MODEL_NAME,
            "model_version": str(version.version),
            "model_alias": alias,
            "scored_at": pd.Timestamp(datetime.now(timezone.utc)),
        }
    )
    result = lake.merge(
        settings.table_path("gold", "predictions"),
        predictions,
        keys=schemas.PREDICTION_KEYS,
        schema=schemas.PREDICTIONS,
        configuration={"delta.enableChangeDataFeed": "true"},
    )
    log.info("scored %d instruments with %s v%s (@%s)", len(predictions), MODEL_NAME, version.version, alias)
    return ScoreResult(len(predictions), str(version.version), alias, result.version)
