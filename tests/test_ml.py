"""LSTM training + MLflow registry, batch scoring to Delta, and drift, on the synthetic mart
(real PostgreSQL, Feast, MLflow SQLite store and torch)."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import mlflow
import pytest
from mlflow import MlflowClient

from sentinance import lake, services
from sentinance.config import MODEL_NAME
from sentinance.ml import drift, score, train
from test_feature_store import SEQUENCE_LENGTH, ml_settings  # noqa: F401  (module fixture)


@pytest.fixture(scope="module")
def trained(ml_settings):  # noqa: F811
    settings, _ = ml_settings
    return train.train_and_register(settings)


def test_train_registers_a_challenger_with_metrics_and_signature(ml_settings, trained) -> None:  # noqa: F811
    settings, _ = ml_settings
    assert trained.model_name == MODEL_NAME and train.CHALLENGER in trained.aliases
    for key in ("lstm_mae", "lstm_rmse", "lstm_directional_accuracy", "lstm_mape_close", "persistence_mae",
                "persistence_directional_accuracy"):
        assert math.isfinite(trained.metrics[f"holdout_{key}"])
    beats_persistence = trained.metrics["holdout_lstm_mae"] < trained.metrics["holdout_persistence_mae"]
    assert (train.CHAMPION in trained.aliases) == beats_persistence

    mlflow.set_tracking_uri(services.mlflow_tracking_uri(settings))
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(MODEL_NAME, train.CHALLENGER).version) == trained.version
    run = client.get_run(trained.run_id)
    assert run.data.tags["gate"] == ("passed" if beats_persistence else "failed")
    assert run.data.params["train_start"] < run.data.params["train_end"] < run.data.params["holdout_start"]
    assert len(client.get_metric_history(trained.run_id, "val_loss")) == trained.metrics["epochs"]
    assert {d.dataset.source for d in run.inputs.dataset_inputs} >= {'{"uri": "marts.fct_training_features"}'}
    info = mlflow.models.get_model_info(f"models:/{MODEL_NAME}/{trained.version}")
    assert info.signature.inputs.inputs[0].shape == (-1, SEQUENCE_LENGTH, 4)
    assert info.metadata["sequence_length"] == SEQUENCE_LENGTH


def test_score_latest_writes_one_prediction_per_instrument(ml_settings, trained) -> None:  # noqa: F811
    settings, mart = ml_settings
    result = score.score_latest(settings)
    assert result.rows == 3 and result.model_version == trained.version
    predictions = lake.read(settings.table_path("gold", "predictions"))
    latest = mart.groupby("instrument_id")["event_timestamp"].max()
    assert sorted(predictions["instrument_id"]) == sorted(latest.index)
    for _, row in predictions.iterrows():
        assert row["feature_time"] == latest[row["instrument_id"]]
        assert row["target_time"] == row["feature_time"] + timedelta(hours=1)
        assert row["predicted_close"] > 0 and abs(row["predicted_log_return"]) < 0.1

    # without a champion, the challenger shadow-scores the same keys: rows are updated, not added
    client = MlflowClient()
    if train.CHAMPION in trained.aliases:
        client.delete_registered_model_alias(MODEL_NAME, train.CHAMPION)
    shadow = score.score_latest(settings)
    assert shadow.model_alias == train.CHALLENGER and shadow.delta_version > result.delta_version
    assert lake.row_count(settings.table_path("gold", "predictions")) == 3
    if train.CHAMPION in trained.aliases:
        client.set_registered_model_alias(MODEL_NAME, train.CHAMPION, trained.version)


def test_check_drift_is_quiet_on_stationary_data_and_flags_a_shift(ml_settings, trained) -> None:  # noqa: F811
    settings, _ = ml_settings
    stable = drift.check_drift(settings, window_days=7)
    assert all(math.isfinite(v) for d in (stable.ks_statistic, stable.ks_pvalue, stable.psi) for v in d.values())
    assert not stable.drifted and stable.reference_rows > 0 and stable.current_rows > 0

    shift = "UPDATE marts.fct_training_features SET basis_bps = basis_bps + %s WHERE event_timestamp > %s"
    with services.connect(settings) as conn:
        since = conn.execute("SELECT max(event_timestamp) FROM marts.fct_training_features").fetchone()[0] - timedelta(days=7)
        conn.execute(shift, (100.0, since))
    try:
        shifted = drift.check_drift(settings, window_days=7)
    finally:
        with services.connect(settings) as conn:
            conn.execute(shift, (-100.0, since))
    assert shifted.drifted and shifted.psi["basis_bps"] > drift.PSI_DRIFT_THRESHOLD
    assert shifted.ks_pvalue["basis_bps"] < 1e-6 and shifted.psi["rsi_14"] == pytest.approx(stable.psi["rsi_14"])
    report = json.loads(open(shifted.report_path).read())
    assert report["drifted"] is True and report["features"]["basis_bps"]["psi"] == pytest.approx(shifted.psi["basis_bps"])
