"""The Spark session and Delta reads for both Delta backends.

``settings.delta_backend`` selects how Spark reads Delta tables:

- ``delta-rs`` (default, local): delta-rs resolves the table's active files and Spark
  reads them as Parquet with the table's declared schema (``basePath`` keeps the
  partition columns). No Delta jars are needed, so nothing is fetched from Maven. This
  reads the tables delta-rs writes here (no deletion vectors, no column mapping).
- ``delta-spark`` (clusters): the Delta connector (``spark.read.format("delta")``); the
  delta-spark jars must already be on the cluster's classpath.
"""

from __future__ import annotations

import os
import sys

import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from sentinance.config import Settings

DELTA_SPARK = "delta-spark"

_LOCAL_CONF = {
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.memory": "2g",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
}
_COMMON_CONF = {
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}
_DELTA_SPARK_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def get_spark(settings: Settings) -> SparkSession:
    """The ``sentinance`` session (created once per process) on ``settings.spark_master``,
    or, under ``spark-submit``, on the master and configuration spark-submit was given."""
    conf = dict(_COMMON_CONF)
    builder = SparkSession.builder.appName("sentinance")
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit
        builder = builder.master(settings.spark_master)
        if settings.spark_master.startswith("local"):
            conf |= _LOCAL_CONF
            # Python workers must run this interpreter (pandas, pyarrow), not whatever is on PATH.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if settings.delta_backend == DELTA_SPARK:
        conf |= _DELTA_SPARK_CONF
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def read_delta(spark: SparkSession, settings: Settings, path: str) -> DataFrame:
    """The current version of the Delta table at ``path`` as a Spark DataFrame."""
    if settings.delta_backend == DELTA_SPARK:
        return spark.read.format("delta").load(path)
    table = DeltaTable(path)
    schema = from_arrow_schema(pa.schema(table.schema().to_arrow()), prefer_timestamp_ntz=False)
    files = table.file_uris()
    if not files:
        return spark.createDataFrame([], schema)
    frame = spark.read.schema(schema).option("basePath", path).parquet(*files)
    return frame.select(*schema.fieldNames())  # partition columns back in table order
