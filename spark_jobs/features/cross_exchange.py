"""Cross-exchange features: per (asset, interval, open_time) over every exchange's candle.

- ``consolidated_vwap``: the exchanges' closes weighted by their volumes,
  ``sum(close * volume) / sum(volume)``; null when nothing traded anywhere that interval;
- ``spread_bps``: ``(max close - min close) / consolidated_vwap * 1e4``;
- ``exchange_count``, ``total_volume``;
- per candle, ``basis_bps``: ``(close / consolidated_vwap - 1) * 1e4``, the exchange's
  deviation from the consolidated price (0 with one exchange).

USDT is treated as USD (binance quotes USDT, coinbase and kraken USD), so these include
the USDT/USD spread.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sentinance.catalog import CROSS_EXCHANGE_KEYS


def cross_exchange_features(candles: DataFrame) -> DataFrame:
    """One row per ``CROSS_EXCHANGE_KEYS`` of ``candles`` (``asset, interval, open_time,
    exchange, close, volume``; every exchange's candles of those periods)."""
    volume = F.col("total_volume")
    consolidated = F.when(volume > 0, F.col("notional") / volume)
    return (
        candles.groupBy(*CROSS_EXCHANGE_KEYS)
        .agg(
            F.size(F.collect_set("exchange")).cast("long").alias("exchange_count"),
            F.sum("volume").alias("total_volume"),
            F.sum(F.col("close") * F.col("volume")).alias("notional"),
            F.max("close").alias("max_close"),
            F.min("close").alias("min_close"),
        )
        .select(
            *CROSS_EXCHANGE_KEYS,
            "exchange_count",
            "total_volume",
            consolidated.alias("consolidated_vwap"),
            ((F.col("max_close") - F.col("min_close")) / consolidated * 1e4).alias("spread_bps"),
        )
    )


def with_basis(candles: DataFrame, cross: DataFrame) -> DataFrame:
    """``candles`` with ``basis_bps`` against their period's ``consolidated_vwap`` in ``cross``."""
    prices = cross.select(*CROSS_EXCHANGE_KEYS, "consolidated_vwap")
    basis = (F.col("close") / F.col("consolidated_vwap") - 1) * 1e4
    return candles.join(prices, CROSS_EXCHANGE_KEYS, "left").withColumn("basis_bps", basis).drop("consolidated_vwap")
