"""The volatility mart's columns recomputed in pandas from the forecaster's mart rows: an independent
statement of the dbt model ``fct_volatility_features`` for the synthetic marts of the tests, and for
checking the dbt model against."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sentinance.catalog import HAR_DAYS, VOLATILITY


def volatility_mart(forecaster_rows: pd.DataFrame, sequence_length: int) -> pd.DataFrame:
    """Per instrument on its hourly grid (the rows must have no gaps): the day's realised volatility
    sqrt(Σ r²) over the last 24 log returns (null unless all 24 exist), its means over the last 5 and
    22 days in steps of 24 hours, their lags, the next day's realised volatility as the label, and
    complete when every lag exists and the forecaster's row is complete."""
    periods = VOLATILITY.horizon_periods
    frames = []
    for _, rows in forecaster_rows.sort_values(VOLATILITY.timestamp).groupby(VOLATILITY.entity_key, sort=True):
        rows = rows.reset_index(drop=True)
        squared = rows["log_return"] ** 2
        day_rv = np.sqrt(squared.rolling(periods, min_periods=periods).sum())
        frame = rows[[VOLATILITY.entity_key, "exchange", "symbol", "asset", VOLATILITY.timestamp]].copy()
        for feature, days in HAR_DAYS.items():
            frame[feature] = sum(day_rv.shift(day * periods) for day in range(days)) / days
        for feature in HAR_DAYS:
            for lag in range(sequence_length):
                frame[f"{feature}_lag_{lag}"] = frame[feature].shift(lag)
        frame[VOLATILITY.label] = day_rv.shift(-periods)
        lags = [c for c in frame.columns if "_lag_" in c]
        frame["is_complete"] = rows["is_complete"].astype(bool) & frame[lags].notna().all(axis=1)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[VOLATILITY.mart_columns(sequence_length)]
