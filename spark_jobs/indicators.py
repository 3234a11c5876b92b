"""The definition of each technical indicator, over one series sorted by time.

Pure numpy, no Spark: the silver job applies :func:`wilder_rsi` per series through
``applyInPandas`` and computes :func:`log_return` and :func:`sma` with the equivalent
Spark window functions (its tests check both against these definitions and TA-Lib).
Warm-up outputs are NaN. A NaN input makes NaN every output whose window holds it; for
the RSI recursion that is every later row (TA-Lib reports 0 there). Leading NaNs are
skipped, as in TA-Lib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SMA_PERIOD = 20
RSI_PERIOD = 14


@dataclass(frozen=True)
class RsiState:
    """Wilder RSI state after a row: resumes the recursion exactly on the next batch."""

    prev_close: float
    avg_gain: float
    avg_loss: float


def log_return(close: np.ndarray) -> np.ndarray:
    """``ln(close_t / close_t-1)``; NaN on the first row."""
    close = np.asarray(close, dtype=float)
    out = np.full(close.shape, np.nan)
    out[1:] = np.log(close[1:] / close[:-1])
    return out


def sma(values: np.ndarray, period: int = SMA_PERIOD) -> np.ndarray:
    """Simple moving average of the last ``period`` values; NaN for the first ``period - 1``."""
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, np.nan)
    if len(values) >= period:
        out[period - 1:] = sliding_window_view(values, period).mean(axis=1)
    return out


def wilder_rsi(
    close: np.ndarray, period: int = RSI_PERIOD, state: RsiState | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilder's RSI with its state, ``(rsi, avg_gain, avg_loss)`` per row.

    Without ``state`` the recursion is seeded like TA-Lib: leading NaNs are skipped, the
    first averages are the simple means of the first ``period`` gains and losses (so the
    first ``period`` rows are warm-up), then ``avg = (avg * (period - 1) + x) / period``.
    With ``state`` (the values after the previous batch's last row) every row continues
    that recursion, so batch-by-batch equals one pass. RSI is 0 when both averages are
    0 (flat prices), as in TA-Lib.
    """
    prices = np.asarray(close, dtype=float).tolist()
    n = len(prices)
    rsi, avg_gain, avg_loss = (np.full(n, np.nan) for _ in range(3))
    if state is None:
        start = next((i for i, price in enumerate(prices) if not math.isnan(price)), n)
        first = start + period
        if first >= n:
            return rsi, avg_gain, avg_loss
        prev, gain, loss = prices[start], 0.0, 0.0
        for price in prices[start + 1:first + 1]:
            gain, loss = _accumulate(gain, loss, price - prev)
            prev = price
        gain, loss = gain / period, loss / period
        avg_gain[first], avg_loss[first], rsi[first] = gain, loss, _rsi(gain, loss)
        first += 1
    else:
        prev, gain, loss = state.prev_close, state.avg_gain, state.avg_loss
        first = 0
    for i in range(first, n):
        price = prices[i]
        gain, loss = _accumulate(gain * (period - 1), loss * (period - 1), price - prev)
        prev = price
        gain, loss = gain / period, loss / period
        avg_gain[i], avg_loss[i], rsi[i] = gain, loss, _rsi(gain, loss)
    return rsi, avg_gain, avg_loss


def _accumulate(gain: float, loss: float, diff: float) -> tuple[float, float]:
    """Add one price change; a NaN change lands in the gains, as in TA-Lib."""
    return (gain, loss - diff) if diff < 0 else (gain + diff, loss)


def _rsi(avg_gain: float, avg_loss: float) -> float:
    total = avg_gain + avg_loss
    return 100.0 * avg_gain / total if total != 0 else 0.0
