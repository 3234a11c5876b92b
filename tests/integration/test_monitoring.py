"""The pipeline metrics in a real Prometheus (Debian's, `make prometheus`): the alert rules pass
`promtool check rules` and their unit tests on recorded samples, and a Prometheus scraping the exporter
after an ingest run sees each series' freshness turn stale once ingestion stops.

Time is driven by the data: the exporter's clock is supplied by the test (the landing stays, "now" moves
on), so the same scrape that reported ten minutes reports five hours, and the staleness rule of
infra/monitoring/alerts.yaml goes pending on all nine series.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from support.servers import free_port, started

from sentinance import metrics
from sentinance.settings import Settings, get_settings
from sentinance.supervisor import wait_for_http

MONITORING = Path(__file__).resolve().parents[2] / "infra" / "monitoring"
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
END = datetime(2026, 1, 20, tzinfo=UTC)  # the landing's end: the newest candle opened at 23:00 and closed at END
SCRAPES_SECONDS = 120

pytestmark = pytest.mark.skipif(
    not (PROMETHEUS and PROMTOOL), reason="needs Debian's prometheus and promtool (`make prometheus`)"
)


def _promtool(*args: str) -> str:
    done = subprocess.run([PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    assert "SUCCESS: 10 rules found" in _promtool("check", "rules", "alerts.yaml")
    assert "SUCCESS" in _promtool("test", "rules", "alerts.test.yaml")


class Clock:
    """The exporter's "now", set by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now.timestamp()


@pytest.fixture(scope="module")
def landed() -> Settings:
    """A state dir after one simulated ingest run of the last day before END (candles only)."""
    from sentinance.pipelines.flows.ingest import ingest

    home = tempfile.mkdtemp(prefix="sentinance-monitoring-")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SENTINANCE_HOME", home)  # the flow reads its settings from the environment
        ingest(end=END, days=1, include_trades=False)
        return get_settings()


@pytest.fixture(scope="module")
def prometheus(landed: Settings) -> Iterator[tuple[str, Clock]]:
    """The exporter on the landed state (clock: 10 minutes after the newest candle closed) and a
    Prometheus scraping it every second with the project's alert rules, evaluated every second."""
    clock = Clock(END + timedelta(minutes=10))
    exporter, _ = metrics.serve(landed, free_port(), clock)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sentinance-prometheus-"))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / "alerts.yaml")],
        "scrape_configs": [
            {"job_name": "sentinance", "static_configs": [{"targets": [f"127.0.0.1:{exporter.server_port}"]}]}
        ],
    }
    (workdir / "prometheus.yaml").write_text(yaml.safe_dump(config))
    command = [
        PROMETHEUS,
        f"--config.file={workdir / 'prometheus.yaml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    try:
        with started(command, "prometheus") as process:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base}/-/ready", SCRAPES_SECONDS, process)
            yield base, clock
    finally:
        exporter.shutdown()


def _until(base: str, query: str, done) -> list[dict]:
    """Query Prometheus until ``done(result)`` holds (each try waits for the next scrape)."""
    deadline = time.monotonic() + SCRAPES_SECONDS
    while True:
        result = httpx.get(f"{base}/api/v1/query", params={"query": query}).json()["data"]["result"]
        if done(result):
            return result
        assert time.monotonic() < deadline, f"{query}: {result}"
        time.sleep(1)


def test_prometheus_sees_freshness_turn_stale_when_ingestion_stops(prometheus: tuple[str, Clock]) -> None:
    base, clock = prometheus
    freshness = "sentinance_series_freshness_seconds"
    fresh = _until(base, freshness, lambda r: len(r) == 9)
    assert {float(s["value"][1]) for s in fresh} == {600.0}  # every series: 10 minutes after its newest candle
    landed = _until(base, 'sentinance_landed_rows{table="candles"}', lambda r: len(r) == 9)
    assert {float(s["value"][1]) for s in landed} == {24.0}
    assert _until(base, "ALERTS", lambda r: True) == []

    clock.now = END + timedelta(hours=5)  # no ingest run since: the same landing, five hours later
    stale = _until(base, freshness, lambda r: {float(s["value"][1]) for s in r} == {5 * 3600.0})
    assert {s["metric"]["exchange"] for s in stale} == {"binance", "coinbase", "kraken"}
    alerts = _until(base, 'ALERTS{alertname="SentinanceSeriesStale"}', lambda r: len(r) == 9)
    assert {s["metric"]["alertstate"] for s in alerts} == {"pending"}  # firing after its `for: 5m`
