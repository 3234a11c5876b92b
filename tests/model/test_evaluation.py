"""Walk-forward folds, baselines, metrics and the forecast comparison tests (pure NumPy/pandas)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sentinance.catalog import FORECASTER
from sentinance.errors import MissingInputError
from sentinance.ml import evaluation

HOURS = pd.Series(pd.date_range("2026-01-01", periods=500, freq="h", tz="UTC"))


@pytest.mark.parametrize("window", ["expanding", "rolling"])
def test_walk_forward_folds_are_ordered_embargoed_and_cover_the_tail(window: str) -> None:
    embargo = timedelta(hours=8)
    folds = evaluation.walk_forward(
        pd.concat([HOURS, HOURS]), n_folds=3, test_fraction=0.1, validation_fraction=0.2, embargo=embargo, window=window
    )
    assert [f.index for f in folds] == [0, 1, 2]
    assert folds[-1].test_end == HOURS.iloc[-1] and folds[0].test_start == HOURS.iloc[500 - 150]
    for fold in folds:
        assert fold.test_end - fold.test_start == timedelta(hours=49)
        assert fold.validation_start - fold.train_end > embargo and fold.test_start - fold.validation_end > embargo
        masks = fold.masks(HOURS)
        assert not (masks["train"] & masks["test"]).any() and masks["test"].sum() == 50
    for earlier, later in itertools.pairwise(folds):
        assert later.test_start == earlier.test_end + timedelta(hours=1)
        if window == "expanding":
            assert later.train_start == earlier.train_start
        else:
            assert later.train_start > earlier.train_start
            fitted = [f.validation_end - f.train_start for f in (earlier, later)]
            assert abs(fitted[0] - fitted[1]) <= timedelta(hours=1)


def test_walk_forward_refuses_too_little_history() -> None:
    with pytest.raises(MissingInputError, match="too little history"):
        evaluation.walk_forward(
            HOURS[:60], n_folds=3, test_fraction=0.3, validation_fraction=0.2, embargo=timedelta(hours=24)
        )


def test_baselines_and_metrics() -> None:
    returns = np.array([[0.01, -0.02, 0.03], [0.0, 0.0, -0.01]])  # oldest first
    frame = pd.DataFrame(returns, columns=FORECASTER.lag_columns("log_return", 3))
    alpha = 2 / (2 + 1)
    weights = np.array([(1 - alpha) ** 2, 1 - alpha, 1.0])
    assert evaluation.ema_forecast(frame, 3, span=2) == pytest.approx(returns @ weights / weights.sum())
    assert np.all(evaluation.persistence_forecast(frame) == 0)
    assert list(evaluation.naive_direction(frame)) == [1.0, -1.0]

    actual, close = np.array([0.01, -0.02]), np.array([100.0, 200.0])
    metrics = evaluation.forecast_metrics(np.array([0.02, 0.0]), actual, close)
    assert metrics["mae"] == pytest.approx(0.015) and metrics["rmse"] == pytest.approx(np.sqrt((0.01**2 + 0.02**2) / 2))
    assert metrics["directional_accuracy"] == 0.5
    mape = np.mean([abs(np.exp(0.02) - np.exp(0.01)) / np.exp(0.01), abs(1 - np.exp(-0.02)) / np.exp(-0.02)]) * 100
    assert metrics["mape"] == pytest.approx(mape)
    assert (
        evaluation.forecast_metrics(np.zeros(2), actual, close, direction=np.array([-1.0, -1.0]))[
            "directional_accuracy"
        ]
        == 0.5
    )


def test_diebold_mariano_without_lags_is_the_paired_t_test() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 0.3, 80), rng.normal(1.05, 0.3, 80)
    statistic, pvalue = evaluation.diebold_mariano(a - b, horizon=1, max_lag=0)
    t = stats.ttest_rel(a, b, alternative="less")
    assert statistic == pytest.approx(t.statistic) and pvalue == pytest.approx(t.pvalue)
    assert np.isnan(evaluation.diebold_mariano(np.array([1.0, 2.0]))).all()  # too short to test


def test_compare_tests_hourly_means_and_needs_both_tests() -> None:
    rng = np.random.default_rng(5)
    hours = np.repeat(np.arange(200), 3)  # three instruments per hour
    truth = rng.normal(0, 1, 600)
    good, bad = truth + rng.normal(0, 0.5, 600), truth + rng.normal(0, 1.0, 600)
    better = evaluation.compare(evaluation.loss(good, truth), evaluation.loss(bad, truth), hours, alpha=0.05)
    assert better.periods == 200 and better.a_better and better.dm_pvalue < 1e-6 and better.t_pvalue < 1e-6
    worse = evaluation.compare(evaluation.loss(bad, truth), evaluation.loss(good, truth), hours, alpha=0.05)
    assert not worse.a_better and worse.dm_pvalue > 0.99
    same = evaluation.compare(evaluation.loss(good, truth), evaluation.loss(good, truth), hours, alpha=0.05)
    assert not same.a_better
    assert set(better.as_dict("x_")) >= {"x_dm_pvalue", "x_t_pvalue", "x_periods", "x_a_better"}
