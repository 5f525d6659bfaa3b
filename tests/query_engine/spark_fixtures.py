"""One local SparkSession for the whole test session (2 cores, 1 GB driver), shared by the Spark tests.

Test modules call :func:`spark_session` from their fixtures; the session is created once per
process and stopped at exit, whichever module asks first. Tests are skipped, with the reason shown,
when pyspark or Java is missing, and fail instead when ``SUNDSTAT_REQUIRE_SPARK`` is set (``make test``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tests.helpers.required import require_spark

__all__ = ["FAST_SQL_CONF", "duckdb_beside_spark", "require_spark", "spark_session"]

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from query_engine.backends.spark_backend import SparkBackend
    from query_engine.engine import Engine

# Queries over a few thousand persons are dominated by planning and code generation, not data:
# one shuffle partition, no adaptive re-planning and no whole-stage code generation make each
# query several times faster here. None of these changes what a query returns; the production
# settings are exercised by test_spark_backend.py.
FAST_SQL_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    # Interpreted expressions: no Janino compilation per query (an internal, test-only setting).
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


def spark_session() -> SparkSession:
    """The shared session; skips the calling test if pyspark or Java is not installed."""
    # pyspark 4 warns that it is not tested with pandas 3; no pandas code path is used here.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    require_spark()
    return _session()


@contextlib.contextmanager
def duckdb_beside_spark(db: Path, parquet_dir: Path) -> Iterator[tuple[Engine, SparkBackend]]:
    """An engine on the DuckDB file ``db`` and the Spark backend on its Parquet export to ``parquet_dir``."""
    from query_engine.backends.spark_backend import SparkBackend, export_parquet
    from query_engine.engine import Engine

    session = spark_session()
    spark = SparkBackend(session, export_parquet(db, parquet_dir), sql_conf=FAST_SQL_CONF)
    with Engine.open(db) as engine:
        yield engine, spark
    spark.close()


@functools.cache
def _session() -> SparkSession:
    from pyspark.sql import SparkSession

    warehouse = tempfile.mkdtemp(prefix="sundstat-spark-warehouse-")
    atexit.register(shutil.rmtree, warehouse, ignore_errors=True)  # runs after session.stop (LIFO)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("sundstat-tests")
        .config("spark.driver.memory", "1g")
        # A short-lived test JVM on a shared 2-core machine: the quick-to-warm C1 compiler only and
        # a single-threaded collector start faster and leave the other core alone.
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", warehouse)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("FATAL")
    atexit.register(session.stop)
    return session
