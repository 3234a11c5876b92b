"""The ``bronze_candles`` contract: Great Expectations suite for a landing batch of raw candles.

Expectations: not null (key, prices, volume), high >= open/close, low <= open/close, volume >= 0,
unique (exchange, symbol, interval, open_time), and ``open_time_on_interval_grid``: every
open_time is a multiple of its interval, so each series' time axis is one monotonic grid. Late
and out-of-order candles are not errors: bronze sorts and merges them by key.
"""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from sentinance.catalog import CANDLE_COLUMNS, CANDLE_KEYS, OPTIONAL_CANDLE_COLUMNS, QUARANTINE_CANDLES
from sentinance.expectations.checkpoint import Contract, Validation, check, not_null, numbers, typed, validate
from sentinance.settings import INTERVAL_SECONDS, Settings

TEXT_COLUMNS = ["exchange", "symbol", "interval"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
NUMERIC_COLUMNS = [*PRICE_COLUMNS, "volume"]
MARKET_COLUMNS = [*CANDLE_COLUMNS, *OPTIONAL_CANDLE_COLUMNS]  # what a source sends: every field is checked and hashed


def _expectations() -> list[gxe.Expectation]:
    pairs = [
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=a,
            column_B=b,
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            meta={"name": name},
        )
        for a, b, name in [
            ("high", "open", "high_gte_open"),
            ("high", "close", "high_gte_close"),
            ("open", "low", "low_lte_open"),
            ("close", "low", "low_lte_close"),
        ]
    ]
    return [
        *not_null([*CANDLE_KEYS, *NUMERIC_COLUMNS]),
        *pairs,
        gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0, meta={"name": "volume_non_negative"}),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=CANDLE_KEYS, meta={"name": "unique_candle_key"}),
        check("open_time_on_interval_grid"),
    ]


def coerce_candles(df: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of a raw batch: unparseable values become null (for not-null to catch), never errors.

    Missing market columns are added as nulls; non-integral or infinite numbers become null.
    """
    out = typed(
        df,
        text_columns=TEXT_COLUMNS,
        time_columns=["open_time"],
        number_columns=[*NUMERIC_COLUMNS, *OPTIONAL_CANDLE_COLUMNS],
    )
    counts = numbers(out.get("trade_count"), out.index)
    out["trade_count"] = counts.where(counts == counts.round()).astype("Int64")
    return out


def _grid(batch: pd.DataFrame) -> dict[str, pd.Series]:
    """open_time is a multiple of a known interval (None where interval or open_time is missing)."""
    step = batch["interval"].map(INTERVAL_SECONDS)
    epoch = (batch["open_time"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    aligned = (epoch % step).eq(0) & step.notna()
    return {"open_time_on_interval_grid": aligned.where(batch["interval"].notna() & epoch.notna(), None)}


CANDLES = Contract(
    suite="bronze_candles",
    asset="candles",
    expectations=_expectations,
    coerce=coerce_candles,
    columns=MARKET_COLUMNS,
    identity=CANDLE_KEYS,
    quarantine=QUARANTINE_CANDLES.schema,
    checks=_grid,
)


def validate_candles(settings: Settings, df: pd.DataFrame) -> Validation:
    """Run the ``bronze_candles`` checkpoint and split the batch into valid and quarantined rows."""
    return validate(settings, CANDLES, df)
