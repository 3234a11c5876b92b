"""The project files the package runs with, found through the package wherever it is installed.

The dbt project (``dbt/``) and the Feast repo (``feature_repo/``) are shipped inside the
distribution as ``sentinance/dbt_project`` and ``sentinance/feature_repo`` (package data, see
``pyproject.toml``), so an installed wheel finds them inside itself; an editable install finds
them in its checkout.
"""

from __future__ import annotations

import hashlib
import subprocess
from functools import cache
from pathlib import Path

from sentinance.errors import ResourceNotFoundError


def _project_dir(name: str, folder: str, marker: str) -> Path:
    """``sentinance/<name>`` inside an installed wheel, else ``<folder>`` of the checkout an editable install
    maps it from (``pyproject.toml``'s package-dir; setuptools' editable finder cannot import a data-only
    package mapped outside its parent, and an ``__init__.py`` in ``dbt/`` would shadow dbt itself)."""
    candidates = [Path(__file__).resolve().parent / name]
    if (checkout := source_checkout()) is not None:
        candidates.append(checkout / folder)
    for candidate in candidates:
        if (candidate / marker).is_file():
            return candidate
    raise ResourceNotFoundError(
        f"sentinance.{name} (with {marker}) is not part of this installation of sentinance: "
        "reinstall the package (pip install sentinance, or `make install` in a checkout)"
    )


@cache
def dbt_project_dir() -> Path:
    """The dbt project: ``dbt_project.yml``, models, macros, tests, ``profiles.yml``."""
    return _project_dir("dbt_project", "dbt", "dbt_project.yml")


@cache
def feature_repo_dir() -> Path:
    """The Feast repo: ``feature_store*.yaml`` and the definitions in ``features.py``."""
    return _project_dir("feature_repo", "feature_repo", "feature_store.yaml")


@cache
def source_checkout() -> Path | None:
    """The git checkout the package runs from (an editable install), else None (an installed wheel)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "sentinance").is_dir() else None


def git(*args: str) -> str | None:
    """``git <args>`` in the source checkout; None outside one or when git fails."""
    root = source_checkout()
    if root is None:
        return None
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def definitions_sha256() -> str:
    """Hash of what the marts and the feature service are built from — the dbt project's models and
    macros and the Feast repo's files — from a checkout or an installed wheel alike."""
    dbt = dbt_project_dir()
    roots = {
        "dbt/dbt_project.yml": dbt / "dbt_project.yml",
        "dbt/models": dbt / "models",
        "dbt/macros": dbt / "macros",
        "feature_repo": feature_repo_dir(),
    }
    digest = hashlib.sha256()
    for name, root in roots.items():
        files = (
            [root]
            if root.is_file()
            else sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        )
        for path in files:
            digest.update((name if path == root else f"{name}/{path.relative_to(root)}").encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
