"""The `sentinance` command: help everywhere, one-line errors with exit codes, stages and status for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import prefect.main  # noqa: F401  (sets up Prefect's log handlers now, not inside a capsys test)
import pytest

from sentinance import catalog, lake
from sentinance.cli import main
from sentinance.settings import Settings


@contextmanager
def _home(settings: Settings) -> Iterator[None]:
    """Point the CLI (which reads SENTINANCE_HOME on every call) at another state dir for the block."""
    saved = os.environ["SENTINANCE_HOME"]
    os.environ["SENTINANCE_HOME"] = str(settings.home)
    try:
        yield
    finally:
        os.environ["SENTINANCE_HOME"] = saved


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("features", "no bronze candles in {home} yet: run `sentinance ingest` (or `backfill`) first"),
        ("score", "no registered model in {home} yet: run `sentinance train` first"),
        ("monitor", "no registered model in {home} yet: run `sentinance train` first"),
    ],
)
def test_stages_on_an_empty_lake_exit_1_with_one_line(
    command: str, needle: str, fresh_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with _home(fresh_settings):
        assert main([command]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"sentinance {command}: error: " + needle.format(home=fresh_settings.home)
    assert "Traceback" not in err


def test_backfill_lands_chunks_with_a_progress_bar(
    fresh_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["backfill", "--start", "2026-01-01", "--end", "2026-01-02T12:00", "--chunk-days", "1", "--no-trades"]
    with _home(fresh_settings):
        assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "2/2" in err  # the progress bar's final state (on stderr): two chunks, two ingest flow runs
    rows = lake.row_count(catalog.CANDLES.path(fresh_settings))
    assert 0 < rows <= 9 * 36 and f"bronze candles: {rows} inserted, 0 updated" in out
    assert "2 ingest flow run(s)" in out
    with _home(fresh_settings):  # the same window again lands nothing new
        assert main(argv) == 0
    assert "bronze candles: 0 inserted, 0 updated" in capsys.readouterr().out


def test_score_then_status_on_the_lakehouse(
    lakehouse_run: dict, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lakehouse_run["stages"]["score"]["rows"] == 9  # the lakehouse run scored every instrument
    assert main(["score"]) == 0  # the online store has not changed since: nothing new to score
    scored = json.loads(capsys.readouterr().out)
    assert scored["score"]["skipped"] and scored["score"]["rows"] == 0
    assert scored["load_predictions"]["table"] == "predictions"

    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {"delta:bronze/candles", "postgres:marts.fct_training_features"} <= {t["table"] for t in status["tables"]}
    assert "challenger" in status["model"]["aliases"]
    latest = status["flow_runs"][0]
    assert (latest["flow"], latest["state"]) == ("score", "Completed") and latest["seconds"] > 0
    assert set(status["ui"]) and all(" ui " in command for command in status["ui"].values())


def test_console_script_status(lakehouse_run: dict, settings: Settings) -> None:
    """The installed entry point itself, as a user runs it: plain-text status of this state."""
    script = Path(sys.executable).parent / "sentinance"
    done = subprocess.run([str(script), "status"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for needle in (
        "Tables:",
        "delta:silver/candle_features",
        "Model registry:",
        "Last flow runs (Prefect):",
        "Completed",
        "sentinance ui prefect --port 4200",
        "sentinance ui mlflow --port 5000",
    ):
        assert needle in done.stdout
