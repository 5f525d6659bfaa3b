"""The Spark backend: settings, bound parameters, overflow, timeout, threads, schema checks, engine entry."""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from query_engine.backends.spark_backend import (
    SESSION_CONF,
    SparkBackend,
    export_parquet,
    open_spark_engine,
    spark_memory,
)
from query_engine.catalog import Catalog
from query_engine.compile import CompiledQuery, compile_plan
from query_engine.engine import Engine
from query_engine.errors import ExecutionFailed, PersonGrainViolated, QueryTimeout
from query_engine.plan import ColumnRef, Filter, plan_query
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from tests.query_engine.spark_fixtures import FAST_SQL_CONF, spark_session

CONTEXT = ProjectContext("pure")
INJECTION = "'); DROP TABLE cpr; --"


def _spark(sql: str, *params: Any) -> CompiledQuery:
    return CompiledQuery(sql, params, "spark")


@pytest.fixture(scope="module")
def small_parquet(small_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_parquet(small_db, tmp_path_factory.mktemp("small_parquet"))


@pytest.fixture(scope="module")
def backend(small_parquet: Path) -> Iterator[SparkBackend]:
    spark = SparkBackend(spark_session(), small_parquet, sql_conf=FAST_SQL_CONF, timeout_s=60)
    yield spark
    spark.close()


@pytest.mark.parametrize(
    "limit, expected",
    [("2GB", "2g"), ("512 MiB", "512m"), ("1.5GB", "1536m"), ("8gb", "8g")],
)
def test_spark_memory_spelling(limit: str, expected: str) -> None:
    assert spark_memory(limit) == expected


def test_spark_memory_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="not a memory size"):
        spark_memory("lots")


def test_session_settings_hold_and_cannot_be_overridden(backend: SparkBackend, small_parquet: Path) -> None:
    for key, value in SESSION_CONF.items():
        assert backend._session.conf.get(key) == value
    with pytest.raises(ValueError, match="spark.sql.ansi.enabled cannot be changed"):
        SparkBackend(spark_session(), small_parquet, sql_conf={"spark.sql.ansi.enabled": "false"})


def test_bigint_sum_overflow_fails_on_both_engines(backend: SparkBackend, small_db: Path) -> None:
    """ANSI mode: a sum past 2^63 - 1 is refused, never wrapped around (DuckDB refuses the cast too)."""
    spark_sql = (
        "SELECT CAST(SUM(x) AS BIGINT) AS s FROM VALUES (CAST(:p1 AS BIGINT)), (CAST(1 AS BIGINT)) AS t(x)"
    )
    with pytest.raises(ExecutionFailed, match="ARITHMETIC_OVERFLOW"):
        backend.execute(_spark(spark_sql, 2**63 - 1))
    assert backend.execute(_spark(spark_sql, 2**63 - 2)).column("s").to_pylist() == [2**63 - 1]
    duck_sql = (
        "SELECT CAST(SUM(x) AS BIGINT) AS s FROM (VALUES (CAST($1 AS BIGINT)), (CAST(1 AS BIGINT))) t(x)"
    )
    with Engine.open(small_db) as engine, pytest.raises(ExecutionFailed):
        engine.backend.execute(CompiledQuery(duck_sql, (2**63 - 1,), "duckdb"))


def test_values_are_bound_parameters_never_sql_text(backend: SparkBackend, catalog: Catalog) -> None:
    query = parse_query(
        {"project": "p", "measure": "count_persons", "group_by": ["cpr.region"], "epsilon": 1}
    )
    plan = plan_query(query, catalog, CONTEXT, EngineSettings())
    # Bypass validation on purpose: the compiler alone must keep the value out of the SQL text.
    hostile = Filter(ColumnRef("cpr", "region"), "in", (INJECTION, "Hovedstaden"))
    compiled = compile_plan(dataclasses.replace(plan, row_filters=(hostile,)), catalog, "spark")
    assert INJECTION not in compiled.sql and ":p1" in compiled.sql
    table = backend.execute(compiled)
    assert table.num_rows == 5
    assert backend.execute(_spark("SELECT count(*) AS n FROM cpr")).column("n").to_pylist() == [400]
    typed = backend.execute(
        _spark("SELECT typeof(:p1) AS a, typeof(:p2) AS b, typeof(:p3) AS c", "x", 2.5, 7)
    )
    assert typed.to_pylist() == [{"a": "string", "b": "double", "c": "int"}]


def test_timeout_cancels_the_job_and_the_backend_stays_usable(small_parquet: Path) -> None:
    spark = SparkBackend(spark_session(), small_parquet, sql_conf=FAST_SQL_CONF, timeout_s=1.0)
    endless = _spark("SELECT count(*) AS n FROM range(0, 3000000) a CROSS JOIN range(0, 3000000) b")
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="longer than 1 s"):
        spark.execute(endless)
    assert time.monotonic() - started < 60
    assert spark.execute(_spark("SELECT count(*) AS n FROM cpr")).column("n").to_pylist() == [400]
    assert not list(spark._session.sparkContext.getJobTags())
    spark.close()


def test_queries_from_several_threads(backend: SparkBackend) -> None:
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            table = backend.execute(_spark("SELECT count(*) AS n FROM lpr WHERE los_days >= :p1", i))
            results[i] = table.column("n").to_pylist()
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 5, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results[0][0] >= results[5][0] >= results[30][0] > 0


def test_wrong_dialect_failures_and_close(small_parquet: Path) -> None:
    spark = SparkBackend(spark_session(), small_parquet, sql_conf=FAST_SQL_CONF)
    with pytest.raises(ExecutionFailed, match="compiled for 'duckdb'"):
        spark.execute(CompiledQuery("SELECT 1", (), "duckdb"))
    with pytest.raises(ExecutionFailed, match=r"failed in Spark \(.*\)") as failed:
        spark.execute(_spark("SELECT no_such_column FROM cpr"))
    assert "no_such_column" not in failed.value.message
    spark.close()
    spark.close()
    with pytest.raises(ExecutionFailed, match="closed"):
        spark.execute(_spark("SELECT 1 AS x"))
    assert not spark._session.catalog.tableExists("cpr")
    assert spark_session().range(3).count() == 3  # the shared session is still running


def test_register_files_are_checked_against_the_catalog(small_parquet: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(small_parquet, bad)
    cpr = pq.read_table(bad / "cpr.parquet")
    cpr = cpr.set_column(cpr.schema.get_field_index("sex"), "sex", pa.array(np.arange(cpr.num_rows)))
    pq.write_table(cpr.drop_columns(["municipality"]), bad / "cpr.parquet")
    (bad / "dar.parquet").unlink()
    with pytest.raises(ExecutionFailed) as refused:
        SparkBackend(spark_session(), bad)
    message = refused.value.message
    assert "column sex is bigint, not string" in message
    assert "column municipality is missing" in message
    assert "dar.parquet: cannot be read" in message
    with pytest.raises(ExecutionFailed, match="catalog.json"):
        SparkBackend(spark_session(), tmp_path / "nowhere")


def test_narrower_integers_are_widened(small_parquet: Path, tmp_path: Path) -> None:
    narrow = tmp_path / "narrow"
    shutil.copytree(small_parquet, narrow)
    udda = pq.read_table(narrow / "udda.parquet")
    index = udda.schema.get_field_index("isced_level")
    pq.write_table(
        udda.set_column(index, "isced_level", udda.column(index).cast(pa.int8())), narrow / "udda.parquet"
    )
    spark = SparkBackend(spark_session(), narrow, sql_conf=FAST_SQL_CONF)
    types = spark.execute(_spark("SELECT DISTINCT typeof(isced_level) AS t FROM udda"))
    total = spark.execute(_spark("SELECT sum(isced_level) AS s FROM udda"))
    assert types.column("t").to_pylist() == ["bigint"]
    assert total.column("s").to_pylist() == [sum(udda.column(index).to_pylist())]
    spark.close()


def test_spark_engine_with_production_settings_matches_duckdb(generated_db: Path) -> None:
    """``open_spark_engine`` (adaptive execution and code generation on) releases like the DuckDB engine."""
    session = spark_session()
    settings = EngineSettings(query_timeout_s=120, memory_limit="1GB")
    queries: list[dict[str, Any]] = [
        {"measure": "count_rows", "register": "lpr", "group_by": ["cpr.region"], "max_rows": 2},
        {
            "measure": "quantile",
            "register": "ind",
            "column": "disposable_income",
            "where": [{"column": "ind.year", "op": "=", "value": 2023}],
            "group_by": ["cpr.sex"],
        },
    ]
    with (
        Engine.open(generated_db) as duck,
        open_spark_engine(generated_db.parent / "raw", "local[2]", settings) as spark,
    ):
        assert spark.backend.dialect == "spark"
        assert spark.catalog.dumps() == duck.catalog.dumps()
        for fields in queries:
            query = parse_query({"project": "p", "epsilon": 1, **fields})
            expected = duck._exact_for_tests(query, CONTEXT)
            actual = spark._exact_for_tests(query, CONTEXT)
            assert actual.keys == expected.keys
            assert actual.values.keys() == expected.values.keys()
            for name, values in expected.values.items():
                assert np.array_equal(actual.values[name], values), name
        query = parse_query({"project": "p", "epsilon": 1, **queries[0]})
        release = spark.run(query, CONTEXT, cost=spark.cost(query, CONTEXT))
        assert [row["cpr.region"] for row in release.rows] == list(spark.catalog.keyset("regions").values)
    assert session.range(3).count() == 3  # an already running session is reused and left running


def test_a_parquet_directory_repeating_a_person_is_refused(small_parquet: Path, tmp_path: Path) -> None:
    """A duplicated cpr person is refused by ``open_spark_engine``; past that check (the backend used
    directly) the bounded Spark SQL still counts the person once."""
    duplicated = tmp_path / "duplicated"
    shutil.copytree(small_parquet, duplicated)
    cpr = pq.read_table(duplicated / "cpr.parquet")
    first = cpr.slice(0, 1)
    again = first.set_column(
        first.schema.get_field_index("row_key"),
        "row_key",
        pa.array([first.column("row_key")[0].as_py() + 10**12], type=first.schema.field("row_key").type),
    )
    pq.write_table(pa.concat_tables([cpr, again]), duplicated / "cpr.parquet")
    with pytest.raises(PersonGrainViolated, match=r"cpr has 1 person\(s\) with more than one row"):
        open_spark_engine(duplicated, "local[2]")
    backend = SparkBackend(spark_session(), duplicated, sql_conf=FAST_SQL_CONF, timeout_s=120)
    with Engine(backend, Catalog.loads(backend.read_catalog_json())) as engine:
        query = parse_query(
            {"project": "p", "epsilon": 1, "measure": "count_persons", "group_by": ["cpr.sex"]}
        )
        assert int(engine._exact_for_tests(query, CONTEXT).values["count"].sum()) == cpr.num_rows
