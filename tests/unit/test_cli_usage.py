"""The `sentinance` command without running anything: help everywhere, usage mistakes and invalid
settings as one line with exit 2, a user's error as one line with exit 1, a bug with its traceback."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sentinance.cli import build_parser, jupyter_command, main, run
from sentinance.errors import MissingInputError

COMMANDS = [
    ["run"],
    ["ingest"],
    ["backfill"],
    ["features"],
    ["marts"],
    ["train"],
    ["score"],
    ["monitor"],
    ["maintain"],
    ["status"],
    ["serve"],
    ["env"],
    ["services"],
    ["serve-features"],
    ["serve-model"],
    ["serve-metrics"],
    ["ui"],
    ["ui", "prefect"],
    ["ui", "mlflow"],
    ["ui", "dbt-docs"],
    ["ui", "jupyter"],
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


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["train-model"], "invalid choice: 'train-model'"),
        (["run", "--days", "0"], "--days: must be a positive number, got 0"),
        (["run", "--days", "-1"], "--days: must be a positive number, got -1"),
        (["run", "--days", "nan"], "--days: not a number: 'nan'"),
        (["run", "--end", "yesterday"], "--end: not an ISO date/time: 'yesterday'"),
        (["run", "--end", "notadate"], "--end: not an ISO date/time: 'notadate'"),
        (["ingest", "--chunk-days", "inf"], "--chunk-days: must be a positive number, got inf"),
        (["ingest", "--source", "ftp"], "--source: invalid choice: 'ftp'"),
        (["serve", "--limit", "-2"], "--limit: must be a positive number, got -2"),
        (["backfill"], "the following arguments are required: --start"),
        (["backfill", "--start", "2026-01-05", "--end", "2026-01-01"], "--start 2026-01-05T00:00 is not before --end"),
        (["ui", "mlflow", "--port", "70000"], "--port: not a TCP port: 70000"),
        (["services", "restart"], "argument action: invalid choice: 'restart'"),
        (["serve-features", "--workers", "0"], "--workers: must be a positive number, got 0"),
    ],
)
def test_usage_mistakes_exit_2_with_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("sentinance"), err


def test_bulk_backfill_reads_only_binance(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["backfill", "--source", "bulk", "--start", "2024-01-01", "--end", "2024-02-01", "--exchange", "kraken"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "sentinance backfill: error: --source bulk reads Binance's archives: --exchange can only be binance"
    )


def test_ui_on_a_busy_port_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["ui", "prefect", "--port", str(busy.getsockname()[1])]) == 1
    assert capsys.readouterr().err.strip().endswith("is in use: pass another --port")


def test_env_without_services_exits_1_with_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "state"
    monkeypatch.setenv("SENTINANCE_HOME", str(home))
    assert main(["env"]) == 1
    assert main(["services", "status"]) == 0
    out, err = capsys.readouterr()
    assert err == (
        f"sentinance env: error: the embedded PostgreSQL of {home} is not running: run `sentinance services up` "
        "first (or set SENTINANCE_DATABASE_URL)\n"
    )
    assert out == f"services of {home}: not running\n"


def test_invalid_setting_exits_2_with_one_line_before_anything_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "sentinance"
    env = {**os.environ, "SENTINANCE_HOME": str(tmp_path / "state"), "SENTINANCE_SEED": "abc"}
    done = subprocess.run([str(script), "status"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert (
        done.stderr.strip() == "sentinance status: error: SENTINANCE_SEED='abc': Input should be a valid integer, "
        "unable to parse string as an integer"
    )
    assert not (tmp_path / "state").exists()  # nothing touched


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("SENTINANCE_SEED", "abc", "SENTINANCE_SEED='abc': Input should be a valid integer"),
        ("SENTINANCE_SPARK_MASTER", "mesos-ish://x", "SENTINANCE_SPARK_MASTER='mesos-ish://x': must be local"),
        ("SENTINANCE_SIMULATOR_LAGS", "coinbase=1.5", "SENTINANCE_SIMULATOR_LAGS: coinbase=1.5 is not <exchange>="),
        ("SENTINANCE_LOCK_WAIT", "soon", "SENTINANCE_LOCK_WAIT='soon': Input should be a valid number"),
        (
            "SENTINANCE_DATABASE_URL",
            "postgresql://lake:secret@127.0.0.1:1/lake",
            "SENTINANCE_DATABASE_URL=postgresql://lake:***@127.0.0.1:1/lake: cannot connect (",
        ),
        ("SENTINANCE_HOME", "/proc/sentinance", "SENTINANCE_HOME='/proc/sentinance': cannot create the state dir"),
    ],
)
def test_an_invalid_setting_stops_a_run_with_one_line_before_the_state_is_touched(
    variable: str, value: str, needle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("SENTINANCE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv(variable, value)
    assert main(["run", "--days", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sentinance run: error: {needle}") and len(err.splitlines()) == 1, err
    assert "secret" not in err
    assert not (tmp_path / "state").exists()


def test_an_exchange_outside_the_universe_stops_ingest_before_the_state_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("SENTINANCE_HOME", str(tmp_path / "state"))
    assert main(["ingest", "--exchange", "bitstamp"]) == 2
    assert capsys.readouterr().err == (
        "sentinance ingest: error: exchange 'bitstamp' not in the universe (binance, coinbase, kraken)\n"
    )
    assert not (tmp_path / "state").exists()


def _fails_with(error: Exception):
    def command(args: argparse.Namespace) -> int:
        raise error

    return command


def test_a_user_error_is_one_line_and_a_bug_keeps_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(command="train", debug=False, func=_fails_with(MissingInputError("run `x` first")))
    assert run(args) == 1
    assert capsys.readouterr().err == "sentinance train: error: run `x` first\n"
    with pytest.raises(KeyError, match="instrument_id"):  # a bug: not caught, so Python prints its traceback
        run(argparse.Namespace(command="train", debug=False, func=_fails_with(KeyError("instrument_id"))))
    with pytest.raises(MissingInputError):  # --debug shows a user error's traceback too
        run(argparse.Namespace(command="train", debug=True, func=_fails_with(MissingInputError("x"))))


@pytest.mark.parametrize(("as_root", "allow"), [(True, ["--allow-root"]), (False, [])])
def test_jupyter_runs_as_root_and_takes_the_users_options(as_root: bool, allow: list[str]) -> None:
    command = jupyter_command(8888, Path("/nb"), ["--", "--ServerApp.token=t", "--LabApp.x=1"], as_root)
    assert command[1:] == [
        "lab",
        "--ip",
        "127.0.0.1",
        "--port",
        "8888",
        "--no-browser",
        "--ServerApp.root_dir=/nb",
        *allow,
        "--ServerApp.token=t",
        "--LabApp.x=1",
    ]
