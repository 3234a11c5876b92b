"""The volatility mart's columns recomputed in pandas from the forecaster's mart rows: an independent
statement of the dbt model ``fct_volatility_features`` (on a time grid instead of range windows), for
the synthetic marts of the tests and for checking the dbt model against."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sentinance.catalog import HAR_DAYS, VOLATILITY
from sentinance.settings import INTERVAL_SECONDS


def _at_least_half(values: pd.Series, counts: pd.Series, whole: int) -> pd.Series:
    return values.where(counts * 2 >= whole)


def volatility_mart(forecaster_rows: pd.DataFrame, sequence_length: int) -> pd.DataFrame:
    """Per instrument: a day's realised volatility sqrt(Σ r²) over the candles of the last 24 hours
    (given at least 12), its means over the last 1, 5 and 22 days at the same hour (given at least half
    of them), their lags (null where that hour has no candle), the next day's realised volatility as
    the label, complete when every lag exists and the forecaster's row is complete."""
    periods = VOLATILITY.horizon_periods
    step = pd.Timedelta(seconds=INTERVAL_SECONDS[VOLATILITY.interval])
    frames = []
    for _, rows in forecaster_rows.groupby(VOLATILITY.entity_key, sort=True):
        rows = rows.set_index(VOLATILITY.timestamp).sort_index()
        grid = rows.reindex(pd.date_range(rows.index.min(), rows.index.max(), freq=step))
        present = grid["exchange"].notna()
        squared, known = grid["log_return"] ** 2, grid["log_return"].notna().astype(float)
        day_rv = _at_least_half(
            np.sqrt(squared.rolling(periods, min_periods=1).sum()), known.rolling(periods, min_periods=1).sum(), periods
        ).where(present)
        ahead = squared[::-1].rolling(periods, min_periods=1).sum()[::-1].shift(-1)
        label = _at_least_half(
            np.sqrt(ahead), known[::-1].rolling(periods, min_periods=1).sum()[::-1].shift(-1), periods
        )
        frame = grid[["exchange", "symbol", "asset"]].copy()
        for feature, days in HAR_DAYS.items():
            same_hour = pd.concat([day_rv.shift(day * periods) for day in range(days)], axis=1)
            frame[feature] = _at_least_half(same_hour.mean(axis=1), same_hour.notna().sum(axis=1), days).where(present)
        for feature in HAR_DAYS:
            for lag in range(sequence_length):
                frame[f"{feature}_lag_{lag}"] = frame[feature].shift(lag)
        frame[VOLATILITY.label] = label
        lags = [c for c in frame.columns if "_lag_" in c]
        frame["is_complete"] = grid["is_complete"].eq(True) & frame[lags].notna().all(axis=1)
        frame = frame[present].rename_axis(VOLATILITY.timestamp).reset_index()
        frames.append(frame.assign(**{VOLATILITY.entity_key: rows[VOLATILITY.entity_key].iloc[0]}))
    return pd.concat(frames, ignore_index=True)[VOLATILITY.mart_columns(sequence_length)]
