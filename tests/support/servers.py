"""Real servers for the tests, each started on 127.0.0.1 in a directory of its own and stopped again:
Debian's PostgreSQL (password authentication) and Redis, a Spark standalone master and worker from
the installed PySpark, a Prefect server; and `sentinance` or a tool's own CLI as a user starts it.

Every process starts in a session of its own, so stopping it stops what it spawned (a Prefect
worker's flow runs, a Spark worker's executors). Logs go to ``test-artifacts/<name>.log``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from sentinance.supervisor import stop_process, wait_for_http

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BIN = Path(sys.executable).parent
START_SECONDS = 120
# where this session keeps its state: a process on another state dir must not inherit them
SESSION_STATE = (
    "PREFECT_HOME",
    "PREFECT_API_URL",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "SENTINANCE_DATABASE_URL",
)
PG_PASSWORD = "sentinance-test"  # a throwaway server on loopback


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def started(
    command: Sequence[str], log_name: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen]:
    """``command`` running in a session of its own, its output in test-artifacts/<log_name>.log; stopped with
    everything it spawned when the block ends."""
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / f"{log_name}.log").open("w") as log:
        process = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=cwd
        )
        try:
            yield process
        finally:
            stop_process(process)


def sentinance(*args: str, log_name: str, env: dict[str, str] | None = None):
    """`sentinance <args>` as a subprocess (a context manager, see :func:`started`)."""
    return started([sys.executable, "-m", "sentinance.cli", *args], log_name, env)


def state_env(home: Path, **values: str) -> dict[str, str]:
    """The environment for a process on the state dir ``home`` (none of the session's state), plus ``values``."""
    return {
        **{k: v for k, v in os.environ.items() if k not in SESSION_STATE},
        "SENTINANCE_HOME": str(home),
        **values,
    }


def _wait(ready, what: str, process: subprocess.Popen, seconds: float = START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}: see test-artifacts/")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {seconds:.0f}s: see test-artifacts/")
        time.sleep(0.5)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


# -- PostgreSQL ------------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server's bin/ (package ``postgresql``), if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _as_owner(owner: str | None) -> list[str]:
    """Run as ``owner`` (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", owner, "--"] if owner else []


@contextmanager
def postgres(directory: Path) -> Iterator[str]:
    """Debian's PostgreSQL with a password-protected database ``sentinance``, listening on 127.0.0.1
    only; yields its ``postgresql://`` URL."""
    bindir = postgres_bin()
    owner = "postgres" if os.geteuid() == 0 else None
    data, sockets, port = directory / "data", directory / "sockets", free_port()
    sockets.mkdir(parents=True)
    secret = directory / "password"
    secret.write_text(PG_PASSWORD)
    if owner:
        user = pwd.getpwnam(owner)
        for path in (directory, sockets, secret):
            os.chown(path, user.pw_uid, user.pw_gid)
        directory.parent.chmod(0o755)  # a temporary directory is 0700: the server's user must traverse it
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "sentinance", "--pwfile", str(secret)]
    done = subprocess.run(
        [*_as_owner(owner), *initdb, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr}")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off -c max_connections=200"
    command = [*_as_owner(owner), str(bindir / "postgres"), "-D", str(data), *options.split()]
    url = f"postgresql://sentinance:{PG_PASSWORD}@127.0.0.1:{port}/sentinance"
    with started(command, "postgres-server") as server:
        _wait(lambda: _listening(port), "PostgreSQL", server)
        import psycopg

        admin = f"postgresql://sentinance:{PG_PASSWORD}@127.0.0.1:{port}/postgres"
        for _ in range(20):  # accepting connections a moment after it listens
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute("CREATE DATABASE sentinance")
                break
            except psycopg.OperationalError:
                time.sleep(0.5)
        yield url


def stop_embedded_postgres(home: Path) -> None:
    """Stop the embedded PostgreSQL of the state dir ``home`` if it still runs: a flow run's process that
    started it may end without stopping it (pgserver stops it at the exit of the last process it knows)."""
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(home / "postgres" / "data")
    if info is not None and info.is_running():
        info.process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        info.process.wait(30)


# -- Redis -----------------------------------------------------------------------------------------


@contextmanager
def redis(directory: Path) -> Iterator[str]:
    """Debian's redis-server on 127.0.0.1, persistence off; yields ``host:port`` (Feast's connection string)."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        shutil.which("redis-server") or "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with started(command, "redis-server") as server:
        _wait(lambda: _listening(port), "redis-server", server)
        yield f"127.0.0.1:{port}"


# -- Spark standalone ------------------------------------------------------------------------------


@contextmanager
def spark_cluster(directory: Path, cores: int = 2, memory: str = "2g") -> Iterator[tuple[str, str]]:
    """A Spark standalone master and one worker of the installed PySpark, both on 127.0.0.1;
    yields (master URL, the master's web UI URL, whose ``/json/`` lists workers and applications)."""
    spark_class = str(BIN / "spark-class")
    port, ui, worker_ui = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(directory / "logs"),
        "SPARK_WORKER_DIR": str(directory / "work"),
        "SPARK_NO_DAEMONIZE": "1",
    }
    master = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port)]
    url, web = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}"
    with started([spark_class, *master, "--webui-port", str(ui)], "spark-master", env) as master_process:
        wait_for_http(f"{web}/json/", START_SECONDS, master_process)
        worker = ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", str(cores)]
        worker += ["--memory", memory, "--webui-port", str(worker_ui), "--work-dir", str(directory / "work"), url]
        with started([spark_class, *worker], "spark-worker", env) as worker_process:
            _wait(lambda: httpx.get(f"{web}/json/").json()["aliveworkers"] >= 1, "the Spark worker", worker_process)
            yield url, web


# -- Prefect ---------------------------------------------------------------------------------------


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 with its database in ``home``; yields its API URL."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if k not in SESSION_STATE}, "PREFECT_HOME": str(home)}
    env["PREFECT_SERVER_API_PORT"] = str(port)
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with started(command, "prefect-server", env) as server:
        api = f"http://127.0.0.1:{port}/api"
        wait_for_http(f"{api}/health", START_SECONDS, server)
        yield api


def online_workers(api: str, pool: str) -> int:
    """Workers of the work pool ``pool`` the Prefect API at ``api`` counts as online (0 if no such pool yet)."""
    reply = httpx.post(f"{api}/work_pools/{pool}/workers/filter", json={})
    return sum(w["status"] == "ONLINE" for w in reply.json()) if reply.is_success else 0
