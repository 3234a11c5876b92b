"""End to end: the `lakehouse` Prefect flow over a small simulated window, then incremental reruns."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterId, FlowRunFilter, FlowRunFilterParentFlowRunId

from sentinance import catalog, lake, services
from sentinance.catalog import FORECASTER, VOLATILITY
from sentinance.pipelines.flows.lakehouse import lakehouse
from sentinance.settings import Settings


def _pg_scalar(settings: Settings, sql: str, *params):
    with services.connect(settings) as conn:
        return conn.execute(sql, params or None).fetchone()[0]


def _duplicate_keys(settings: Settings, layer: str, name: str, keys: list[str]) -> int:
    frame = lake.read(catalog.table(f"{layer}/{name}").path(settings), columns=keys)
    return int(frame.duplicated().sum())


@pytest.fixture(scope="module")
def first_run(lakehouse_run: dict) -> dict:
    return lakehouse_run


@pytest.mark.e2e
def test_first_run_lands_every_layer(first_run: dict, settings: Settings, lakehouse_window) -> None:
    _, days = lakehouse_window
    stages = first_run["stages"]
    assert stages["ingest"]["candles"]["inserted"] > 3 * 3 * 24 * (days - 3)  # a few outage gaps allowed
    silver_rows = lake.row_count(catalog.CANDLE_FEATURES.path(settings))
    assert silver_rows == lake.row_count(catalog.CANDLES.path(settings))
    assert _pg_scalar(settings, "SELECT count(*) FROM lake.candle_features") == silver_rows
    assert _pg_scalar(settings, "SELECT count(*) FROM marts.fct_training_features") == silver_rows
    assert stages["train"]["model_name"] == FORECASTER.name
    assert "challenger" in stages["train"]["aliases"]
    predictions = lake.read(catalog.PREDICTIONS.path(settings))
    assert len(predictions) == 9 and set(predictions["model_version"]) == {stages["train"]["version"]}
    assert _pg_scalar(settings, "SELECT count(*) FROM lake.predictions") == 9
    assert stages["drift"] is None  # nothing to compare against before the first model
    backtests = lake.read(catalog.BACKTESTS.path(settings))
    assert len(backtests) == 5 and set(backtests["model_version"]) == {stages["train"]["version"]}
    assert set(stages["train"]["backtest"]) >= {"backtest_lstm_long_flat_sharpe", "backtest_buy_and_hold_sharpe"}
    # loaded and built by the score stage of the same run
    assert (
        _pg_scalar(
            settings, "SELECT count(*) FROM marts.fct_backtests WHERE model_version = %s", stages["train"]["version"]
        )
        == 5
    )

    # the volatility model: trained against HAR-RV, gated, registered under its own name, scored
    volatility = stages["train_volatility"]
    assert volatility["model_name"] == VOLATILITY.name and "challenger" in volatility["aliases"]
    assert "vs_har" in volatility["gate"] and len(volatility["seeds"]) == 5
    assert stages["score_volatility"]["rows"] == 9
    served = lake.read(catalog.VOLATILITY_PREDICTIONS.path(settings))
    assert len(served) == 9 and (served["predicted_rv"] > 0).all()
    assert _pg_scalar(settings, "SELECT count(*) FROM lake.volatility_predictions") == 9
    # every stage and the gate and scoring left their metrics for Prometheus (docs/monitoring.md)
    written = {path.stem for path in settings.metrics_dir.glob("*.prom")}
    stage_files = {f"stage_{name}" for name in ("lakehouse", "ingest", "features", "marts", "train", "score")}
    assert {"ingest", "gate", "serving", *stage_files} <= written
    served = stages["score"]
    line = f'sentinance_model_serving_version{{alias="{served["model_alias"]}"}} {float(served["model_version"])}'
    assert line in (settings.metrics_dir / "serving.prom").read_text()
    summary = first_run["summary"]
    for needle in (
        "delta:bronze/candles",
        "postgres:marts.fct_training_features",
        "@challenger",
        f"{VOLATILITY.name} @challenger",
        "sentinance ui prefect",
        "sentinance ui mlflow",
        "ui dbt-docs",
        "ui jupyter",
        "Last flow runs (Prefect):",
    ):
        assert needle in summary


def _table_versions(settings: Settings) -> dict[str, int | None]:
    return {table.id: lake.version(table.path(settings)) for table in catalog.TABLES}


def _model_versions(settings: Settings) -> int:
    from sentinance.ml import registry

    return len(registry.client(settings).search_model_versions(f"name = '{FORECASTER.name}'"))


@pytest.mark.e2e
def test_the_same_window_again_is_a_no_op(first_run: dict, settings: Settings, lakehouse_window, spark) -> None:
    """Counted, not timed: no Spark job, no Delta commit, no model version, no warehouse row."""
    end, days = lakehouse_window
    tables, models = _table_versions(settings), _model_versions(settings)
    jobs = len(spark.sparkContext.statusTracker().getJobIdsForGroup())

    again = lakehouse(end=end, days=days)["stages"]

    assert _table_versions(settings) == tables and _model_versions(settings) == models
    assert len(spark.sparkContext.statusTracker().getJobIdsForGroup()) == jobs
    assert again["ingest"]["candles"]["inserted"] == again["ingest"]["candles"]["updated"] == 0
    assert again["silver"]["skipped"] and again["anomalies"]["skipped"] and again["marts"]["skipped"]
    assert {load["mode"] for load in again["load"].values()} == {"noop"}
    assert again["features"]["skipped"] and again["score"]["skipped"] and again["model_performance"]["skipped"]
    assert list(again["drift"]["reasons"]) == ["no new data since the last check"] and not again["drift"]["retrain"]
    assert "train" not in again and "train_volatility" not in again


@pytest.mark.e2e
def test_six_more_hours_flow_through_as_those_rows(first_run: dict, settings: Settings, lakehouse_window) -> None:
    end, days = lakehouse_window
    bronze_before = lake.row_count(catalog.CANDLES.path(settings))
    later = lakehouse(end=end + timedelta(hours=6), days=days)["stages"]
    new_rows = later["ingest"]["candles"]["inserted"]
    assert 0 < new_rows <= 9 * 6
    assert later["silver"]["rows_written"] == new_rows
    assert later["load"]["candle_features"]["mode"] == "incremental"
    assert later["load"]["candle_features"]["rows"] == new_rows
    assert later["load"]["candles"]["mode"] == "incremental"  # bronze has a change data feed too
    assert later["load"]["candles"]["rows"] == new_rows

    bronze_rows = lake.row_count(catalog.CANDLES.path(settings))
    assert bronze_rows == bronze_before + new_rows
    assert _duplicate_keys(settings, "bronze", "candles", ["exchange", "symbol", "interval", "open_time"]) == 0
    assert _duplicate_keys(settings, "silver", "candle_features", ["exchange", "symbol", "interval", "open_time"]) == 0
    assert _pg_scalar(settings, "SELECT count(*) FROM lake.candle_features") == bronze_rows
    assert _pg_scalar(settings, "SELECT count(*) FROM marts.fct_training_features") == bronze_rows
    scored = later["score"]["model_version"]
    predicted = _pg_scalar(
        settings, "SELECT count(*) FROM marts.fct_model_performance WHERE target_time > %s", end + timedelta(hours=5)
    )
    assert later["model_performance"]["success"] and predicted >= 9, scored  # this run's own forecasts


@pytest.mark.e2e
def test_the_stages_run_as_subflows_of_the_lakehouse_run(first_run: dict) -> None:
    with get_client(sync_client=True) as client:
        ingest_run = client.read_flow_run(UUID(first_run["stages"]["ingest"]["flow_run_id"]))
        parent = client.read_task_run(ingest_run.parent_task_run_id).flow_run_id
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))
        )
        flows = client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=[r.flow_id for r in children])))
        lakehouse_run = client.read_flow_run(parent)
    names = {f.id: f.name for f in flows}
    assert sorted(names[r.flow_id] for r in children) == [
        "features",
        "ingest",
        "marts",
        "score",
        "train",
        "train-volatility",
    ]
    assert lakehouse_run.state_name == "Completed" and all(r.state_name == "Completed" for r in children)
    assert all(r.empirical_policy.retries == 0 for r in children), "a nested stage never retries"
