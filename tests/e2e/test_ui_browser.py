"""The UIs users work in, proven in a real headless Chromium (Debian's, driven by selenium + chromedriver).

Each server is started the way a user starts it (`sentinance ui …` / `sentinance serve`) on a free
loopback port against the session's state (after one `lakehouse` run), and stopped again. The
MLflow registry is shown twice: on the session's default data (the gate keeps persistence: a
`challenger` only) and on a state dir of its own where a strong lead–lag (`SENTINANCE_SIMULATOR_LAGS`)
makes the market learnable, built by `sentinance run` in a subprocess (the real gate promotes a
`champion`). Every test saves a screenshot under test-artifacts/ (server logs beside them).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from support.servers import ARTIFACTS, free_port, sentinance, state_env

from sentinance.catalog import FORECASTER
from sentinance.services import mlflow_tracking_uri
from sentinance.settings import Settings
from sentinance.supervisor import wait_for_http

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]
SERVER_START_SECONDS = 120
PAGE_SECONDS = 60
RUN_SECONDS = 900  # one `sentinance run` on a state dir of its own
# a market the LSTM can learn: coinbase and kraken take 50% and 80% of binance's move an hour late
LEAD_LAG, LEAD_LAG_DAYS = "coinbase=0.5,kraken=0.8", 28
# a row of a list of flow runs whose flow is {flow}
ROW_OF_FLOW = (
    "//*[contains(concat(' ', @class, ' '), ' state-list-item__content ')]"
    "[.//*[contains(@class, 'flow-run-bread-crumbs__flow-link')][.='{flow}']]"
)
DEPLOYMENTS = [
    "ingest/hourly",
    "features-and-marts/after-ingest",
    "train/daily",
    "train-volatility/daily",
    "score/hourly",
    "monitor/daily",
    "lakehouse/manual",
]

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (`make browser`)"
)


@contextmanager
def _ui(name: str, ready_path: str, env: dict[str, str] | None = None, log_name: str = "") -> Iterator[str]:
    port = free_port()
    with sentinance("ui", name, "--port", str(port), log_name=log_name or f"{name}-server", env=env) as process:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + ready_path, SERVER_START_SECONDS, process)
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with tempfile.TemporaryDirectory(prefix="sentinance-chromium-") as profile:  # a fresh profile each run
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def _page_text(driver: webdriver.Chrome) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def _wait_for_text(driver: webdriver.Chrome, *needles: str) -> str:
    WebDriverWait(driver, PAGE_SECONDS).until(lambda d: all(n in _page_text(d) for n in needles))
    return _page_text(driver)


def _screenshot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    return path


@pytest.fixture(scope="module")
def learnable_home(lakehouse_window: tuple[datetime, int]) -> Path:
    """A state dir of its own after one `sentinance run` on a market with a strong lead–lag.

    From tempfile.mkdtemp, not tmp_path: pgserver's Unix socket path must stay short. The run
    starts its own ephemeral Prefect API (PREFECT_HOME defaults to the new state dir).
    """
    home = Path(tempfile.mkdtemp(prefix="sentinance-leadlag-"))
    env = {**state_env(home), "SENTINANCE_SIMULATOR_LAGS": LEAD_LAG, "SENTINANCE_SEED": "7"}
    args = ["run", "--end", lakehouse_window[0].isoformat(), "--days", str(LEAD_LAG_DAYS)]
    with sentinance(*args, log_name="lead-lag-run", env=env) as run:
        assert run.wait(timeout=RUN_SECONDS) == 0, "`sentinance run` failed: see test-artifacts/lead-lag-run.log"
    return home


@pytest.fixture(scope="module")
def prefect_ui(lakehouse_run: dict) -> Iterator[str]:
    with _ui("prefect", "/api/health") as base:
        yield base


def test_prefect_ui_lists_the_completed_lakehouse_run(prefect_ui: str, browser: webdriver.Chrome) -> None:
    flow = httpx.get(f"{prefect_ui}/api/flows/name/lakehouse").json()
    browser.get(f"{prefect_ui}/flows/flow/{flow['id']}")  # the flow's page: its runs, newest first
    _wait_for_text(browser, "lakehouse", "Completed")
    rows = browser.find_elements(By.XPATH, ROW_OF_FLOW.format(flow="lakehouse"))
    completed = [row for row in rows if "Completed" in row.text.splitlines()]
    assert completed, f"no completed lakehouse run among {[row.text for row in rows]}"
    _screenshot(browser, "prefect-ui-lakehouse-run")


def test_serve_registers_the_deployments_and_runs_one(prefect_ui: str, browser: webdriver.Chrome) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api = f"{prefect_ui}/api"
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    with sentinance("serve", log_name="prefect-serve", env=env) as serve:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while len(httpx.post(f"{api}/deployments/filter", json={}).json()) < len(DEPLOYMENTS):
            assert serve.poll() is None, "`sentinance serve` exited: see test-artifacts/prefect-serve.log"
            assert time.monotonic() < deadline, "the deployments were not registered in time"
            time.sleep(1)
        with temporary_settings({PREFECT_API_URL: api}):
            run = run_deployment("score/hourly", timeout=SERVER_START_SECONDS)
        assert run.state.is_completed(), f"score/hourly ended {run.state.name}: see test-artifacts/prefect-serve.log"

        browser.get(f"{prefect_ui}/deployments")
        text = _wait_for_text(browser, *(name.split("/")[1] for name in DEPLOYMENTS))
        for name in DEPLOYMENTS:
            flow, deployment = name.split("/")
            assert flow in text and deployment in text
        _screenshot(browser, "prefect-ui-deployments")


def test_mlflow_ui_shows_the_registered_model_with_its_aliases(
    lakehouse_run: dict, settings: Settings, browser: webdriver.Chrome
) -> None:
    """The registry page lists every alias the gate assigned: `challenger` always, `champion` only
    for a version that beat persistence (and the previous champion) out of sample. On the default
    simulated window the gate keeps persistence, so there is no champion to show (the next test
    shows one)."""
    from sentinance.status import model_status

    aliases = model_status(settings)["aliases"]
    assert "challenger" in aliases
    with _ui("mlflow", "/health") as base:
        browser.get(f"{base}/#/models/{FORECASTER.name}")
        text = _wait_for_text(browser, FORECASTER.name, "challenger")
        for alias, info in aliases.items():
            row = browser.find_element(By.XPATH, f"//*[@role='row'][contains(., '{alias}')]")
            assert f"Version {info['version']}" in row.text, text
        _screenshot(browser, "mlflow-ui-registered-model")


def test_mlflow_ui_shows_the_champion_the_gate_promoted_on_a_learnable_market(
    learnable_home: Path, browser: webdriver.Chrome
) -> None:
    """With a strong lead–lag the LSTM beats persistence out of sample (both one-sided tests below
    alpha), the same gate promotes it, and the registry page shows `champion` on that version."""
    from mlflow import MlflowClient

    uri = mlflow_tracking_uri(Settings(home=learnable_home))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # explicit URIs: the session's MLflow is untouched
    champion = client.get_model_version_by_alias(FORECASTER.name, "champion")
    gate = client.get_run(champion.run_id).data.metrics
    assert gate["gate_promoted"] == 1.0
    assert gate["gate_vs_persistence_mean_loss_a"] < gate["gate_vs_persistence_mean_loss_b"], gate
    alpha = gate["gate_vs_persistence_alpha"]
    assert gate["gate_vs_persistence_dm_pvalue"] < alpha and gate["gate_vs_persistence_t_pvalue"] < alpha, gate
    with _ui("mlflow", "/health", env=state_env(learnable_home), log_name="mlflow-champion-server") as base:
        browser.get(f"{base}/#/models/{FORECASTER.name}")
        text = _wait_for_text(browser, FORECASTER.name, "champion")
        row = browser.find_element(By.XPATH, "//*[@role='row'][contains(., 'champion')]")
        assert f"Version {champion.version}" in row.text, text
        _screenshot(browser, "mlflow-ui-champion")


def test_dbt_docs_render_the_lineage_graph_of_the_marts(
    lakehouse_run: dict, settings: Settings, browser: webdriver.Chrome
) -> None:
    with _ui("dbt-docs", "/static_index.html") as base:
        manifest = json.loads((settings.dbt_target_dir / "manifest.json").read_text())
        marts = {
            n["name"]
            for n in manifest["nodes"].values()
            if n["resource_type"] == "model" and n["original_file_path"].startswith("models/marts/")
        }
        assert "fct_training_features" in marts
        browser.get(f"{base}/static_index.html#!/overview")
        _wait_for_text(browser, "sentinance")
        browser.find_element(By.CSS_SELECTOR, "a[title='View Lineage Graph']").click()
        graph = WebDriverWait(browser, PAGE_SECONDS).until(
            lambda d: d.execute_script(
                "const g = angular.element(document.body).injector().get('graph').graph;"
                "return g.elements.length ? g.elements.map(e => [e.group, e.data.label || '']) : null;"
            )
        )
        nodes = {label for group, label in graph if group == "nodes"}
        assert marts | {"silver.candle_features", "stg_silver__candle_features"} <= nodes
        assert sum(group == "edges" for group, _ in graph) >= len(marts)
        cy = browser.find_element(By.ID, "cy")
        assert cy.size["width"] > 1000 and cy.size["height"] > 500  # the full-screen graph canvas
        ActionChains(browser).move_to_element(cy).perform()
        _screenshot(browser, "dbt-docs-lineage")
