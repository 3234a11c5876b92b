"""Features and forecasts over HTTP on the session's state (after one `lakehouse` run): Feast's feature
server (`sentinance serve-features`), MLflow's model server (`sentinance serve-model`) and an application
combining the two (`sentinance.ml.serving.forecast`), each answering real requests on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import pandas as pd
import pytest
from support.servers import free_port, sentinance

from sentinance import lake
from sentinance.catalog import FORECASTER, PREDICTIONS
from sentinance.ml import feature_store, registry, serving
from sentinance.settings import Settings
from sentinance.supervisor import wait_for_http

SERVER_SECONDS = 120


@pytest.fixture(scope="module")
def instruments(lakehouse_run: dict, settings: Settings) -> list[str]:
    mart = feature_store.query(settings, f"SELECT DISTINCT instrument_id FROM {FORECASTER.mart}")
    return sorted(mart["instrument_id"])


@contextmanager
def _serving(command: str, ready: str) -> Iterator[str]:
    """`sentinance <command>` on a free port until the block ends; yields its base URL once ``ready`` answers."""
    port = free_port()
    with sentinance(command, "--port", str(port), log_name=command) as process:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}{ready}", SERVER_SECONDS, process)
        yield base


@pytest.fixture(scope="module")
def feature_server(lakehouse_run: dict) -> Iterator[str]:
    with _serving("serve-features", "/health") as base:
        yield base


@pytest.fixture(scope="module")
def model_server(lakehouse_run: dict) -> Iterator[str]:
    with _serving("serve-model", "/ping") as base:
        yield base


def test_feature_server_answers_by_feature_service_and_by_feature_names(
    feature_server: str, instruments: list[str], settings: Settings
) -> None:
    expected = feature_store.online_features(settings, instruments)
    answer = httpx.post(f"{feature_server}/get-online-features", json=serving.online_request(instruments))
    assert answer.status_code == 200, answer.text
    served = serving.online_frame(answer.json())
    columns = [FORECASTER.entity_key, FORECASTER.timestamp, *FORECASTER.served_columns(settings.sequence_length)]
    pd.testing.assert_frame_equal(served[columns], expected[columns], check_dtype=False)

    by_name = serving.online_request(instruments, settings.sequence_length)
    answer = httpx.post(f"{feature_server}/get-online-features", json=by_name)
    assert answer.status_code == 200, answer.text
    pd.testing.assert_frame_equal(serving.online_frame(answer.json())[columns], served[columns])


def test_model_server_serves_the_version_scoring_serves(
    model_server: str, instruments: list[str], settings: Settings
) -> None:
    version, _ = registry.serving_version(settings)  # champion, else challenger: the session's has no champion
    x = serving.model_input(feature_store.online_features(settings, instruments))
    answer = httpx.post(f"{model_server}/invocations", json={"inputs": x}, timeout=60)
    assert answer.status_code == 200, answer.text
    expected = registry.load_model(version).predict(np.asarray(x, dtype=np.float32))
    np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=1e-6)


def test_an_application_forecasts_an_instrument_from_the_two_servers(
    feature_server: str, model_server: str, instruments: list[str], settings: Settings
) -> None:
    """The forecast over HTTP is the one batch scoring wrote for the same hour and version."""
    version, alias = registry.serving_version(settings)
    with httpx.Client(timeout=60) as client:
        forecast = serving.forecast(client, feature_server, model_server, instruments[0], settings.sequence_length)
    scored = lake.read(PREDICTIONS.path(settings))
    row = scored[
        (scored["instrument_id"] == instruments[0])
        & (scored["model_version"] == str(version.version))
        & (scored["feature_time"] == pd.Timestamp(forecast.feature_time))
    ]
    assert len(row) == 1 and row["model_alias"].iloc[0] == alias
    assert forecast.target_time == row["target_time"].iloc[0]
    assert forecast.predicted_log_return == pytest.approx(row["predicted_log_return"].iloc[0], rel=1e-5)
    assert forecast.predicted_close == pytest.approx(row["predicted_close"].iloc[0], rel=1e-6)
