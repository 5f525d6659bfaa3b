"""The Spark backend: the same compiled plan, through sqlglot's Spark dialect, over Parquet registers.

::

    open_spark_engine(dir, master)   Engine(SparkBackend, catalog from dir/catalog.json, settings),
                                     after checking that person-grain registers repeat no person
    open_spark_backend(dir, master)  a SparkBackend on a new SparkSession (stopped by close())
    SparkBackend(session, dir)       a private child session (``newSession``) whose temp views
                                     cpr, lpr, ... read dir/<register>.parquet, types checked
    export_parquet(db, dir)          the tables and catalog of a built DuckDB file, for Spark

``dir`` is a local path or any URI Spark reads (``s3a://bucket/registers``, ``hdfs://...``). The
exact aggregates equal DuckDB's when both engines read the same rows, including the stored
``row_key`` that orders contribution bounding: serve Spark the generator's Parquet files of a build
that rejected nothing, or the output of :func:`export_parquet`. ANSI mode is on, so an integer
sum that would overflow BIGINT fails the query (as DuckDB does) instead of wrapping around.
pyspark (>= 4.0, for ``DataFrame.toArrow``) is imported only when a Spark backend is opened.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from ..catalog import CATALOG_TABLE, SQL_TYPES, Catalog
from ..compile import CompiledQuery
from ..errors import ExecutionFailed
from .base import query_timeout, time_limit

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from ..engine import Engine
    from ..settings import EngineSettings

__all__ = [
    "SPARK_EXTRA_MISSING",
    "SparkBackend",
    "export_parquet",
    "open_spark_backend",
    "open_spark_engine",
    "spark_memory",
]

_STAGE = "execute"
# pyspark is an optional extra (about 300 MB): most installations serve DuckDB only.
SPARK_EXTRA_MISSING = (
    "The spark backend needs pyspark, which is not installed: pip install 'sundstat[spark]'."
)

# Catalog SQL type -> the Spark type a Parquet column must have (integers may be narrower: widened).
_SPARK_TYPES = {"VARCHAR": "string", "BIGINT": "bigint", "DOUBLE": "double", "DATE": "date"}
_NARROW_INTEGERS = ("tinyint", "smallint", "int")

# Per-session SQL settings the parity with DuckDB depends on; checked after they are set.
SESSION_CONF: Mapping[str, str] = {
    # Overflowing integer arithmetic and sums raise ARITHMETIC_OVERFLOW instead of wrapping.
    "spark.sql.ansi.enabled": "true",
    # DATE columns carry no zone, but casts and YEAR()/MONTH() of timestamps would.
    "spark.sql.session.timeZone": "UTC",
}


def spark_memory(limit: str) -> str:
    """Spark's spelling of a DuckDB-style memory limit: ``"2GB"`` -> ``"2g"``, ``"512 MiB"`` -> ``"512m"``."""
    text = limit.replace(" ", "").upper().removesuffix("B").removesuffix("I")
    number, unit = text[:-1], text[-1]
    if unit not in "KMGT" or not number.replace(".", "", 1).isdigit():
        raise ValueError(f"not a memory size: {limit!r} (expected e.g. '2GB')")
    value = float(number)
    if not value.is_integer():
        # Spark takes whole units only: express a fractional size in the next smaller unit.
        smaller = "KMGT"[max("KMGT".index(unit) - 1, 0)]
        return f"{round(value * 1024)}{smaller.lower()}"
    return f"{int(value)}{unit.lower()}"


def _join(base: str | Path, name: str) -> str:
    """``base/name`` for a local directory (made absolute) or a URI (kept as given)."""
    text = str(base)
    if "://" in text or text.startswith("file:"):
        return f"{text.rstrip('/')}/{name}"
    return str(Path(text).resolve() / name)


def _spark_error(exc: Exception) -> str:
    """The exception's type and Spark error class (never its message, which may quote data)."""
    condition = getattr(exc, "getCondition", None)
    try:
        error_class = condition() if callable(condition) else None
    except Exception:  # a Py4J error may not carry a condition: the type alone is enough
        error_class = None
    return f"{type(exc).__name__}, {error_class}" if error_class else type(exc).__name__


class SparkBackend:
    """Registers in Parquet, queried through a private child of a SparkSession; thread-safe.

    The child session (``session.newSession()``) shares the SparkContext but has its own temp
    views and SQL settings (``SESSION_CONF``, then ``sql_conf``, e.g. shuffle partitions), so
    several backends (or other work) can share one JVM. Each query is
    tagged and cancelled (with thread interruption) when it exceeds the timeout. ``close()`` drops
    the views, and stops the SparkContext only when ``stop_session`` is set.
    """

    dialect = "spark"

    def __init__(
        self,
        session: SparkSession,
        parquet_dir: str | Path,
        *,
        timeout_s: float = 30.0,
        sql_conf: Mapping[str, str] | None = None,
        catalog_json: str | None = None,
        stop_session: bool = False,
    ) -> None:
        sql_conf = dict(sql_conf or {})
        clash = sorted(k for k, v in sql_conf.items() if k in SESSION_CONF and v != SESSION_CONF[k])
        if clash:
            raise ValueError(f"{', '.join(clash)} cannot be changed: exact aggregates depend on them")
        self._session = session.newSession()
        self._stop_session = stop_session
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._closed = False
        for key, value in {**sql_conf, **SESSION_CONF}.items():
            self._session.conf.set(key, value)
            if self._session.conf.get(key) != value:
                raise ExecutionFailed(f"Spark refused the setting {key}={value}.", stage=_STAGE)
        self._parquet_dir = str(parquet_dir)
        self._catalog_json = catalog_json if catalog_json is not None else self._read_catalog_file()
        self._views = self._register_views(Catalog.loads(self._catalog_json))

    # --- setup -----------------------------------------------------------------------------------

    def _read_catalog_file(self) -> str:
        path = _join(self._parquet_dir, "catalog.json")
        try:
            rows = self._session.read.text(path, wholetext=True).collect()
        except Exception as exc:
            raise ExecutionFailed(
                f"Could not read the catalog {path!r} ({_spark_error(exc)}); the Parquet directory must hold "
                "the catalog.json written with the register files.",
                stage=_STAGE,
            ) from None
        if len(rows) != 1:
            raise ExecutionFailed(f"{path!r} must be exactly one file.", stage=_STAGE)
        return str(rows[0][0])

    def _register_views(self, catalog: Catalog) -> tuple[str, ...]:
        """One temp view per register over its Parquet file, with exactly the catalog's physical columns."""
        problems: list[str] = []
        for register in catalog.registers:
            path = _join(self._parquet_dir, f"{register.name}.parquet")
            try:
                frame = self._session.read.parquet(path)
            except Exception as exc:
                problems.append(f"{path}: cannot be read ({_spark_error(exc)})")
                continue
            found = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
            columns = []
            for column in register.physical_columns:
                expected = _SPARK_TYPES[SQL_TYPES[column.type]]
                actual = found.get(column.name)
                if actual == expected:
                    columns.append(frame[column.name])
                elif expected == "bigint" and actual in _NARROW_INTEGERS:
                    columns.append(frame[column.name].cast("bigint").alias(column.name))
                else:
                    problems.append(
                        f"{path}: column {column.name} "
                        + ("is missing" if actual is None else f"is {actual}, not {expected}")
                    )
            if len(columns) == len(register.physical_columns):
                frame.select(*columns).createOrReplaceTempView(register.name)
        if problems:
            raise ExecutionFailed(
                "The Parquet registers do not match the catalog: "
                + "; ".join(problems)
                + ". Write them with `sundstat generate` or export_parquet from a built database.",
                stage=_STAGE,
            )
        return tuple(r.name for r in catalog.registers)

    # --- Backend protocol --------------------------------------------------------------------------

    def execute(self, compiled: CompiledQuery, *, timeout_s: float | None = None) -> pa.Table:
        """Run the query with its parameters bound as Spark named parameters (``:p1`` is ``params[0]``);
        cancel it after the timeout (``timeout_s`` if shorter)."""
        if compiled.dialect != self.dialect:
            raise ExecutionFailed(f"Spark cannot run SQL compiled for {compiled.dialect!r}.", stage=_STAGE)
        with self._lock:
            if self._closed:
                raise ExecutionFailed("The Spark backend is closed.", stage=_STAGE)
        # Values travel as typed literals (Spark's parameter binding), never pasted into the SQL text.
        args = {f"p{i}": value for i, value in enumerate(compiled.params, start=1)}
        context = self._session.sparkContext
        tag = f"sundstat-{uuid.uuid4().hex}"
        timed_out = threading.Event()

        def cancel() -> None:
            timed_out.set()
            context.cancelJobsWithTag(tag)

        # Tags and the interrupt flag are properties of the calling thread (pinned to a JVM thread).
        context.addJobTag(tag)
        context.setInterruptOnCancel(True)
        limit = time_limit(self._timeout_s, timeout_s)
        timer = threading.Timer(limit, cancel)
        timer.daemon = True
        timer.start()
        try:
            return self._session.sql(compiled.sql, args=args or None).toArrow()
        except Exception as exc:
            if timed_out.is_set():
                raise query_timeout(limit) from None
            raise ExecutionFailed(f"The query failed in Spark ({_spark_error(exc)}).", stage=_STAGE) from None
        finally:
            timer.cancel()
            context.removeJobTag(tag)

    def read_catalog_json(self) -> str:
        """The resolved catalog that describes the Parquet registers (``catalog.json``)."""
        return self._catalog_json

    def close(self) -> None:
        """Drop the temp views; stop the SparkContext if this backend started it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # Closing must not fail when the SparkContext is already gone (stopped elsewhere or lost).
        with contextlib.suppress(Exception):
            for name in self._views:
                self._session.catalog.dropTempView(name)
        if self._stop_session:
            self._session.stop()


def _builder_conf(master: str, driver_memory: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    conf = {
        "spark.master": master,
        "spark.app.name": "sundstat",
        "spark.driver.memory": driver_memory,
        # No web UI: it would show query plans and literals to anyone who can reach the port.
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # Nothing is ever written as a table; keep Spark's empty default database out of the cwd.
        "spark.sql.warehouse.dir": str(Path(tempfile.gettempdir()) / "sundstat-spark-warehouse"),
        **SESSION_CONF,
    }
    if master.startswith("local"):
        # Spark's default of 200 shuffle partitions is for clusters; a few per core suit one machine.
        conf["spark.sql.shuffle.partitions"] = "8"
        # Everything runs in this process: listen and advertise on loopback only (the block
        # manager fetches large task results through the advertised address).
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        conf["spark.driver.host"] = "127.0.0.1"
    conf.update(extra or {})
    return conf


def open_spark_backend(
    parquet_dir: str | Path,
    master: str = "local[*]",
    *,
    timeout_s: float = 30.0,
    driver_memory: str = "2g",
    conf: Mapping[str, str] | None = None,
    catalog_json: str | None = None,
) -> SparkBackend:
    """A SparkBackend on a SparkSession for ``master`` (``local[*]``, ``spark://host:7077``, ...).

    ``conf`` adds Spark settings (e.g. S3 credentials providers). If this process already has an
    active SparkSession it is reused and left running on close; otherwise the new one is stopped.
    ``driver_memory`` only applies when this call starts the JVM.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ExecutionFailed(SPARK_EXTRA_MISSING, stage=_STAGE) from None

    # PySpark logs failed queries' full messages (which can quote data) on this logger: keep them out
    # of the service log; the API passes on only the exception type and Spark's error class.
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    already = SparkSession.getActiveSession() is not None
    settings = _builder_conf(master, driver_memory, conf)
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise ExecutionFailed(
            f"Could not start Spark with master {master!r} ({_spark_error(exc)}); is Java 17+ installed "
            "and the master reachable?",
            stage=_STAGE,
        ) from None
    if not already:
        session.sparkContext.setLogLevel("ERROR")
    # Runtime SQL settings go to the backend's own session too (static ones live in the context).
    sql_conf = {
        k: v for k, v in settings.items() if k.startswith("spark.sql.") and session.conf.isModifiable(k)
    }
    try:
        return SparkBackend(
            session,
            parquet_dir,
            timeout_s=timeout_s,
            sql_conf=sql_conf,
            catalog_json=catalog_json,
            stop_session=not already,
        )
    except Exception:
        if not already:
            session.stop()
        raise


def open_spark_engine(
    parquet_dir: str | Path,
    master: str = "local[*]",
    settings: EngineSettings | None = None,
    *,
    conf: Mapping[str, str] | None = None,
) -> Engine:
    """An Engine on Spark: the catalog from ``parquet_dir``, the timeout and driver memory from ``settings``.

    Refuses (``PersonGrainViolated``) Parquet registers of grain person that repeat a person.
    """
    from ..catalog import Catalog
    from ..engine import Engine
    from ..person_grain import check_person_grain
    from ..settings import EngineSettings

    settings = settings or EngineSettings()
    backend = open_spark_backend(
        parquet_dir,
        master,
        timeout_s=settings.query_timeout_s,
        driver_memory=spark_memory(settings.memory_limit),
        conf=conf,
    )
    try:
        catalog = Catalog.loads(backend.read_catalog_json())
        check_person_grain(backend, catalog)
    except Exception:
        backend.close()
        raise
    return Engine(backend, catalog, settings)


def export_parquet(db_path: str | Path, out_dir: str | Path, *, batch_rows: int = 1_000_000) -> Path:
    """Write every register of a built database as ``out_dir/<register>.parquet`` plus ``catalog.json``.

    These are the rows DuckDB serves (pseudonymised ``person_id``, assigned ``row_key``, rejected
    rows left out), so a SparkBackend on ``out_dir`` gives the same exact aggregates. Streams in
    record batches; memory stays bounded.
    """
    import duckdb
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        catalog_json = str(con.sql(f"SELECT catalog FROM {CATALOG_TABLE}").fetchall()[0][0])
        catalog = Catalog.loads(catalog_json)
        for register in catalog.registers:
            columns = ", ".join(f'"{c.name}"' for c in register.physical_columns)
            reader = con.sql(f'SELECT {columns} FROM "{register.name}"').to_arrow_reader(batch_rows)
            target = out / f"{register.name}.parquet"
            tmp = target.with_suffix(".parquet.tmp")
            with pq.ParquetWriter(tmp, reader.schema, compression="zstd") as writer:
                for batch in reader:
                    writer.write_batch(batch)
            tmp.replace(target)
    finally:
        con.close()
    (out / "catalog.json").write_text(catalog_json, encoding="utf-8")
    return out
