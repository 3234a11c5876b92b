"""Building blocks of the manipulation detectors: trailing robust z-scores and anomaly rows.

Pure numpy/pandas, no Spark: the detectors run them per group inside ``applyInPandas``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from sentinance.catalog import ANOMALIES

MAD_TO_SIGMA = 1.4826  # MAD x this estimates the standard deviation of normal data


def rolling_baseline(
    values: np.ndarray, window: int, min_periods: int, min_scale: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust scale (1.4826 MAD, at least ``min_scale``) of the ``window`` values before
    each t, NaNs skipped; both NaN where fewer than ``min_periods`` earlier values exist."""
    x = np.asarray(values, dtype=float)
    median, scale = np.full(len(x), np.nan), np.full(len(x), np.nan)
    if len(x) == 0:
        return median, scale
    past = sliding_window_view(np.r_[np.full(window, np.nan), x[:-1]], window)
    enough = (~np.isnan(past)).sum(axis=1) >= min_periods
    if enough.any():
        past = past[enough]
        median[enough] = np.nanmedian(past, axis=1)
        mad = np.nanmedian(np.abs(past - median[enough][:, None]), axis=1)
        scale[enough] = np.maximum(MAD_TO_SIGMA * mad, min_scale)
    return median, scale


def rolling_robust_z(values: np.ndarray, window: int, min_periods: int, min_scale: float = 0.0) -> np.ndarray:
    """``(x[t] - median) / scale`` against :func:`rolling_baseline` of the values before t."""
    median, scale = rolling_baseline(values, window, min_periods, min_scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.asarray(values, dtype=float) - median) / scale


def lagged(values: np.ndarray, k: int) -> np.ndarray:
    """``values`` shifted k steps later (k < 0: earlier), NaN-padded: ``lagged(x, k)[t] == x[t - k]``."""
    out = np.full(len(values), np.nan)
    if k == 0:
        out[:] = values
    elif 0 < k < len(values):
        out[k:] = values[:-k]
    elif 0 < -k < len(values):
        out[:k] = values[-k:]
    return out


def anomaly_id(detector: str, exchange: str, symbol: str, start_time: pd.Timestamp) -> str:
    return f"{detector}:{exchange}:{symbol}:{start_time.strftime('%Y-%m-%dT%H:%MZ')}"


def anomaly_frame(rows: list[dict]) -> pd.DataFrame:
    """Anomaly rows (``catalog.ANOMALIES``) from dicts holding the key fields, score, signals and evidence."""
    frame = pd.DataFrame(
        [
            {
                **row,
                "anomaly_id": anomaly_id(row["detector"], row["exchange"], row["symbol"], row["start_time"]),
                "signals": ",".join(row["signals"]),
                "evidence": json.dumps(row["evidence"], sort_keys=True),
            }
            for row in rows
        ],
        columns=ANOMALIES.schema.names,
    )
    return frame.astype({"score": float})


def rounded(values: dict[str, float], digits: int = 4) -> dict[str, float | None]:
    """Evidence values for JSON: rounded, NaN as null."""
    return {k: None if v is None or not np.isfinite(v) else round(float(v), digits) for k, v in values.items()}
