"""What each derived stage last consumed, so that a stage with no new input does nothing.

A stage names its inputs as a mapping of name -> version (a Delta table's version, a hash of the
definitions it runs, the model version it serves) and asks :func:`unchanged` before it starts
any engine. After it succeeded it calls :func:`record`. The record is one small JSON file per
stage under ``<home>/checkpoints/``, replaced atomically, so a crash before it is written only
makes the next run redo an idempotent stage.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sentinance.settings import Settings

Inputs = Mapping[str, Any]  # JSON values: versions, hashes, timestamps as text


def _path(settings: Settings, stage: str) -> Path:
    return settings.home / "checkpoints" / f"{stage}.json"


def recorded(settings: Settings, stage: str) -> dict[str, Any] | None:
    """The inputs the stage last finished with, or None if it never did."""
    path = _path(settings, stage)
    return json.loads(path.read_text()) if path.exists() else None


def unchanged(settings: Settings, stage: str, inputs: Inputs) -> bool:
    """Whether the stage already finished with exactly these inputs (so it has nothing to do)."""
    return recorded(settings, stage) == json.loads(json.dumps(dict(inputs), sort_keys=True, default=str))


def record(settings: Settings, stage: str, inputs: Inputs) -> None:
    """Remember that the stage finished with ``inputs`` (atomically: the old record or the new one)."""
    path = _path(settings, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as file:
        json.dump(dict(inputs), file, sort_keys=True, default=str)
    os.replace(file.name, path)
