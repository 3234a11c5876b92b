"""Out-of-sample evaluation: walk-forward folds, baseline forecasts, error metrics and the
tests that compare two forecasters on the same targets (Diebold–Mariano, paired t).

Everything here is plain NumPy/pandas on a training-set frame (one row per instrument and
period of the model contract's interval, lag columns ``<feature>_lag_<i>``, ``close`` and the
label): no Feast, no MLflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from sentinance.catalog import FORECASTER
from sentinance.errors import MissingInputError

TIMESTAMP = "event_timestamp"
METRICS = ("mape", "rmse", "mae", "directional_accuracy")


@dataclass(frozen=True)
class FoldWindow:
    """One walk-forward fold: fit on [train_start, validation_start - embargo), early-stop on
    [validation_start, validation_end], test on [test_start, test_end] (all inclusive periods)."""

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    validation_start: pd.Timestamp
    validation_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def masks(self, times: pd.Series) -> dict[str, pd.Series]:
        return {
            "train": times.between(self.train_start, self.train_end),
            "validation": times.between(self.validation_start, self.validation_end),
            "test": times.between(self.test_start, self.test_end),
        }


def walk_forward(
    times: pd.Series,
    *,
    n_folds: int,
    test_fraction: float,
    validation_fraction: float,
    embargo: timedelta,
    window: Literal["expanding", "rolling"] = "expanding",
) -> list[FoldWindow]:
    """Consecutive test windows over the last ``n_folds * test_fraction`` of the timeline.

    Each fold trains on everything before its test window (expanding; rolling keeps the first
    fold's training length), minus an embargo before the validation tail and another before
    the test window, so no input window or label straddles two parts.
    """
    periods = pd.Series(pd.to_datetime(times, utc=True).drop_duplicates().sort_values().to_numpy())
    n = len(periods)
    test_len = int(n * test_fraction)
    if n_folds < 1 or test_len < 1:
        raise MissingInputError(f"{n} periods cannot hold {n_folds} test windows of {test_fraction:.0%}")
    folds: list[FoldWindow] = []
    first_length: pd.Timedelta | None = None
    for k in range(n_folds):
        start = n - (n_folds - k) * test_len
        test_start, test_end = periods.iloc[start], periods.iloc[start + test_len - 1]
        fit_periods = periods[periods < test_start - embargo]
        if first_length is not None and window == "rolling":
            fit_periods = fit_periods[fit_periods > fit_periods.iloc[-1] - first_length]
        validation = fit_periods.iloc[int(len(fit_periods) * (1 - validation_fraction)) :]
        train = fit_periods[fit_periods < validation.iloc[0] - embargo] if len(validation) else validation
        if train.empty or validation.empty:
            raise MissingInputError(
                f"fold {k}: too little history before {test_start} for a training and validation part "
                f"with an embargo of {embargo}"
            )
        if first_length is None:
            first_length = fit_periods.iloc[-1] - fit_periods.iloc[0]
        folds.append(
            FoldWindow(k, train.iloc[0], train.iloc[-1], validation.iloc[0], validation.iloc[-1], test_start, test_end)
        )
    return folds


def persistence_forecast(frame: pd.DataFrame) -> np.ndarray:
    """Random walk: the next log return is 0, i.e. the next close is the last close."""
    return np.zeros(len(frame))


def ema_forecast(frame: pd.DataFrame, sequence_length: int, span: int) -> np.ndarray:
    """Drift forecast: the exponential moving average (``span``) of the window's log returns."""
    returns = frame[FORECASTER.lag_columns("log_return", sequence_length)].to_numpy(np.float64)  # oldest first
    alpha = 2.0 / (span + 1.0)
    weights = (1 - alpha) ** np.arange(sequence_length)[::-1]
    return returns @ weights / weights.sum()


def naive_direction(frame: pd.DataFrame) -> np.ndarray:
    """The last period's direction repeated: persistence's direction call (its point forecast has none)."""
    return np.sign(frame["log_return_lag_0"].to_numpy(np.float64))


def forecast_metrics(
    predicted: np.ndarray, actual: np.ndarray, close: np.ndarray, direction: np.ndarray | None = None
) -> dict[str, float]:
    """MAPE (%) of the implied next close; RMSE and MAE of the log return; directional accuracy.

    ``direction`` overrides the sign of ``predicted`` for the directional call (persistence).
    """
    predicted, actual, close = (np.asarray(a, np.float64) for a in (predicted, actual, close))
    error = predicted - actual
    next_close = close * np.exp(actual)
    direction = np.sign(predicted) if direction is None else direction
    return {
        "mape": float(np.mean(np.abs(close * np.exp(predicted) - next_close) / next_close) * 100),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "directional_accuracy": float(np.mean(direction == np.sign(actual))),
    }


def loss(predicted: np.ndarray, actual: np.ndarray, kind: Literal["squared", "absolute"] = "squared") -> np.ndarray:
    error = np.asarray(predicted, np.float64) - np.asarray(actual, np.float64)
    return error**2 if kind == "squared" else np.abs(error)


@dataclass(frozen=True)
class Comparison:
    """Is forecaster A better than B on the same targets? One-sided tests on d = loss_A - loss_B.

    The losses are averaged per period across instruments first (instruments of one asset move
    together, so their rows are not independent); ``periods`` is the test's sample size.
    """

    periods: int
    mean_loss_a: float
    mean_loss_b: float
    dm_statistic: float
    dm_pvalue: float
    t_statistic: float
    t_pvalue: float
    alpha: float

    @property
    def a_better(self) -> bool:
        """A has the lower loss and both tests reject "A is no better than B" at ``alpha``."""
        return bool(self.mean_loss_a < self.mean_loss_b and self.dm_pvalue < self.alpha and self.t_pvalue < self.alpha)

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        values = {k: float(v) for k, v in vars(self).items()}
        values["a_better"] = float(self.a_better)
        return {f"{prefix}{k}": v for k, v in values.items()}


def diebold_mariano(differential: np.ndarray, horizon: int = 1, max_lag: int | None = None) -> tuple[float, float]:
    """One-sided Diebold–Mariano test of mean(d) < 0 with the Harvey–Leybourne–Newbold correction.

    The long-run variance of ``d`` is Newey–West (Bartlett weights) with ``max_lag`` lags,
    default ``max(horizon - 1, floor(n ** (1/3)))``: with horizon 1 and no lags the statistic
    would be exactly the paired t statistic, but loss differentials of volatile series are
    autocorrelated. The statistic is scaled by sqrt((n + 1 - 2h + h(h - 1) / n) / n) and
    compared with Student's t on n - 1 degrees of freedom. Returns (statistic, p-value).
    """
    d = np.asarray(differential, np.float64)
    n = len(d)
    if n < 3:
        return math.nan, math.nan
    lags = max(horizon - 1, int(n ** (1 / 3))) if max_lag is None else max_lag
    centered = d - d.mean()
    long_run = centered @ centered / n
    for k in range(1, min(lags, n - 1) + 1):
        long_run += 2 * (1 - k / (lags + 1)) * (centered[k:] @ centered[:-k]) / n
    if long_run <= 0:
        return math.nan, math.nan
    statistic = d.mean() / math.sqrt(long_run / n)
    statistic *= math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return float(statistic), float(stats.t.cdf(statistic, df=n - 1))


def compare(loss_a: np.ndarray, loss_b: np.ndarray, times: np.ndarray | pd.Series, *, alpha: float) -> Comparison:
    """Compare two forecasters' losses on the same rows (aligned), tested on the means per period (``times``)."""
    per_period = pd.DataFrame({"a": loss_a, "b": loss_b, "time": np.asarray(times)}).groupby("time").mean()
    a, b = per_period["a"].to_numpy(), per_period["b"].to_numpy()
    dm_statistic, dm_pvalue = diebold_mariano(a - b)
    if len(a) >= 3 and np.any(a != b):
        t = stats.ttest_rel(a, b, alternative="less")
        t_statistic, t_pvalue = float(t.statistic), float(t.pvalue)
    else:
        t_statistic, t_pvalue = math.nan, math.nan
    return Comparison(
        len(a),
        float(a.mean()) if len(a) else math.nan,
        float(b.mean()) if len(b) else math.nan,
        dm_statistic,
        dm_pvalue,
        t_statistic,
        t_pvalue,
        alpha,
    )
