"""Delta Lake IO through delta-rs: create-or-merge by key, reads, versions.

Every layer writes through :func:`merge` (:func:`upsert` for a catalog table), so reruns are
idempotent: a row whose key exists is updated only when its content changed, otherwise nothing
is written. Every table is opened through :func:`open_table`, which names a table whose newest
commit is unreadable and how to recover it (:class:`CorruptTableError`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from sentinance.catalog import Table
from sentinance.errors import SentinanceError
from sentinance.settings import Settings


class CorruptTableError(SentinanceError):
    """A Delta table's newest commit cannot be read (a truncated or damaged log file)."""


@dataclass(frozen=True)
class MergeResult:
    inserted: int
    updated: int
    version: int
    deleted: int = 0


def _unreadable_commit(path: str) -> Path | None:
    """The newest commit file of the table's log, if it is not valid JSON lines."""
    commits = sorted((Path(path) / "_delta_log").glob("[0-9]*.json"))
    if not commits:
        return None
    try:
        for line in commits[-1].read_text().splitlines():
            if line.strip():
                json.loads(line)
    except (OSError, UnicodeDecodeError, ValueError):
        return commits[-1]
    return None


def open_table(path: str, version: int | None = None) -> DeltaTable:
    """The Delta table at ``path`` (as of ``version``); :class:`CorruptTableError` if its newest commit is damaged."""
    try:
        return DeltaTable(path, version=version)
    except TableNotFoundError:
        raise
    except DeltaError as exc:
        commit = _unreadable_commit(path)
        if commit is None:
            raise
        reason = str(exc).splitlines()[0]
        raise CorruptTableError(
            f"the Delta table {path} cannot be read: its newest commit {commit.name} is damaged ({reason}); "
            f"move {commit} out of _delta_log and rerun: the table goes back to the commit before it (or to no "
            "table) and the run redoes what that commit held (docs/reliability.md)"
        ) from None


def exists(path: str) -> bool:
    return DeltaTable.is_deltatable(path)


def version(path: str) -> int | None:
    """Current version of the table, or None if there is no table yet."""
    try:
        return open_table(path).version()
    except TableNotFoundError:
        return None


def _to_arrow(data: pa.Table | pd.DataFrame, schema: pa.Schema | None) -> pa.Table:
    if isinstance(data, pd.DataFrame):
        if schema is not None:  # a nullable column appended to the catalog later: null for writers without it
            missing = [f.name for f in schema if f.nullable and f.name not in data.columns]
            data = data.assign(**dict.fromkeys(missing)) if missing else data
        return pa.Table.from_pandas(data, schema=schema, preserve_index=False)
    return data.cast(schema) if schema is not None else data


def merge(
    path: str,
    data: pa.Table | pd.DataFrame,
    keys: Sequence[str],
    *,
    schema: pa.Schema | None = None,
    partition_by: Sequence[str] | None = None,
    change_column: str | Sequence[str] | None = None,
    keep_existing: bool = False,
    configuration: dict[str, str] | None = None,
    delete_missing: bool = False,
    window: tuple[str, datetime] | None = None,
    delete_where: str | None = None,
) -> MergeResult:
    """Upsert ``data`` into the Delta table at ``path`` on ``keys``, creating it if missing.

    With ``change_column`` (e.g. a payload hash, or several columns) matched rows are
    rewritten only when it differs, so replaying identical data writes nothing; with ``keep_existing``
    they are never rewritten (the first write of a key wins). With ``delete_missing``
    the table's rows whose key is not in ``data`` are deleted in the same commit: the
    table becomes ``data``. With ``delete_where`` (a predicate on the table's columns, as ``t.<column>``)
    only those of them that match it are: the part of the table it selects becomes ``data``'s.
    ``window=(column, start)`` says that every row ``data`` may match (or, with ``delete_missing``,
    replace) has ``column >= start``: the merge then opens only the files that may hold such rows, and
    deletes only among them — its cost follows the window, not the table.
    """
    table = _to_arrow(data, schema)
    if not exists(path):
        write_deltalake(
            path,
            table,
            mode="error",
            partition_by=list(partition_by) if partition_by else None,
            configuration=configuration,
        )
        return MergeResult(inserted=table.num_rows, updated=0, version=open_table(path).version())
    if table.num_rows == 0 and not (delete_missing or delete_where):
        return MergeResult(inserted=0, updated=0, version=open_table(path).version())
    dt = open_table(path)
    if configuration and any(dt.metadata().configuration.get(k) != v for k, v in configuration.items()):
        dt.alter.set_table_properties(configuration)  # e.g. the change data feed turned on for an existing table
    # a nullable column the catalog appended later is added to an older table in place (schema evolution)
    evolve = bool(set(table.schema.names) - {f.name for f in dt.schema().fields})
    scope = None if window is None else f"t.{window[0]} >= '{window[1].isoformat()}'"
    predicate = " AND ".join([*(f"t.{k} = s.{k}" for k in keys), *([scope] if scope else [])])
    changed = [change_column] if isinstance(change_column, str) else list(change_column or ())
    update_predicate = " OR ".join(f"t.{c} <> s.{c}" for c in changed) or None
    merger = dt.merge(table, predicate=predicate, source_alias="s", target_alias="t", merge_schema=evolve)
    if not keep_existing:
        merger = merger.when_matched_update_all(predicate=update_predicate)
    merger = merger.when_not_matched_insert_all()
    if delete_missing or delete_where:
        deleted = " AND ".join(f"({p})" for p in (scope, None if delete_missing else delete_where) if p)
        merger = merger.when_not_matched_by_source_delete(predicate=deleted or None)
    metrics = merger.execute()
    return MergeResult(
        inserted=int(metrics.get("num_target_rows_inserted", 0)),
        updated=int(metrics.get("num_target_rows_updated", 0)),
        version=open_table(path).version(),
        deleted=int(metrics.get("num_target_rows_deleted", 0)),
    )


def read(path: str, columns: Sequence[str] | None = None, filters=None, version: int | None = None) -> pd.DataFrame:
    """Read a Delta table (optionally time-travelled) into pandas."""
    dt = open_table(path, version)
    return dt.to_pyarrow_table(columns=list(columns) if columns else None, filters=filters).to_pandas()


def files_since(path: str, column: str, since: datetime) -> list[str]:
    """The table's files that may hold rows with ``column >= since`` (by the Delta log's per-file
    statistics; a file without statistics is kept): what a bounded read needs to open."""
    table = open_table(path)
    actions = pa.table(table.get_add_actions(flatten=True))
    if f"max.{column}" not in actions.column_names:
        return table.file_uris()
    maximum = actions[f"max.{column}"]
    keep = pc.or_kleene(pc.is_null(maximum), pc.greater_equal(maximum, pa.scalar(since, maximum.type)))
    root = table.table_uri.removeprefix("file://").rstrip("/")
    return [f"{root}/{name}" for name in actions.filter(keep)["path"].to_pylist()]


def first_change(path: str, after_version: int | None, column: str) -> datetime | None:
    """The smallest ``column`` among the rows inserted or updated after ``after_version``, read from the
    change data feed: None when nothing changed. Raises LookupError when the changes cannot be read
    (no version recorded, the feed off or vacuumed away): the caller then reads everything."""
    if after_version is None:
        raise LookupError("no version recorded")
    latest = version(path)
    if latest is None or latest <= after_version:
        return None
    try:
        reader = open_table(path).load_cdf(
            starting_version=after_version + 1, ending_version=latest, columns=[column, "_change_type"]
        )
        changes = pa.RecordBatchReader.from_stream(reader).read_all()
    except DeltaError as exc:
        raise LookupError(str(exc)) from exc
    upserted = pc.is_in(changes["_change_type"].cast(pa.string()), pa.array(["insert", "update_postimage"]))
    smallest = pc.min(pc.filter(changes[column], upserted)).as_py()
    return smallest


def row_count(path: str) -> int:
    """Rows of the current version, from the Delta log's per-file counts (no data file is opened)."""
    if not exists(path):
        return 0
    records = pa.table(open_table(path).get_add_actions(flatten=True))["num_records"]
    return int(pc.sum(records).as_py() or 0)


def upsert(
    settings: Settings,
    table: Table,
    data: pa.Table | pd.DataFrame,
    *,
    change_column: str | Sequence[str] | None = None,
    keep_existing: bool = False,
    delete_missing: bool = False,
    window: tuple[str, datetime] | None = None,
    delete_where: str | None = None,
) -> MergeResult:
    """:func:`merge` into a catalog table, with its keys, schema, partitioning and properties."""
    return merge(
        table.path(settings),
        data,
        table.keys,
        schema=table.schema,
        partition_by=table.partition_by,
        change_column=change_column,
        keep_existing=keep_existing,
        configuration=table.configuration,
        delete_missing=delete_missing,
        window=window,
        delete_where=delete_where,
    )


@dataclass(frozen=True)
class MaintenanceResult:
    table: str
    files_compacted: int  # small files rewritten into fewer large ones (OPTIMIZE)
    files_removed: int  # files no version within the retention (or kept) still references (VACUUM)
    version: int | None


def maintain(
    settings: Settings, table: Table, retention_hours: int, keep_versions: Sequence[int] = ()
) -> MaintenanceResult:
    """Compact a table's small files, then delete the files only versions older than ``retention_hours``
    read, except those of ``keep_versions`` (versions something recorded and must still time-travel to)."""
    path = table.path(settings)
    if not exists(path):
        return MaintenanceResult(table.id, 0, 0, None)
    dt = open_table(path)
    compacted = dt.optimize.compact()
    removed = open_table(path).vacuum(
        retention_hours=retention_hours,
        dry_run=False,
        enforce_retention_duration=False,
        keep_versions=sorted(set(keep_versions)) or None,
    )
    return MaintenanceResult(table.id, int(compacted.get("numFilesRemoved", 0)), len(removed), version(path))
