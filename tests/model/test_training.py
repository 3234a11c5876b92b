"""The ML lifecycle on the synthetic mart (real PostgreSQL, Feast, Delta, MLflow SQLite store, torch):
walk-forward training over seeds, cross-sectional IC, the backtest, registry and promotion gate,
explanations, scoring with a shadow challenger, A/B, reproduction from the records, and drift."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from sentinance import catalog, lake, services
from sentinance.catalog import FORECASTER
from sentinance.errors import SentinanceError, SettingsError
from sentinance.ml import ab_testing, drift, evaluation, registry, reproduce, score, targets, train, training_set
from sentinance.ml.explain import ExplainParams

SEQUENCE_LENGTH = 8  # conftest's ml_settings
PARAMS = train.TrainParams(sequence_length=SEQUENCE_LENGTH, max_epochs=8, seeds=2)
EXPLAIN = ExplainParams(shap_background=50, shap_samples=40, shap_draws=8, lime_instances=2, lime_samples=200)


def _artifacts(client, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.fixture(scope="module")
def trained(ml_settings):
    """Two versions: v1 on the defaults (seeded), v2 with another seed, gated against v1."""
    settings, _ = ml_settings
    first = train.train_and_register(settings, PARAMS, EXPLAIN)
    second = train.train_and_register(settings, train.TrainParams(**{**vars(PARAMS), "seed": 99}), EXPLAIN)
    return first, second


def test_training_set_round_trips_through_delta_time_travel(ml_settings, trained) -> None:
    settings, synthetic = ml_settings
    mart = synthetic.rows
    tags = registry.client(settings).get_model_version(FORECASTER.name, trained[0].version).tags
    ref = training_set.TrainingSetRef(
        tags["training_set_id"], tags["training_set_path"], int(tags["training_set_delta_version"]), 0
    )
    frame = training_set.load(ref)  # verifies the content hash
    labelled = mart[mart["is_complete"] & mart["next_log_return"].notna()]
    assert len(frame) == len(labelled) and frame["event_timestamp"].is_monotonic_increasing
    assert training_set.save(settings, frame).delta_version == lake.version(ref.path)  # stored once
    longer = frame.head(50).assign(log_return_lag_99=1.0)  # a later set with more lags: the schema merges
    assert training_set.save(settings, longer).delta_version > ref.delta_version
    pd.testing.assert_frame_equal(training_set.load(ref), frame)
    with pytest.raises(SentinanceError):
        training_set.load(training_set.TrainingSetRef("nope", ref.path, ref.delta_version, 0))


def test_train_logs_walk_forward_metrics_lineage_explanations_and_registers(ml_settings, trained) -> None:
    settings, _ = ml_settings
    first, _ = trained
    assert first.model_name == FORECASTER.name and registry.CHALLENGER in first.aliases
    for scope in ("fold0", "fold1", "fold2", "holdout", "cv"):
        for model in ("lstm", "persistence", "ema"):
            for metric in evaluation.METRICS:
                assert math.isfinite(first.metrics[f"{scope}_{model}_{metric}"])
    assert first.metrics["holdout_lstm_mape"] == first.metrics["fold2_lstm_mape"]
    assert first.metrics["holdout_mape_ratio"] == pytest.approx(
        first.metrics["holdout_lstm_mape"] / first.metrics["holdout_persistence_mape"]
    )
    # the synthetic basis mean-reverts strongly: a working LSTM must beat the random walk here
    assert first.metrics["cv_mape_ratio"] < 0.95 and first.metrics["cv_lstm_directional_accuracy"] > 0.55

    client = registry.client(settings)
    run = client.get_run(first.run_id)
    tags = client.get_model_version(FORECASTER.name, first.version).tags
    for key in (
        "training_set_id",
        "training_set_delta_version",
        "git_commit",
        "definitions_sha256",
        "seed",
        "delta_version.silver.candle_features",
        registry.TRAIN_PARAMS_TAG,
    ):
        assert key in tags and run.data.tags[key] == tags[key]
    assert train.TrainParams.from_json(tags[registry.TRAIN_PARAMS_TAG]) == train.TrainParams(
        **{**vars(PARAMS), "seed": settings.seed}
    )
    assert run.data.params["train_start"] < run.data.params["train_end"] < run.data.params["holdout_start"]
    assert len(client.get_metric_history(first.run_id, "fold2_val_loss")) == first.metrics["fold2_epochs"]
    sources = [json.loads(d.dataset.source) for d in run.inputs.dataset_inputs]
    # MLflow's DeltaDatasetSource drops a version of 0 from its JSON (falsy): absent means 0 here
    assert {(s["path"], s.get("delta_table_version", 0)) for s in sources} == {
        (training_set.table_path(settings), int(tags["training_set_delta_version"]))
    }
    assert {
        "gate.json",
        "plots/error_by_fold.png",
        "plots/forecast_vs_actual.png",
        "plots/backtest_equity.png",
        "backtest/equity.csv",
        "seeds/seeds.json",
        "seeds/seeds.md",
        "explanations/explanations.json",
        "explanations/shap_by_feature.png",
        "explanations/shap_by_lag_and_feature.png",
        "explanations/lime_recent_0.png",
    } <= _artifacts(client, first.run_id)
    explained = json.loads(Path(client.download_artifacts(first.run_id, "explanations/explanations.json")).read_text())
    importance = explained["shap"]["by_feature"]
    assert max(importance, key=importance.get) == "basis_bps"  # the only predictive input of the synthetic mart
    assert len(explained["shap"]["by_lag"]) == SEQUENCE_LENGTH and len(explained["lime"]) == EXPLAIN.lime_instances
    info = mlflow.models.get_model_info(f"models:/{FORECASTER.name}/{first.version}")
    assert info.signature.inputs.inputs[0].shape == (-1, SEQUENCE_LENGTH, 4)
    assert (info.metadata["sequence_length"], info.metadata["interval"]) == (SEQUENCE_LENGTH, FORECASTER.interval)
    # served with a virtualenv (or uv, conda) env manager, the model installs PyTorch's CPU build, not CUDA's
    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{FORECASTER.name}/{first.version}"))
    lines = requirements.read_text().splitlines()
    assert lines[:2] == [
        "--extra-index-url https://download.pytorch.org/whl/cpu",
        f"torch=={torch.__version__.split('+')[0]}+cpu",
    ]
    assert f"mlflow=={mlflow.__version__}" in lines


def test_gate_compares_with_persistence_and_the_champion_on_the_same_rows(ml_settings, trained) -> None:
    settings, _ = ml_settings
    first, second = trained
    assert first.gate["champion_version"] is None and first.gate["vs_champion"] is None
    assert (
        (registry.CHAMPION in first.aliases) == first.gate["promoted"] == bool(first.gate["vs_persistence"]["a_better"])
    )
    assert first.gate["promoted"]  # the LSTM beats persistence by far on this mart

    vs_champion = second.gate["vs_champion"]
    assert second.gate["champion_version"] == first.version and vs_champion["periods"] > 0
    assert vs_champion["periods"] == second.gate["vs_persistence"]["periods"]  # v1 never saw v2's holdout
    assert second.gate["promoted"] == bool(second.gate["vs_persistence"]["a_better"] and vs_champion["a_better"])
    assert (registry.CHAMPION in second.aliases) == second.gate["promoted"]
    client = registry.client(settings)
    for result in (first, second):  # the decision and its statistics are logged either way
        run = client.get_run(result.run_id)
        assert run.data.tags["gate"] == ("passed" if result.gate["promoted"] else "failed")
        assert run.data.metrics["gate_promoted"] == float(result.gate["promoted"])
        assert "gate_vs_persistence_dm_pvalue" in run.data.metrics
    assert "gate_vs_champion_t_pvalue" in client.get_run(second.run_id).data.metrics
    champion = registry.alias_version(settings, registry.CHAMPION)
    assert str(champion.version) == (second.version if second.gate["promoted"] else first.version)


def test_a_registered_but_unfinished_version_is_finished_not_trained_again(ml_settings, trained) -> None:
    """As a run killed between registration and aliasing leaves it: no alias, no version tags. Training the
    same set (before the drift test shifts the mart) with the same parameters finishes that version instead
    of registering another."""
    settings, _ = ml_settings
    _, second = trained
    client = registry.client(settings)
    before = client.get_registered_model(FORECASTER.name)
    versions = len(client.search_model_versions(f"name = '{FORECASTER.name}'"))
    for alias, version in before.aliases.items():
        if version == second.version:
            client.delete_registered_model_alias(FORECASTER.name, alias)
    for key in client.get_model_version(FORECASTER.name, second.version).tags:
        client.delete_model_version_tag(FORECASTER.name, second.version, key)

    again = train.train_and_register(settings, train.TrainParams(**{**vars(PARAMS), "seed": 99}), EXPLAIN)

    assert again.reused and again.version == second.version and again.run_id == second.run_id
    assert again.aliases == second.aliases and again.gate["promoted"] == second.gate["promoted"]
    tags = client.get_model_version(FORECASTER.name, second.version).tags
    assert tags[registry.REGISTRATION_TAG] == registry.COMPLETE and tags["training_set_id"] == second.training_set_id
    assert client.get_registered_model(FORECASTER.name).aliases == before.aliases
    assert len(client.search_model_versions(f"name = '{FORECASTER.name}'")) == versions


def test_reproduce_retrains_a_version_from_its_records_after_maintenance(ml_settings, trained) -> None:
    """Even after every table was compacted and VACUUMed with no retention: maintenance keeps the
    training-set versions registered versions record."""
    settings, _ = ml_settings
    first, _ = trained
    stored = training_set.load(
        training_set.TrainingSetRef(
            first.training_set_id, training_set.table_path(settings), lake.version(training_set.table_path(settings)), 0
        )
    )
    training_set.save(settings, stored.head(40))  # a later version whose compaction rewrites the table's files
    kept = registry.recorded_training_set_versions(settings)
    for table in catalog.TABLES:
        lake.maintain(settings, table, 0, kept if table is catalog.TRAINING_SETS else ())
    result = reproduce.reproduce(settings, first.version)
    assert result.reproduced and result.max_relative_error <= reproduce.TOLERANCE
    assert result.training_set_id == first.training_set_id and result.compared > 50


@pytest.fixture(scope="module")
def champion_and_challenger(ml_settings, trained):
    """v1 champion, v2 challenger (set explicitly: which one the gate promoted does not matter here)."""
    settings, _ = ml_settings
    first, second = trained
    client = registry.client(settings)
    client.set_registered_model_alias(FORECASTER.name, registry.CHAMPION, first.version)
    client.set_registered_model_alias(FORECASTER.name, registry.CHALLENGER, second.version)
    return first, second


def test_score_latest_serves_the_champion_and_shadows_the_challenger(ml_settings, champion_and_challenger) -> None:
    settings, synthetic = ml_settings
    mart = synthetic.rows
    first, second = champion_and_challenger
    result = score.score_latest(settings)
    assert (result.rows, result.model_version, result.model_alias, result.shadow_version) == (
        3,
        first.version,
        "champion",
        second.version,
    )
    predictions = lake.read(score.predictions_path(settings))
    latest = mart.groupby("instrument_id")["event_timestamp"].max()
    assert len(predictions) == 6 and set(predictions["model_version"]) == {first.version, second.version}
    for _, row in predictions.iterrows():
        assert row["feature_time"] == latest[row["instrument_id"]]
        assert row["target_time"] == row["feature_time"] + FORECASTER.period
        assert row["predicted_close"] > 0 and abs(row["predicted_log_return"]) < 0.1
    again = score.score_latest(settings)  # rescoring the same hour with the same versions writes nothing
    assert again.delta_version == result.delta_version
    pd.testing.assert_frame_equal(lake.read(score.predictions_path(settings)), predictions)


def test_ab_test_pairs_the_versions_on_the_same_targets(ml_settings, champion_and_challenger) -> None:
    settings, synthetic = ml_settings
    mart = synthetic.rows
    first, second = champion_and_challenger
    assert (
        ab_testing.compare_champion_challenger(settings).status == ab_testing.INSUFFICIENT
    )  # only the latest hour so far

    # a backlog of 40 scored hours (as 40 hourly runs would leave), both versions on the same rows
    hours = np.sort(mart["event_timestamp"].unique())[-41:-1]
    rows = mart[mart["event_timestamp"].isin(hours)].reset_index(drop=True)
    scored_at = pd.Timestamp.now(tz="UTC")
    backlog = pd.concat(
        [
            score.predict(registry.alias_version(settings, alias), alias, rows, scored_at)
            for alias in (registry.CHAMPION, registry.CHALLENGER)
        ],
        ignore_index=True,
    )
    lake.merge(
        score.predictions_path(settings), backlog, keys=catalog.PREDICTION_KEYS, schema=catalog.PREDICTIONS.schema
    )

    result = ab_testing.compare_champion_challenger(settings, min_periods=30)
    assert result.status == ab_testing.COMPARED and result.periods == 40 and result.pairs == 120
    assert (result.champion_version, result.challenger_version) == (first.version, second.version)
    pairs = ab_testing.paired_forecasts(settings, first.version, second.version)
    expected = evaluation.compare(
        evaluation.loss(pairs["challenger"], pairs["actual"]),
        evaluation.loss(pairs["champion"], pairs["actual"]),
        pairs["feature_time"],
        alpha=0.05,
    )
    assert result.comparison["dm_pvalue"] == pytest.approx(expected.dm_pvalue)
    assert result.challenger_better == expected.a_better
    assert (
        pairs["actual"].to_numpy()
        == mart.set_index(["instrument_id", "event_timestamp"])
        .loc[list(zip(pairs["instrument_id"], pairs["feature_time"], strict=True)), "next_log_return"]
        .to_numpy()
    ).all()
    assert ab_testing.compare_champion_challenger(settings, min_periods=41).status == ab_testing.INSUFFICIENT
    client = registry.client(settings)
    assert client.get_run(result.run_id).data.tags["status"] == ab_testing.COMPARED
    assert (
        client.get_model_version(FORECASTER.name, second.version).tags["ab_testing"].startswith(ab_testing.INSUFFICIENT)
    )


def test_drift_is_quiet_on_stationary_data_and_flags_feature_and_prediction_shifts(
    ml_settings, champion_and_challenger
) -> None:
    settings, _ = ml_settings
    first, _ = champion_and_challenger
    stable = drift.check_drift(settings, window_days=7)
    assert all(math.isfinite(v) for d in (stable.ks_statistic, stable.ks_pvalue, stable.psi) for v in d.values())
    assert stable.model_version == first.version and stable.reference_rows > 0 and stable.current_rows > 0
    assert not stable.drifted and not stable.prediction["drifted"] and not stable.performance["drifted"]
    assert not stable.retrain and stable.reasons == ()

    lags = ", ".join(f"basis_bps_lag_{i} = basis_bps_lag_{i} + %(shift)s" for i in range(SEQUENCE_LENGTH))
    shift = (
        f"UPDATE marts.fct_training_features SET basis_bps = basis_bps + %(shift)s, {lags} "
        "WHERE event_timestamp > %(since)s"
    )
    with services.connect(settings) as conn:
        since = conn.execute("SELECT max(event_timestamp) FROM marts.fct_training_features").fetchone()[0] - timedelta(
            days=7
        )
        conn.execute(shift, {"shift": 100.0, "since": since})
    try:
        shifted = drift.check_drift(settings, window_days=7)
    finally:
        with services.connect(settings) as conn:
            conn.execute(shift, {"shift": -100.0, "since": since})
    assert shifted.drifted and shifted.psi["basis_bps"] > drift.PSI_DRIFT_THRESHOLD and shifted.retrain
    assert shifted.ks_pvalue["basis_bps"] < 1e-6 and shifted.psi["rsi_14"] == pytest.approx(stable.psi["rsi_14"])
    assert shifted.prediction["drifted"] and shifted.performance["drifted"]
    assert any(r.startswith("feature drift: basis_bps") for r in shifted.reasons)
    assert {r.split(":")[0] for r in shifted.reasons} >= {"feature drift", "prediction drift", "performance drift"}
    report = json.loads(Path(shifted.report_path).read_text())
    assert report["retrain"] is True and report["features"]["basis_bps"]["psi"] == pytest.approx(
        shifted.psi["basis_bps"]
    )
    assert "| basis_bps |" in shifted.markdown and "| prediction |" in shifted.markdown
    assert Path(shifted.report_path).with_suffix(".md").read_text() == shifted.markdown


def test_every_metric_of_the_lstm_is_logged_with_its_spread_over_the_seeds(ml_settings, trained) -> None:
    settings, _ = ml_settings
    first, _ = trained
    client = registry.client(settings)
    logged = client.get_run(first.run_id).data.metrics
    seeds = json.loads(Path(client.download_artifacts(first.run_id, "seeds/seeds.json")).read_text())
    assert first.seeds == (settings.seed, settings.seed + 1) and seeds["seeds"] == list(first.seeds)
    per_seed = {int(seed): values for seed, values in seeds["per_seed"].items()}
    for key in ("holdout_mape_ratio", "cv_lstm_rmse", "fold0_lstm_directional_accuracy", "holdout_lstm_rank_icir"):
        values = [per_seed[seed][key] for seed in first.seeds]
        assert values[0] == logged[key]  # the registered seed's value is the metric itself
        assert logged[f"{key}_seed_mean"] == pytest.approx(np.mean(values))
        assert logged[f"{key}_seed_std"] == pytest.approx(np.std(values, ddof=1))
    assert "cv_persistence_rmse_seed_mean" not in logged  # a baseline does not depend on the seed
    gate = json.loads(Path(client.download_artifacts(first.run_id, "gate.json")).read_text())["seeds"]
    assert gate["baseline"] == "persistence" and len(gate["dm_pvalue"]) == len(first.seeds)
    assert gate["dm_pvalue"][0] == pytest.approx(first.gate["vs_persistence"]["dm_pvalue"])  # the gate's own seed
    assert logged["gate_seed_pass_share"] == pytest.approx(np.mean(gate["beats_baseline"]))
    assert "± " in Path(client.download_artifacts(first.run_id, "seeds/seeds.md")).read_text()


def test_cross_sectional_ic_is_logged_per_fold_and_on_the_holdout(trained) -> None:
    first, _ = trained
    metrics = first.metrics
    for scope in ("fold0", "fold1", "fold2", "holdout", "cv"):
        for key in evaluation.IC_METRICS:
            assert f"{scope}_lstm_{key}" in metrics and f"{scope}_ema_{key}" in metrics
    assert metrics["holdout_lstm_icir"] == metrics["fold2_lstm_icir"]
    assert metrics["holdout_lstm_icir"] == pytest.approx(
        metrics["holdout_lstm_ic_mean"] / metrics["holdout_lstm_ic_std"]
    )
    assert (
        metrics["holdout_lstm_rank_ic_mean"] > 0.2
    )  # the basis reverts: richer venues fall back across the cross-section


def test_every_registered_version_is_backtested_after_costs(ml_settings, trained) -> None:
    settings, _ = ml_settings
    first, second = trained
    for result in trained:
        assert {
            f"backtest_{name}_sharpe" for name in ("lstm_long_flat", "persistence_long_short", "buy_and_hold")
        } <= set(result.backtest)
        logged = registry.client(settings).get_run(result.run_id).data.metrics
        assert {k: logged[k] for k in result.backtest} == result.backtest
        params = registry.client(settings).get_run(result.run_id).data.params
        assert (params["backtest_fees_bps"], params["backtest_slippage_bps"]) == ("10.0", "5.0")
    stored = lake.read(catalog.BACKTESTS.path(settings))
    assert len(stored) == 2 * 5 and set(stored["model_version"]) == {first.version, second.version}
    row = stored[(stored["model_version"] == first.version) & (stored["strategy"] == "lstm")]
    row = row[row["rule"] == "long_flat"].iloc[0]
    assert row["sharpe"] == first.backtest["backtest_lstm_long_flat_sharpe"] and row["run_id"] == first.run_id
    # the window traded is the registered version's holdout
    params = registry.client(settings).get_run(first.run_id).data.params
    assert row["window_start"] == pd.Timestamp(params["holdout_start"])


def test_training_refuses_a_loss_that_does_not_suit_the_target(ml_settings) -> None:
    settings, _ = ml_settings
    with pytest.raises(SettingsError, match="gate_loss 'qlike' does not suit sentinance-lstm-forecaster"):
        train.train_and_register(settings, train.TrainParams(gate_loss="qlike"), target=targets.RETURNS)
