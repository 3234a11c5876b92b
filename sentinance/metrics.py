"""Pipeline health in Prometheus' text format: written by the flow runs, served by one exporter.

A flow run is a short-lived process that Prometheus cannot scrape, so each writer (every stage
flow's outcome, the ``ingest`` flow's landing, the drift check, the gate, scoring) replaces its own file
``<state>/metrics/<job>.prom`` with its latest values, atomically (node_exporter's textfile
convention, ``prometheus_client.write_to_textfile``). The exporter (:func:`serve`, run by
``sentinance services up`` and ``sentinance serve-metrics``) serves every file on ``/metrics`` and
derives each series' freshness at scrape time, against its clock: the newest candle's time is a
fact of the last landing, its age is a fact of now, and it must keep growing when ingestion stops.

Every metric is declared once, below (name, help, labels); the alert rules and the Grafana
dashboard in ``infra/monitoring/`` use these names (a test checks that they exist here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, start_http_server, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from sentinance.catalog import SERIES_KEYS
from sentinance.settings import INTERVAL_SECONDS, Series, Settings

log = logging.getLogger(__name__)

DEFAULT_PORT = 9464
SUFFIX = ".prom"


@dataclass(frozen=True)
class PipelineMetric:
    """One gauge of the pipeline: its name, what it means, its labels."""

    name: str
    help: str
    labels: tuple[str, ...] = ()


SERIES = tuple(SERIES_KEYS)
NEWEST_CANDLE = PipelineMetric(
    "sentinance_series_newest_candle_timestamp_seconds", "Open time of the newest candle in bronze", SERIES
)
FRESHNESS = PipelineMetric(
    "sentinance_series_freshness_seconds",
    "Seconds since the newest candle in bronze closed (its open time + interval), at scrape time",
    SERIES,
)
INTERVAL = PipelineMetric("sentinance_series_interval_seconds", "Candle interval of the series", SERIES)
LANDED = PipelineMetric(
    "sentinance_landed_rows", "Rows the last ingest run landed in bronze (valid)", ("table", "instrument")
)
QUARANTINED = PipelineMetric(
    "sentinance_quarantined_rows", "Rows the last ingest run sent to quarantine", ("table", "instrument")
)
OPEN_GAPS = PipelineMetric(
    "sentinance_series_open_gaps", "Runs of missing candles in the window the last ingest run checked", SERIES
)
MISSING_CANDLES = PipelineMetric(
    "sentinance_series_missing_candles", "Candles missing in the window the last ingest run checked", SERIES
)
FEATURE_PSI = PipelineMetric(
    "sentinance_feature_psi", "PSI of the feature's latest window against the model's training window", ("feature",)
)
PREDICTION_PSI = PipelineMetric(
    "sentinance_prediction_psi", "PSI of the serving model's forecasts, latest window against training window"
)
RETRAIN = PipelineMetric("sentinance_drift_retrain", "1 if the last drift check asked for retraining")
GATE_PASSED = PipelineMetric(
    "sentinance_gate_passed", "1 if the last trained version passed the promotion gate", ("version",)
)
SERVING_VERSION = PipelineMetric(
    "sentinance_model_serving_version",
    "Registered version the last scoring run served, by alias (challenger: there is no champion)",
    ("alias",),
)
STAGE_DURATION = PipelineMetric("sentinance_stage_duration_seconds", "Duration of the stage's last run", ("stage",))
STAGE_SUCCESS = PipelineMetric("sentinance_stage_success", "1 if the stage's last run succeeded", ("stage",))
STAGE_LAST_RUN = PipelineMetric(
    "sentinance_stage_last_run_timestamp_seconds", "When the stage's last run started", ("stage",)
)

METRICS: tuple[PipelineMetric, ...] = (
    NEWEST_CANDLE,
    FRESHNESS,
    INTERVAL,
    LANDED,
    QUARANTINED,
    OPEN_GAPS,
    MISSING_CANDLES,
    FEATURE_PSI,
    PREDICTION_PSI,
    RETRAIN,
    GATE_PASSED,
    SERVING_VERSION,
    STAGE_DURATION,
    STAGE_SUCCESS,
    STAGE_LAST_RUN,
)

Samples = Mapping[tuple[str, ...], float]


def write(settings: Settings, job: str, values: Mapping[PipelineMetric, Samples]) -> Path:
    """Replace ``<metrics_dir>/<job>.prom`` with ``values`` (label values -> value, per metric)."""
    registry = CollectorRegistry()
    for metric, samples in values.items():
        gauge = Gauge(metric.name, metric.help, metric.labels, registry=registry)
        for labels, value in samples.items():
            (gauge.labels(*labels) if metric.labels else gauge).set(value)
    settings.metrics_dir.mkdir(parents=True, exist_ok=True)
    path = settings.metrics_dir / f"{job}{SUFFIX}"
    write_to_textfile(str(path), registry)  # a temporary file renamed over the old one: never read half-written
    return path


def record_ingest(
    settings: Settings,
    newest: Mapping[Series, float],
    landed: Mapping[tuple[str, str], int],
    quarantined: Mapping[tuple[str, str], int],
    gaps: Mapping[Series, tuple[int, int]],
) -> Path:
    """An ingest run's outcome: newest candle (epoch seconds) per series in bronze, rows landed and
    quarantined per (table, instrument), and (gap runs, missing candles) per series it checked."""
    return write(
        settings,
        "ingest",
        {
            NEWEST_CANDLE: newest,
            LANDED: {key: float(n) for key, n in landed.items()},
            QUARANTINED: {key: float(n) for key, n in quarantined.items()},
            OPEN_GAPS: {key: float(runs) for key, (runs, _) in gaps.items()},
            MISSING_CANDLES: {key: float(missing) for key, (_, missing) in gaps.items()},
        },
    )


def record_drift(settings: Settings, psi: Mapping[str, float], prediction_psi: float | None, retrain: bool) -> Path:
    values = {FEATURE_PSI: {(feature,): value for feature, value in psi.items()}, RETRAIN: {(): float(retrain)}}
    if prediction_psi is not None:
        values[PREDICTION_PSI] = {(): prediction_psi}
    return write(settings, "drift", values)


def record_gate(settings: Settings, version: str, passed: bool) -> Path:
    return write(settings, "gate", {GATE_PASSED: {(version,): float(passed)}})


def record_serving(settings: Settings, version: str, alias: str) -> Path:
    return write(settings, "serving", {SERVING_VERSION: {(alias,): float(version)}})


def record_stage(settings: Settings, name: str, started: float, seconds: float, succeeded: bool) -> Path:
    """A stage's last run: when it started (epoch seconds), how long it took, whether it succeeded."""
    key = (name,)
    return write(
        settings,
        f"stage_{name}",
        {
            STAGE_DURATION: {key: seconds},
            STAGE_SUCCESS: {key: float(succeeded)},
            STAGE_LAST_RUN: {key: started},
        },
    )


class PipelineCollector(Collector):
    """Every textfile of the state dir's metrics, merged by metric, and each series' freshness at ``clock()``."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.clock = settings, clock

    def describe(self) -> list[Metric]:
        return []  # the metrics are the files': nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for path in sorted(self.settings.metrics_dir.glob(f"*{SUFFIX}")):
            for family in text_string_to_metric_families(path.read_text()):
                if family.name in families:
                    families[family.name].samples.extend(family.samples)
                else:
                    families[family.name] = family
        yield from families.values()
        newest = families.get(NEWEST_CANDLE.name)
        if newest is not None:
            yield from self._freshness(newest)

    def _freshness(self, newest: Metric) -> Iterator[Metric]:
        now = self.clock()
        freshness = GaugeMetricFamily(FRESHNESS.name, FRESHNESS.help, labels=FRESHNESS.labels)
        interval = GaugeMetricFamily(INTERVAL.name, INTERVAL.help, labels=INTERVAL.labels)
        for sample in newest.samples:
            labels = [sample.labels[key] for key in SERIES]
            seconds = INTERVAL_SECONDS[sample.labels["interval"]]
            freshness.add_metric(labels, now - (sample.value + seconds))
            interval.add_metric(labels, seconds)
        yield freshness
        yield interval


def serve(
    settings: Settings, port: int = DEFAULT_PORT, clock: Callable[[], float] = time.time
) -> tuple[WSGIServer, Thread]:
    """Serve the pipeline metrics on ``http://127.0.0.1:<port>/metrics`` from a daemon thread; returns the
    server (``shutdown()`` stops it) and its thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(settings, clock))
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    log.info("pipeline metrics on http://127.0.0.1:%d/metrics", port)
    return server, thread
