"""Point-in-time training sets: built from Feast, persisted to Delta, read back by time travel.

Every training set Feast returns is appended to the gold Delta table ``training_sets``,
partitioned by ``training_set_id`` (a content hash of the set), so a registered model
version can name the exact rows it was trained on — path, id and Delta version — and
:mod:`sentinance.ml.reproduce` can read them back as of that version. Identical sets are
stored once. The schema evolves by merge: a longer ``SENTINANCE_SEQUENCE_LENGTH`` adds lag
columns, older sets read back with those columns null (they do not use them).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
from deltalake import write_deltalake

from sentinance import lake
from sentinance.catalog import FORECASTER, TRAINING_SETS
from sentinance.errors import MissingInputError, SentinanceError
from sentinance.ml import feature_store
from sentinance.settings import Settings

log = logging.getLogger(__name__)

ID_COLUMN = TRAINING_SETS.keys[0]


@dataclass(frozen=True)
class TrainingSetRef:
    """Where a training set lives: read it back with :func:`load`."""

    training_set_id: str
    path: str
    delta_version: int
    rows: int


def table_path(settings: Settings) -> str:
    return TRAINING_SETS.path(settings)


def build(settings: Settings) -> pd.DataFrame:
    """Complete labelled mart rows with their point-in-time features from Feast."""
    entity_df = feature_store.query(
        settings,
        f"SELECT instrument_id, event_timestamp, {FORECASTER.label} FROM {FORECASTER.mart} "
        f"WHERE is_complete AND {FORECASTER.label} IS NOT NULL",
    )
    if entity_df.empty:
        why = "land more history"
        if FORECASTER.interval not in settings.universe.intervals:
            why = f"SENTINANCE_INTERVALS has no {FORECASTER.interval}, the interval the forecaster's contract reads"
        raise MissingInputError(f"{FORECASTER.mart} has no complete labelled rows to train on: {why}")
    entity_df[FORECASTER.label] = entity_df[FORECASTER.label].astype("float64")
    frame = feature_store.historical_features(settings, entity_df)
    return frame[sorted(frame.columns)].astype({FORECASTER.timestamp: "datetime64[us, UTC]"})


def content_id(frame: pd.DataFrame) -> str:
    """A short hash of the set's columns and values (row order included)."""
    digest = hashlib.sha256(",".join(frame.columns).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def save(settings: Settings, frame: pd.DataFrame) -> TrainingSetRef:
    """Append ``frame`` under its content id (once); return its id and a Delta version holding it."""
    path = table_path(settings)
    training_set_id = content_id(frame)
    if (
        lake.exists(path)
        and not lake.read(path, columns=[ID_COLUMN], filters=[(ID_COLUMN, "=", training_set_id)]).empty
    ):
        log.info("training set %s is already stored in %s", training_set_id, path)
    else:
        table = pa.Table.from_pandas(frame.assign(**{ID_COLUMN: training_set_id}), preserve_index=False)
        write_deltalake(path, table, mode="append", partition_by=list(TRAINING_SETS.partition_by), schema_mode="merge")
        log.info("stored training set %s (%d rows) in %s", training_set_id, len(frame), path)
    return TrainingSetRef(training_set_id, path, lake.version(path), len(frame))


def load(ref: TrainingSetRef) -> pd.DataFrame:
    """The rows of a stored training set, as of its recorded Delta version (time travel)."""
    frame = lake.read(ref.path, filters=[(ID_COLUMN, "=", ref.training_set_id)], version=ref.delta_version)
    if frame.empty:
        raise SentinanceError(f"training set {ref.training_set_id} is not in {ref.path} at version {ref.delta_version}")
    frame = frame.drop(columns=ID_COLUMN).dropna(axis="columns", how="all")
    frame = frame[sorted(frame.columns)].sort_values([FORECASTER.timestamp, FORECASTER.entity_key], ignore_index=True)
    if content_id(frame) != ref.training_set_id:
        raise SentinanceError(f"training set {ref.training_set_id} read back from {ref.path} does not match its hash")
    return frame
