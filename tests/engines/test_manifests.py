"""The deployment manifests validate: every Kubernetes object of infra/kubernetes against the API's own
schemas (kubernetes-validate, strict: an unknown or misspelt field fails), and infra/compose with
Debian's docker-compose (`config`, which parses, interpolates and validates without an engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
KUBERNETES_VERSION = "1.33.0"  # the oldest minor still supported upstream when this was written
MANIFESTS = sorted((INFRA / "kubernetes").glob("*.yaml"))


def _objects(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_kubernetes_object_validates_strictly(path: Path) -> None:
    for obj in _objects(path):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        assert obj["metadata"].get("namespace", "sentinance") == "sentinance", obj["metadata"]


def test_the_cluster_has_spark_the_servers_a_flow_run_job_and_their_scaling() -> None:
    kinds = {
        (obj["kind"], obj["metadata"].get("name") or obj["metadata"]["generateName"])
        for p in MANIFESTS
        for obj in _objects(p)
    }
    for deployment in ("spark-master", "spark-worker", "feature-server", "model-server", "mlflow", "prefect-worker"):
        assert ("Deployment", deployment) in kinds
    assert ("Job", "sentinance-flow-run-") in kinds
    for server in ("spark-worker", "feature-server", "model-server"):
        assert {("HorizontalPodAutoscaler", server), ("PodDisruptionBudget", server)} <= kinds


def test_compose_validates_with_docker_compose(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is missing: `make servers` installs Debian's"
    done = subprocess.run(
        [compose, "-p", "sentinance", "-f", str(INFRA / "compose" / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert {"postgres", "prefect-server", "mlflow", "redis", "spark-master", "spark-worker", "worker"} == set(services)
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published), published
