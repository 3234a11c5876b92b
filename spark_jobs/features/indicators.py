"""The definition of each technical indicator, over one series sorted by time.

Pure numpy/pandas/scipy, no Spark: the silver job applies these per series (see
:mod:`.series_features`), and nothing else re-implements them. Conventions:

- Rows are candles, not hours: windows and recursions count available rows (the gap
  policy is the caller's, see ``docs/features.md``).
- Warm-up outputs are NaN; each function's docstring states its warm-up length.
- Leading NaNs are skipped, as in TA-Lib (the series starts at the first row where every
  input is a number). A later NaN makes NaN every output whose window holds it, and every
  later output of a recursion.
- Recursions (EMA, Wilder smoothing, MACD, ATR, OBV) run exactly over the whole series
  (pandas' ``ewm(adjust=False)`` is the recursion itself, not a truncated window), seeded
  as TA-Lib seeds them. Given ``state`` (the values after the previous batch's
  last row) they continue that recursion: batch by batch equals one pass, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RsiState:
    """Wilder RSI state after a row."""

    prev_close: float
    avg_gain: float
    avg_loss: float


@dataclass(frozen=True)
class MacdState:
    """MACD state after a row: both EMAs of close and the signal EMA of their difference."""

    ema_fast: float
    ema_slow: float
    signal: float


@dataclass(frozen=True)
class AtrState:
    """ATR state after a row."""

    prev_close: float
    atr: float


@dataclass(frozen=True)
class ObvState:
    """OBV state after a row."""

    prev_close: float
    obv: float


class Macd(NamedTuple):
    macd: np.ndarray
    signal: np.ndarray
    hist: np.ndarray
    ema_fast: np.ndarray  # state: defined from the slow EMA's seed row on
    ema_slow: np.ndarray


class Bollinger(NamedTuple):
    upper: np.ndarray
    middle: np.ndarray
    lower: np.ndarray
    pct_b: np.ndarray  # (close - lower) / (upper - lower); NaN when the bands coincide
    bandwidth: np.ndarray  # (upper - lower) / middle


def first_valid(*series: np.ndarray) -> int:
    """The first row where every input is a number (``len`` if none): where a series starts."""
    valid = np.logical_and.reduce([~np.isnan(s) for s in series])
    return int(np.argmax(valid)) if valid.any() else len(valid)


def simple_return(close: np.ndarray, horizon: int = 1) -> np.ndarray:
    """``close_t / close_t-h - 1``; NaN on the first ``horizon`` rows."""
    close = _floats(close)
    out = np.full(close.shape, np.nan)
    out[horizon:] = close[horizon:] / close[:-horizon] - 1
    return out


def log_return(close: np.ndarray, horizon: int = 1) -> np.ndarray:
    """``ln(close_t / close_t-h)``; NaN on the first ``horizon`` rows."""
    close = _floats(close)
    out = np.full(close.shape, np.nan)
    out[horizon:] = np.log(close[horizon:] / close[:-horizon])
    return out


def sma(values: np.ndarray, period: int) -> np.ndarray:
    """Mean of the last ``period`` values; NaN for the first ``period - 1`` rows."""
    return _rolling(values, period).mean().to_numpy()


def ema(values: np.ndarray, period: int, state: float | None = None) -> np.ndarray:
    """Exponential moving average, ``k = 2 / (period + 1)``, seeded with the SMA of the first
    ``period`` values (TA-Lib's default): NaN for the first ``period - 1`` rows. ``state`` is
    the EMA of the previous row."""
    values = _floats(values)
    if state is not None:
        return _smooth(values, 2 / (period + 1), state)
    out = np.full(values.shape, np.nan)
    start = first_valid(values)
    out[start:] = _seeded(values[start:], period, 2 / (period + 1))
    return out


def wilder_rsi(
    close: np.ndarray, period: int, state: RsiState | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilder's RSI with its state, ``(rsi, avg_gain, avg_loss)`` per row.

    The averages are seeded with the simple means of the first ``period`` gains and losses
    (so the first ``period`` rows are warm-up), then ``avg += (x - avg) / period``. RSI is 0
    when both averages are 0 (flat prices), as in TA-Lib.
    """
    close = _floats(close)
    n = len(close)
    avg_gain, avg_loss = np.full(n, np.nan), np.full(n, np.nan)
    if state is None:
        start = first_valid(close)
        diff = np.diff(close[start:])
        gain, loss = np.maximum(diff, 0.0), np.maximum(-diff, 0.0)
        avg_gain[start + 1 :] = _seeded(gain, period, 1 / period)
        avg_loss[start + 1 :] = _seeded(loss, period, 1 / period)
    else:
        diff = np.diff(close, prepend=state.prev_close)
        avg_gain[:] = _smooth(np.maximum(diff, 0.0), 1 / period, state.avg_gain)
        avg_loss[:] = _smooth(np.maximum(-diff, 0.0), 1 / period, state.avg_loss)
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total == 0, 0.0, 100 * avg_gain / total)
    return rsi, avg_gain, avg_loss


def macd(close: np.ndarray, fast: int, slow: int, signal: int, state: MacdState | None = None) -> Macd:
    """MACD line (fast EMA - slow EMA), its signal EMA and the histogram, as TA-Lib aligns them.

    Both EMAs are seeded on the slow EMA's first row (``slow - 1``): the fast one with the
    SMA of the ``fast`` closes ending there, not of the first ``fast`` closes. The signal
    is an EMA of the line seeded with the SMA of its first ``signal`` values, and all three
    outputs start with it: NaN for the first ``slow + signal - 2`` rows.
    """
    close = _floats(close)
    k_fast, k_slow, k_signal = 2 / (fast + 1), 2 / (slow + 1), 2 / (signal + 1)
    if state is not None:
        ema_fast = _smooth(close, k_fast, state.ema_fast)
        ema_slow = _smooth(close, k_slow, state.ema_slow)
        line = ema_fast - ema_slow
        sig = _smooth(line, k_signal, state.signal)
        return Macd(line, sig, line - sig, ema_fast, ema_slow)
    n = len(close)
    ema_fast, ema_slow, sig = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    seed = first_valid(close) + slow - 1
    if seed < n:
        ema_fast[seed:] = _smooth(close[seed + 1 :], k_fast, close[seed - fast + 1 : seed + 1].mean(), seed_first=True)
        ema_slow[seed:] = _smooth(close[seed + 1 :], k_slow, close[seed - slow + 1 : seed + 1].mean(), seed_first=True)
        sig[seed:] = _seeded(ema_fast[seed:] - ema_slow[seed:], signal, k_signal)
    line = np.where(np.isnan(sig), np.nan, ema_fast - ema_slow)
    return Macd(line, sig, line - sig, ema_fast, ema_slow)


def bollinger(close: np.ndarray, period: int, width: float) -> Bollinger:
    """Bands at ``width`` population standard deviations (as TA-Lib) around the SMA;
    NaN for the first ``period - 1`` rows."""
    window = _rolling(close, period)
    middle, deviation = window.mean().to_numpy(), window.std(ddof=0).to_numpy()
    upper, lower = middle + width * deviation, middle - width * deviation
    spread = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        pct_b = np.where(spread > 0, (_floats(close) - lower) / spread, np.nan)
        bandwidth = np.where(middle != 0, spread / middle, np.nan)
    return Bollinger(upper, middle, lower, pct_b, bandwidth)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray, prev_close: float = np.nan) -> np.ndarray:
    """``max(high - low, |high - prev close|, |low - prev close|)``; NaN on a series' first row."""
    high, low, close = _floats(high), _floats(low), _floats(close)
    prev = np.concatenate([[prev_close], close[:-1]])
    return np.maximum.reduce([high - low, np.abs(high - prev), np.abs(low - prev)])


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int, state: AtrState | None = None) -> np.ndarray:
    """Wilder's average true range, seeded with the mean of the first ``period`` true ranges
    (as TA-Lib): NaN for the first ``period`` rows."""
    if state is not None:
        return _smooth(true_range(high, low, close, state.prev_close), 1 / period, state.atr)
    n = len(close)
    out = np.full(n, np.nan)
    start = first_valid(high, low, close)
    ranges = true_range(high[start:], low[start:], close[start:])
    out[start + 1 :] = _seeded(ranges[1:], period, 1 / period)
    return out


def obv(close: np.ndarray, volume: np.ndarray, state: ObvState | None = None) -> np.ndarray:
    """On-balance volume: starts at the first row's volume (as TA-Lib), then adds the volume
    of an up close and subtracts that of a down close. No warm-up."""
    close, volume = _floats(close), _floats(volume)
    if state is not None:
        signed = np.sign(np.diff(close, prepend=state.prev_close)) * volume
        return np.cumsum(np.concatenate([[state.obv], signed]))[1:]
    out = np.full(len(close), np.nan)
    start = first_valid(close, volume)
    if start < len(close):
        signed = np.sign(np.diff(close[start:])) * volume[start + 1 :]
        out[start:] = np.cumsum(np.concatenate([volume[start : start + 1], signed]))
    return out


def rolling_vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, period: int) -> np.ndarray:
    """Volume-weighted typical price ``(high + low + close) / 3`` over the last ``period``
    candles; NaN for the first ``period - 1`` rows and where the window traded nothing."""
    typical = (_floats(high) + _floats(low) + _floats(close)) / 3
    notional = _rolling(typical * _floats(volume), period).sum().to_numpy()
    traded = _rolling(volume, period).sum().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(traded > 0, notional / traded, np.nan)


def realized_volatility(close: np.ndarray, window: int, periods_per_year: float) -> np.ndarray:
    """Close-to-close volatility: the sample standard deviation of the last ``window`` log
    returns, times ``sqrt(periods_per_year)``; NaN for the first ``window`` rows."""
    deviation = _rolling(log_return(close), window).std(ddof=1).to_numpy()
    return deviation * np.sqrt(periods_per_year)


def zscore(values: np.ndarray, period: int) -> np.ndarray:
    """``(x - mean) / sample std`` over the last ``period`` values (the row's own included);
    NaN for the first ``period - 1`` rows and where the window is constant."""
    window = _rolling(values, period)
    mean, deviation = window.mean().to_numpy(), window.std(ddof=1).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(deviation > 0, (_floats(values) - mean) / deviation, np.nan)


def _floats(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _rolling(values: np.ndarray, period: int) -> pd.api.typing.Rolling:
    """A full-window rolling view (pandas' O(n) compensated add/remove kernels)."""
    return pd.Series(_floats(values)).rolling(period, min_periods=period)


def _smooth(values: np.ndarray, alpha: float, previous: float, *, seed_first: bool = False) -> np.ndarray:
    """The recursion ``y_t = alpha * x_t + (1 - alpha) * y_t-1`` from ``y_-1 = previous``,
    NaN from the first NaN input on.

    Each step depends only on ``y_t-1`` and ``x_t``, so passing the last value of one call
    as ``previous`` to the next gives the same bits as one call. With ``seed_first`` the
    output starts with ``previous`` itself.
    """
    inputs = np.concatenate([[previous], _floats(values)])
    smoothed = pd.Series(inputs).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    smoothed[np.logical_or.accumulate(np.isnan(inputs))] = np.nan  # ewm would step over a NaN
    return smoothed if seed_first else smoothed[1:]


def _seeded(values: np.ndarray, period: int, alpha: float) -> np.ndarray:
    """The recursion seeded with the mean of the first ``period`` values, which is the output
    at row ``period - 1``; NaN before it (all NaN if the series is shorter)."""
    out = np.full(len(values), np.nan)
    if len(values) >= period:
        out[period - 1 :] = _smooth(values[period:], alpha, values[:period].mean(), seed_first=True)
    return out
