"""The volatility model through the same machinery as the return forecaster (real PostgreSQL, Feast,
Delta, MLflow, torch) on 60 days of a synthetic market with GARCH volatility: trained against HAR-RV
on the same folds, gated by Diebold–Mariano on QLIKE over the day-ahead overlap, registered under its
own name, reproduced, and scored into its own predictions table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sentinance import lake
from sentinance.catalog import FORECASTER, VOLATILITY
from sentinance.ml import evaluation, registry, reproduce, score, targets, train, training_set
from sentinance.ml.explain import ExplainParams
from sentinance.ml.model import to_sequences

PARAMS = train.TrainParams(sequence_length=8, max_epochs=6, seeds=2, gate_loss="qlike")
EXPLAIN = ExplainParams(shap_background=30, shap_samples=30, shap_draws=4, lime_instances=1, lime_samples=100)


@pytest.fixture(scope="module")
def trained(volatility_settings) -> train.TrainResult:
    settings, _ = volatility_settings
    return train.train_and_register(settings, PARAMS, EXPLAIN, target=targets.VOLATILITY)


def _training_set(settings, version: str) -> pd.DataFrame:
    tags = registry.client(settings).get_model_version(VOLATILITY.name, version).tags
    ref = training_set.TrainingSetRef(
        tags["training_set_id"], tags["training_set_path"], int(tags["training_set_delta_version"]), 0
    )
    return training_set.load(ref)


def test_the_training_set_joins_the_forecasters_features_and_the_volatility_lags(volatility_settings, trained) -> None:
    settings, mart = volatility_settings
    frame = _training_set(settings, trained.version)
    complete = mart.rows[mart.rows["is_complete"] & mart.rows[VOLATILITY.label].notna()]
    assert len(frame) == len(complete)
    assert to_sequences(frame, 8, VOLATILITY.inputs).shape[1:] == (
        8,
        len(FORECASTER.features) + len(VOLATILITY.features),
    )
    expected = complete.set_index(["instrument_id", "event_timestamp"]).sort_index()
    got = frame.set_index(["instrument_id", "event_timestamp"]).sort_index()
    for column in ("rv_daily_lag_0", "rv_monthly_lag_7", VOLATILITY.label):
        np.testing.assert_allclose(got[column].to_numpy(), expected[column].to_numpy())


def test_it_is_trained_against_har_rv_and_registered_as_its_own_model(volatility_settings, trained) -> None:
    settings, _ = volatility_settings
    assert trained.model_name == VOLATILITY.name and registry.CHALLENGER in trained.aliases
    assert registry.alias_version(settings, registry.CHALLENGER) is None  # the forecaster's registry is untouched
    metrics = trained.metrics
    for scope in ("fold0", "fold2", "holdout", "cv"):
        for model in ("lstm", "har", "persistence"):
            for metric in evaluation.VOLATILITY_METRICS:
                assert np.isfinite(metrics[f"{scope}_{model}_{metric}"])
    assert metrics["holdout_qlike_ratio"] == pytest.approx(metrics["holdout_lstm_qlike"] / metrics["holdout_har_qlike"])
    assert {"holdout_qlike_ratio_seed_mean", "holdout_qlike_ratio_seed_std", "holdout_lstm_icir"} <= set(metrics) | set(
        registry.client(settings).get_run(trained.run_id).data.metrics
    )
    assert trained.backtest == {}  # a volatility forecast has no direction to trade
    info = registry.client(settings).get_run(trained.run_id).data
    assert info.params["gate_rule"].startswith("beats har and champion: lower mean qlike loss, DM (HLN, h=24)")
    assert info.params["features"] == ",".join(VOLATILITY.inputs)


def test_the_gate_is_diebold_mariano_on_qlike_against_har_fitted_on_the_same_fold(volatility_settings, trained) -> None:
    """Recompute the gate from the records: the training set read back, the registered model's forecasts,
    HAR-RV with the newest fold's logged coefficients, QLIKE, and DM over a 24-hour overlap."""
    settings, _ = volatility_settings
    client = registry.client(settings)
    version = client.get_model_version(VOLATILITY.name, trained.version)
    run = client.get_run(version.run_id).data
    frame = _training_set(settings, trained.version)
    holdout = frame[
        frame["event_timestamp"].between(
            pd.Timestamp(run.params["holdout_start"]), pd.Timestamp(run.params["holdout_end"])
        )
    ]
    lstm = np.asarray(registry.load_model(version).predict(to_sequences(holdout, 8, VOLATILITY.inputs))).reshape(-1)
    assert (lstm > 0).all()  # learnt in logs: never a negative volatility
    coefficients = np.array(
        [run.metrics[f"fold2_har_{c}"] for c in ("b0", "b_rv_daily", "b_rv_weekly", "b_rv_monthly")]
    )
    har = evaluation.har_forecast(holdout, VOLATILITY.features, coefficients)
    actual = holdout[VOLATILITY.label].to_numpy()
    expected = evaluation.compare(
        evaluation.qlike(lstm, actual),
        evaluation.qlike(har, actual),
        holdout["event_timestamp"],
        alpha=PARAMS.alpha,
        horizon=24,
    )
    gate = trained.gate["vs_har"]
    assert gate["dm_pvalue"] == pytest.approx(expected.dm_pvalue, rel=1e-5)
    assert gate["mean_loss_b"] == pytest.approx(expected.mean_loss_b, rel=1e-9)  # HAR's QLIKE exactly
    assert trained.gate["promoted"] == bool(gate["a_better"]) == (registry.CHAMPION in trained.aliases)
    assert run.metrics["holdout_har_qlike"] == pytest.approx(np.mean(evaluation.qlike(har, actual)))


def test_it_reproduces_from_its_records(volatility_settings, trained) -> None:
    settings, _ = volatility_settings
    result = reproduce.reproduce(settings, trained.version, name=VOLATILITY.name)
    assert result.reproduced and result.compared > 50


def test_scoring_serves_the_next_days_volatility_into_its_own_table(volatility_settings, trained) -> None:
    settings, mart = volatility_settings
    result = score.score_latest(settings, targets.VOLATILITY)
    assert (result.rows, result.model_version) == (3, trained.version)
    predictions = lake.read(VOLATILITY.predictions.path(settings))
    latest = mart.rows.groupby("instrument_id")["event_timestamp"].max()
    assert len(predictions) == 3 and (predictions["predicted_rv"] > 0).all()
    assert (predictions["model_name"] == VOLATILITY.name).all()
    for _, row in predictions.iterrows():
        assert row["feature_time"] == latest[row["instrument_id"]]
        assert row["target_time"] == row["feature_time"] + pd.Timedelta(hours=1)  # the day's first hour
    assert not lake.exists(FORECASTER.predictions.path(settings))  # the forecaster's table is another
