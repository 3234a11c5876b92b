"""Declared schemas of the lake's tables: one place for every layer's contract."""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

# keys of a candle series and of one candle
SERIES_KEYS = ["exchange", "symbol", "interval"]
CANDLE_KEYS = [*SERIES_KEYS, "open_time"]

LINEAGE_FIELDS = [
    pa.field("source", pa.string(), nullable=False),        # simulator | live | replay
    pa.field("ingested_at", TS, nullable=False),
    pa.field("flow_run_id", pa.string(), nullable=True),
    pa.field("payload_hash", pa.string(), nullable=False),  # sha256 of the canonical raw record
]

BRONZE_CANDLES = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),     # canonical, quote kept: BTC/USDT
        pa.field("interval", pa.string(), nullable=False),   # 1h
        pa.field("open_time", TS, nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),                    # base-asset units
        pa.field("trade_count", pa.int64()),
        *LINEAGE_FIELDS,
    ]
)

QUARANTINE_CANDLES = pa.schema(
    [
        pa.field("exchange", pa.string()),
        pa.field("symbol", pa.string()),
        pa.field("interval", pa.string()),
        pa.field("open_time", TS),
        pa.field("failed_expectations", pa.string(), nullable=False),  # comma-separated names
        pa.field("raw_record", pa.string(), nullable=False),           # the record as JSON
        pa.field("quarantined_at", TS, nullable=False),
        pa.field("source", pa.string()),
        pa.field("flow_run_id", pa.string()),
    ]
)

SILVER_CANDLE_FEATURES = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("interval", pa.string(), nullable=False),
        pa.field("open_time", TS, nullable=False),
        pa.field("asset", pa.string(), nullable=False),      # base asset: BTC
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),
        pa.field("log_return", pa.float64()),                # ln(close_t / close_t-1); null on the first row
        pa.field("sma_20", pa.float64()),                    # null during warm-up
        pa.field("rsi_14", pa.float64()),                    # Wilder; null during warm-up
        pa.field("rsi_avg_gain", pa.float64()),              # Wilder state, lets increments resume exactly
        pa.field("rsi_avg_loss", pa.float64()),
        pa.field("basis_bps", pa.float64()),                 # (close / cross-exchange mean close - 1) * 1e4
        pa.field("is_warmup", pa.bool_(), nullable=False),
        pa.field("computed_at", TS, nullable=False),
    ]
)

PREDICTIONS = pa.schema(
    [
        pa.field("instrument_id", pa.string(), nullable=False),
        pa.field("feature_time", TS, nullable=False),        # event time of the features used
        pa.field("target_time", TS, nullable=False),         # the period being forecast
        pa.field("predicted_log_return", pa.float64(), nullable=False),
        pa.field("predicted_close", pa.float64()),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("model_alias", pa.string(), nullable=False),
        pa.field("scored_at", TS, nullable=False),
    ]
)
PREDICTION_KEYS = ["instrument_id", "target_time", "model_version"]
