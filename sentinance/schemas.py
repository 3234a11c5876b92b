"""Declared schemas of the lake's tables: one place for every layer's contract."""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

# keys of a candle series and of one candle
SERIES_KEYS = ["exchange", "symbol", "interval"]
CANDLE_KEYS = [*SERIES_KEYS, "open_time"]
# one trade: the exchange's trade id is unique per instrument
TRADE_KEYS = ["exchange", "symbol", "trade_id"]

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

# a quarantined record: its key columns as parsed (nullable), then why and what was received
QUARANTINE_FIELDS = [
    pa.field("failed_expectations", pa.string(), nullable=False),  # comma-separated names
    pa.field("raw_record", pa.string(), nullable=False),           # the record as JSON
    pa.field("quarantined_at", TS, nullable=False),
    pa.field("source", pa.string()),
    pa.field("flow_run_id", pa.string()),
]

QUARANTINE_CANDLES = pa.schema(
    [
        pa.field("exchange", pa.string()),
        pa.field("symbol", pa.string()),
        pa.field("interval", pa.string()),
        pa.field("open_time", TS),
        *QUARANTINE_FIELDS,
    ]
)

BRONZE_TRADES = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),     # canonical, quote kept: BTC/USDT
        pa.field("trade_id", pa.string(), nullable=False),   # the exchange's id (as text), ordered in time
        pa.field("trade_time", TS, nullable=False),
        pa.field("price", pa.float64()),                     # quote units per base unit
        pa.field("size", pa.float64()),                      # base-asset units
        pa.field("side", pa.string()),                       # taker side: buy | sell (null if not published)
        *LINEAGE_FIELDS,
    ]
)

QUARANTINE_TRADES = pa.schema(
    [
        pa.field("exchange", pa.string()),
        pa.field("symbol", pa.string()),
        pa.field("trade_id", pa.string()),
        pa.field("trade_time", TS),
        *QUARANTINE_FIELDS,
    ]
)

# missing intervals found after a landing: one row per run of consecutive missing candles (a log)
GAP_REPORT = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("interval", pa.string(), nullable=False),
        pa.field("gap_start", TS, nullable=False),           # open_time of the first missing candle
        pa.field("gap_end", TS, nullable=False),             # open_time of the last missing candle
        pa.field("missing", pa.int64(), nullable=False),     # candles missing in the run
        pa.field("window_start", TS, nullable=False),        # the checked window [start, end)
        pa.field("window_end", TS, nullable=False),
        pa.field("checked_at", TS, nullable=False),
        pa.field("flow_run_id", pa.string()),
    ]
)

# ground truth of the simulator's injected manipulation, for scoring detectors (never in bronze/silver)
SIMULATOR_LABELS = pa.schema(
    [
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),       # pump_and_dump | wash_trading
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("start_time", TS, nullable=False),          # open_time of the first affected candle
        pa.field("end_time", TS, nullable=False),            # open_time of the last affected candle
    ]
)
SIMULATOR_TRADE_LABELS = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("trade_id", pa.string(), nullable=False),   # a wash trade in bronze/trades
        pa.field("episode_id", pa.string(), nullable=False), # its episode in simulator_labels
        pa.field("kind", pa.string(), nullable=False),       # wash_trading
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
        pa.field("basis_bps", pa.float64()),                 # (close / consolidated VWAP price - 1) * 1e4
        pa.field("is_warmup", pa.bool_(), nullable=False),   # some feature still lacks history (LOOKBACK rows)
        pa.field("computed_at", TS, nullable=False),
        # added later, appended (as the warehouse's additive migration appends them); docs/features.md
        pa.field("gap_bars", pa.int64()),                    # intervals missing before this candle; null on the first
        pa.field("log_return_4", pa.float64()),
        pa.field("log_return_24", pa.float64()),
        pa.field("simple_return_1", pa.float64()),           # close_t / close_t-h - 1
        pa.field("simple_return_4", pa.float64()),
        pa.field("simple_return_24", pa.float64()),
        pa.field("ema_20", pa.float64()),                    # also the EMA's state
        pa.field("macd", pa.float64()),                      # MACD(12, 26, 9) line
        pa.field("macd_signal", pa.float64()),               # also state
        pa.field("macd_hist", pa.float64()),
        pa.field("macd_ema_fast", pa.float64()),             # state: MACD's EMA(12) and EMA(26) of close
        pa.field("macd_ema_slow", pa.float64()),
        pa.field("bb_upper", pa.float64()),                  # Bollinger(20, 2); the middle band is sma_20
        pa.field("bb_lower", pa.float64()),
        pa.field("bb_pct_b", pa.float64()),                  # null when the bands coincide
        pa.field("bb_bandwidth", pa.float64()),
        pa.field("atr_14", pa.float64()),                    # Wilder; also state
        pa.field("vwap_24", pa.float64()),                   # rolling VWAP of typical price; null if nothing traded
        pa.field("realized_vol_24", pa.float64()),           # annualised, sqrt(24 * 365) for 1h candles
        pa.field("realized_vol_168", pa.float64()),
        pa.field("volume_zscore_24", pa.float64()),          # null when the window's volume is constant
        pa.field("obv", pa.float64()),                       # also state
    ]
)

# per (asset, interval, open_time) across exchanges
CROSS_EXCHANGE_KEYS = ["asset", "interval", "open_time"]
SILVER_CROSS_EXCHANGE_FEATURES = pa.schema(
    [
        pa.field("asset", pa.string(), nullable=False),
        pa.field("interval", pa.string(), nullable=False),
        pa.field("open_time", TS, nullable=False),
        pa.field("exchange_count", pa.int64(), nullable=False),
        pa.field("total_volume", pa.float64()),
        pa.field("consolidated_vwap", pa.float64()),         # sum(close * volume) / sum(volume); null if 0 volume
        pa.field("spread_bps", pa.float64()),                # (max close - min close) / consolidated_vwap * 1e4
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

# market-manipulation detections (spark_jobs/detectors.py), one row per flagged episode
ANOMALIES = pa.schema(
    [
        pa.field("anomaly_id", pa.string(), nullable=False),   # detector:exchange:symbol:start_time
        pa.field("detector", pa.string(), nullable=False),     # pump_and_dump | wash_trading
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("start_time", TS, nullable=False),            # open_time of the first flagged candle
        pa.field("end_time", TS, nullable=False),              # open_time of the last flagged candle
        pa.field("score", pa.float64(), nullable=False),       # detector strength, higher is stronger
        pa.field("signals", pa.string(), nullable=False),      # comma-separated signals that fired
        pa.field("evidence", pa.string(), nullable=False),     # the measured statistics as JSON
    ]
)
ANOMALY_KEYS = ["anomaly_id"]
