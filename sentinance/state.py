"""Backup and restore of a state dir (``SENTINANCE_HOME``) as one archive, restorable anywhere.

A backup is a gzipped tar: the state dir's files under ``state/`` (SQLite databases — MLflow,
Prefect, Feast's online store — copied through SQLite's backup API, so a reader or writer at the
same moment does not tear them), the embedded warehouse as a ``pg_dump`` custom-format dump
(``warehouse.dump``; the server's own files are not copied) and ``manifest.json``. Restoring
unpacks into an empty state dir, loads the dump into that state dir's warehouse and opens the
MLflow store, which moves its recorded locations to the new state dir
(:func:`sentinance.services.mlflow_tracking_uri`); the original may then be deleted.

With ``SENTINANCE_DATABASE_URL`` the warehouse and the MLflow store live in that server and are
backed up with its own tools; the archive holds the state dir's files only. Take a backup while
no flow writes (the lake's Delta tables are copied file by file).
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from sentinance import services
from sentinance.errors import SentinanceError
from sentinance.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STATE = "state"
WAREHOUSE_DUMP = "warehouse.dump"
_SQLITE_HEADER = b"SQLite format 3\x00"
_SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal")  # SQLite's side files: their content is in the copy


def _pg_tool(name: str) -> str:
    """A PostgreSQL client of the embedded server's version (pgserver ships them)."""
    from pgserver.postgres_server import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SentinanceError(
            f"{what} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}"
        )


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER


def _copy_sqlite(source: Path, target: Path) -> None:
    with (
        closing(sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def backup(settings: Settings, archive: Path) -> dict:
    """Write the state dir ``settings.home`` to ``archive`` (a new ``.tar.gz``); returns the manifest."""
    archive = archive.expanduser().resolve()
    if archive.exists():
        raise SentinanceError(f"{archive} exists: name a new file for the backup")
    if archive.is_relative_to(settings.home):
        raise SentinanceError(f"{archive} is inside the state dir {settings.home}: write the backup elsewhere")
    embedded = settings.database_url is None
    files = [
        p
        for p in sorted(settings.home.rglob("*"))
        if p.is_file()
        and not (embedded and p.is_relative_to(settings.postgres_dir))
        and not p.name.endswith(_SKIPPED_SUFFIXES)
    ]
    manifest = {
        "created_at": datetime.now(UTC).isoformat(),
        "home": str(settings.home),
        "files": len(files),
        "warehouse": WAREHOUSE_DUMP if embedded else None,
    }
    with tempfile.TemporaryDirectory(prefix="sentinance-backup-") as scratch, tarfile.open(archive, "w:gz") as tar:
        for path in files:
            name = f"{STATE}/{path.relative_to(settings.home)}"
            if _is_sqlite(path):
                copy = Path(scratch) / "copy.db"
                _copy_sqlite(path, copy)
                tar.add(copy, arcname=name)
                copy.unlink()
            else:
                tar.add(path, arcname=name)
        if embedded:
            dump = Path(scratch) / WAREHOUSE_DUMP
            conninfo = services.pg_params(settings).conninfo
            _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={dump}", conninfo], "pg_dump")
            tar.add(dump, arcname=WAREHOUSE_DUMP)
        info = tarfile.TarInfo(MANIFEST)
        data = json.dumps(manifest, indent=2).encode()
        info.size = len(data)
        with tempfile.TemporaryFile() as buffer:
            buffer.write(data)
            buffer.seek(0)
            tar.addfile(info, buffer)
    log.info("backed up %s (%d files) to %s", settings.home, len(files), archive)
    return {**manifest, "archive": str(archive)}


def restore(settings: Settings, archive: Path) -> dict:
    """Unpack ``archive`` into the empty state dir ``settings.home``, load its warehouse, move the MLflow store."""
    archive = archive.expanduser().resolve()
    if not archive.is_file():
        raise SentinanceError(f"no backup at {archive}")
    if settings.home.exists() and any(p.is_file() for p in settings.home.rglob("*")):
        raise SentinanceError(f"{settings.home} is not empty: restore into a new SENTINANCE_HOME")
    settings.home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sentinance-restore-", dir=settings.home) as scratch:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(scratch, filter="data")
            manifest = json.loads((Path(scratch) / MANIFEST).read_text())
        except (tarfile.TarError, OSError, ValueError) as exc:
            raise SentinanceError(f"{archive} is not a sentinance backup: {exc}") from None
        for item in (Path(scratch) / STATE).iterdir():
            target = settings.home / item.name
            if target.is_dir():  # created empty by configure() (Prefect's home)
                target.rmdir()
            shutil.move(item, target)
        if manifest.get("warehouse"):
            conninfo = services.pg_params(settings).conninfo  # starts the embedded server of the new state dir
            dump = str(Path(scratch) / manifest["warehouse"])
            _run([_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={conninfo}", dump], "pg_restore")
    services.mlflow_tracking_uri(settings)  # opens the store here: its locations move with it
    log.info(
        "restored %s (backed up from %s at %s) into %s",
        archive,
        manifest["home"],
        manifest["created_at"],
        settings.home,
    )
    return {**manifest, "restored_into": str(settings.home)}
