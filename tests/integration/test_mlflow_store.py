"""The MLflow store is opened for the state dir it is in: its Default experiment lives there (not in
./mlruns of the working directory), and a state dir copied elsewhere has every recorded location
moved with it, so its artifacts load with the original gone."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mlflow import MlflowClient

from sentinance import services
from sentinance.settings import Settings


def _client(settings: Settings) -> MlflowClient:
    uri = services.mlflow_tracking_uri(settings)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_a_copied_state_dir_reads_its_own_artifacts(tmp_path: Path) -> None:
    original = Settings(home=Path(tempfile.mkdtemp(prefix="sentinance-store-")) / "state with space")
    client = _client(original)
    assert client.get_experiment("0").artifact_location == f"{services.mlflow_artifact_root(original)}/0"
    experiment = client.create_experiment("e", artifact_location=f"{services.mlflow_artifact_root(original)}/e")
    run = client.create_run(experiment, tags={"training_set_path": str(original.lake_dir / "gold" / "t")})
    (tmp_path / "note.txt").write_text("kept")
    client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))

    copy = Settings(home=tmp_path / "copy")
    shutil.copytree(original.home, copy.home)
    shutil.rmtree(original.home)
    moved = _client(copy)

    assert moved.get_experiment("0").artifact_location == f"{services.mlflow_artifact_root(copy)}/0"
    found = moved.get_run(run.info.run_id)
    assert found.info.artifact_uri.startswith(services.mlflow_artifact_root(copy))
    assert found.data.tags["training_set_path"] == str(copy.lake_dir / "gold" / "t")
    (tmp_path / "download").mkdir()
    path = moved.download_artifacts(run.info.run_id, "note.txt", str(tmp_path / "download"))
    assert Path(path).read_text() == "kept"
