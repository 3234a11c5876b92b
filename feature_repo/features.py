"""Feast definitions over the dbt mart ``marts.fct_training_features``.

The lag columns follow the dbt var ``sequence_length``; set SENTINANCE_SEQUENCE_LENGTH to
the same value (default 24) so the feature view declares exactly the mart's lags.
"""

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, Project, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.types import Float64, String

SEQUENCE_LENGTH = int(os.environ.get("SENTINANCE_SEQUENCE_LENGTH", "24"))
SEQUENCE_FEATURES = ("log_return", "rsi_14", "sma_ratio", "basis_bps")

project = Project(name="sentinance", description="Hourly crypto market features for forecasting")

instrument = Entity(
    name="instrument",
    join_keys=["instrument_id"],
    value_type=ValueType.STRING,
    description="One exchange's market in one asset, e.g. binance:BTC/USDT",
)

training_features_source = PostgreSQLSource(
    name="fct_training_features",
    table="marts.fct_training_features",
    timestamp_field="event_timestamp",
    description="dbt mart: one row per instrument and hour, with lagged features",
)

instrument_hourly_features = FeatureView(
    name="instrument_hourly_features",
    entities=[instrument],
    # TTL 6 h: a row's lag columns already hold the last SEQUENCE_LENGTH hours, so only the
    # row itself needs to be fresh. A row older than a few hours describes a market that has
    # moved on, and a 1 h-ahead forecast from it would target an hour already past; 6 h still
    # bridges a short feed outage (a few missing candles) in point-in-time joins and bounds the
    # first materialization window.
    ttl=timedelta(hours=6),
    schema=[
        Field(name="instrument_id", dtype=String),
        Field(name="close", dtype=Float64, description="Close of the hour (to turn returns into prices)"),
        *[
            Field(name=f"{feature}_lag_{lag}", dtype=Float64)
            for feature in SEQUENCE_FEATURES
            for lag in range(SEQUENCE_LENGTH)
        ],
    ],
    online=True,
    source=training_features_source,
    tags={"sequence_length": str(SEQUENCE_LENGTH), "owner": "sentinance"},
)

lstm_forecaster_v1 = FeatureService(
    name="lstm_forecaster_v1",
    features=[instrument_hourly_features],
    description="Inputs of the LSTM next-hour log-return forecaster",
)
