"""The catalog: every table of the lake and the forecaster's contract, each declared once.

Bronze landing, the Spark jobs, the warehouse loader, status, the registry and the Feast repo
read their tables from here; dbt receives the model contract as vars (:func:`dbt_vars`). A
:class:`Table` names its layer, keys, Arrow schema, partitioning, whether the Delta change data
feed is on and which warehouse table (``lake.<name>``) mirrors it. :data:`FORECASTER` is the
model contract: its input features (the mart keeps ``sequence_length`` lags of each), label,
candle interval (which keys its feature view and sets its periods: ADR 0007), mart, Feast
feature view and service, and registered model name. The sequence length itself is a setting
(``SENTINANCE_SEQUENCE_LENGTH``). :data:`ANOMALY_INTERVAL` is the candles the detectors flag.
:data:`VOLATILITY` is the volatility model's contract: it extends the forecaster's (reads its
feature view too) with realised-volatility features of its own mart and forecasts the realised
volatility of the next day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import pyarrow as pa

from sentinance.settings import INTERVAL_SECONDS, Settings

TS = pa.timestamp("us", tz="UTC")

# keys of a candle series and of one candle
SERIES_KEYS = ["exchange", "symbol", "interval"]
CANDLE_KEYS = [*SERIES_KEYS, "open_time"]
# one trade: the exchange's trade id is unique per instrument
TRADE_KEYS = ["exchange", "symbol", "trade_id"]

LINEAGE_FIELDS = [
    pa.field("source", pa.string(), nullable=False),  # simulator | live | replay | bulk
    pa.field("ingested_at", TS, nullable=False),
    pa.field("flow_run_id", pa.string(), nullable=True),
    pa.field("payload_hash", pa.string(), nullable=False),  # sha256 of the canonical raw record
]

_CANDLES = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),  # canonical, quote kept: BTC/USDT
        pa.field("interval", pa.string(), nullable=False),  # 1h
        pa.field("open_time", TS, nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),  # base-asset units
        pa.field("trade_count", pa.int64()),
        *LINEAGE_FIELDS,
        # added later, appended: published by some exchanges only (null elsewhere); docs/ingestion.md
        pa.field("quote_volume", pa.float64()),  # quote-asset units
    ]
)

# a quarantined record: its key columns as parsed (nullable), then why and what was received
QUARANTINE_FIELDS = [
    pa.field("failed_expectations", pa.string(), nullable=False),  # comma-separated names
    pa.field("raw_record", pa.string(), nullable=False),  # the record as JSON
    pa.field("quarantined_at", TS, nullable=False),
    pa.field("source", pa.string()),
    pa.field("flow_run_id", pa.string()),
]

_QUARANTINE_CANDLES = pa.schema(
    [
        pa.field("exchange", pa.string()),
        pa.field("symbol", pa.string()),
        pa.field("interval", pa.string()),
        pa.field("open_time", TS),
        *QUARANTINE_FIELDS,
    ]
)

_TRADES = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),  # canonical, quote kept: BTC/USDT
        pa.field("trade_id", pa.string(), nullable=False),  # the exchange's id (as text), ordered in time
        pa.field("trade_time", TS, nullable=False),
        pa.field("price", pa.float64()),  # quote units per base unit
        pa.field("size", pa.float64()),  # base-asset units
        pa.field("side", pa.string()),  # taker side: buy | sell (null if not published)
        *LINEAGE_FIELDS,
    ]
)

_QUARANTINE_TRADES = pa.schema(
    [
        pa.field("exchange", pa.string()),
        pa.field("symbol", pa.string()),
        pa.field("trade_id", pa.string()),
        pa.field("trade_time", TS),
        *QUARANTINE_FIELDS,
    ]
)

# the raw records a source produces (simulator, exchange connectors): a table's columns without lineage;
# the optional ones only where the exchange publishes them (a record without them lands them null)
_LINEAGE = {f.name for f in LINEAGE_FIELDS}
OPTIONAL_CANDLE_COLUMNS = ["quote_volume"]
CANDLE_COLUMNS = [name for name in _CANDLES.names if name not in _LINEAGE and name not in OPTIONAL_CANDLE_COLUMNS]
TRADE_COLUMNS = [name for name in _TRADES.names if name not in _LINEAGE]

# missing intervals of a series in the windows checked at landing: one row per run of consecutive missing
# candles, recomputed from bronze by every landing (pipelines/landing/bronze.py:report_gaps)
_GAP_REPORT = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("interval", pa.string(), nullable=False),
        pa.field("gap_start", TS, nullable=False),  # open_time of the first missing candle
        pa.field("gap_end", TS, nullable=False),  # open_time of the last missing candle
        pa.field("missing", pa.int64(), nullable=False),  # candles missing in the run of missing candles
        pa.field("window_start", TS, nullable=False),  # the checked window [start, end) that found it
        pa.field("window_end", TS, nullable=False),
        pa.field("checked_at", TS, nullable=False),
        pa.field("flow_run_id", pa.string()),
    ]
)

# ground truth of the simulator's injected manipulation, for scoring detectors (never in bronze/silver)
_SIMULATOR_LABELS = pa.schema(
    [
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # pump_and_dump | wash_trading
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("start_time", TS, nullable=False),  # open_time of the first affected candle
        pa.field("end_time", TS, nullable=False),  # open_time of the last affected candle
    ]
)
_SIMULATOR_TRADE_LABELS = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("trade_id", pa.string(), nullable=False),  # a wash trade in bronze/trades
        pa.field("episode_id", pa.string(), nullable=False),  # its episode in simulator_labels
        pa.field("kind", pa.string(), nullable=False),  # wash_trading
    ]
)

_CANDLE_FEATURES = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("interval", pa.string(), nullable=False),
        pa.field("open_time", TS, nullable=False),
        pa.field("asset", pa.string(), nullable=False),  # base asset: BTC
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),
        pa.field("log_return", pa.float64()),  # ln(close_t / close_t-1); null on the first row
        pa.field("sma_20", pa.float64()),  # null during warm-up
        pa.field("rsi_14", pa.float64()),  # Wilder; null during warm-up
        pa.field("rsi_avg_gain", pa.float64()),  # Wilder state, lets increments resume exactly
        pa.field("rsi_avg_loss", pa.float64()),
        pa.field("basis_bps", pa.float64()),  # (close / consolidated VWAP price - 1) * 1e4
        pa.field("is_warmup", pa.bool_(), nullable=False),  # some feature still lacks history (LOOKBACK rows)
        pa.field("computed_at", TS, nullable=False),
        # added later, appended (as the warehouse's additive migration appends them); docs/features.md
        pa.field("gap_bars", pa.int64()),  # intervals missing before this candle; null on the first
        pa.field("log_return_4", pa.float64()),
        pa.field("log_return_24", pa.float64()),
        pa.field("simple_return_1", pa.float64()),  # close_t / close_t-h - 1
        pa.field("simple_return_4", pa.float64()),
        pa.field("simple_return_24", pa.float64()),
        pa.field("ema_20", pa.float64()),  # also the EMA's state
        pa.field("macd", pa.float64()),  # MACD(12, 26, 9) line
        pa.field("macd_signal", pa.float64()),  # also state
        pa.field("macd_hist", pa.float64()),
        pa.field("macd_ema_fast", pa.float64()),  # state: MACD's EMA(12) and EMA(26) of close
        pa.field("macd_ema_slow", pa.float64()),
        pa.field("bb_upper", pa.float64()),  # Bollinger(20, 2); the middle band is sma_20
        pa.field("bb_lower", pa.float64()),
        pa.field("bb_pct_b", pa.float64()),  # null when the bands coincide
        pa.field("bb_bandwidth", pa.float64()),
        pa.field("atr_14", pa.float64()),  # Wilder; also state
        pa.field("vwap_24", pa.float64()),  # rolling VWAP of typical price; null if nothing traded
        pa.field("realized_vol_24", pa.float64()),  # annualised: sqrt(candles per year), 24 * 365 for 1h
        pa.field("realized_vol_168", pa.float64()),
        pa.field("volume_zscore_24", pa.float64()),  # null when the window's volume is constant
        pa.field("obv", pa.float64()),  # also state
    ]
)

# per (asset, interval, open_time) across exchanges
CROSS_EXCHANGE_KEYS = ["asset", "interval", "open_time"]
_CROSS_EXCHANGE_FEATURES = pa.schema(
    [
        pa.field("asset", pa.string(), nullable=False),
        pa.field("interval", pa.string(), nullable=False),
        pa.field("open_time", TS, nullable=False),
        pa.field("exchange_count", pa.int64(), nullable=False),
        pa.field("total_volume", pa.float64()),
        pa.field("consolidated_vwap", pa.float64()),  # sum(close * volume) / sum(volume); null if 0 volume
        pa.field("spread_bps", pa.float64()),  # (max close - min close) / consolidated_vwap * 1e4
        pa.field("computed_at", TS, nullable=False),
    ]
)

_PREDICTIONS = pa.schema(
    [
        pa.field("instrument_id", pa.string(), nullable=False),
        pa.field("feature_time", TS, nullable=False),  # event time of the features used
        pa.field("target_time", TS, nullable=False),  # the period being forecast: feature_time + one interval
        pa.field("predicted_log_return", pa.float64(), nullable=False),
        pa.field("predicted_close", pa.float64()),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("model_alias", pa.string(), nullable=False),
        pa.field("scored_at", TS, nullable=False),
    ]
)
PREDICTION_KEYS = ["instrument_id", "target_time", "model_version"]

# the volatility model's forecasts: realised volatility over [target_time, target_time + 1 day)
_VOLATILITY_PREDICTIONS = pa.schema(
    [
        pa.field("instrument_id", pa.string(), nullable=False),
        pa.field("feature_time", TS, nullable=False),  # event time of the features used
        pa.field("target_time", TS, nullable=False),  # the first period of the forecast day
        pa.field("predicted_rv", pa.float64(), nullable=False),  # sqrt of the sum of squared log returns
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("model_alias", pa.string(), nullable=False),
        pa.field("scored_at", TS, nullable=False),
    ]
)

# one cost-aware backtest of a registered version on its out-of-sample window (ml/backtest.py)
_BACKTESTS = pa.schema(
    [
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("strategy", pa.string(), nullable=False),  # whose forecast: lstm | persistence | buy_and_hold
        pa.field("rule", pa.string(), nullable=False),  # long_flat | long_short | buy_and_hold
        pa.field("window_start", TS, nullable=False),  # first and last period traded
        pa.field("window_end", TS, nullable=False),
        pa.field("periods", pa.int64(), nullable=False),
        pa.field("instruments", pa.int64(), nullable=False),
        pa.field("fees_bps", pa.float64(), nullable=False),  # per unit of the book traded
        pa.field("slippage_bps", pa.float64(), nullable=False),
        pa.field("total_return", pa.float64(), nullable=False),  # final equity - 1, after costs
        pa.field("sharpe", pa.float64(), nullable=False),  # annualised, of the net period returns
        pa.field("max_drawdown", pa.float64(), nullable=False),  # largest fall from a peak, as a fraction
        pa.field("turnover", pa.float64(), nullable=False),  # mean share of the book traded per period
        pa.field("hit_rate", pa.float64()),  # share of positions that earned; null if never invested
        pa.field("run_id", pa.string(), nullable=False),  # the MLflow training run that logged it
        pa.field("backtested_at", TS, nullable=False),
    ]
)
BACKTEST_KEYS = ["model_name", "model_version", "strategy", "rule"]

# market-manipulation detections (spark_jobs/detectors/), one row per flagged episode
_ANOMALIES = pa.schema(
    [
        pa.field("anomaly_id", pa.string(), nullable=False),  # detector:exchange:symbol:start_time
        pa.field("detector", pa.string(), nullable=False),  # pump_and_dump | wash_trading
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("start_time", TS, nullable=False),  # open_time of the first flagged candle
        pa.field("end_time", TS, nullable=False),  # open_time of the last flagged candle
        pa.field("score", pa.float64(), nullable=False),  # detector strength, higher is stronger
        pa.field("signals", pa.string(), nullable=False),  # comma-separated signals that fired
        pa.field("evidence", pa.string(), nullable=False),  # the measured statistics as JSON
    ]
)
ANOMALY_KEYS = ["anomaly_id"]
# the candles the detectors read and flag (an anomaly's start/end are their open_times): docs/detectors.md
ANOMALY_INTERVAL = "1h"


# -- tables ------------------------------------------------------------------------------------

CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}


@dataclass(frozen=True)
class Table:
    """A Delta table of the lake: ``<lake>/<layer>/<name>``."""

    layer: Literal["bronze", "silver", "gold"]
    name: str
    schema: pa.Schema | None  # None: the schema evolves with its content (training sets)
    keys: Sequence[str] = ()  # () for an append-only log
    partition_by: Sequence[str] = ()
    change_feed: bool = False  # Delta change data feed (the warehouse loads its changes)
    mirror: str | None = None  # the warehouse table lake.<mirror> that copies it
    description: str = ""

    @property
    def id(self) -> str:
        return f"{self.layer}/{self.name}"

    def path(self, settings: Settings) -> str:
        return str(settings.lake_dir / self.layer / self.name)

    @property
    def configuration(self) -> dict[str, str] | None:
        """Delta table properties to create it with."""
        return dict(CHANGE_FEED) if self.change_feed else None


CANDLES = Table(
    "bronze",
    "candles",
    _CANDLES,
    CANDLE_KEYS,
    ["exchange"],
    change_feed=True,
    mirror="candles",
    description="OHLCV candles as landed, after the GX checkpoint",
)
TRADES = Table(
    "bronze",
    "trades",
    _TRADES,
    TRADE_KEYS,
    ["exchange"],
    change_feed=True,  # the detectors read what changed since their last run
    description="public trades as landed, after the GX checkpoint",
)
# a quarantined record is kept once, however often it is received (a retried or rerun landing)
QUARANTINE_KEYS = ["raw_record", "failed_expectations"]
QUARANTINE_CANDLES = Table(
    "bronze",
    "quarantine_candles",
    _QUARANTINE_CANDLES,
    QUARANTINE_KEYS,
    description="candles that failed their checkpoint, with the failed expectations, once per record",
)
QUARANTINE_TRADES = Table(
    "bronze",
    "quarantine_trades",
    _QUARANTINE_TRADES,
    QUARANTINE_KEYS,
    description="trades that failed their checkpoint, with the failed expectations, once per record",
)
GAP_REPORT = Table(
    "bronze",
    "gap_report",
    _GAP_REPORT,
    [*SERIES_KEYS, "gap_start"],
    description="missing candles per series in the windows checked at landing, recomputed from bronze",
)
SIMULATOR_LABELS = Table(
    "bronze",
    "simulator_labels",
    _SIMULATOR_LABELS,
    ["episode_id"],
    change_feed=True,
    mirror="simulator_labels",
    description="the simulator's manipulation episodes (ground truth for the detectors)",
)
SIMULATOR_TRADE_LABELS = Table(
    "bronze",
    "simulator_trade_labels",
    _SIMULATOR_TRADE_LABELS,
    TRADE_KEYS,
    ["exchange"],
    description="every simulated wash trade and its episode",
)
CANDLE_FEATURES = Table(
    "silver",
    "candle_features",
    _CANDLE_FEATURES,
    CANDLE_KEYS,
    ["exchange"],
    change_feed=True,
    mirror="candle_features",
    description="per-series indicators (docs/features.md)",
)
CROSS_EXCHANGE_FEATURES = Table(
    "silver",
    "cross_exchange_features",
    _CROSS_EXCHANGE_FEATURES,
    CROSS_EXCHANGE_KEYS,
    change_feed=True,
    mirror="cross_exchange_features",
    description="per asset, interval and period across exchanges",
)
ANOMALIES = Table(
    "gold",
    "anomalies",
    _ANOMALIES,
    ANOMALY_KEYS,
    change_feed=True,
    mirror="anomalies",
    description="market-manipulation detections (docs/detectors.md)",
)
TRAINING_SETS = Table(
    "gold",
    "training_sets",
    None,
    ["training_set_id"],
    ["training_set_id"],
    description="every point-in-time training set, by content hash",
)
PREDICTIONS = Table(
    "gold",
    "predictions",
    _PREDICTIONS,
    PREDICTION_KEYS,
    change_feed=True,
    mirror="predictions",
    description="served and shadow forecasts",
)
VOLATILITY_PREDICTIONS = Table(
    "gold",
    "volatility_predictions",
    _VOLATILITY_PREDICTIONS,
    PREDICTION_KEYS,
    change_feed=True,
    mirror="volatility_predictions",
    description="served and shadow forecasts of the next day's realised volatility",
)
BACKTESTS = Table(
    "gold",
    "backtests",
    _BACKTESTS,
    BACKTEST_KEYS,
    change_feed=True,
    mirror="backtests",
    description="cost-aware backtests of every registered forecaster version (docs/ml.md)",
)

TABLES: tuple[Table, ...] = (
    CANDLES,
    TRADES,
    QUARANTINE_CANDLES,
    QUARANTINE_TRADES,
    GAP_REPORT,
    SIMULATOR_LABELS,
    SIMULATOR_TRADE_LABELS,
    CANDLE_FEATURES,
    CROSS_EXCHANGE_FEATURES,
    ANOMALIES,
    TRAINING_SETS,
    PREDICTIONS,
    VOLATILITY_PREDICTIONS,
    BACKTESTS,
)
# the warehouse's lake.<name> -> its Delta table, in load order
MIRRORED: dict[str, Table] = {t.mirror: t for t in TABLES if t.mirror}


def table(table_id: str) -> Table:
    """A table by its id, ``<layer>/<name>``."""
    for candidate in TABLES:
        if candidate.id == table_id:
            return candidate
    raise KeyError(f"no table {table_id!r} in the catalog; known: {', '.join(t.id for t in TABLES)}")


def instrument_id(exchange: str, symbol: str) -> str:
    """Entity key of the marts and the feature store: ``binance:BTC/USDT``."""
    return f"{exchange}:{symbol}"


# -- the models' contracts -------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelContract:
    """What a model reads and where: the mart's columns, Feast's view and service, the registry name,
    and the table its served forecasts go to."""

    name: str  # the registered model in MLflow
    features: tuple[str, ...]  # per-period inputs its own mart holds with their lags, oldest lag first in a sequence
    label: str
    interval: str  # the candles the model reads (and forecasts ahead of); keys its feature view
    mart: str  # schema.table built by dbt
    feature_service: str
    predictions: Table  # served and shadow forecasts
    prediction: str  # the forecast's column in ``predictions``
    horizon: str | None = None  # the span the label covers, an interval code; None: the next period
    extends: ModelContract | None = None  # another contract whose feature view this model reads too
    view: str = "features"  # names its feature view with the entity and the interval
    entity: str = "instrument"
    entity_key: str = "instrument_id"
    timestamp: str = "event_timestamp"
    context: tuple[str, ...] = field(default=("close",))  # served beside the lags (returns -> prices)

    @property
    def period(self) -> timedelta:
        """One interval: a lag's step, the next-period horizon (target_time = feature_time + period)."""
        return timedelta(seconds=INTERVAL_SECONDS[self.interval])

    @property
    def feature_view(self) -> str:
        """The Feast feature view of the contract's interval: ``instrument_1h_features``."""
        return f"{self.entity}_{self.interval}_{self.view}"

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every per-period input of the model in its sequences' order: an extended contract's first."""
        return (*(self.extends.inputs if self.extends else ()), *self.features)

    @property
    def feature_views(self) -> tuple[str, ...]:
        """The Feast feature views its feature service joins."""
        return (*(self.extends.feature_views if self.extends else ()), self.feature_view)

    @property
    def horizon_periods(self) -> int:
        """Periods of ``interval`` the label spans: 1 for the next period, 24 for a day of hourly candles."""
        return 1 if self.horizon is None else INTERVAL_SECONDS[self.horizon] // INTERVAL_SECONDS[self.interval]

    @property
    def horizon_seconds(self) -> int:
        return self.horizon_periods * INTERVAL_SECONDS[self.interval]

    def lag_columns(self, feature: str, sequence_length: int) -> list[str]:
        """The mart's lag columns of ``feature``, oldest first (``<feature>_lag_<i>``, lag 0 is now)."""
        return [f"{feature}_lag_{lag}" for lag in reversed(range(sequence_length))]

    def served_columns(self, sequence_length: int) -> list[str]:
        """The feature view's columns: the context, then each feature's lags (lag 0 first)."""
        return [*self.context, *(f"{f}_lag_{i}" for f in self.features for i in range(sequence_length))]

    def mart_columns(self, sequence_length: int) -> list[str]:
        """Every column of the mart, in order."""
        return [
            self.entity_key,
            "exchange",
            "symbol",
            "asset",
            self.timestamp,
            *self.context,
            *self.features,
            *self.served_columns(sequence_length)[len(self.context) :],
            self.label,
            "is_complete",
        ]


FORECASTER = ModelContract(
    name="sentinance-lstm-forecaster",
    features=("log_return", "rsi_14", "sma_ratio", "basis_bps"),
    label="next_log_return",
    interval="1h",
    mart="marts.fct_training_features",
    feature_service="lstm_forecaster_v1",
    predictions=PREDICTIONS,
    prediction="predicted_log_return",
)

# HAR-RV's components (Corsi, 2009) and the days each averages: daily realised volatility
# sqrt(sum of squared log returns over the last day's periods), and its means over the last 5
# and 22 days, taken every period over trailing days
HAR_DAYS: dict[str, int] = {"rv_daily": 1, "rv_weekly": 5, "rv_monthly": 22}

VOLATILITY = ModelContract(
    name="sentinance-lstm-volatility",
    features=tuple(HAR_DAYS),
    label="next_day_rv",  # realised volatility of the periods in (t, t + 1 day]
    interval=FORECASTER.interval,
    mart="marts.fct_volatility_features",
    view="volatility_features",  # instrument_1h_volatility_features
    feature_service="lstm_volatility_v1",
    predictions=VOLATILITY_PREDICTIONS,
    prediction="predicted_rv",
    horizon="1d",
    extends=FORECASTER,
    context=(),
)

MODELS: tuple[ModelContract, ...] = (FORECASTER, VOLATILITY)


def dbt_vars(settings: Settings) -> dict:
    """What the dbt project reads from the catalog and the settings (``var('sentinance')``)."""
    return {
        "exchanges": list(settings.universe.exchanges),
        "interval_seconds": dict(INTERVAL_SECONDS),  # every interval bronze accepts
        "anomaly_interval": ANOMALY_INTERVAL,
        "model": {
            "features": list(FORECASTER.features),
            "label": FORECASTER.label,
            "interval": FORECASTER.interval,
            "interval_seconds": INTERVAL_SECONDS[FORECASTER.interval],
            "sequence_length": settings.sequence_length,
        },
        "volatility": {
            "har_days": dict(HAR_DAYS),
            "label": VOLATILITY.label,
            "interval": VOLATILITY.interval,
            "interval_seconds": INTERVAL_SECONDS[VOLATILITY.interval],
            "periods_per_day": VOLATILITY.horizon_periods,
            "sequence_length": settings.sequence_length,
        },
    }
