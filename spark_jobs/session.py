"""The Spark session of the jobs, on ``settings.spark_master`` or spark-submit's master.

With ``settings.delta_backend == "delta-spark"`` the session gets the Delta SQL extension and
catalog (the jars must be on the cluster's classpath); Delta IO itself is :mod:`.delta_io`.
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from sentinance.settings import Settings
from sentinance.spark_jobs.delta_io import DELTA_SPARK

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
    # a series travels to its Python worker in batches of this many rows: fewer, larger batches cost
    # less per row (benchmarks/features.py); a series of 100,000 rows is a few tens of MB
    "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",
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
        if settings.delta_spark_jars:  # local jar files; a cluster may provide them instead
            conf["spark.jars"] = ",".join(str(jar) for jar in settings.delta_spark_jars)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
