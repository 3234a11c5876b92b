"""Embedded services, started on demand and reused: PostgreSQL (pgserver) and the MLflow store.

With ``SENTINANCE_DATABASE_URL`` set, that PostgreSQL is used and nothing is started.
pgserver listens on a Unix socket in its data directory only, never on a network address.
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

from sentinance.errors import SettingsError
from sentinance.settings import Settings, get_settings

log = logging.getLogger(__name__)

DATABASE = "sentinance"


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
    """MLflow tracking + registry store: a SQLite file in the state dir (a database store)."""
    settings = settings or get_settings()
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}"


def mlflow_artifact_root(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return (settings.mlflow_dir / "artifacts").as_uri()


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
