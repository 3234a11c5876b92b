"""The feature job and the detectors on a real Spark standalone cluster (a master and a worker of the
installed PySpark on 127.0.0.1), with ``SENTINANCE_SPARK_MASTER=spark://…``: silver and gold equal
what ``local[*]`` writes from the same bronze. The executors run this virtualenv's Python and import
``sentinance`` from it; Delta IO is the local backend's (delta-rs on the driver, ADR 0002)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from support.servers import ARTIFACTS, spark_cluster

from sentinance import catalog, lake
from sentinance.pipelines.sources.simulator import simulate_candles, simulate_trades
from sentinance.settings import Settings
from sentinance.spark_jobs.detectors.job import run_detectors
from sentinance.spark_jobs.features.job import compute_candle_features

START, END = pd.Timestamp("2024-01-04", tz="UTC"), pd.Timestamp("2024-01-12", tz="UTC")
ASSETS = ("BTC", "ETH")
JOB_SECONDS = 600
OUTPUTS = (catalog.CANDLE_FEATURES, catalog.CROSS_EXCHANGE_FEATURES, catalog.ANOMALIES)
COMPUTED_AT = ("computed_at",)


def _land(settings: Settings) -> None:
    lineage = dict(source="simulator", ingested_at=START, flow_run_id=None, payload_hash="h")
    for table, rows in (
        (catalog.CANDLES, simulate_candles(START, END, seed=7, assets=ASSETS)),
        (catalog.TRADES, simulate_trades(START, END, seed=7, assets=ASSETS)),
    ):
        lake.merge(table.path(settings), rows.assign(**lineage), table.keys, schema=table.schema)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="sentinance-spark-") as directory, spark_cluster(Path(directory)) as urls:
        yield urls


def _submit(module: str, home: Path, master: str) -> str:
    """``python -m <module>`` as the driver of an application on ``master``; its log."""
    env = {
        **os.environ,
        "SENTINANCE_HOME": str(home),
        "SENTINANCE_SPARK_MASTER": master,
        "PYSPARK_PYTHON": sys.executable,  # the executors' Python: this virtualenv's, with sentinance
    }
    done = subprocess.run(
        [sys.executable, "-m", module],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=JOB_SECONDS,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"spark-cluster-{module.rsplit('.', 2)[-2]}.log").write_text(done.stdout)
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout


def test_the_feature_job_and_the_detectors_on_a_standalone_cluster_equal_local(
    cluster: tuple[str, str], spark, tmp_path: Path
) -> None:
    master, web = cluster
    local, remote = Settings(home=tmp_path / "local"), Settings(home=tmp_path / "cluster")
    _land(local)
    shutil.copytree(local.lake_dir, remote.lake_dir)

    assert spark.sparkContext.master.startswith("local")
    compute_candle_features(spark, local)
    run_detectors(spark, local)
    features_log = _submit("sentinance.spark_jobs.features.job", remote.home, master)
    _submit("sentinance.spark_jobs.detectors.job", remote.home, master)

    assert f"on {master}, Delta IO through delta-rs" in features_log
    applications = httpx.get(f"{web}/json/").json()["completedapps"]
    assert len(applications) == 2 and all(app["state"] == "FINISHED" for app in applications)
    for table in OUTPUTS:
        keys = list(table.keys)
        expected = lake.read(table.path(local)).sort_values(keys, ignore_index=True)
        found = lake.read(table.path(remote)).sort_values(keys, ignore_index=True)
        assert len(found) == len(expected) > 0, table.id
        columns = [c for c in expected.columns if c not in COMPUTED_AT]
        numeric = [c for c in columns if pd.api.types.is_float_dtype(expected[c])]
        pd.testing.assert_frame_equal(found[columns].drop(columns=numeric), expected[columns].drop(columns=numeric))
        for column in numeric:
            np.testing.assert_allclose(found[column], expected[column], rtol=1e-9, equal_nan=True, err_msg=column)
