"""`sentinance services up|down|status` and `sentinance env`: the tools' own CLIs on a live state.

``up`` starts this module as a detached process, the supervisor (``python -m sentinance.supervisor``),
which keeps running until ``down``:

- it holds a handle on the embedded PostgreSQL: pgserver stops the server when the last process
  holding one exits, so CLI runs come and go while it stays up (with ``SENTINANCE_DATABASE_URL``
  nothing is started);
- it runs a Prefect server on loopback over the state's Prefect database (unless ``PREFECT_API_URL``
  already names one), so ``prefect flow-run ls`` and the UI answer at once;
- it serves the pipeline metrics on ``/metrics`` (:mod:`sentinance.metrics`).

While it runs, ``<state>/services/services.json`` names its pid (and the pid's start time, against
pid reuse) and each service's address; it writes the file once everything answers and removes
it on the way out. A file whose pid is gone is stale (the supervisor was killed): ``up``, ``down``
and ``status`` say so and remove it. ``down`` sends SIGTERM and waits for the supervisor to stop the
Prefect server and exit. :func:`environment` is what ``sentinance env`` prints: the variables that
point plain ``dbt``, ``feast``, ``mlflow``, ``prefect`` and ``jupyter`` at this state.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from sentinance import metrics, services
from sentinance.errors import MissingInputError, SentinanceError
from sentinance.settings import Settings, configure, get_settings, tool_environment

log = logging.getLogger(__name__)

BIN = Path(sys.executable).parent
STATE_FILE = "services.json"
LOG_FILE = "services.log"
START_SECONDS = 180  # a Prefect server's first start runs its migrations: slow on a busy 2-core machine
STOP_SECONDS = 60
PREFECT_PORT = 4200


def state_file(settings: Settings) -> Path:
    return settings.services_dir / STATE_FILE


def _alive(state: dict[str, Any]) -> bool:
    """The supervisor of ``state`` still runs (its pid exists and started when the file says)."""
    try:
        return psutil.Process(state["pid"]).create_time() == state["pid_create_time"]
    except psutil.Error:
        return False


def running(settings: Settings) -> dict[str, Any] | None:
    """The state of the supervisor serving ``settings.home``, or None; removes a stale file."""
    path = state_file(settings)
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    if _alive(state):
        return state
    log.warning("removing %s: its supervisor (pid %s) is gone", path, state["pid"])
    path.unlink(missing_ok=True)
    return None


# --- the tools' environment -----------------------------------------------------------------------


def environment(settings: Settings) -> dict[str, str]:
    """The shell environment that makes plain ``dbt``, ``feast``, ``mlflow``, ``prefect`` and ``jupyter``
    work on this state: the settings, telemetry off, dbt's and Feast's variables (with dbt's target and
    logs in the state dir), MLflow's store, Prefect's home and, while ``services up`` runs one, its server.

    Values already set in the environment (telemetry switches, ``PREFECT_HOME``, ``PREFECT_API_URL``) win,
    as in :func:`sentinance.settings.configure`.
    """
    state = running(settings)
    if settings.database_url is None and state is None:
        raise MissingInputError(
            f"the embedded PostgreSQL of {settings.home} is not running: run `sentinance services up` first "
            "(or set SENTINANCE_DATABASE_URL)"
        )
    from sentinance.ml.feature_store import feast_environment
    from sentinance.pipelines.warehouse.marts import dbt_environment

    tracking = services.mlflow_tracking_uri(settings)
    tools = tool_environment(settings)
    if state and state["prefect"]:
        tools["PREFECT_API_URL"] = state["prefect"]
    return {
        **settings.environment(),
        **{key: os.environ.get(key, value) for key, value in tools.items()},
        **dbt_environment(settings),
        **feast_environment(settings),
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_REGISTRY_URI": tracking,
    }


# --- the supervisor process -----------------------------------------------------------------------


def prefect_server_command(port: int) -> list[str]:
    """`prefect server start` on loopback for this state (PREFECT_HOME), with the UI calling the API on ``port``."""
    os.environ["PREFECT_SERVER_API_PORT"] = str(port)
    return [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]


def wait_for_http(url: str, seconds: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200, the process exits, or ``seconds`` pass (then raise)."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SentinanceError(f"the server for {url} exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SentinanceError(f"{url} did not answer within {seconds:.0f}s")


def stop_process(process: subprocess.Popen, seconds: float = 20) -> None:
    """SIGTERM a server started in its own session, with everything it spawned; SIGKILL after ``seconds``."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _write_state(settings: Settings, state: dict[str, Any]) -> None:
    path = state_file(settings)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(state, indent=2))
    partial.replace(path)


def supervise(settings: Settings, prefect_port: int | None, metrics_port: int | None) -> None:
    """Start the services, write the state file, and wait for SIGTERM or SIGINT; then stop them."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    prefect, exporter = None, None
    try:
        url = services.database_url(settings)  # the embedded server's handle, held until this process exits
        if metrics_port:
            exporter, _ = metrics.serve(settings, metrics_port)
        if prefect_port and not os.environ.get("PREFECT_API_URL"):
            prefect = subprocess.Popen(
                prefect_server_command(prefect_port),
                stdout=sys.stdout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            wait_for_http(f"http://127.0.0.1:{prefect_port}/api/health", START_SECONDS, prefect)
        me = psutil.Process()
        _write_state(
            settings,
            {
                "pid": me.pid,
                "pid_create_time": me.create_time(),
                "started_at": datetime.now(UTC).isoformat(),
                "home": str(settings.home),
                # the embedded server's socket URL (no password); an external server is the user's to run
                "postgres": url if settings.database_url is None else None,
                "prefect": prefect and f"http://127.0.0.1:{prefect_port}/api",
                "metrics": exporter and f"http://127.0.0.1:{metrics_port}/metrics",
                "log": str(settings.services_dir / LOG_FILE),
            },
        )
        log.info("services up for %s", settings.home)
        while not stop.wait(1):
            if prefect is not None and prefect.poll() is not None:
                raise SentinanceError(f"the Prefect server exited with code {prefect.returncode}")
    finally:
        state_file(settings).unlink(missing_ok=True)
        if prefect is not None:
            stop_process(prefect)
        if exporter is not None:
            exporter.shutdown()
        log.info("services down for %s", settings.home)  # pgserver stops PostgreSQL at exit if no one else holds it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sentinance.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--prefect-port", type=int, default=PREFECT_PORT, help="0: no Prefect server")
    parser.add_argument("--metrics-port", type=int, default=metrics.DEFAULT_PORT, help="0: no metrics exporter")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every command it runs at INFO
    supervise(configure(get_settings()), args.prefect_port or None, args.metrics_port or None)
    return 0


# --- what `sentinance services up|down|status` do ------------------------------------------------


def up(settings: Settings, prefect_port: int | None, metrics_port: int | None) -> dict[str, Any]:
    """Start the supervisor (detached, in its own session) unless one runs; return its state once ready."""
    state = running(settings)
    if state is not None:
        return state
    settings.services_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "sentinance.supervisor",
        "--prefect-port",
        str(prefect_port or 0),
        "--metrics-port",
        str(metrics_port or 0),
    ]
    logfile = settings.services_dir / LOG_FILE
    with logfile.open("a") as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = logfile.read_text().strip().splitlines()[-1:] or ["no output"]
            raise SentinanceError(f"the services exited with code {process.returncode}: {tail[0]} (log: {logfile})")
        state = running(settings)
        if state is not None and state["pid"] == process.pid:
            return state
        time.sleep(0.5)
    stop_process(process)
    raise SentinanceError(f"the services did not start within {START_SECONDS}s (log: {logfile})")


def down(settings: Settings) -> dict[str, Any] | None:
    """Stop the supervisor and wait until it has exited; return the state it had (None: none ran)."""
    state = running(settings)
    if state is None:
        return None
    process = psutil.Process(state["pid"])
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except psutil.TimeoutExpired:
        raise SentinanceError(
            f"the services (pid {state['pid']}) did not stop within {STOP_SECONDS}s: see {state['log']}"
        ) from None
    return state


if __name__ == "__main__":
    sys.exit(main())
