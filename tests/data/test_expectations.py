"""The GX checkpoints on landing batches (candles, trades): exactly the failing rows are quarantined, with names."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sentinance.catalog import QUARANTINE_CANDLES, QUARANTINE_TRADES
from sentinance.expectations.candles import coerce_candles, validate_candles
from sentinance.expectations.trades import coerce_trades, validate_trades
from sentinance.pipelines.sources.simulator import simulate_candles, simulate_trades

START = pd.Timestamp("2025-03-01T00:00Z")


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return simulate_candles(START, START + pd.Timedelta(days=2), seed=3)


def test_clean_batch_passes(settings, clean):
    result = validate_candles(settings, clean)
    assert result.success
    assert len(result.valid) == len(clean) and result.quarantined.empty
    assert set(result.statistics) >= {
        "not_null_open",
        "high_gte_open",
        "low_lte_close",
        "volume_non_negative",
        "unique_candle_key",
    }
    assert not any(result.statistics.values())
    assert (settings.gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()


def test_failing_rows_are_routed_with_expectation_names(settings, clean):
    raw = clean.head(12).astype({"open": object, "volume": object, "open_time": object}).reset_index(drop=True)
    raw.loc[0, "open"] = "not-a-number"
    raw.loc[1, "open"] = str(raw.loc[1, "open"])  # a numeric string is fine
    raw.loc[2, "volume"] = None
    raw.loc[3, "volume"] = -5.0
    raw.loc[4, ["high", "low"]] = [1.0, 2.0]  # high < low, below open and close
    raw.loc[8, "low"] = raw.loc[8, "high"] * 2  # high < low, above open and close
    raw.loc[5, "exchange"] = None
    raw.loc[6, "open_time"] = "yesterday-ish"
    conflict = raw.iloc[[7]].assign(close=raw.loc[7, "close"] * 1.001)
    batch = pd.concat([raw, conflict], ignore_index=True)

    result = validate_candles(settings, batch)

    assert not result.success
    reasons = dict(
        zip(
            result.quarantined["raw_record"].map(lambda r: json.loads(r)["open"]).astype(str),
            result.quarantined["failed_expectations"],
            strict=True,
        )
    )
    failed = result.quarantined["failed_expectations"].tolist()
    assert failed.count("not_null_open") == 1 and reasons["not-a-number"] == "not_null_open"
    assert "not_null_volume" in failed and "volume_non_negative" in failed
    assert "high_gte_open,high_gte_close" in failed and "low_lte_open,low_lte_close" in failed
    assert "not_null_exchange" in failed and "not_null_open_time" in failed
    assert sum("unique_candle_key" in f for f in failed) == 2  # both sides of the conflict
    assert len(result.quarantined) == 9 and len(result.valid) == len(batch) - 9
    assert result.statistics["unique_candle_key"] == 2 and result.statistics["high_gte_open"] == 1
    assert set(result.quarantined.columns) == set(QUARANTINE_CANDLES.schema.names)
    bad_time = result.quarantined[result.quarantined["failed_expectations"] == "not_null_open_time"]
    assert json.loads(bad_time["raw_record"].iloc[0])["open_time"] == "yesterday-ish"
    assert result.valid["open"].dtype == np.float64
    assert raw.loc[1, "open_time"] in set(result.valid["open_time"])


def test_coercion_never_raises():
    raw = pd.DataFrame(
        {
            "exchange": ["binance", 7],
            "symbol": ["BTC/USDT", None],
            "interval": ["1h", "1h"],
            "open_time": ["2025-01-01T00:00:00Z", None],
            "open": ["1", "x"],
            "high": [2, np.inf],
            "low": [0.5, "?"],
            "close": [1.5, None],
            "trade_count": [3.0, 2.5],
        }
    )
    typed = coerce_candles(raw)
    assert typed["exchange"].tolist() == ["binance", "7"]
    assert typed["open_time"].iloc[0] == pd.Timestamp("2025-01-01T00:00Z") and pd.isna(typed["open_time"].iloc[1])
    assert typed["open"].iloc[0] == 1.0 and typed[["open", "high", "low", "close"]].iloc[1].isna().all()
    assert typed["volume"].isna().all()  # a missing column is added as nulls
    assert typed["trade_count"].iloc[0] == 3 and pd.isna(typed["trade_count"].iloc[1])


def test_missing_column_is_caught(settings, clean):
    result = validate_candles(settings, clean.head(5).drop(columns=["volume"]))
    assert len(result.quarantined) == 5
    assert result.quarantined["failed_expectations"].eq("not_null_volume").all()


def test_a_90_day_batch_passes_whole(settings):
    batch = simulate_candles(START, START + pd.Timedelta(days=93), seed=3)  # ~20k rows
    result = validate_candles(settings, batch)
    assert result.success and len(result.valid) == len(batch) >= 19_000


def test_off_grid_open_time_and_unknown_interval_are_caught(settings, clean):
    raw = clean.head(4).reset_index(drop=True)
    raw.loc[0, "open_time"] = raw.loc[0, "open_time"] + pd.Timedelta(minutes=30)
    raw.loc[1, "interval"] = "7m"
    result = validate_candles(settings, raw)
    assert result.quarantined["failed_expectations"].tolist() == ["open_time_on_interval_grid"] * 2
    assert len(result.valid) == 2


# -- trades --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_trades() -> pd.DataFrame:
    return simulate_trades(START, START + pd.Timedelta(hours=6), seed=3, exchanges=["kraken"], assets=["ETH", "SOL"])


def test_clean_trades_pass_in_any_arrival_order(settings, clean_trades):
    result = validate_trades(settings, clean_trades.sample(frac=1, random_state=2))
    assert result.success and result.quarantined.empty and len(result.valid) == len(clean_trades)
    assert set(result.statistics) == {
        "not_null_exchange",
        "not_null_symbol",
        "not_null_trade_id",
        "not_null_trade_time",
        "not_null_price",
        "not_null_size",
        "price_positive",
        "size_positive",
        "side_buy_or_sell",
        "unique_trade_key",
        "trade_time_monotonic_by_id",
    }
    docs = settings.gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site"
    assert any("bronze_trades" in p.name for p in (docs / "validations").iterdir())


def test_failing_trades_are_routed_with_expectation_names(settings, clean_trades):
    raw = clean_trades.head(40).astype({"price": object, "size": object, "trade_id": object}).reset_index(drop=True)
    raw.loc[0, "price"] = "n/a"  # string where a number belongs
    raw.loc[1, "price"] = str(raw.loc[1, "price"])  # a numeric string is fine
    raw.loc[2, "size"] = None
    raw.loc[3, "size"] = -0.5
    raw.loc[4, "price"] = 0.0
    raw.loc[5, "side"] = "hold"
    raw.loc[6, "trade_id"] = None
    raw.loc[7, "side"] = None  # not every API publishes the side
    raw.loc[20, "trade_time"] = raw.loc[30, "trade_time"]  # id 20 is later than ids 21..29: an inversion
    conflict = raw.iloc[[10]].assign(price=raw.loc[10, "price"] * 1.01)
    batch = pd.concat([raw, conflict], ignore_index=True)

    result = validate_trades(settings, batch)

    reasons = result.quarantined.groupby("failed_expectations").size().to_dict()
    assert reasons.pop("not_null_price") == 1 and reasons.pop("not_null_size") == 1
    assert reasons.pop("size_positive") == 1 and reasons.pop("price_positive") == 1
    assert reasons.pop("side_buy_or_sell") == 1 and reasons.pop("not_null_trade_id") == 1
    assert reasons.pop("unique_trade_key") == 2  # both sides of the conflict
    assert reasons.pop("trade_time_monotonic_by_id") == 2  # both trades of the inversion
    assert reasons == {}
    assert len(result.valid) == len(batch) - 10
    assert set(result.quarantined.columns) == set(QUARANTINE_TRADES.schema.names)
    assert (
        json.loads(
            result.quarantined.loc[result.quarantined["failed_expectations"] == "not_null_price", "raw_record"].iloc[0]
        )["price"]
        == "n/a"
    )
    assert result.valid["price"].dtype == np.float64 and result.valid["trade_id"].map(type).eq(str).all()


def test_trade_coercion_never_raises():
    typed = coerce_trades(
        pd.DataFrame(
            {
                "exchange": ["kraken", None],
                "trade_id": [123456789012.0, "x7"],
                "trade_time": [1.5, "never"],
                "price": ["1", np.inf],
            }
        )
    )
    assert typed["trade_id"].tolist() == ["123456789012", "x7"]
    assert typed["price"].iloc[0] == 1.0 and typed[["price", "size"]].iloc[1].isna().all()
    assert typed["symbol"].isna().all() and typed["side"].isna().all()
    assert pd.isna(typed["trade_time"].iloc[1])
