"""The ``bronze_trades`` contract: Great Expectations suite for a landing batch of raw trades.

Expectations: not null (exchange, symbol, trade_id, trade_time, price, size), price > 0,
size > 0, side in {buy, sell} (null allowed: not every API publishes it), unique
(exchange, symbol, trade_id), and ``trade_time_monotonic_by_id``: within a series, ordered by
trade id (numerically when ids are digits), times never decrease: exchange ids increase with
time. Both trades of an inversion are quarantined (which one is wrong is unknowable); a batch's
arrival order does not matter.
"""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from sentinance.catalog import QUARANTINE_TRADES, TRADE_COLUMNS, TRADE_KEYS
from sentinance.expectations.checkpoint import Contract, Validation, check, not_null, typed, validate
from sentinance.settings import Settings

TEXT_COLUMNS = ["exchange", "symbol", "trade_id", "side"]
NUMERIC_COLUMNS = ["price", "size"]
MARKET_COLUMNS = TRADE_COLUMNS  # what a source sends: every field is checked and hashed
SIDES = ["buy", "sell"]


def _expectations() -> list[gxe.Expectation]:
    return [
        *not_null([*TRADE_KEYS, "trade_time", *NUMERIC_COLUMNS]),
        *(
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True, meta={"name": f"{c}_positive"})
            for c in NUMERIC_COLUMNS
        ),
        gxe.ExpectColumnValuesToBeInSet(column="side", value_set=SIDES, meta={"name": "side_buy_or_sell"}),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=TRADE_KEYS, meta={"name": "unique_trade_key"}),
        check("trade_time_monotonic_by_id"),
    ]


def coerce_trades(df: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of a raw batch: unparseable values become null (for not-null to catch), never errors."""
    return typed(df, text_columns=TEXT_COLUMNS, time_columns=["trade_time"], number_columns=NUMERIC_COLUMNS)


def _monotonic(batch: pd.DataFrame) -> dict[str, pd.Series]:
    """Per series in trade-id order, False for both trades of an inversion (the later id being older).

    None where the key or time is missing (not-null reports those) and for a series of one trade.
    """
    ids = batch["trade_id"]
    keyed = batch.assign(_digits=ids.str.fullmatch(r"\d+", na=False), _length=ids.str.len())
    usable = keyed[TRADE_KEYS].notna().all(axis=1) & keyed["trade_time"].notna()
    ordered = keyed[usable].sort_values(["exchange", "symbol", "_digits", "_length", "trade_id"], kind="stable")
    times = ordered.groupby(["exchange", "symbol"])["trade_time"]
    previous, following = times.shift(1), times.shift(-1)
    inverted = (ordered["trade_time"] < previous) | (ordered["trade_time"] > following)
    verdict = (~inverted).where(previous.notna() | following.notna(), None)
    return {"trade_time_monotonic_by_id": verdict.reindex(batch.index)}


TRADES = Contract(
    suite="bronze_trades",
    asset="trades",
    expectations=_expectations,
    coerce=coerce_trades,
    columns=MARKET_COLUMNS,
    identity=[*TRADE_KEYS, "trade_time"],
    quarantine=QUARANTINE_TRADES.schema,
    checks=_monotonic,
)


def validate_trades(settings: Settings, df: pd.DataFrame) -> Validation:
    """Run the ``bronze_trades`` checkpoint and split the batch into valid and quarantined rows."""
    return validate(settings, TRADES, df)
