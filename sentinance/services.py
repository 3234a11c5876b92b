"""Embedded services, started on demand and reused: PostgreSQL (pgserver) and the MLflow store.

With ``SENTINANCE_DATABASE_URL`` set, that PostgreSQL is used and nothing is started: it holds the
warehouse and the MLflow store (schema ``mlflow``). pgserver listens on a Unix socket in its data
directory only, never on a network address.

The MLflow store records absolute artifact locations. It is opened for the state dir it is in
(:func:`mlflow_tracking_uri`): its Default experiment's location, ``<state>/mlflow/artifacts/0``,
names the state dir it was written in, and a store found in another one (a copied or restored
state dir) has every recorded location under the old one rewritten to the new one first.

The embedded servers live as long as the commands that use them: pgserver stops PostgreSQL when the
last process on its list of users exits, and Prefect stops its ephemeral API server at exit (the CLI
turns SIGTERM into a normal exit for both). A process killed with SIGKILL says nothing, so the next
command recovers (:func:`recover`): it forgets dead users (else PostgreSQL would never be stopped
again), stops ephemeral Prefect servers of this state whose owner is gone, and PostgreSQL itself
restarts over a stale ``postmaster.pid`` (its owner dead) and replays its WAL.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse
from urllib.request import url2pathname

import psutil

from sentinance.errors import SettingsError, TransientError
from sentinance.settings import ENV_PREFIX, Settings, get_settings

log = logging.getLogger(__name__)

DATABASE = "sentinance"
MLFLOW_SCHEMA = "mlflow"  # the MLflow store's schema in an external PostgreSQL
ARTIFACTS = "artifacts"  # the MLflow artifact root's folder in the state dir's mlflow/


@dataclass(frozen=True)
class PgParams:
    """Connection parameters in the shape dbt, Feast and libpq want them."""

    host: str
    port: int
    user: str
    password: str
    dbname: str

    @property
    def conninfo(self) -> str:
        """libpq keyword string (works for Unix-socket hosts too)."""
        parts = {"host": self.host, "port": self.port, "user": self.user, "dbname": self.dbname}
        if self.password:
            parts["password"] = self.password
        return " ".join(f"{k}='{v}'" for k, v in parts.items())

    def env(self) -> dict[str, str]:
        """The SENTINANCE_PG_* variables that dbt's profiles.yml and Feast's feature_store.yaml read."""
        return {
            "SENTINANCE_PG_HOST": self.host,
            "SENTINANCE_PG_PORT": str(self.port),
            "SENTINANCE_PG_USER": self.user,
            "SENTINANCE_PG_PASSWORD": self.password,
            "SENTINANCE_PG_DBNAME": self.dbname,
        }

    @property
    def sqlalchemy_url(self) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql+psycopg://{auth}@/{self.dbname}?host={self.host}&port={self.port}"


def parse_database_url(url: str) -> PgParams:
    """Parse ``postgresql://user:pw@host:port/db`` or the socket form ``...@/db?host=/dir``."""
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise SettingsError(f"SENTINANCE_DATABASE_URL must be a postgresql:// URL, got {url!r}")
    query = parse_qs(parsed.query)
    host = query.get("host", [parsed.hostname or "localhost"])[0]
    return PgParams(
        host=host,
        port=int(query.get("port", [parsed.port or 5432])[0]),
        user=unquote(parsed.username or "postgres"),
        password=unquote(parsed.password or ""),
        dbname=(parsed.path or "/postgres").lstrip("/") or "postgres",
    )


class WarehouseUnavailable(TransientError):
    """PostgreSQL does not answer: stopped, killed or unreachable; the message says which and what to do."""


def _datadir(settings: Settings) -> Path:
    return settings.postgres_dir / "data"


def postmaster_pid(settings: Settings) -> int | None:
    """The embedded PostgreSQL's postmaster, if its ``postmaster.pid`` names a running process."""
    try:
        pid = int((_datadir(settings) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) else None


def kill_embedded_postgres(settings: Settings) -> None:
    """SIGKILL the embedded PostgreSQL's postmaster (fault injection: a server dying mid-run)."""
    pid = postmaster_pid(settings)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def _forget_dead_users(datadir: Path) -> list[int]:
    """Drop the processes that died without saying so from pgserver's list of the server's users, so that
    the last live user stops the server again; returns their pids."""
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList

    users = DiskList(datadir / ".handle_pids.json")
    with PostgresServer._lock:  # pgserver's own inter-process lock over that list
        dead = [pid for pid in users.get() if not psutil.pid_exists(pid)]
        for pid in dead:
            users.get_and_remove(pid)
    if dead:
        log.info("embedded PostgreSQL: forgot users that died without stopping it: %s", dead)
    return dead


def _owned(process: psutil.Process) -> bool:
    """Whether ``process``'s parent, the command that started it, is alive (a command killed with SIGKILL
    leaves its server re-parented to init). Not the parent's environment: /proc shows only the one it was
    started with, without the PREFECT_HOME that ``configure()`` sets at run time."""
    try:
        parent = process.parent()
        return parent is not None and parent.pid != 1
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # a parent we may not inspect: leave the server alone
        return True


def _orphaned_prefect_servers(settings: Settings) -> list[psutil.Process]:
    """Prefect's ephemeral API servers on this state whose owning command is gone (killed with SIGKILL)."""
    home = str(settings.prefect_dir)
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if "prefect.server.api.server:create_app" not in (process.info["cmdline"] or []):
            continue
        try:
            env = process.environ()
        except psutil.Error:
            continue
        ours = env.get("PREFECT__SERVER_EPHEMERAL") == "1" and env.get("PREFECT_HOME") == home
        if ours and not _owned(process):
            found.append(process)
    return found


def recover(settings: Settings) -> None:
    """Clean up after commands of this state killed with SIGKILL: forget their use of the embedded
    PostgreSQL and stop their orphaned Prefect servers (PostgreSQL restarts itself when next needed)."""
    if _datadir(settings).is_dir():
        _forget_dead_users(_datadir(settings))
    for server in _orphaned_prefect_servers(settings):
        log.warning("stopping an orphaned Prefect server of %s (pid %d)", settings.home, server.pid)
        server.terminate()


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGTERM and SIGINT held back until the block is done, then acted on as usual: pgserver starts
    PostgreSQL before it puts this process on the server's list of users, and a command stopped in between
    would exit without stopping the server it started."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread runs handlers
        yield
        return
    held: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda got, _: held.append(got)) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in held[:1]:
            signal.raise_signal(signum)


@cache
def _embedded_postgres(datadir: str) -> str:
    import pgserver

    _forget_dead_users(Path(datadir))
    with _signals_deferred():
        server = pgserver.get_server(datadir, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE};")
    log.info("embedded PostgreSQL ready in %s", datadir)
    return server.get_uri(DATABASE)


def database_url(settings: Settings | None = None) -> str:
    """The PostgreSQL URL to use, starting the embedded server if none is configured."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    settings.postgres_dir.mkdir(parents=True, exist_ok=True)
    return _embedded_postgres(str(_datadir(settings)))


def pg_params(settings: Settings | None = None) -> PgParams:
    return parse_database_url(database_url(settings))


def _masked(url: str) -> str:
    """The URL with its password hidden, for messages."""
    parsed = urlparse(url)
    if not parsed.password:
        return url
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@")).geturl()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _unavailable(settings: Settings, error: Exception) -> str:
    reason = _first_line(error)
    if settings.database_url:
        return f"PostgreSQL at {ENV_PREFIX}DATABASE_URL={_masked(settings.database_url)} does not answer: {reason}"
    return f"the embedded PostgreSQL in {_datadir(settings)} does not answer ({reason}); the next command restarts it"


def connect(settings: Settings | None = None, autocommit: bool = False):
    """A psycopg 3 connection to the warehouse; :class:`WarehouseUnavailable` if PostgreSQL does not answer."""
    import psycopg

    settings = settings or get_settings()
    try:
        return psycopg.connect(pg_params(settings).conninfo, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise WarehouseUnavailable(_unavailable(settings, exc)) from exc


def check_database_url(settings: Settings, seconds: int = 10) -> None:
    """Fail with a one-line :class:`SettingsError` unless ``SENTINANCE_DATABASE_URL`` (when set) answers."""
    import psycopg

    if not settings.database_url:
        return
    try:
        psycopg.connect(parse_database_url(settings.database_url).conninfo, connect_timeout=seconds).close()
    except psycopg.OperationalError as exc:
        raise SettingsError(
            f"{ENV_PREFIX}DATABASE_URL={_masked(settings.database_url)}: cannot connect ({_first_line(exc)}); "
            "must name a reachable PostgreSQL, e.g. postgresql://user:password@host:5432/db"
        ) from None


def mlflow_tracking_uri(settings: Settings | None = None) -> str:
    """MLflow tracking + registry store, opened for this state dir (see the module's docstring): a
    SQLite file in the state dir, or the schema ``mlflow`` of ``SENTINANCE_DATABASE_URL``."""
    settings = settings or get_settings()
    if settings.database_url:
        from sqlalchemy.engine import URL

        params = pg_params(settings)
        query = {"host": params.host, "port": str(params.port), "options": f"-csearch_path={MLFLOW_SCHEMA}"}
        url = URL.create(
            "postgresql+psycopg", params.user, params.password or None, database=params.dbname, query=query
        )
        uri = url.render_as_string(hide_password=False)
    else:
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}"
    _open_mlflow_store(uri, mlflow_artifact_root(settings), settings.database_url)
    return uri


def mlflow_artifact_root(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return (settings.mlflow_dir / ARTIFACTS).as_uri()


@cache
def _open_mlflow_store(uri: str, artifact_root: str, database_url: str | None) -> None:
    """Create the store (its Default experiment under ``artifact_root``, not ``./mlruns``) or move it here."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    if database_url:
        import psycopg

        with psycopg.connect(parse_database_url(database_url).conninfo, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {MLFLOW_SCHEMA}")
    engine = SqlAlchemyStore(uri, artifact_root).engine
    try:
        replacements = relocate_mlflow_store(engine, artifact_root)
    finally:
        engine.dispose()
    for model in Path(url2pathname(urlparse(artifact_root).path)).rglob("MLmodel") if replacements else ():
        text = model.read_text()  # its artifact_path records where it was logged
        for before, after in replacements:
            text = text.replace(before, after)
        model.write_text(text)


def _home_of(artifact_root: str) -> str | None:
    """The state dir (a ``file:`` URI) an artifact root ``<state>/mlflow/artifacts`` belongs to, else None."""
    suffix = f"/mlflow/{ARTIFACTS}"
    return (
        artifact_root.removesuffix(suffix)
        if artifact_root.startswith("file:") and artifact_root.endswith(suffix)
        else None
    )


def relocate_mlflow_store(engine, artifact_root: str) -> list[tuple[str, str]]:
    """Rewrite the locations an MLflow store recorded under another state dir to ``artifact_root``'s;
    returns the (old, new) prefixes it replaced. MLflow has no relocation of its own: every text column of its
    tables (artifact locations, model version sources, tags such as a training set's path, dataset
    sources) has the old state dir's path replaced, as a ``file:`` URI and as a plain path."""
    import sqlalchemy as sa

    wanted = f"{artifact_root}/0"
    with engine.begin() as conn:
        found = conn.execute(sa.text("SELECT artifact_location FROM experiments WHERE experiment_id = 0")).scalar()
        if found is None or found == wanted:
            return []
        old, new = _home_of(found.removesuffix("/0")), _home_of(artifact_root)
        replacements = []
        if old and new:  # a state dir moved; otherwise a store from before: only its Default experiment moves
            old_path, new_path = (url2pathname(urlparse(u).path) for u in (old, new))
            replacements = [(f"{old_path}/", f"{new_path}/")]  # also the URI, unless quoting changed the path
            if old != f"file://{old_path}":
                replacements.append((f"{old}/", f"{new}/"))
        changed = 0
        inspector = sa.inspect(conn)
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                if table == "alembic_version" or not isinstance(column["type"], sa.String):
                    continue
                rows = sa.table(table, sa.column(column["name"]))
                value = rows.c[column["name"]]
                for before, after in replacements:
                    changed += conn.execute(
                        sa.update(rows)
                        .where(value.contains(before, autoescape=True))
                        .values({column["name"]: sa.func.replace(value, before, after)})
                    ).rowcount
        conn.execute(
            sa.text("UPDATE experiments SET artifact_location = :wanted WHERE experiment_id = 0"), {"wanted": wanted}
        )
    log.info("MLflow store moved from %s to %s: %d recorded locations rewritten", found, wanted, changed)
    return replacements


def _prefect_server_record(settings: Settings) -> Path:
    return settings.prefect_dir / "server.json"


def record_prefect_server(settings: Settings, url: str, pid: int) -> None:
    """Note the Prefect server a long-lived command (``sentinance serve``) runs on this state, so that
    the other commands report to it instead of each starting a temporary one."""
    _prefect_server_record(settings).write_text(json.dumps({"url": url, "pid": pid}))


def forget_prefect_server(settings: Settings) -> None:
    _prefect_server_record(settings).unlink(missing_ok=True)


def running_prefect_server(settings: Settings) -> str | None:
    """The API URL of the Prefect server recorded for this state, if its process is alive."""
    record = _prefect_server_record(settings)
    if not record.exists():
        return None
    server = json.loads(record.read_text())
    url = urlparse(server.get("url", ""))
    try:
        os.kill(int(server["pid"]), 0)
        socket.create_connection((url.hostname, url.port), timeout=0.5).close()  # a recycled pid answers no API
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(server["url"])
