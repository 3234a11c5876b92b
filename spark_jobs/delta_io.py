"""Delta IO of the Spark jobs, one interface over both backends (ADR 0002).

``settings.delta_backend`` selects the implementation :func:`delta_io` returns:

- ``delta-rs`` (default, one machine): :class:`DeltaRsIO`. Spark reads a table's active
  files (delta-rs resolves them) as Parquet with the table's declared schema (``basePath``
  keeps the partition columns); results come to the driver as Arrow and are written by
  delta-rs (:mod:`sentinance.lake`). No Delta jars, so nothing is fetched from Maven. This
  reads the tables delta-rs writes (no deletion vectors, no column mapping).
- ``delta-spark`` (clusters): :class:`ConnectorIO`. The Delta connector reads
  (``format("delta")``) and writes (``MERGE INTO delta.`path```) from the executors; no row
  passes through the driver. The delta-spark jars must be on the cluster's classpath.

Both upsert by key: a matched row is rewritten (only when ``change_column`` differs, if
given), a new key inserted, and with ``delete_missing`` the table's rows whose key is not
in the source are deleted, all in one commit. The written rows come back as a
:class:`Written` frame computed once, so the job reuses them without recomputing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Protocol

import pyarrow as pa
from deltalake import write_deltalake
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from sentinance import lake
from sentinance.settings import Settings

DELTA_RS, DELTA_SPARK = "delta-rs", "delta-spark"


@dataclass(frozen=True)
class Written:
    """What a write did: the rows it sent, what happened to the table, its version after.

    ``source`` holds the written rows as computed once (Arrow on the driver, or a checkpointed
    frame on the executors): reuse them downstream through :attr:`frame` and :meth:`counts`.
    """

    rows: int
    inserted: int
    updated: int
    deleted: int
    version: int
    source: pa.Table | DataFrame = field(repr=False)

    @cached_property
    def frame(self) -> DataFrame:
        """The written rows as a Spark DataFrame."""
        if isinstance(self.source, pa.Table):
            return SparkSession.active().createDataFrame(self.source)
        return self.source

    def counts(self, columns: Sequence[str]) -> dict[tuple, int]:
        """Written rows per distinct value of ``columns``."""
        if isinstance(self.source, pa.Table):
            groups = self.source.group_by(list(columns)).aggregate([([], "count_all")]).to_pylist()
            return {tuple(g[c] for c in columns): g["count_all"] for g in groups}
        return {tuple(g[c] for c in columns): g["count"] for g in self.source.groupBy(*columns).count().collect()}


class DeltaIO(Protocol):
    """Delta tables by path, as the Spark jobs use them."""

    def exists(self, path: str) -> bool: ...

    def version(self, path: str) -> int | None: ...

    def columns(self, path: str) -> list[str]: ...

    def read(self, path: str, since: tuple[str, datetime] | None = None) -> DataFrame:
        """The table, or with ``since=(column, start)`` only its rows with ``column >= start``, opening only
        the files that may hold them: a bounded read costs what the window holds, not the history."""

    def materialize(self, frame: DataFrame) -> DataFrame:
        """``frame`` computed now; later plans start from its result."""

    def merge(
        self,
        frame: DataFrame,
        path: str,
        keys: Sequence[str],
        *,
        schema: pa.Schema,
        partition_by: Sequence[str] = (),
        configuration: dict[str, str] | None = None,
        change_column: str | Sequence[str] | None = None,
        delete_missing: bool = False,
        window: tuple[str, datetime] | None = None,
    ) -> Written:
        """Upsert ``frame`` (cast to ``schema``) on ``keys``, creating the table if missing."""

    def replace(
        self,
        frame: DataFrame,
        path: str,
        *,
        schema: pa.Schema,
        partition_by: Sequence[str] = (),
        configuration: dict[str, str] | None = None,
    ) -> Written:
        """Overwrite the table with ``frame``, schema included."""


def delta_io(spark: SparkSession, settings: Settings) -> DeltaIO:
    """The Delta IO of ``settings.delta_backend``."""
    return DeltaRsIO(spark) if settings.delta_backend == DELTA_RS else ConnectorIO(spark)


def _cast(frame: DataFrame, schema: pa.Schema) -> DataFrame:
    """``frame``'s columns of ``schema``, in its order and types."""
    spark_schema = from_arrow_schema(schema, prefer_timestamp_ntz=False)
    return frame.select(*(F.col(f.name).cast(f.dataType).alias(f.name) for f in spark_schema.fields))


@dataclass(frozen=True)
class DeltaRsIO:
    """delta-rs on the driver: reads as Parquet files, writes from Arrow."""

    spark: SparkSession

    def exists(self, path: str) -> bool:
        return lake.exists(path)

    def version(self, path: str) -> int | None:
        return lake.version(path)

    def columns(self, path: str) -> list[str]:
        return pa.schema(lake.open_table(path).schema().to_arrow()).names

    def read(self, path: str, since: tuple[str, datetime] | None = None) -> DataFrame:
        table = lake.open_table(path)
        schema = from_arrow_schema(pa.schema(table.schema().to_arrow()), prefer_timestamp_ntz=False)
        files = table.file_uris() if since is None else lake.files_since(path, *since)
        if not files:
            return self.spark.createDataFrame([], schema)
        frame = self.spark.read.schema(schema).option("basePath", path).parquet(*files)
        frame = frame.select(*schema.fieldNames())  # partition columns back in table order
        return frame if since is None else frame.where(F.col(since[0]) >= F.lit(since[1]))

    def materialize(self, frame: DataFrame) -> DataFrame:
        return self.spark.createDataFrame(frame.toArrow())

    def merge(
        self,
        frame: DataFrame,
        path: str,
        keys: Sequence[str],
        *,
        schema: pa.Schema,
        partition_by: Sequence[str] = (),
        configuration: dict[str, str] | None = None,
        change_column: str | Sequence[str] | None = None,
        delete_missing: bool = False,
        window: tuple[str, datetime] | None = None,
    ) -> Written:
        rows = _cast(frame, schema).toArrow().cast(schema)
        merged = lake.merge(
            path,
            rows,
            keys,
            schema=schema,
            partition_by=partition_by or None,
            change_column=change_column,
            configuration=configuration,
            delete_missing=delete_missing,
            window=window,
        )
        return Written(rows.num_rows, merged.inserted, merged.updated, merged.deleted, merged.version, rows)

    def replace(
        self,
        frame: DataFrame,
        path: str,
        *,
        schema: pa.Schema,
        partition_by: Sequence[str] = (),
        configuration: dict[str, str] | None = None,
    ) -> Written:
        rows = _cast(frame, schema).toArrow().cast(schema)
        write_deltalake(
            path,
            rows,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=list(partition_by) or None,
            configuration=configuration,
        )
        return Written(rows.num_rows, rows.num_rows, 0, 0, lake.open_table(path).version(), rows)


@dataclass(frozen=True)
class ConnectorIO:
    """The delta-spark connector on the executors (``spark.sql.extensions`` set by ``get_spark``)."""

    spark: SparkSession

    def exists(self, path: str) -> bool:
        return self.version(path) is not None

    def version(self, path: str) -> int | None:
        try:
            return int(self.spark.sql(f"DESCRIBE HISTORY {_table(path)} LIMIT 1").first()["version"])
        except AnalysisException:  # not a Delta table (yet)
            return None

    def columns(self, path: str) -> list[str]:
        return self.read(path).columns

    def read(self, path: str, since: tuple[str, datetime] | None = None) -> DataFrame:
        frame = self.spark.read.format("delta").load(path)  # the connector skips files by their statistics
        return frame if since is None else frame.where(F.col(since[0]) >= F.lit(since[1]))

    def materialize(self, frame: DataFrame) -> DataFrame:
        return frame.localCheckpoint(eager=True)

    def merge(
        self,
        frame: DataFrame,
        path: str,
        keys: Sequence[str],
        *,
        schema: pa.Schema,
        partition_by: Sequence[str] = (),
        configuration: dict[str, str] | None = None,
        change_column: str | Sequence[str] | None = None,
        delete_missing: bool = False,
        window: tuple[str, datetime] | None = None,
    ) -> Written:
        rows = self.materialize(_cast(frame, schema))
        count = rows.count()
        if not self.exists(path):
            return self._create(rows, count, path, partition_by, configuration, "CREATE TABLE")
        with _view(rows) as source:
            statement = merge_statement(path, source, keys, change_column, delete_missing, window)
            metrics = self.spark.sql(statement).first()
        return Written(
            count,
            int(metrics["num_inserted_rows"]),
            int(metrics["num_updated_rows"]),
            int(metrics["num_deleted_rows"]),
            self._version(path),
            rows,
        )

    def replace(
        self,
        frame: DataFrame,
        path: str,
        *,
        schema: pa.Schema,
        partition_by: Sequence[str] = (),
        configuration: dict[str, str] | None = None,
    ) -> Written:
        rows = self.materialize(_cast(frame, schema))
        return self._create(rows, rows.count(), path, partition_by, configuration, "CREATE OR REPLACE TABLE")

    def _create(
        self,
        rows: DataFrame,
        count: int,
        path: str,
        partition_by: Sequence[str],
        configuration: dict[str, str] | None,
        create: str,
    ) -> Written:
        with _view(rows) as source:
            self.spark.sql(create_statement(create, path, source, partition_by, configuration))
        return Written(count, count, 0, 0, self._version(path), rows)

    def _version(self, path: str) -> int:
        version = self.version(path)
        if version is None:
            raise FileNotFoundError(f"no Delta table at {path} after writing it")
        return version


def _table(path: str) -> str:
    return "delta.`" + path.replace("`", "``") + "`"


def merge_statement(
    path: str,
    source: str,
    keys: Sequence[str],
    change_column: str | Sequence[str] | None,
    delete_missing: bool,
    window: tuple[str, datetime] | None = None,
) -> str:
    """The connector's ``MERGE INTO`` of the view ``source`` into the table at ``path`` (``window``: see
    :func:`sentinance.lake.merge`)."""
    changed = [change_column] if isinstance(change_column, str) else list(change_column or ())
    matched = f" AND ({' OR '.join(f't.`{c}` <> s.`{c}`' for c in changed)})" if changed else ""
    scope = [] if window is None else [f"t.`{window[0]}` >= TIMESTAMP '{window[1].isoformat()}'"]
    return (
        f"MERGE INTO {_table(path)} AS t USING {source} AS s "
        f"ON {' AND '.join([*(f't.`{k}` = s.`{k}`' for k in keys), *scope])} "
        f"WHEN MATCHED{matched} THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        + (f" WHEN NOT MATCHED BY SOURCE{''.join(f' AND {c}' for c in scope)} THEN DELETE" if delete_missing else "")
    )


def create_statement(
    create: str, path: str, source: str, partition_by: Sequence[str], configuration: dict[str, str] | None
) -> str:
    """``create`` (``CREATE TABLE`` or ``CREATE OR REPLACE TABLE``) the table at ``path`` as the
    view ``source``, with its partitioning and properties in the first commit."""
    partitioned = f" PARTITIONED BY ({', '.join(f'`{c}`' for c in partition_by)})" if partition_by else ""
    properties = ", ".join(f"'{key}' = '{value}'" for key, value in (configuration or {}).items())
    return (
        f"{create} {_table(path)} USING DELTA{partitioned}"
        + (f" TBLPROPERTIES ({properties})" if properties else "")
        + f" AS SELECT * FROM {source}"
    )


@contextmanager
def _view(frame: DataFrame) -> Iterator[str]:
    """``frame`` as a temporary view for SQL, dropped afterwards."""
    name = f"sentinance_{uuid.uuid4().hex}"
    frame.createOrReplaceTempView(name)
    try:
        yield name
    finally:
        frame.sparkSession.catalog.dropTempView(name)
