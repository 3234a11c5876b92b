"""The indicator definitions against TA-Lib, and their edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from sentinance.spark_jobs.indicators import RsiState, log_return, sma, wilder_rsi

RTOL = 1e-9


@pytest.fixture(scope="module")
def close() -> np.ndarray:
    """A geometric random walk around BTC prices."""
    rng = np.random.default_rng(42)
    return 60_000 * np.exp(np.cumsum(rng.normal(0, 0.006, 2_000)))


@pytest.mark.parametrize("period", [2, 14, 30])
def test_wilder_rsi_equals_talib(close: np.ndarray, period: int) -> None:
    rsi, avg_gain, avg_loss = wilder_rsi(close, period)
    np.testing.assert_allclose(rsi, talib.RSI(close, period), rtol=RTOL, equal_nan=True)
    assert np.isnan(rsi[:period]).all() and not np.isnan(rsi[period:]).any()
    np.testing.assert_allclose(rsi[period:], 100 * avg_gain[period:] / (avg_gain[period:] + avg_loss[period:]))


@pytest.mark.parametrize("period", [1, 20, 50])
def test_sma_equals_talib(close: np.ndarray, period: int) -> None:
    np.testing.assert_allclose(sma(close, period), talib.SMA(close, period), rtol=RTOL, equal_nan=True)


def test_log_return(close: np.ndarray) -> None:
    returns = log_return(close)
    assert np.isnan(returns[0])
    np.testing.assert_allclose(close[0] * np.exp(np.cumsum(returns[1:])), close[1:], rtol=RTOL)


def test_resuming_from_state_equals_one_pass(close: np.ndarray) -> None:
    whole = wilder_rsi(close)
    for cut in (15, 16, 500, len(close) - 1):
        head = wilder_rsi(close[:cut])
        state = RsiState(close[cut - 1], head[1][-1], head[2][-1])
        tail = wilder_rsi(close[cut:], state=state)
        for one_pass, head_part, tail_part in zip(whole, head, tail):
            np.testing.assert_array_equal(one_pass, np.concatenate([head_part, tail_part]))


def test_flat_prices() -> None:
    flat = np.full(40, 100.0)
    rsi, avg_gain, avg_loss = wilder_rsi(flat)
    np.testing.assert_array_equal(rsi, talib.RSI(flat, 14))  # 0 after warm-up, as in TA-Lib
    assert (avg_gain[14:] == 0).all() and (avg_loss[14:] == 0).all()
    np.testing.assert_array_equal(sma(flat, 20)[19:], 100.0)
    np.testing.assert_array_equal(log_return(flat)[1:], 0.0)


@pytest.mark.parametrize("n", [0, 1, 14])
def test_too_short_series_is_all_warmup(n: int) -> None:
    prices = np.linspace(100, 101, n)
    for values in (*wilder_rsi(prices), sma(prices, 20)):
        assert len(values) == n and np.isnan(values).all()
    assert len(log_return(prices)) == n and np.isnan(log_return(prices)[:1]).all()


def test_nan_input(close: np.ndarray) -> None:
    prices = close[:200].copy()
    prices[:3] = np.nan  # leading NaNs are skipped, as in TA-Lib
    np.testing.assert_allclose(wilder_rsi(prices)[0], talib.RSI(prices, 14), rtol=RTOL, equal_nan=True)
    np.testing.assert_allclose(sma(prices, 20), talib.SMA(prices, 20), rtol=RTOL, equal_nan=True)

    prices[100] = np.nan  # a later NaN: NaN from there on (TA-Lib reports 0)
    rsi = wilder_rsi(prices)[0]
    np.testing.assert_allclose(rsi[:100], talib.RSI(prices, 14)[:100], rtol=RTOL, equal_nan=True)
    assert np.isnan(rsi[100:]).all()
    window_has_nan = np.isnan(sma(prices, 20))
    assert window_has_nan[100:120].all() and not window_has_nan[120:].any()
