"""The pipeline metrics without a server: textfiles, the exporter's merge and freshness against a supplied
clock, and the monitoring files in infra/monitoring/ naming only metrics that exist."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sentinance import metrics
from sentinance.ml.drift import PSI_DRIFT_THRESHOLD
from sentinance.settings import Settings

MONITORING = Path(__file__).resolve().parents[2] / "infra" / "monitoring"
NEWEST = datetime(2026, 1, 19, 23, tzinfo=UTC)  # open time of the newest hourly candle: it closed at midnight


def _scrape(settings: Settings, now: datetime) -> dict[str, dict[tuple, float]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.PipelineCollector(settings, clock=now.timestamp))
    text = generate_latest(registry).decode()
    return {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


def test_freshness_is_the_newest_candles_age_at_the_exporters_clock(fresh_settings: Settings) -> None:
    series = ("binance", "BTC/USDT", "1h")
    metrics.record_ingest(
        fresh_settings,
        newest={series: NEWEST.timestamp()},
        landed={("candles", "binance:BTC/USDT"): 24},
        quarantined={("candles", "binance:BTC/USDT"): 1},
        gaps={series: (2, 5)},
    )
    labels = (("exchange", "binance"), ("interval", "1h"), ("symbol", "BTC/USDT"))
    fresh = _scrape(fresh_settings, datetime(2026, 1, 20, 0, 10, tzinfo=UTC))
    assert fresh[metrics.FRESHNESS.name] == {labels: 600.0}  # ten minutes after the candle closed
    assert fresh[metrics.INTERVAL.name] == {labels: 3600.0}
    assert fresh[metrics.MISSING_CANDLES.name] == {labels: 5.0} and fresh[metrics.OPEN_GAPS.name] == {labels: 2.0}
    instrument = (("instrument", "binance:BTC/USDT"), ("table", "candles"))
    assert fresh[metrics.QUARANTINED.name] == {instrument: 1.0}
    # no new landing: the same file, a later scrape, an older candle
    stale = _scrape(fresh_settings, datetime(2026, 1, 20, 5, tzinfo=UTC))
    assert stale[metrics.FRESHNESS.name] == {labels: 5 * 3600.0}


def test_every_writer_has_its_file_and_the_exporter_merges_them(fresh_settings: Settings) -> None:
    for stage, seconds, succeeded in (("ingest", 4.0, True), ("marts", 30.0, False)):
        metrics.record_stage(fresh_settings, stage, 1_800_000_000.0, seconds, succeeded)
    metrics.record_stage(fresh_settings, "marts", 1_800_000_100.0, 20.0, True)  # a later run replaces the last
    metrics.record_drift(fresh_settings, {"rsi_14": 0.3, "log_return": 0.01}, None, retrain=True)
    metrics.record_gate(fresh_settings, "4", passed=False)
    metrics.record_serving(fresh_settings, "3", "champion")
    files = sorted(p.name for p in fresh_settings.metrics_dir.iterdir())
    assert files == ["drift.prom", "gate.prom", "serving.prom", "stage_ingest.prom", "stage_marts.prom"]
    scraped = _scrape(fresh_settings, datetime(2026, 1, 20, tzinfo=UTC))
    assert scraped[metrics.STAGE_SUCCESS.name] == {(("stage", "ingest"),): 1.0, (("stage", "marts"),): 1.0}
    assert scraped[metrics.STAGE_DURATION.name][(("stage", "marts"),)] == 20.0
    assert scraped[metrics.FEATURE_PSI.name][(("feature", "rsi_14"),)] == 0.3
    assert metrics.PREDICTION_PSI.name not in scraped  # no model: no forecasts to compare
    assert scraped[metrics.GATE_PASSED.name] == {(("version", "4"),): 0.0}
    assert scraped[metrics.SERVING_VERSION.name] == {(("alias", "champion"),): 3.0}
    assert metrics.FRESHNESS.name not in scraped  # nothing landed yet


def _named(exprs: list[str]) -> set[str]:
    """The metric names in PromQL expressions (a name regex like ``sentinance_(feature|prediction)_psi`` expanded)."""
    text = " ".join(exprs).replace(
        "sentinance_(feature|prediction)_psi", "sentinance_feature_psi sentinance_prediction_psi"
    )
    return set(re.findall(r"\bsentinance_[a-z_]+\b", text))


def test_alerts_and_dashboard_watch_the_declared_metrics_with_the_drift_threshold() -> None:
    rules = [r for g in yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"] for r in g["rules"]]
    alerted = _named([r["expr"] for r in rules])
    dashboard = json.loads((MONITORING / "grafana" / "sentinance-pipeline.json").read_text())
    shown = _named([t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])])
    declared = {m.name for m in metrics.METRICS}
    assert alerted | shown <= declared  # nothing watches a metric no one writes
    assert declared - {metrics.NEWEST_CANDLE.name} <= alerted | shown  # (freshness is derived from it)
    drift = next(r for r in rules if r["alert"] == "SentinanceDrift")
    assert float(drift["expr"].rsplit(">", 1)[1]) == PSI_DRIFT_THRESHOLD


def test_an_ingest_run_counts_rows_per_instrument_over_its_intervals(fresh_settings: Settings) -> None:
    """Landing counts per series (``exchange:symbol:interval`` for candles) become one sample per instrument."""
    from sentinance.pipelines.flows.ingest import IngestResult, record_metrics
    from sentinance.pipelines.landing.bronze import LandingResult

    per_series = {"kraken:SOL/USD:1h": {"landed": 24, "quarantined": 2}, "kraken:SOL/USD:4h": {"landed": 6}}
    candles = LandingResult(32, 30, 0, 0, 2, 0, 1, series=per_series)
    trades = LandingResult(5, 5, 0, 0, 0, 0, 1, series={"kraken:SOL/USD": {"landed": 5}})
    result = IngestResult("simulator", ["1h", "4h"], pd.Timestamp(NEWEST), candles=candles, trades=trades)
    record_metrics(fresh_settings, result, [("kraken", "SOL/USD", "1h"), ("kraken", "SOL/USD", "4h")])
    scraped = _scrape(fresh_settings, datetime(2026, 1, 20, tzinfo=UTC))
    sol = (("instrument", "kraken:SOL/USD"),)
    assert scraped[metrics.LANDED.name] == {(*sol, ("table", "candles")): 30.0, (*sol, ("table", "trades")): 5.0}
    assert scraped[metrics.QUARANTINED.name] == {(*sol, ("table", "candles")): 2.0, (*sol, ("table", "trades")): 0.0}
    assert set(scraped[metrics.OPEN_GAPS.name].values()) == {0.0}  # both checked series, no gap found
