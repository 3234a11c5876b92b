"""The fault tier: `sentinance run` killed with SIGKILL at every named point and rerun, compared with an
uninterrupted run; two writers on one state; a damaged Delta log; PostgreSQL killed mid-run.

Every run is the console script in a process group of its own (``SENTINANCE_FAULT=<point>`` makes it
SIGKILL that group at the point, as ``kill -9`` of the run would), on a small window of one exchange:
12 days of coinbase, which hold 6 gaps, 4 manipulation episodes and 544 labelled wash trades.

The kill points are visited by two chains of runs, each on a state dir of its own. Every run of a
chain is the rerun of the run killed before it, and is itself killed at a later point — one it reaches
only after redoing every step the previous kill cut short. So when a run dies at its point, the layers
it has completed (:data:`CHAIN`) must already equal the uninterrupted run's: that checks the rerun of
the previous kill. The last run of a chain is not killed, and its whole state must equal the
reference: the same business rows, no duplicate keys, the same registered versions and aliases, the
same online features (:mod:`support.fingerprint`). A rerun never waits: the lock died with its holder.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import psutil
import pytest
from support import runs
from support.fingerprint import Part, differences

from sentinance import services
from sentinance.settings import get_settings
from sentinance.state_lock import Holder, holder

WINDOW = ("--end", "2026-02-21T00:00", "--days", "12")
UNIVERSE = {"SENTINANCE_EXCHANGES": "coinbase=USD", "SENTINANCE_SEQUENCE_LENGTH": "8"}


def bronze(name: str) -> bool:
    return name.startswith("delta:bronze/")


def silver(name: str) -> bool:
    return name.startswith("delta:silver/") or name == "delta:gold/anomalies"


SCORED = ("predictions", "volatility_predictions", "backtests")  # loaded by the score stage, after training


def loaded(name: str) -> bool:
    return name.startswith("postgres:lake.") and name.removeprefix("postgres:lake.") not in SCORED


def marts(name: str) -> bool:  # the model performance and backtest marts are rebuilt by the score stage
    rebuilt = ("fct_model_performance", "fct_backtests")
    return name.startswith(("postgres:marts.", "postgres:intermediate.")) and not name.endswith(rebuilt)


def served(name: str) -> bool:
    return name.startswith("feast:")


def registered(name: str) -> bool:
    """Both models trained (their training sets stored), predictions in Delta: the kill between Delta and
    PostgreSQL comes after them."""
    return name in ("mlflow:registry", "delta:gold/training_sets", "delta:gold/predictions", "delta:gold/backtests")


def everything(name: str) -> bool:
    return True


Layers = tuple[Callable[[str], bool], ...]
# chain A: each point, and what its run has redone (and must equal the reference) when it dies there
CHAIN: tuple[tuple[str, Layers], ...] = (
    ("prefect-start", ()),
    ("candles-merged", ()),
    ("silver-write", (bronze,)),
    ("warehouse-copy", (bronze, silver)),
    ("dbt-build", (bronze, silver, loaded)),
    ("feast-materialize", (bronze, silver, loaded, marts)),
    ("registry-alias", (bronze, silver, loaded, marts, served)),
    ("predictions-load", (bronze, silver, loaded, marts, served, registered)),
)


@dataclass(frozen=True)
class Reference:
    home: Path
    fingerprint: dict[str, Part]
    holder: Holder
    refused: CompletedProcess
    gave_up: CompletedProcess


def _holder(home: Path, pid: int, seconds: float = 300) -> Holder:
    """The lock's record once the process ``pid`` holds it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = holder(get_settings(home=home))
        if found is not None and found.pid == pid and not found.released:
            return found
        time.sleep(0.2)
    raise AssertionError(f"pid {pid} did not take the lock of {home} within {seconds} s")


def _said(stderr: str) -> str:
    """The command's own last line (Prefect may log the stop of its temporary server after it)."""
    return [line for line in stderr.strip().splitlines() if line.startswith("sentinance")][-1]


def _tail(done: CompletedProcess) -> str:
    return f"exit {done.returncode}; stderr:\n{done.stderr[-4000:]}"


def _compare(reference: dict[str, Part], home: Path, layers: Layers) -> list[str]:
    if not layers:
        return []
    state = runs.fingerprint(home)

    def chosen(parts: dict[str, Part]) -> dict[str, Part]:
        return {name: part for name, part in parts.items() if any(layer(name) for layer in layers)}

    return differences(chosen(reference), chosen(state))


def _killed_at(home: Path, point: str) -> CompletedProcess:
    done = runs.run(home, "run", *WINDOW, SENTINANCE_FAULT=point, **UNIVERSE)
    assert done.returncode == -signal.SIGKILL, _tail(done)
    assert f"at {point.rpartition('@')[2]}" in done.stderr, _tail(done)
    return done


def _processes_of(home: Path) -> list[psutil.Process]:
    """Live processes started for the state dir ``home`` (they carry it in their environment)."""
    found = []
    for process in psutil.process_iter():
        try:
            env = process.environ()
        except psutil.Error:
            continue
        if env.get("SENTINANCE_HOME") == str(home) or env.get("PREFECT_HOME") == str(home / "prefect"):
            found.append(process)
    return found


def _no_server_left(home: Path, seconds: float = 60) -> None:
    """Neither the embedded PostgreSQL nor anything else started for ``home`` outlives its last command."""
    deadline = time.monotonic() + seconds
    while _processes_of(home) and time.monotonic() < deadline:  # a JVM takes a moment to notice
        time.sleep(0.5)
    assert services.postmaster_pid(get_settings(home=home)) is None, "the embedded PostgreSQL outlived the command"
    assert [p.cmdline()[:3] for p in _processes_of(home)] == []


@pytest.fixture(scope="module")
def reference() -> Reference:
    """One uninterrupted run; while it writes, a second run with ``--no-wait`` and a third that waits 3 s."""
    home = runs.state_dir("faults-reference")
    first = runs.start(home, "run", *WINDOW, **UNIVERSE)
    try:
        held = _holder(home, first.pid)
        refused = runs.run(home, "run", "--no-wait", *WINDOW, timeout=300, **UNIVERSE)
        gave_up = runs.run(home, "run", *WINDOW, timeout=300, SENTINANCE_LOCK_WAIT="3", **UNIVERSE)
        _, err = first.communicate(timeout=1800)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err[-4000:]
    _no_server_left(home)
    return Reference(home, runs.fingerprint(home), held, refused, gave_up)


def test_a_second_writer_refuses_or_gives_up_naming_the_holder(reference: Reference) -> None:
    held = reference.holder
    assert held.command.startswith("sentinance run --end 2026-02-21T00:00")
    for done, ending in ((reference.refused, "not waiting"), (reference.gave_up, "gave up after 3 s")):
        last = _said(done.stderr)
        assert done.returncode == 1 and "Traceback" not in done.stderr, _tail(done)
        assert last.startswith(f"sentinance run: error: the state dir {reference.home} is being written by pid ")
        assert f"pid {held.pid} (`{held.command}`" in last and ending in last, last
    assert "waiting for it (at most 3 s, SENTINANCE_LOCK_WAIT)" in reference.gave_up.stderr


def test_the_reference_holds_every_layer(reference: Reference) -> None:
    parts = reference.fingerprint
    for name in ("delta:bronze/gap_report", "delta:bronze/simulator_trade_labels", "delta:gold/anomalies"):
        assert parts[name].rows > 0, name
    assert parts["mlflow:registry"].rows == 1 and parts["postgres:marts.fct_model_performance"].rows > 0
    assert not [n for n, p in parts.items() if p.duplicate_keys]


def test_every_kill_point_converges_on_rerun(reference: Reference) -> None:
    """Chain A: prefect-start, candles-merged, silver-write, warehouse-copy, dbt-build, feast-materialize,
    registry-alias, predictions-load, then an uninterrupted rerun."""
    home = runs.state_dir("faults-chain")
    for number, (point, redone) in enumerate(CHAIN):
        killed = _killed_at(home, point)
        if number:  # the rerun of the previous kill: it took the dead holder's lock at once
            assert "waiting for it" not in killed.stderr and "died holding it" in killed.stderr, _tail(killed)
        assert _compare(reference.fingerprint, home, redone) == [], f"killed at {point}, after {CHAIN[number - 1][0]}"
    rerun = runs.run(home, "run", *WINDOW, **UNIVERSE)
    assert rerun.returncode == 0, _tail(rerun)
    assert "waiting for it" not in rerun.stderr
    _no_server_left(home)
    assert _compare(reference.fingerprint, home, (everything,)) == [], "after predictions-load"


def test_trades_merged_postgres_killed_and_a_damaged_log_converge(reference: Reference) -> None:
    """Chain B: killed after the trades merge; rerun, during which PostgreSQL is killed at the warehouse COPY
    (the run fails with one line); rerun on a damaged newest commit of bronze/candles (one line naming it and
    the recovery); the recovery, and an uninterrupted rerun."""
    home = runs.state_dir("faults-chain-b")
    _killed_at(home, "trades-merged")

    outage = runs.run(home, "run", *WINDOW, SENTINANCE_FAULT="postgres@warehouse-copy", **UNIVERSE)
    last = _said(outage.stderr)
    assert outage.returncode == 1 and last.startswith("sentinance run: error: the embedded PostgreSQL"), _tail(outage)
    assert _compare(reference.fingerprint, home, (bronze,)) == [], "after trades-merged"

    log = home / "lake" / "bronze" / "candles" / "_delta_log"
    newest = sorted(log.glob("*.json"))[-1]
    newest.write_text(newest.read_text()[: len(newest.read_text()) // 2])  # a torn write
    damaged = runs.run(home, "run", *WINDOW, **UNIVERSE)
    last = _said(damaged.stderr)
    assert damaged.returncode == 1, _tail(damaged)  # Prefect logs the failed flow run's traceback; the CLI one line
    assert last.startswith(f"sentinance run: error: the Delta table {log.parent} cannot be read: its newest commit")
    assert f"move {newest} out of _delta_log and rerun" in last, last

    newest.rename(home / newest.name)  # the recovery the message names
    rerun = runs.run(home, "run", *WINDOW, **UNIVERSE)
    assert rerun.returncode == 0, _tail(rerun)
    _no_server_left(home)
    assert _compare(reference.fingerprint, home, (everything,)) == [], "after the outage and the damaged log"


def test_sigterm_unwinds_a_run_and_stops_what_it_started() -> None:
    """SIGTERM to the command alone (as a service manager stops it) once its PostgreSQL, Prefect server
    and Spark are up: it exits 143 and none of them is left."""
    home = runs.state_dir("faults-sigterm")
    process = runs.start(home, "run", *WINDOW, **UNIVERSE)
    deadline = time.monotonic() + 900
    while services.postmaster_pid(get_settings(home=home)) is None and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-4000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143 and _said(err) == "sentinance: terminated", err[-4000:]
    _no_server_left(home)
