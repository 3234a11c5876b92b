"""Pump-and-dump detector over the hourly candles of one asset on every exchange.

For each venue and hour t (``p`` = log close on an hourly grid, a missing hour is NaN):

- ``price_z``: the run-up ``p[t] - p[t-k]`` as a robust z against k hours of the venue's normal
  returns (median and 1.4826 MAD of the hourly log returns in the trailing baseline window),
  maximised over the run-up length k = 1 .. max_run_up_hours; k is kept as the run-up;
- ``volume_z``: the highest robust z of log volume (against its trailing baseline) over the
  run-up's hours;
- ``excess_z``: the same run-up robust z computed on the venue's excess over the other venues'
  mean log price, and ``lead``: that excess's rise over the run-up's hours as a share of the
  run-up: a pump is venue-led, a market-wide move (or the lag of slower venues) is not;
- ``confirmations``: other venues whose price rose over the same hours and fell after them,
  each by at least ``confirm_fraction`` of the venue's move (their peak allowed one hour
  later, as arbitrage takes time): a manipulated venue is followed, a bad print is not;
- ``reversal``: the share of the run-up given back within ``reversal_hours`` after t.

An hour where all of them pass their thresholds is a candidate; candidates of one venue closer
than ``max_run_up_hours`` form one episode, reported from the first run-up candle of its
strongest hour to the candle where the price bottomed after it. The reversal needs the
following hours, so an episode is reported once they have landed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sentinance.spark_jobs.detectors.detection import anomaly_frame, lagged, rolling_baseline, rolling_robust_z, rounded
from sentinance.spark_jobs.detectors.thresholds import PumpAndDumpThresholds

DETECTOR = "pump_and_dump"
HOUR = pd.Timedelta(hours=1)


def detect_pumps(candles: pd.DataFrame, thresholds: PumpAndDumpThresholds) -> pd.DataFrame:
    """Anomalies (``catalog.ANOMALIES``) in the candles (exchange, symbol, open_time, close, volume) of one asset."""
    candles = candles[candles["close"] > 0]
    if candles.empty:
        return anomaly_frame([])
    grid = pd.date_range(candles["open_time"].min(), candles["open_time"].max(), freq="h")
    wide = candles.pivot_table(index="open_time", columns="exchange", values=["close", "volume"]).reindex(grid)
    log_price = np.log(wide["close"].to_numpy(dtype=float))
    log_volume = np.log(wide["volume"].to_numpy(dtype=float).clip(min=1e-12))
    symbols = candles.groupby("exchange")["symbol"].first()
    rows = []
    for i, exchange in enumerate(wide["close"].columns):
        stats = _statistics(log_price, log_volume[:, i], i, thresholds)
        rows += _episodes(stats, log_price[:, i], grid, exchange, symbols[exchange], thresholds)
    return anomaly_frame(rows)


def _run_up_z(series: np.ndarray, t: PumpAndDumpThresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per hour: the run-up robust z maximised over k, the chosen k, and the run-up ``s[t] - s[t-k]``."""
    median, scale = rolling_baseline(np.diff(series, prepend=np.nan), t.baseline_hours, t.min_baseline_hours)
    ks = np.arange(1, t.max_run_up_hours + 1)
    run_up = np.column_stack([series - lagged(series, k) for k in ks])
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (run_up - np.outer(median, ks)) / np.outer(scale, np.sqrt(ks))
    z_filled = np.where(np.isnan(z), -np.inf, z)
    best = z_filled.argmax(axis=1)
    rows = np.arange(len(series))
    return z[rows, best], ks[best], run_up[rows, best]


def _statistics(log_price: np.ndarray, log_volume: np.ndarray, venue: int, t: PumpAndDumpThresholds) -> pd.DataFrame:
    p = log_price[:, venue]
    others = np.delete(log_price, venue, axis=1)
    price_z, k, run_up = _run_up_z(p, t)

    volume_z = rolling_robust_z(log_volume, t.baseline_hours, t.min_baseline_hours)
    volume_over_run_up = np.column_stack([lagged(volume_z, j) for j in range(t.max_run_up_hours)])
    volume_over_run_up[np.arange(t.max_run_up_hours)[None, :] >= k[:, None]] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = p - np.nansum(others, axis=1) / (~np.isnan(others)).sum(axis=1)  # NaN without another venue
    excess_z, _, _ = _run_up_z(excess, t)
    before = np.clip(np.arange(len(p)) - k, 0, None)  # the hour the run-up starts from

    bottom = _future_low(p, t.reversal_hours)
    with np.errstate(invalid="ignore", divide="ignore"):
        lead = (excess - excess[before]) / run_up
        reversal = (p - bottom) / run_up
        confirmations = sum(_follows(other, before, run_up, p - bottom, t) for other in others.T)
    return pd.DataFrame(
        {
            "price_z": price_z,
            "run_up_hours": k,
            "run_up": run_up,
            "volume_z": np.nanmax(np.where(np.isnan(volume_over_run_up), -np.inf, volume_over_run_up), axis=1),
            "excess_z": excess_z,
            "lead": lead,
            "confirmations": confirmations,
            "reversal": reversal,
        }
    )


def _future_low(series: np.ndarray, hours: int) -> np.ndarray:
    """Per hour: the lowest value of the next ``hours`` hours (NaN if none)."""
    return np.fmin.reduce([lagged(series, -h) for h in range(1, hours + 1)])


def _follows(
    other: np.ndarray, before: np.ndarray, run_up: np.ndarray, drop: np.ndarray, t: PumpAndDumpThresholds
) -> np.ndarray:
    """Whether another venue rose from hour ``before`` and then fell with the venue, each by at least
    ``confirm_fraction`` of the venue's move, its peak allowed one hour later (arbitrage takes time)."""
    peak = np.fmax(other, lagged(other, -1))
    with np.errstate(invalid="ignore"):
        return (peak - other[before] >= t.confirm_fraction * run_up) & (
            peak - _future_low(other, t.reversal_hours) >= t.confirm_fraction * drop
        )


def _episodes(
    stats: pd.DataFrame,
    log_price: np.ndarray,
    grid: pd.DatetimeIndex,
    exchange: str,
    symbol: str,
    t: PumpAndDumpThresholds,
) -> list[dict]:
    candidate = (
        (stats["price_z"] >= t.price_z)
        & (stats["volume_z"] >= t.volume_z)
        & (stats["excess_z"] >= t.excess_z)
        & (stats["lead"] >= t.lead_fraction)
        & (stats["confirmations"] >= t.min_confirmations)
        & (stats["run_up"] > 0)
        & (stats["reversal"] >= t.reversal_fraction)
    ).to_numpy()
    hours = np.flatnonzero(candidate)
    if not len(hours):
        return []
    clusters = np.split(hours, np.flatnonzero(np.diff(hours) > t.max_run_up_hours) + 1)
    rows = []
    for cluster in clusters:
        peak = cluster[stats["price_z"].to_numpy()[cluster].argmax()]
        s = stats.iloc[peak]
        after = log_price[peak + 1 : peak + 1 + t.reversal_hours]
        bottom = peak + 1 + int(np.nanargmin(after))
        rows.append(
            {
                "detector": DETECTOR,
                "exchange": exchange,
                "symbol": symbol,
                "start_time": grid[peak] - (int(s["run_up_hours"]) - 1) * HOUR,
                "end_time": grid[bottom],
                "score": float(s["price_z"]),
                "signals": [
                    "price_z",
                    "volume_z",
                    "excess_z",
                    "reversal",
                    *(["cross_exchange_confirmed"] if s["confirmations"] > 0 else []),
                ],
                "evidence": {
                    **rounded(s[["price_z", "volume_z", "excess_z", "lead", "run_up", "reversal"]].to_dict()),
                    "run_up_hours": int(s["run_up_hours"]),
                    "confirmations": int(s["confirmations"]),
                    "peak_time": grid[peak].isoformat(),
                },
            }
        )
    return rows
