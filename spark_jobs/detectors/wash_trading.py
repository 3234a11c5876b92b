"""Wash-trading detector over the hourly trade statistics of one series (exchange, symbol).

The Spark job aggregates each hour's trades (:func:`sentinance.spark_jobs.detectors.job.hourly_trade_statistics`);
here every hour with at least ``min_trades`` trades gets four signals, each a robust z against
the same statistic over the series' trailing baseline window (so a venue whose customers
like round sizes is compared with itself):

- ``benford``: distance of the hour's first significant digits of trade sizes from Benford's
  law, the mean over digits d of ``|share(d) - log10(1 + 1/d)|`` (Nigrini's MAD);
- ``round``: share of trades whose size has at most ``round_significant_digits`` significant digits;
- ``repeat``: share of trades whose exact size occurs more than once in the hour;
- ``no_impact``: volume without price impact, log volume unusually high while
  ``log(price range / volume)`` is unusually low.

An hour where at least ``min_signals`` fire is flagged; consecutive flagged hours form one episode.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sentinance.spark_jobs.detectors.detection import anomaly_frame, rolling_robust_z, rounded
from sentinance.spark_jobs.detectors.thresholds import WashTradingThresholds

DETECTOR = "wash_trading"
DIGITS = np.arange(1, 10)
BENFORD = np.log10(1 + 1 / DIGITS)
DIGIT_COLUMNS = [f"digit_{d}" for d in DIGITS]
SIGNALS = ["benford", "round", "repeat", "no_impact"]
MIN_RANGE = 1e-6  # log price range of an hour whose trades all printed one price


def detect_wash(hourly: pd.DataFrame, thresholds: WashTradingThresholds) -> pd.DataFrame:
    """Anomalies (``catalog.ANOMALIES``) in one series' hourly statistics: exchange, symbol, hour,
    trades, volume, high, low, digit_1..digit_9, round_trades, repeat_trades."""
    if hourly.empty:
        return anomaly_frame([])
    t = thresholds
    hourly = hourly.set_index("hour").sort_index()
    grid = pd.date_range(hourly.index.min(), hourly.index.max(), freq="h")
    hours = hourly.reindex(grid)
    judged = hours["trades"] >= t.min_trades
    trades = hours["trades"].where(judged)
    with np.errstate(divide="ignore", invalid="ignore"):  # hours without trades are not judged
        digits = hours[DIGIT_COLUMNS].to_numpy(dtype=float) / hours[DIGIT_COLUMNS].sum(axis=1).to_numpy()[:, None]
        statistics = pd.DataFrame(
            {
                "benford": np.abs(digits - BENFORD).mean(axis=1),
                "round": hours["round_trades"] / trades,
                "repeat": hours["repeat_trades"] / trades,
                "log_volume": np.log(hours["volume"].where(judged)),
                "impact": np.log(np.maximum(np.log(hours["high"] / hours["low"]), MIN_RANGE) / hours["volume"]),
            },
            index=grid,
        ).where(judged, np.nan)

    def z(column: str, min_scale: float = 0.0) -> np.ndarray:
        return rolling_robust_z(statistics[column].to_numpy(), t.baseline_hours, t.min_baseline_hours, min_scale)

    scores = pd.DataFrame(
        {
            "benford": z("benford"),
            "round": z("round", t.min_share_scale),
            "repeat": z("repeat", t.min_share_scale),
            "volume": z("log_volume"),
            "impact": z("impact"),
        },
        index=grid,
    )
    fired = pd.DataFrame(
        {
            "benford": scores["benford"] >= t.benford_z,
            "round": scores["round"] >= t.round_z,
            "repeat": scores["repeat"] >= t.repeat_z,
            "no_impact": (scores["volume"] >= t.volume_z) & (scores["impact"] <= t.impact_z),
        }
    )
    flagged = np.flatnonzero(fired.sum(axis=1).to_numpy() >= t.min_signals)
    if not len(flagged):
        return anomaly_frame([])
    exchange, symbol = hourly["exchange"].iloc[0], hourly["symbol"].iloc[0]
    rows = []
    for episode in np.split(flagged, np.flatnonzero(np.diff(flagged) > 1) + 1):
        signals = [s for s in SIGNALS if fired[s].iloc[episode].any()]
        evidence = scores.iloc[episode].max().rename(lambda c: f"max_{c}_z")
        evidence["min_impact_z"] = scores["impact"].iloc[episode].min()
        evidence["max_repeat_share"] = statistics["repeat"].iloc[episode].max()
        evidence["max_round_share"] = statistics["round"].iloc[episode].max()
        rows.append(
            {
                "detector": DETECTOR,
                "exchange": exchange,
                "symbol": symbol,
                "start_time": grid[episode[0]],
                "end_time": grid[episode[-1]],
                "score": float(fired.iloc[episode].sum(axis=1).max()),
                "signals": signals,
                "evidence": {**rounded(evidence.drop("max_impact_z").to_dict()), "hours": len(episode)},
            }
        )
    return anomaly_frame(rows)
