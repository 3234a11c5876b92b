"""How an application gets a forecast over HTTP: Feast's feature server, then MLflow's model server.

``sentinance serve-features`` answers ``POST /get-online-features`` with an instrument's latest row of
the forecaster's feature service; ``sentinance serve-model`` answers ``POST /invocations`` with the
serving model's next-period log return for a batch of sequences. :func:`forecast` is the whole
exchange between the two, written as an application would (plain HTTP and JSON, no Sentinance
state): the only knowledge it needs is the model contract (:data:`sentinance.catalog.FORECASTER`),
which names the features and orders the lag columns into the model's input tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd

from sentinance.catalog import FORECASTER
from sentinance.errors import MissingInputError
from sentinance.ml.model import to_sequences
from sentinance.settings import INTERVAL_SECONDS


@dataclass(frozen=True)
class Forecast:
    instrument_id: str
    feature_time: datetime  # event time of the features used
    target_time: datetime  # the period forecast
    predicted_log_return: float
    predicted_close: float


def online_request(instrument_ids: list[str], sequence_length: int | None = None) -> dict:
    """The body of ``POST /get-online-features``: the forecaster's features by name when the sequence length is
    known (Feast's server resolves names in its cached registry, but rebuilds a feature service from protobuf
    on every request: ~10 ms, the larger part of its latency), else by the feature service."""
    entities = {FORECASTER.entity_key: instrument_ids}
    if sequence_length is None:
        return {"feature_service": FORECASTER.feature_service, "entities": entities}
    names = FORECASTER.served_columns(sequence_length)
    return {"features": [f"{FORECASTER.feature_view}:{name}" for name in names], "entities": entities}


def online_frame(response: dict) -> pd.DataFrame:
    """A feature server's answer as one row per entity: the features by name, and their ``event_timestamp``."""
    names = response["metadata"]["feature_names"]
    columns = {name: result["values"] for name, result in zip(names, response["results"], strict=True)}
    frame = pd.DataFrame(columns)
    stamps = pd.DataFrame(
        {n: r["event_timestamps"] for n, r in zip(names, response["results"], strict=True) if n in FORECASTER.context}
    )
    frame[FORECASTER.timestamp] = pd.to_datetime(stamps.iloc[:, 0], utc=True)
    return frame


def model_input(frame: pd.DataFrame) -> list:
    """The model's input for feature rows: ``(rows, sequence_length, features)``, oldest lag first, as JSON."""
    sequence_length = sum(c.startswith(f"{FORECASTER.features[0]}_lag_") for c in frame.columns)
    return to_sequences(frame, sequence_length).tolist()


def forecast(
    client: httpx.Client, features_url: str, model_url: str, instrument_id: str, sequence_length: int
) -> Forecast:
    """The next-period forecast of one instrument from the two servers (base URLs). ``sequence_length`` is the
    model's input length (``SENTINANCE_SEQUENCE_LENGTH``, the second dimension of its signature)."""
    request = online_request([instrument_id], sequence_length)
    features = client.post(f"{features_url}/get-online-features", json=request)
    features.raise_for_status()
    row = online_frame(features.json())
    if row[[c for c in row.columns if "_lag_" in c]].isna().to_numpy().any():
        raise MissingInputError(f"no complete online features for {instrument_id}: run `sentinance marts`")
    predicted = client.post(f"{model_url}/invocations", json={"inputs": model_input(row)})
    predicted.raise_for_status()
    log_return = float(np.asarray(predicted.json()["predictions"]).reshape(-1)[0])
    feature_time = row[FORECASTER.timestamp].iloc[0].to_pydatetime().astimezone(UTC)
    return Forecast(
        instrument_id,
        feature_time,
        feature_time + timedelta(seconds=INTERVAL_SECONDS[FORECASTER.interval]),
        log_return,
        float(row["close"].iloc[0]) * float(np.exp(log_return)),
    )
