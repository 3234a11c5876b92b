"""Feast definitions over the dbt mart of the forecaster's contract (``sentinance.catalog.FORECASTER``).

The view's columns follow the contract and the sequence length setting
(``SENTINANCE_SEQUENCE_LENGTH``), the same values dbt built the mart's lag columns from. The
contract's interval keys the view (``instrument_<interval>_features``) and sets its TTL in
periods (docs/adr/0007-intervals-downstream-of-bronze.md).
"""

from feast import Entity, FeatureService, FeatureView, Field, Project, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.types import Float64, String

from sentinance.catalog import FORECASTER
from sentinance.settings import get_settings

SEQUENCE_LENGTH = get_settings().sequence_length
# A row's lag columns already hold the last SEQUENCE_LENGTH periods, so only the row itself needs
# to be fresh: older than a few periods it describes a market that has moved on, and a
# one-period-ahead forecast from it would target a period already past. Six still bridge a short
# feed outage (a few missing candles) in point-in-time joins and bound the first materialization.
TTL_PERIODS = 6

project = Project(name="sentinance", description="Crypto market features for forecasting")

instrument = Entity(
    name=FORECASTER.entity,
    join_keys=[FORECASTER.entity_key],
    value_type=ValueType.STRING,
    description="One exchange's market in one asset, e.g. binance:BTC/USDT",
)

training_features_source = PostgreSQLSource(
    name=FORECASTER.mart.split(".")[-1],
    table=FORECASTER.mart,
    timestamp_field=FORECASTER.timestamp,
    description="dbt mart: one row per instrument and period, with lagged features",
)

instrument_features = FeatureView(
    name=FORECASTER.feature_view,
    entities=[instrument],
    ttl=TTL_PERIODS * FORECASTER.period,
    schema=[
        Field(name=FORECASTER.entity_key, dtype=String),
        *[Field(name=column, dtype=Float64) for column in FORECASTER.served_columns(SEQUENCE_LENGTH)],
    ],
    online=True,
    source=training_features_source,
    tags={"sequence_length": str(SEQUENCE_LENGTH), "interval": FORECASTER.interval, "owner": "sentinance"},
)

lstm_forecaster_v1 = FeatureService(
    name=FORECASTER.feature_service,
    features=[instrument_features],
    description=f"Inputs of the LSTM forecaster of the next {FORECASTER.interval} log return",
)
