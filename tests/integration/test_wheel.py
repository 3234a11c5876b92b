"""The package as a user installs it: the built wheel holds every sub-package, the dbt project and the
Feast repo, and, installed into a fresh virtualenv, finds them inside itself (not in this checkout)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("sentinance-*.whl")
    return built


def test_the_wheel_holds_every_package_and_both_projects(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    projects = {"sentinance.dbt_project", "sentinance.feature_repo"}  # data, not code: no __init__.py
    for package in set(packages) - projects:
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    for project_file in (
        "dbt_project.yml",
        "profiles.yml",
        "models/marts/ml/fct_training_features.sql",
        "models/marts/ml/_ml__models.yml",
        "macros/sentinance_var.sql",
        "tests/generic/value_between.sql",
    ):
        assert f"sentinance/dbt_project/{project_file}" in names, project_file
    for repo_file in (
        "feature_store.yaml",
        "feature_store.redis.yaml",
        "feature_store.postgres.yaml",
        "features.py",
        ".feastignore",
    ):
        assert f"sentinance/feature_repo/{repo_file}" in names, repo_file
    assert "sentinance/pipelines/flows/lakehouse.py" in names and "sentinance/spark_jobs/features/job.py" in names
    assert not [n for n in names if "/target/" in n or "/logs/" in n or "__pycache__" in n]


def test_installed_into_a_fresh_virtualenv_it_runs_from_itself(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # the dependencies come from this environment's site-packages, without its editable install of sentinance
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from sentinance import resources, settings\n"
        "from sentinance.ml.feature_store import repo_config\n"
        "from sentinance.pipelines.warehouse.marts import _dbt\n"
        "s = settings.configure()\n"
        "parsed = _dbt(s, 'parse').success\n"  # dbt logs to stdout: the answers come after it
        "for value in (resources.dbt_project_dir(), resources.feature_repo_dir(), resources.source_checkout(),\n"
        "              repo_config(s).registry.path, parsed):\n"
        "    print('RESULT', value)\n"
    )
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "SENTINANCE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)}
    done = subprocess.run([str(python), str(probe)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [line.removeprefix("RESULT ") for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    dbt_dir, repo_dir, checkout, registry, parsed = results
    assert Path(dbt_dir) == site / "sentinance" / "dbt_project"
    assert Path(repo_dir) == site / "sentinance" / "feature_repo"
    assert checkout == "None" and registry == str(tmp_path / "state" / "feast" / "registry.db")
    assert parsed == "True"
    help_ = subprocess.run(
        [str(venv / "bin" / "sentinance"), "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    assert help_.returncode == 0 and "lakehouse" in help_.stdout
