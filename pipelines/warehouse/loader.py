"""Delta -> PostgreSQL loader: COPY into a staging table, upsert on keys, incremental by Delta version.

``lake.<table>`` mirrors a Delta table at the version recorded in ``lake._load_state``.
The first load copies the current snapshot (and so does every load of a table without
change data feed); later loads apply only what the change data feed reports since the
recorded version: each changed key's latest row is upserted, a key whose latest change
is a delete is deleted. Rows that did not change are not rewritten.

Schema evolution is additive: a nullable column declared in the schema but missing in
PostgreSQL is added (``ALTER TABLE ... ADD COLUMN``, logged), and a declared nullable
column the Delta table does not have yet loads as null. Any other difference (a column
removed, retyped or added as NOT NULL) raises :class:`SchemaChangeError`; dropping
``lake.<table>`` makes the next load rebuild it. Each load runs in one transaction, so a
failure leaves the previous table and state untouched.

:data:`sentinance.catalog.MIRRORED` names every lake table the warehouse mirrors; :func:`load` loads one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError
from psycopg import Connection, sql

from sentinance import faults, lake, services
from sentinance.catalog import MIRRORED
from sentinance.errors import SentinanceError
from sentinance.settings import Settings

log = logging.getLogger(__name__)

SCHEMA = "lake"
STATE_TABLE = "_load_state"
CDF_UPSERTS = ["insert", "update_postimage"]
CDF_DELETE = "delete"
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
    rows: int  # rows inserted or changed in PostgreSQL
    from_version: int | None  # Delta version loaded before this run (None: not loaded from this path)
    to_version: int | None  # Delta version lake.<table> now reflects (None: no Delta table yet)
    mode: str  # full | incremental | noop | absent (no Delta table yet)
    deleted: int = 0  # rows deleted in PostgreSQL (gone from the Delta table)
    added_columns: tuple[str, ...] = ()  # columns added to lake.<table> by this load


class SchemaChangeError(SentinanceError):
    """The declared schema differs from ``lake.<table>`` in a way an additive migration cannot apply."""


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


def load(settings: Settings, name: str) -> LoadResult:
    """Bring ``lake.<name>`` (a key of :data:`sentinance.catalog.MIRRORED`) up to its Delta table's version."""
    table = MIRRORED[name]
    return load_table(settings, table.path(settings), name, table.keys, table.schema)


def loaded_versions(settings: Settings) -> dict[str, int]:
    """The Delta version each warehouse table was last loaded from (empty before the first load)."""
    with services.connect(settings) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{SCHEMA}.{STATE_TABLE}"]).fetchone()[0]
        if not exists:
            return {}
        query = sql.SQL("SELECT table_name, loaded_version FROM {}").format(sql.Identifier(SCHEMA, STATE_TABLE))
        return dict(conn.execute(query).fetchall())


def load_table(settings: Settings, delta_path: str, table: str, keys: Sequence[str], schema: pa.Schema) -> LoadResult:
    """Bring ``lake.<table>`` up to the current version of the Delta table at ``delta_path``.

    Without a Delta table yet, ``lake.<table>`` is only created (empty), so the sources of dbt
    exist before the stage that writes the table has run.
    """
    target = sql.Identifier(SCHEMA, table)
    with services.connect(settings) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{SCHEMA}.{table}"])
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        existed = _ensure_tables(conn, target, keys, schema)
        added = _add_new_columns(conn, table, schema) if existed else ()
        if not lake.exists(delta_path):
            log.info("no Delta table at %s yet: %s.%s left as it is", delta_path, SCHEMA, table)
            return LoadResult(table, 0, None, None, "absent", added_columns=added)
        delta = lake.open_table(delta_path)
        to_version = delta.version()
        state = conn.execute(
            sql.SQL("SELECT delta_path, loaded_version FROM {} WHERE table_name = %s").format(
                sql.Identifier(SCHEMA, STATE_TABLE)
            ),
            [table],
        ).fetchone()
        from_version = state[1] if existed and state and state[0] == delta_path else None
        if from_version == to_version:
            log.info("%s.%s is at Delta version %d already: nothing to load", SCHEMA, table, to_version)
            return LoadResult(table, 0, from_version, to_version, "noop", added_columns=added)
        data, deletes, mode = _read_changes(delta, delta_path, keys, schema, from_version)
        rows = _upsert(conn, target, data, keys)
        deleted = _delete(conn, target, keys, deletes)
        faults.reach(settings, "warehouse-copy")
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (table_name, delta_path, loaded_version, loaded_at) VALUES (%s, %s, %s, now()) "
                "ON CONFLICT (table_name) DO UPDATE SET delta_path = EXCLUDED.delta_path, "
                "loaded_version = EXCLUDED.loaded_version, loaded_at = EXCLUDED.loaded_at"
            ).format(sql.Identifier(SCHEMA, STATE_TABLE)),
            [table, delta_path, to_version],
        )
    log.info(
        "%s load of %s.%s: %d rows written, %d deleted, Delta version %s -> %d",
        mode,
        SCHEMA,
        table,
        rows,
        deleted,
        from_version,
        to_version,
    )
    return LoadResult(table, rows, from_version, to_version, mode, deleted, added)


def _ensure_tables(conn: Connection, target: sql.Identifier, keys: Sequence[str], schema: pa.Schema) -> bool:
    """Create the schema, the load-state table and ``target`` if missing; returns whether ``target`` existed."""
    existed = (
        conn.execute("SELECT 1 WHERE to_regclass(%s) IS NOT NULL", [target.as_string(conn)]).fetchone() is not None
    )
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(
            sql.Identifier(f.name), sql.SQL(pg_type(f.type)), sql.SQL("" if f.nullable else " NOT NULL")
        )
        for f in schema
    )
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (table_name text PRIMARY KEY, delta_path text NOT NULL, "
            "loaded_version bigint NOT NULL, loaded_at timestamptz NOT NULL)"
        ).format(sql.Identifier(SCHEMA, STATE_TABLE))
    )
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
            target, columns, sql.SQL(", ").join(map(sql.Identifier, keys))
        )
    )
    return existed


def _add_new_columns(conn: Connection, table: str, schema: pa.Schema) -> tuple[str, ...]:
    """Add the declared nullable columns ``lake.<table>`` lacks; raise on any non-additive difference."""
    name, target = f"{SCHEMA}.{table}", sql.Identifier(SCHEMA, table)
    existing = dict(
        conn.execute(
            "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [target.as_string(conn)],
        ).fetchall()
    )
    declared = dict(
        conn.execute(
            "SELECT name, format_type(type::regtype, NULL) FROM unnest(%s::text[], %s::text[]) AS c(name, type)",
            [schema.names, [pg_type(f.type).split("(")[0] for f in schema]],
        ).fetchall()
    )
    problems = [f"column {name} is no longer declared" for name in existing if name not in declared]
    problems += [
        f"column {name} is {existing[name]}, declared {declared[name]}"
        for name in declared
        if name in existing and existing[name] != declared[name]
    ]
    new = [f for f in schema if f.name not in existing]
    problems += [f"new column {f.name} is NOT NULL" for f in new if not f.nullable]
    if problems:
        raise SchemaChangeError(
            f"{name} cannot follow the declared schema ({'; '.join(problems)}): only nullable "
            f"columns can be added in place; drop the table and the next load rebuilds it from the Delta table"
        )
    for field in new:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                target, sql.Identifier(field.name), sql.SQL(pg_type(field.type))
            )
        )
        log.info("schema evolution: added column %s %s to %s", field.name, pg_type(field.type), name)
    return tuple(f.name for f in new)


def _conform(data: pa.Table, schema: pa.Schema, path: str) -> pa.Table:
    """``data``'s columns in ``schema``; a declared nullable column the Delta table lacks becomes null."""
    missing = [f for f in schema if f.name not in data.column_names]
    required = [f.name for f in missing if not f.nullable]
    if required:
        raise SchemaChangeError(f"the Delta table at {path} has no column {', '.join(required)} (declared NOT NULL)")
    for field in missing:
        data = data.append_column(field.name, pa.nulls(data.num_rows, field.type))
    return data.select(schema.names).cast(schema)


def _changes_unreadable(delta: DeltaTable, path: str, from_version: int) -> str | None:
    """Why the change data feed cannot bring the table from ``from_version`` to now, if it cannot."""
    if from_version > delta.version():
        return f"the Delta table is at version {delta.version()}, behind the loaded version {from_version}"
    for version in (from_version + 1, delta.version()):
        if lake.open_table(path, version).metadata().configuration.get(CDF_ENABLED) != "true":
            return f"change data feed ({CDF_ENABLED}) is not enabled at version {version}"
    return None


def _read_changes(
    delta: DeltaTable, path: str, keys: Sequence[str], schema: pa.Schema, from_version: int | None
) -> tuple[pa.Table, pa.Table | None, str]:
    """The rows to upsert (in ``schema``), the keys to delete and the mode.

    ``full``: the whole snapshot, and None for the deletes (every key not in it goes);
    ``incremental``: each changed key's latest change, an upsert or a delete (an upsert
    wins within one commit, as an overwrite removes and re-adds its rows in one version).
    """
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
        present = set(delta.schema().to_arrow().names)
        snapshot = delta.to_pyarrow_table(columns=[name for name in schema.names if name in present])
        return _conform(snapshot, schema, path), None, "full"
    change_type = changes["_change_type"].cast(pa.string())
    is_upsert = pc.is_in(change_type, pa.array(CDF_UPSERTS))
    rows = (
        _conform(changes, schema, path)  # drops the CDF columns, string_view -> string
        .append_column("_commit_version", changes["_commit_version"])
        .append_column("_is_upsert", is_upsert)
        .filter(pc.or_(is_upsert, pc.equal(change_type, CDF_DELETE)))
        .sort_by([("_commit_version", "ascending"), ("_is_upsert", "ascending")])
    )
    rows = rows.append_column("_row", pa.array(range(rows.num_rows), pa.int64()))
    latest = rows.take(rows.group_by(list(keys), use_threads=False).aggregate([("_row", "max")])["_row_max"])
    upserts = latest.filter(latest["_is_upsert"]).select(schema.names)
    deletes = latest.filter(pc.invert(latest["_is_upsert"])).select(keys)
    return upserts, deletes, "incremental"


def _copy(conn: Connection, name: str, target: sql.Identifier, data: pa.Table) -> None:
    """COPY ``data`` into a new temporary table ``name`` with ``data``'s columns typed as in ``target``."""
    column_list = sql.SQL(", ").join(sql.Identifier(column) for column in data.column_names)
    conn.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            sql.Identifier(name), column_list, target
        )
    )
    options = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
    with conn.cursor().copy(
        sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(sql.Identifier(name), column_list)
    ) as copy:
        for batch in data.to_batches(max_chunksize=50_000):
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(batch, sink, options)
            copy.write(sink.getvalue().to_pybytes())


def _upsert(conn: Connection, target: sql.Identifier, data: pa.Table, keys: Sequence[str]) -> int:
    """Insert ``data``'s rows, or update those that differ from the current ones; returns their count.

    The rows stay staged in ``_stage`` for the rest of the transaction.
    """
    _copy(conn, "_stage", target, data)
    columns = [sql.Identifier(name) for name in data.column_names]
    values = [sql.Identifier(name) for name in data.column_names if name not in keys]
    column_list = sql.SQL(", ").join(columns)
    cursor = conn.execute(
        sql.SQL(
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
        )
    )
    return cursor.rowcount


def _delete(conn: Connection, target: sql.Identifier, keys: Sequence[str], deletes: pa.Table | None) -> int:
    """Delete the rows with the keys in ``deletes`` or, when None (a full snapshot), every row not staged."""
    match = sql.SQL(" AND ").join(sql.SQL("d.{0} = t.{0}").format(sql.Identifier(k)) for k in keys)
    if deletes is None:
        return conn.execute(
            sql.SQL("DELETE FROM {} AS t WHERE NOT EXISTS (SELECT FROM _stage AS d WHERE {})").format(target, match)
        ).rowcount
    if not deletes.num_rows:
        return 0
    _copy(conn, "_deletes", target, deletes)
    return conn.execute(sql.SQL("DELETE FROM {} AS t USING _deletes AS d WHERE {}").format(target, match)).rowcount
