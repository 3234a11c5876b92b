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


def test_a_day_ahead_comparison_spans_the_overlap_of_its_targets() -> None:
    rng = np.random.default_rng(9)
    hours = np.repeat(np.arange(120), 2)
    a, b = rng.normal(1.0, 0.3, 240), rng.normal(1.1, 0.3, 240)
    day = evaluation.compare(a, b, hours, alpha=0.05, horizon=24)
    per_hour = pd.DataFrame({"a": a, "b": b, "h": hours}).groupby("h").mean()
    statistic, pvalue = evaluation.diebold_mariano((per_hour["a"] - per_hour["b"]).to_numpy(), horizon=24)
    assert (day.dm_statistic, day.dm_pvalue) == (statistic, pvalue)  # 23 Newey–West lags, HLN at h = 24
    assert day.dm_pvalue != evaluation.compare(a, b, hours, alpha=0.05).dm_pvalue


def test_cross_sectional_ic_rank_ic_and_icir_by_hand() -> None:
    hour = pd.Timestamp("2026-01-01", tz="UTC")
    rows = pd.DataFrame(
        [
            # four instruments: Pearson 0.375 / 0.625 = 0.6; ranks (1, 2, 3, 4) vs (1, 3, 2, 4): Spearman 0.8
            *[(hour, f, a) for f, a in [(-0.5, -0.5), (-0.25, 0.25), (0.25, -0.25), (0.5, 0.5)]],
            # a tie in the forecasts: centred (-1.25, -0.25, -0.25, 1.75) vs (-1.5, -0.5, 0.5, 1.5) gives
            # Pearson 4.5 / sqrt(4.75 * 5); mean ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4) give 4.5 / sqrt(4.5 * 5)
            *[(hour + pd.Timedelta(hours=1), f, a) for f, a in [(1.0, 1.0), (2.0, 2.0), (2.0, 3.0), (4.0, 4.0)]],
            # two instruments only, and a constant forecast: no cross-section to correlate
            *[(hour + pd.Timedelta(hours=2), f, a) for f, a in [(1.0, 1.0), (2.0, -1.0)]],
            *[(hour + pd.Timedelta(hours=3), f, a) for f, a in [(0.0, 1.0), (0.0, 2.0), (0.0, 3.0)]],
        ],
        columns=["event_timestamp", "forecast", "actual"],
    )
    per_hour = evaluation.cross_sectional_ic(rows["forecast"], rows["actual"], rows["event_timestamp"])
    ic = [0.6, 4.5 / np.sqrt(4.75 * 5)]
    rank_ic = [0.8, 4.5 / np.sqrt(4.5 * 5)]
    assert list(per_hour["size"]) == [4, 4]
    np.testing.assert_allclose(per_hour["ic"], ic, rtol=1e-12)
    np.testing.assert_allclose(per_hour["rank_ic"], rank_ic, rtol=1e-12)
    for (_, group), value in zip(rows.groupby("event_timestamp"), per_hour["rank_ic"], strict=False):
        assert stats.spearmanr(group["forecast"], group["actual"]).statistic == pytest.approx(value)

    summary = evaluation.ic_summary(per_hour)
    assert summary["ic_hours"] == 2
    assert summary["ic_mean"] == pytest.approx(np.mean(ic))
    assert summary["ic_std"] == pytest.approx(abs(ic[0] - ic[1]) / np.sqrt(2))  # ddof 1 over two hours
    assert summary["icir"] == pytest.approx(np.mean(ic) / (abs(ic[0] - ic[1]) / np.sqrt(2)))
    assert summary["rank_icir"] == pytest.approx(np.mean(rank_ic) / (abs(rank_ic[0] - rank_ic[1]) / np.sqrt(2)))
    assert np.isnan(evaluation.ic_summary(per_hour.head(1))["icir"])  # one hour has no spread


def test_qlike_and_volatility_metrics_by_hand() -> None:
    actual, predicted = np.array([0.01, 0.02]), np.array([0.02, 0.01])
    # realised / forecast variance: 0.25 (over-forecast) and 4 (under-forecast, penalised more)
    expected = [0.25 - np.log(0.25) - 1, 4 - np.log(4) - 1]
    np.testing.assert_allclose(evaluation.qlike(predicted, actual), expected)
    assert evaluation.qlike(actual, actual) == pytest.approx([0.0, 0.0])
    np.testing.assert_allclose(evaluation.loss(predicted, actual, "qlike"), expected)
    metrics = evaluation.volatility_metrics(predicted, actual)
    assert metrics["qlike"] == pytest.approx(np.mean(expected))
    assert metrics["rmse"] == pytest.approx(0.01) and metrics["mae"] == pytest.approx(0.01)
    assert metrics["mape"] == pytest.approx((100 + 50) / 2)  # |0.01| / 0.01 and |0.01| / 0.02, in percent


def test_har_rv_is_least_squares_on_the_latest_components() -> None:
    rng = np.random.default_rng(4)
    components = ("rv_daily", "rv_weekly", "rv_monthly")
    frame = pd.DataFrame({f"{c}_lag_0": rng.uniform(0.005, 0.03, 200) for c in components})
    frame["next_day_rv"] = 0.002 + 0.4 * frame["rv_daily_lag_0"] + 0.35 * frame["rv_weekly_lag_0"]
    frame["next_day_rv"] += 0.2 * frame["rv_monthly_lag_0"]
    coefficients = evaluation.har_fit(frame, components, "next_day_rv")
    np.testing.assert_allclose(coefficients, [0.002, 0.4, 0.35, 0.2], atol=1e-12)
    np.testing.assert_allclose(evaluation.har_forecast(frame, components, coefficients), frame["next_day_rv"])
