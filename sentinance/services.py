"""Embedded services, started on demand and reused: PostgreSQL (pgserver) and the MLflow store.

With ``SENTINANCE_DATABASE_URL`` set, that PostgreSQL is used and nothing is started: it holds the
warehouse and the MLflow store (schema ``mlflow``). pgserver listens on a Unix socket in its data
directory only, never on a network address.

The MLflow store records absolute artifact locations. It is opened for the state dir it is in
(:func:`mlflow_tracking_uri`): its Default experiment's location, ``<state>/mlflow/artifacts/0``,
names the state dir it was written in, and a store found in another one (a copied or restored
state dir) has every recorded location under the old one rewritten to the new one first.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse
from urllib.request import url2pathname

from sentinance.errors import SettingsError
from sentinance.settings import Settings, get_settings

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


@cache
def _embedded_postgres(datadir: str) -> str:
    import pgserver

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
    return _embedded_postgres(str(settings.postgres_dir / "data"))


def pg_params(settings: Settings | None = None) -> PgParams:
    return parse_database_url(database_url(settings))


def connect(settings: Settings | None = None, autocommit: bool = False):
    """A psycopg 3 connection to the warehouse."""
    import psycopg

    return psycopg.connect(pg_params(settings).conninfo, autocommit=autocommit)


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
