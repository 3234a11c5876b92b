"""The `sentinance` command: help everywhere, one-line errors with exit codes, stages and status for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import prefect.main  # noqa: F401  (sets up Prefect's log handlers now, not inside a capsys test whose stream closes)
import pytest

from sentinance import lake
from sentinance.cli import build_parser, main
from sentinance.config import Settings

COMMANDS = [
    ["run"], ["ingest"], ["backfill"], ["features"], ["marts"], ["train"], ["score"], ["monitor"], ["status"],
    ["serve"], ["ui"], ["ui", "prefect"], ["ui", "mlflow"], ["ui", "dbt-docs"], ["ui", "jupyter"],
]


def test_every_command_is_listed_and_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    listed = build_parser().format_help()
    for command in COMMANDS:
        assert command[0] in listed
        with pytest.raises(SystemExit) as done:
            main([*command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: sentinance {' '.join(command)}"), out


@pytest.mark.parametrize("argv, needle", [
    ([], "the following arguments are required: COMMAND"),
    (["train-model"], "invalid choice: 'train-model'"),
    (["run", "--days", "0"], "--days: must be positive, got 0"),
    (["run", "--end", "yesterday"], "--end: not an ISO date/time: 'yesterday'"),
    (["backfill"], "the following arguments are required: --start"),
    (["backfill", "--start", "2026-01-05", "--end", "2026-01-01"], "--start 2026-01-05T00:00 is not before --end"),
    (["ui", "mlflow", "--port", "70000"], "--port: not a TCP port: 70000"),
])
def test_usage_mistakes_exit_2_with_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert err.splitlines()[-1].startswith("sentinance")


@contextmanager
def _home(settings: Settings) -> Iterator[None]:
    """Point the CLI (which reads SENTINANCE_HOME on every call) at another state dir for the block."""
    saved = os.environ["SENTINANCE_HOME"]
    os.environ["SENTINANCE_HOME"] = str(settings.home)
    try:
        yield
    finally:
        os.environ["SENTINANCE_HOME"] = saved


@pytest.mark.parametrize("command, needle", [
    ("features", "no bronze candles in {home} yet: run `sentinance ingest` (or `backfill`) first"),
    ("score", "no registered model in {home} yet: run `sentinance train` first"),
    ("monitor", "no registered model in {home} yet: run `sentinance train` first"),
])
def test_stages_on_an_empty_lake_exit_1_with_one_line(
    command: str, needle: str, fresh_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with _home(fresh_settings):
        assert main([command]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"sentinance {command}: error: " + needle.format(home=fresh_settings.home)
    assert "Traceback" not in err


def test_ui_on_a_busy_port_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["ui", "prefect", "--port", str(busy.getsockname()[1])]) == 1
    assert capsys.readouterr().err.strip().endswith("is in use: pass another --port")


def test_backfill_lands_chunks_with_a_progress_bar(fresh_settings: Settings,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["backfill", "--start", "2026-01-01", "--end", "2026-01-02T12:00", "--chunk-days", "1", "--no-trades"]
    with _home(fresh_settings):
        assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "2/2" in err  # the progress bar's final state (on stderr): two chunks, two ingest flow runs
    rows = lake.row_count(fresh_settings.table_path("bronze", "candles"))
    assert 0 < rows <= 9 * 36 and f"bronze candles: {rows} inserted, 0 updated" in out
    assert "2 ingest flow run(s)" in out
    with _home(fresh_settings):  # the same window again lands nothing new
        assert main(argv) == 0
    assert "bronze candles: 0 inserted, 0 updated" in capsys.readouterr().out


def test_score_then_status_on_the_lakehouse(lakehouse_run: dict, settings: Settings,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["score"]["rows"] == 9 and scored["load_predictions"]["table"] == "predictions"

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
    for needle in ("Tables:", "delta:silver/candle_features", "Model registry:", "Last flow runs (Prefect):",
                   "Completed", "sentinance ui prefect --port 4200", "sentinance ui mlflow --port 5000"):
        assert needle in done.stdout
