"""Delta Lake IO through delta-rs: create-or-merge by key, reads, versions.

Every layer writes through :func:`merge` (:func:`upsert` for a catalog table), so reruns are
idempotent: a row whose key exists is updated only when its content changed, otherwise nothing
is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from sentinance.catalog import Table
from sentinance.settings import Settings


@dataclass(frozen=True)
class MergeResult:
    inserted: int
    updated: int
    version: int
    deleted: int = 0


def exists(path: str) -> bool:
    return DeltaTable.is_deltatable(path)


def version(path: str) -> int | None:
    """Current version of the table, or None if there is no table yet."""
    try:
        return DeltaTable(path).version()
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
    configuration: dict[str, str] | None = None,
    delete_missing: bool = False,
) -> MergeResult:
    """Upsert ``data`` into the Delta table at ``path`` on ``keys``, creating it if missing.

    With ``change_column`` (e.g. a payload hash, or several columns) matched rows are
    rewritten only when it differs, so replaying identical data writes nothing. With ``delete_missing``
    the table's rows whose key is not in ``data`` are deleted in the same commit: the
    table becomes ``data``.
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
        return MergeResult(inserted=table.num_rows, updated=0, version=DeltaTable(path).version())
    if table.num_rows == 0 and not delete_missing:
        return MergeResult(inserted=0, updated=0, version=DeltaTable(path).version())
    dt = DeltaTable(path)
    # a nullable column the catalog appended later is added to an older table in place (schema evolution)
    evolve = bool(set(table.schema.names) - {f.name for f in dt.schema().fields})
    predicate = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    changed = [change_column] if isinstance(change_column, str) else list(change_column or ())
    update_predicate = " OR ".join(f"t.{c} <> s.{c}" for c in changed) or None
    merger = (
        dt.merge(table, predicate=predicate, source_alias="s", target_alias="t", merge_schema=evolve)
        .when_matched_update_all(predicate=update_predicate)
        .when_not_matched_insert_all()
    )
    metrics = (merger.when_not_matched_by_source_delete() if delete_missing else merger).execute()
    return MergeResult(
        inserted=int(metrics.get("num_target_rows_inserted", 0)),
        updated=int(metrics.get("num_target_rows_updated", 0)),
        version=DeltaTable(path).version(),
        deleted=int(metrics.get("num_target_rows_deleted", 0)),
    )


def append(
    path: str,
    data: pa.Table | pd.DataFrame,
    *,
    schema: pa.Schema | None = None,
    partition_by: Sequence[str] | None = None,
) -> int:
    """Append rows (for logs such as quarantine); returns the rows written."""
    table = _to_arrow(data, schema)
    if table.num_rows or not exists(path):
        write_deltalake(path, table, mode="append", partition_by=list(partition_by) if partition_by else None)
    return table.num_rows


def read(path: str, columns: Sequence[str] | None = None, filters=None, version: int | None = None) -> pd.DataFrame:
    """Read a Delta table (optionally time-travelled) into pandas."""
    dt = DeltaTable(path, version=version)
    return dt.to_pyarrow_table(columns=list(columns) if columns else None, filters=filters).to_pandas()


def row_count(path: str) -> int:
    if not exists(path):
        return 0
    return DeltaTable(path).to_pyarrow_dataset().count_rows()


def upsert(
    settings: Settings,
    table: Table,
    data: pa.Table | pd.DataFrame,
    *,
    change_column: str | Sequence[str] | None = None,
    delete_missing: bool = False,
) -> MergeResult:
    """:func:`merge` into a catalog table, with its keys, schema, partitioning and properties."""
    return merge(
        table.path(settings),
        data,
        table.keys,
        schema=table.schema,
        partition_by=table.partition_by,
        change_column=change_column,
        configuration=table.configuration,
        delete_missing=delete_missing,
    )


def log(settings: Settings, table: Table, data: pa.Table | pd.DataFrame) -> int:
    """:func:`append` to a catalog table that is a log (no keys)."""
    return append(table.path(settings), data, schema=table.schema, partition_by=table.partition_by)
