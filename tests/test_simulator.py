"""The offline market simulator: reproducible, window-independent, realistic enough to learn from."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from sentinance.config import ASSETS, EXCHANGES, canonical_symbol
from sentinance.pipelines import simulator
from sentinance.pipelines.simulator import ORIGIN, simulate_candles, simulate_labels

START = pd.Timestamp("2025-03-01T00:00Z")
END = START + pd.Timedelta(days=10)
KEY = ["exchange", "symbol", "open_time"]


def _key_sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(KEY, ignore_index=True)


def test_shape_and_canonical_symbols():
    df = simulate_candles(START, END, seed=7)
    assert list(df.columns) == simulator.CANDLE_COLUMNS
    assert df["interval"].eq("1h").all()
    assert str(df["open_time"].dt.tz) == "UTC"
    assert df["open_time"].min() >= START and df["open_time"].max() < END
    assert (df["open_time"] == df["open_time"].dt.floor("h")).all()
    expected = {(e, canonical_symbol(e, a)) for e in EXCHANGES for a in ASSETS}
    assert set(df[["exchange", "symbol"]].itertuples(index=False, name=None)) == expected
    assert not df.duplicated(KEY).any()
    assert df["trade_count"].dtype == np.int64 and (df["trade_count"] > 0).all()


def test_deterministic_per_seed():
    a, b = simulate_candles(START, END, seed=7), simulate_candles(START, END, seed=7)
    pd.testing.assert_frame_equal(a, b)
    other = simulate_candles(START, END, seed=8)
    assert not np.allclose(_key_sorted(a)["close"].head(50), _key_sorted(other)["close"].head(50))


def test_window_independent():
    """A candle depends on (seed, hour) only: any window is a slice of a longer one."""
    wide = simulate_candles(START - pd.Timedelta(days=20), END + pd.Timedelta(days=30), seed=7)
    narrow = simulate_candles(START, END, seed=7)
    sliced = wide[(wide["open_time"] >= START) & (wide["open_time"] < END)]
    pd.testing.assert_frame_equal(_key_sorted(narrow), _key_sorted(sliced))
    first, second = simulate_candles(START, START + pd.Timedelta(days=4), seed=7), \
        simulate_candles(START + pd.Timedelta(days=4), END, seed=7)
    pd.testing.assert_frame_equal(_key_sorted(pd.concat([first, second])), _key_sorted(narrow))


def test_ohlc_consistent_and_open_is_previous_close():
    df = _key_sorted(simulate_candles(START, END, seed=7))
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert (df[["open", "high", "low", "close", "volume"]] > 0).all().all()
    prev = df.groupby(["exchange", "symbol"])[["close", "open_time"]].shift()
    consecutive = df["open_time"] - prev["open_time"] == pd.Timedelta(hours=1)
    np.testing.assert_allclose(df.loc[consecutive, "open"], prev.loc[consecutive, "close"], rtol=1e-8)


def test_price_levels_at_origin():
    df = simulate_candles(ORIGIN, ORIGIN + pd.Timedelta(hours=3), seed=7)
    first = df[df["open_time"] == ORIGIN].assign(asset=lambda d: d["symbol"].str.split("/").str[0])
    for asset, level in {"BTC": 60_000, "ETH": 3_000, "SOL": 150}.items():
        opens = first.loc[first["asset"] == asset, "open"]
        assert ((opens / level - 1).abs() < 0.02).all(), (asset, opens.tolist())


def test_stylised_facts():
    """Hourly vol ~0.5-1%, fat tails, volatility clustering, mean-reverting cross-exchange basis."""
    df = _key_sorted(simulate_candles(START, START + pd.Timedelta(days=180), seed=7))
    returns = np.log(df["close"]).groupby([df["exchange"], df["symbol"]]).diff()
    vol = returns.groupby(df["symbol"]).std()
    assert vol.between(0.004, 0.012).all(), vol
    assert returns.groupby(df["symbol"]).apply(lambda r: r.kurt()).gt(1).all()
    assert returns.abs().groupby(df["symbol"]).apply(lambda r: r.autocorr(1)).gt(0.03).all()
    asset = df["symbol"].str.split("/").str[0]
    wide = df.assign(asset=asset).pivot_table(index=["asset", "open_time"], columns="exchange", values="close")
    basis = np.log(wide.div(wide.mean(axis=1), axis=0)) * 1e4
    assert basis.std().between(5, 25).all(), basis.std()
    assert pd.Series({c: basis[c].autocorr(1) for c in basis}).between(0.2, 0.7).all()
    hour = df["open_time"].dt.hour
    by_hour = df.groupby(hour)["volume"].median() / df.groupby(hour)["volume"].median().mean()
    assert by_hour.max() - by_hour.min() > 0.3  # intraday seasonality


def test_outages_leave_exchange_wide_gaps():
    start, end = START, START + pd.Timedelta(days=90)
    df = simulate_candles(start, end, seed=7)
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    for exchange in EXCHANGES:
        present = df[df["exchange"] == exchange].groupby("symbol")["open_time"].apply(set)
        missing = {symbol: set(hours) - times for symbol, times in present.items()}
        gaps = next(iter(missing.values()))
        assert all(m == gaps for m in missing.values()), "an outage takes out every series of the exchange"
        assert 1 <= len(gaps) <= 60, (exchange, len(gaps))


def test_labels_match_a_visible_pump_and_dump():
    labels = simulate_labels(START, START + pd.Timedelta(days=240), seed=7)
    assert len(labels) >= 3 and labels["episode_id"].is_unique
    assert labels["kind"].eq("pump_and_dump").all()
    assert (labels["end_time"] > labels["start_time"]).all()
    assert labels.groupby(labels["symbol"].str[:3]).size().min() >= 1
    for label in labels.itertuples():
        window = simulate_candles(label.start_time - pd.Timedelta(hours=48), label.end_time + pd.Timedelta(hours=1),
                                  seed=7)
        asset = window[window["symbol"].str[:3] == label.symbol[:3]]
        close = asset.pivot_table(index="open_time", columns="exchange", values="close")
        others = close.drop(columns=label.exchange).mean(axis=1)
        premium = np.log(close[label.exchange] / others)  # market moves cancel out
        volume = asset[asset["exchange"] == label.exchange].set_index("open_time")["volume"]
        during = slice(label.start_time, label.end_time)
        if volume[during].size < 3 or label.end_time not in volume.index:  # the venue was down
            continue
        assert premium[during].max() > 0.01, label.episode_id
        assert premium[during].iloc[-1] < 0.005, "the pump collapses"
        assert volume[during].mean() > 2 * volume[: label.start_time - pd.Timedelta(hours=1)].median()


def test_labels_window_consistent():
    wide = simulate_labels(START, START + pd.Timedelta(days=240), seed=7)
    narrow = simulate_labels(START + pd.Timedelta(days=60), START + pd.Timedelta(days=120), seed=7)
    assert set(narrow["episode_id"]) <= set(wide["episode_id"])
    overlaps = wide[(wide["end_time"] >= START + pd.Timedelta(days=60))
                    & (wide["start_time"] < START + pd.Timedelta(days=120))]
    assert set(narrow["episode_id"]) == set(overlaps["episode_id"])


def test_rejects_naive_or_unaligned_bounds():
    with pytest.raises(ValueError, match="timezone-aware"):
        simulate_candles(datetime(2025, 1, 1), datetime(2025, 1, 2), seed=7)
    with pytest.raises(ValueError, match="aligned"):
        simulate_candles(datetime(2025, 1, 1, 0, 30, tzinfo=timezone.utc), END, seed=7)
    assert simulate_candles(END, END, seed=7).empty


def test_full_history_is_fast():
    simulator._efficient_path.cache_clear()
    began = time.perf_counter()
    df = simulate_candles(ORIGIN, pd.Timestamp("2026-11-01T00:00Z"), seed=11)
    assert time.perf_counter() - began < 2.0
    assert len(df) > 200_000
