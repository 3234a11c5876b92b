"""Delta -> PostgreSQL loader: COPY into a staging table, upsert on keys, incremental by Delta version.

``lake.<table>`` mirrors a Delta table at the version recorded in ``lake._load_state``.
The first load copies the current snapshot; later loads copy only the rows the change
data feed reports as inserted or updated since the recorded version. Each load runs
in one transaction, so a crash leaves the previous table and state untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError
from psycopg import Connection, sql

from sentinance import services
from sentinance.config import Settings

log = logging.getLogger(__name__)

SCHEMA = "lake"
STATE_TABLE = "_load_state"
CDF_CHANGES = ["insert", "update_postimage"]
CDF_ENABLED = "delta.enableChangeDataFeed"

_PG_TYPES = {
    pa.bool_(): "boolean",
    pa.int8(): "smallint",
    pa.int16(): "smallint",
    pa.int32(): "integer",
    pa.int64(): "bigint",
    pa.float32(): "real",
    pa.float64(): "double precision",
    pa.string(): "text",
    pa.large_string(): "text",
    pa.date32(): "date",
}


@dataclass(frozen=True)
class LoadResult:
    table: str
    rows: int                   # rows inserted or changed in PostgreSQL
    from_version: int | None    # Delta version loaded before this run (None: not loaded from this path)
    to_version: int             # Delta version lake.<table> now reflects
    mode: str                   # full | incremental | noop


def pg_type(data_type: pa.DataType) -> str:
    """PostgreSQL column type for an Arrow type (every timestamp becomes timestamptz)."""
    if pa.types.is_timestamp(data_type):
        return "timestamptz"
    if pa.types.is_decimal(data_type):
        return f"numeric({data_type.precision}, {data_type.scale})"
    try:
        return _PG_TYPES[data_type]
    except KeyError:
        raise TypeError(f"no PostgreSQL type for Arrow type {data_type}") from None


def load_table(settings: Settings, delta_path: str, table: str, keys: Sequence[str], schema: pa.Schema) -> LoadResult:
    """Bring ``lake.<table>`` up to the current version of the Delta table at ``delta_path``."""
    delta = DeltaTable(delta_path)
    to_version = delta.version()
    target = sql.Identifier(SCHEMA, table)
    with services.connect(settings) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{SCHEMA}.{table}"])
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        existed = _ensure_tables(conn, target, keys, schema)
        state = conn.execute(
            sql.SQL("SELECT delta_path, loaded_version FROM {} WHERE table_name = %s").format(
                sql.Identifier(SCHEMA, STATE_TABLE)), [table]).fetchone()
        from_version = state[1] if existed and state and state[0] == delta_path else None
        if from_version == to_version:
            log.info("%s.%s is at Delta version %d already: nothing to load", SCHEMA, table, to_version)
            return LoadResult(table, 0, from_version, to_version, "noop")
        data, mode = _read_changes(delta, delta_path, keys, schema, from_version)
        if mode == "full":
            conn.execute(sql.SQL("DELETE FROM {}").format(target))
        rows = _upsert(conn, target, data, keys)
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (table_name, delta_path, loaded_version, loaded_at) VALUES (%s, %s, %s, now()) "
                "ON CONFLICT (table_name) DO UPDATE SET delta_path = EXCLUDED.delta_path, "
                "loaded_version = EXCLUDED.loaded_version, loaded_at = EXCLUDED.loaded_at"
            ).format(sql.Identifier(SCHEMA, STATE_TABLE)),
            [table, delta_path, to_version],
        )
    log.info("%s load of %s.%s: %d rows written, Delta version %s -> %d",
             mode, SCHEMA, table, rows, from_version, to_version)
    return LoadResult(table, rows, from_version, to_version, mode)


def _ensure_tables(conn: Connection, target: sql.Identifier, keys: Sequence[str], schema: pa.Schema) -> bool:
    """Create the schema, the load-state table and ``target`` if missing; returns whether ``target`` existed."""
    existed = conn.execute("SELECT 1 WHERE to_regclass(%s) IS NOT NULL", [target.as_string(conn)]).fetchone() is not None
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(sql.Identifier(f.name), sql.SQL(pg_type(f.type)),
                                  sql.SQL("" if f.nullable else " NOT NULL"))
        for f in schema
    )
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (table_name text PRIMARY KEY, delta_path text NOT NULL, "
        "loaded_version bigint NOT NULL, loaded_at timestamptz NOT NULL)").format(sql.Identifier(SCHEMA, STATE_TABLE)))
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
        target, columns, sql.SQL(", ").join(map(sql.Identifier, keys))))
    return existed


def _changes_unreadable(delta: DeltaTable, path: str, from_version: int) -> str | None:
    """Why the change data feed cannot bring the table from ``from_version`` to now, if it cannot."""
    if from_version > delta.version():
        return f"the Delta table is at version {delta.version()}, behind the loaded version {from_version}"
    for version in (from_version + 1, delta.version()):
        if DeltaTable(path, version=version).metadata().configuration.get(CDF_ENABLED) != "true":
            return f"change data feed ({CDF_ENABLED}) is not enabled at version {version}"
    return None


def _read_changes(delta: DeltaTable, path: str, keys: Sequence[str], schema: pa.Schema,
                  from_version: int | None) -> tuple[pa.Table, str]:
    """The rows to upsert (in ``schema``) and the mode: the whole snapshot, or each changed key's latest row."""
    reason: str | None = "first load from this path"
    if from_version is not None:
        try:
            reason = _changes_unreadable(delta, path, from_version)
            if reason is None:
                reader = delta.load_cdf(starting_version=from_version + 1, ending_version=delta.version())
                changes = pa.RecordBatchReader.from_stream(reader).read_all()
        except DeltaError as exc:  # e.g. the versions since the last load were vacuumed away
            reason = f"the changes since version {from_version} cannot be read ({exc})"
    if reason is not None:
        log.info("full reload of %s at version %d: %s", path, delta.version(), reason)
        return delta.to_pyarrow_table(columns=schema.names).cast(schema), "full"
    upserts = pc.is_in(changes["_change_type"].cast(pa.string()), pa.array(CDF_CHANGES))
    rows = (changes.select(schema.names).cast(schema)  # drops the CDF columns, string_view -> string
            .append_column("_commit_version", changes["_commit_version"])
            .filter(upserts)
            .sort_by("_commit_version"))
    rows = rows.append_column("_row", pa.array(range(rows.num_rows), pa.int64()))
    latest = rows.group_by(list(keys), use_threads=False).aggregate([("_row", "max")])["_row_max"]
    return rows.take(latest).select(schema.names), "incremental"


def _upsert(conn: Connection, target: sql.Identifier, data: pa.Table, keys: Sequence[str]) -> int:
    """COPY ``data`` into a temporary table, then insert-or-update the rows that differ; returns their count."""
    columns = [sql.Identifier(name) for name in data.column_names]
    values = [sql.Identifier(name) for name in data.column_names if name not in keys]
    column_list = sql.SQL(", ").join(columns)
    conn.execute(sql.SQL("CREATE TEMPORARY TABLE _stage (LIKE {}) ON COMMIT DROP").format(target))
    options = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
    with conn.cursor().copy(sql.SQL("COPY _stage ({}) FROM STDIN (FORMAT csv)").format(column_list)) as copy:
        for batch in data.to_batches(max_chunksize=50_000):
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(batch, sink, options)
            copy.write(sink.getvalue().to_pybytes())
    cursor = conn.execute(sql.SQL(
        "INSERT INTO {target} AS t ({columns}) SELECT {columns} FROM _stage "
        "ON CONFLICT ({keys}) DO UPDATE SET {assignments} "
        "WHERE ({current}) IS DISTINCT FROM ({incoming})"
    ).format(
        target=target,
        columns=column_list,
        keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
        assignments=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(v) for v in values),
        current=sql.SQL(", ").join(sql.SQL("t.{}").format(v) for v in values),
        incoming=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(v) for v in values),
    ))
    return cursor.rowcount
