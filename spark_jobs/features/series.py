"""The silver feature set of one candle series: which indicators, their parameters, warm-up and state.

:func:`series_features` turns a time-sorted run of one series' candles into its silver
feature columns with the definitions of :mod:`.indicators` (pandas, no Spark: the job
calls it per series through ``applyInPandas``). It is written for the job's increments:
the rows from ``first_new`` on are computed, the rows before them are the
:data:`LOOKBACK` earlier candles the windows need, and ``state`` (the recursions' values
after the last earlier row, :class:`SeriesState`) resumes every recursion exactly.
Without ``state`` the rows must be the whole series, and the recursions start over.

Gaps: rows are candles. A missing interval is not filled; every indicator runs over the
available candles (as TA-Lib over the series without the missing rows), and
``gap_bars`` counts the intervals missing right before each candle. See ``docs/features.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from sentinance.settings import interval_seconds
from sentinance.spark_jobs.features.indicators import (
    AtrState,
    MacdState,
    ObvState,
    RsiState,
    atr,
    bollinger,
    ema,
    log_return,
    macd,
    obv,
    realized_volatility,
    rolling_vwap,
    simple_return,
    sma,
    wilder_rsi,
    zscore,
)

RETURN_HORIZONS = (1, 4, 24)
SMA_PERIOD = EMA_PERIOD = BOLLINGER_PERIOD = 20
BOLLINGER_WIDTH = 2.0
RSI_PERIOD = ATR_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
VWAP_PERIOD = VOLUME_Z_PERIOD = 24
VOLATILITY_WINDOWS = (24, 168)
SECONDS_PER_YEAR = 365 * 24 * 3600  # crypto trades 24/7: a year has SECONDS_PER_YEAR / interval candles

# Earlier candles a row's features depend on, per indicator (TA-Lib's "lookback"); a row
# with fewer is warm-up. The longest is also what an increment re-reads before its new rows.
LOOKBACKS = {
    "returns": max(RETURN_HORIZONS),
    "sma/ema/bollinger": SMA_PERIOD - 1,
    "rsi/atr": RSI_PERIOD,
    "macd": MACD_SLOW + MACD_SIGNAL - 2,
    "vwap/volume_z": VWAP_PERIOD - 1,
    "realized_vol": max(VOLATILITY_WINDOWS),
}
LOOKBACK = max(LOOKBACKS.values())


@dataclass(frozen=True)
class SeriesState:
    """Every recursion's value after a row; the field names are silver columns."""

    close: float
    ema_20: float
    macd_ema_fast: float
    macd_ema_slow: float
    macd_signal: float
    rsi_avg_gain: float
    rsi_avg_loss: float
    atr_14: float
    obv: float

    @classmethod
    def from_values(cls, values: dict) -> SeriesState | None:
        """The state in ``values`` (a silver row), or None while any recursion is warming up."""
        state = tuple(values[name] for name in STATE_COLUMNS)
        return None if any(v is None or pd.isna(v) for v in state) else cls(*map(float, state))


STATE_COLUMNS = [f.name for f in fields(SeriesState)]


def series_features(
    candles: pd.DataFrame, interval: str, state: SeriesState | None = None, first_new: int = 0
) -> pd.DataFrame:
    """Feature columns of ``candles[first_new:]`` (``open_time, high, low, close, volume``,
    sorted by time, no missing values) as a frame with a fresh index."""
    high, low, close, volume = (candles[c].to_numpy(dtype=float) for c in ("high", "low", "close", "volume"))
    seconds = interval_seconds(interval)
    out: dict[str, np.ndarray] = {}
    for h in RETURN_HORIZONS:
        out[f"simple_return_{h}"] = simple_return(close, h)
        out["log_return" if h == 1 else f"log_return_{h}"] = log_return(close, h)
    out["sma_20"] = sma(close, SMA_PERIOD)
    bands = bollinger(close, BOLLINGER_PERIOD, BOLLINGER_WIDTH)
    out |= {"bb_upper": bands.upper, "bb_lower": bands.lower, "bb_pct_b": bands.pct_b, "bb_bandwidth": bands.bandwidth}
    out["vwap_24"] = rolling_vwap(high, low, close, volume, VWAP_PERIOD)
    for w in VOLATILITY_WINDOWS:
        out[f"realized_vol_{w}"] = realized_volatility(close, w, SECONDS_PER_YEAR / seconds)
    out["volume_zscore_24"] = zscore(volume, VOLUME_Z_PERIOD)
    out = {name: values[first_new:] for name, values in out.items()}
    out |= _recursions(high, low, close, volume, state, first_new)
    frame = pd.DataFrame(out)
    times = candles["open_time"].to_numpy(dtype="datetime64[us]").astype(np.int64)
    steps = np.diff(times, prepend=times[0]) // (seconds * 1_000_000) - 1
    frame["gap_bars"] = pd.array(steps[first_new:], dtype="Int64")
    if first_new == 0:
        frame.loc[0:0, "gap_bars"] = pd.NA  # a series' first candle follows nothing
    # Rows before first_new are either all earlier rows or LOOKBACK of them: a row's position
    # here is its position in the series whenever that is below LOOKBACK.
    frame["is_warmup"] = np.arange(first_new, len(candles)) < LOOKBACK
    return frame


def _recursions(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, state: SeriesState | None, first_new: int
) -> dict[str, np.ndarray]:
    """EMA, MACD, RSI, ATR and OBV of the rows from ``first_new``: resumed from ``state``
    over those rows, or from the series' first row without it."""
    if state is not None:  # resume over the new rows
        high, low, close, volume = (a[first_new:] for a in (high, low, close, volume))
        first_new = 0
    s = state
    line, signal, hist, ema_fast, ema_slow = macd(
        close,
        MACD_FAST,
        MACD_SLOW,
        MACD_SIGNAL,
        MacdState(s.macd_ema_fast, s.macd_ema_slow, s.macd_signal) if s else None,
    )
    rsi, avg_gain, avg_loss = wilder_rsi(
        close, RSI_PERIOD, RsiState(s.close, s.rsi_avg_gain, s.rsi_avg_loss) if s else None
    )
    values = dict(
        ema_20=ema(close, EMA_PERIOD, s.ema_20 if s else None),
        macd=line,
        macd_signal=signal,
        macd_hist=hist,
        macd_ema_fast=ema_fast,
        macd_ema_slow=ema_slow,
        rsi_14=rsi,
        rsi_avg_gain=avg_gain,
        rsi_avg_loss=avg_loss,
        atr_14=atr(high, low, close, ATR_PERIOD, AtrState(s.close, s.atr_14) if s else None),
        obv=obv(close, volume, ObvState(s.close, s.obv) if s else None),
    )
    return {name: v[first_new:] for name, v in values.items()}
