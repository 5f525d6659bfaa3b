"""The DuckDB backend is locked down, times out, is thread-safe, and values are only parameters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from query_engine.backends import Backend, DuckDBBackend
from query_engine.catalog import Catalog
from query_engine.compile import CompiledQuery, compile_plan
from query_engine.engine import Engine
from query_engine.errors import ExecutionFailed, QueryTimeout, ValueOutsideDomain
from query_engine.plan import ColumnRef, Filter, plan_query
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from query_engine.validate import validate
from tests.helpers.threads import in_threads

INJECTION = "'); DROP TABLE cpr; --"
CONTEXT = ProjectContext("zcdp", delta_available=True)


@pytest.fixture
def backend(small_db: Path) -> Iterator[DuckDBBackend]:
    b = DuckDBBackend(small_db, timeout_s=2.0, threads=1, memory_limit="256MB")
    yield b
    b.close()


def _sql(text: str) -> CompiledQuery:
    return CompiledQuery(text, (), "duckdb")


def test_backend_satisfies_protocol(backend: DuckDBBackend) -> None:
    assert isinstance(backend, Backend)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("SELECT * FROM read_csv('/etc/passwd')", id="read_csv"),
        pytest.param("SELECT * FROM read_text('/etc/passwd')", id="read_text"),
        pytest.param("SELECT * FROM '/etc/passwd'", id="replacement_scan"),
        pytest.param("COPY cpr TO '/tmp/sundstat-leak.csv'", id="copy_to"),
        pytest.param("COPY (SELECT 1) TO '/tmp/sundstat-leak.parquet' (FORMAT parquet)", id="copy_query"),
        pytest.param("ATTACH '/tmp/sundstat-other.duckdb' AS other", id="attach"),
        pytest.param("INSTALL httpfs", id="install"),
        pytest.param("LOAD httpfs", id="load"),
        pytest.param("SET enable_external_access = true", id="set_external_access"),
        pytest.param("SET lock_configuration = false", id="unlock"),
        pytest.param("RESET lock_configuration", id="reset_lock"),
        pytest.param("SET memory_limit = '100GB'", id="set_memory"),
        pytest.param("PRAGMA threads = 64", id="pragma_threads"),
        pytest.param("PRAGMA enable_profiling", id="pragma_profiling"),
        pytest.param("DROP TABLE cpr", id="drop"),
        pytest.param("CREATE TABLE x AS SELECT 1", id="create"),
        pytest.param("DELETE FROM cpr", id="delete"),
    ],
)
def test_dangerous_statements_cannot_run(backend: DuckDBBackend, statement: str) -> None:
    with pytest.raises(ExecutionFailed) as info:
        backend.execute(_sql(statement))
    assert "passwd" not in info.value.message and "cpr" not in info.value.message
    assert not Path("/tmp/sundstat-leak.csv").exists()
    assert backend.execute(_sql("SELECT count(*) AS n FROM cpr")).column("n")[0].as_py() == 400


def test_settings_stay_locked(backend: DuckDBBackend) -> None:
    table = backend.execute(
        _sql(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('enable_external_access', 'lock_configuration', 'threads', 'autoload_known_extensions')"
        )
    )
    settings = dict(zip(table.column("name").to_pylist(), table.column("value").to_pylist(), strict=True))
    assert settings == {
        "enable_external_access": "false",
        "lock_configuration": "true",
        "threads": "1",
        "autoload_known_extensions": "false",
    }


def test_query_timeout_interrupts(small_db: Path) -> None:
    backend = DuckDBBackend(small_db, timeout_s=0.3, threads=1)
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as info:
        backend.execute(_sql("SELECT count(*) FROM range(100000000000) a WHERE a % 7 = 3"))
    assert time.monotonic() - started < 5
    assert info.value.status == 504 and info.value.stage == "execute"
    # The connection is still usable after an interrupt.
    assert backend.execute(_sql("SELECT 1 AS one")).num_rows == 1
    backend.close()


def test_execution_errors_carry_no_data(backend: DuckDBBackend) -> None:
    with pytest.raises(ExecutionFailed) as info:
        backend.execute(_sql("SELECT CAST(region AS INTEGER) FROM cpr"))
    assert "Hovedstaden" not in info.value.message and "Sjælland" not in info.value.message


def test_concurrent_queries_use_their_own_cursors(backend: DuckDBBackend) -> None:
    results: list[int] = []

    def work(i: int) -> None:
        table = backend.execute(CompiledQuery("SELECT count(*) + $1 AS n FROM cpr", (i,), "duckdb"))
        results.append(table.column("n")[0].as_py() - i)

    assert in_threads(work, 16) == [] and results == [400] * 16


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExecutionFailed, match="does not exist"):
        DuckDBBackend(tmp_path / "nope.duckdb")


def test_injection_value_is_refused_by_validation(catalog: Catalog) -> None:
    query = parse_query(
        {
            "project": "p",
            "measure": "count_persons",
            "where": [{"column": "cpr.region", "op": "=", "value": INJECTION}],
            "epsilon": 1,
        }
    )
    with pytest.raises(ValueOutsideDomain):
        validate(query, catalog, CONTEXT, EngineSettings())


def test_injection_value_is_only_a_parameter_when_compiled(catalog: Catalog, backend: DuckDBBackend) -> None:
    query = parse_query(
        {"project": "p", "measure": "count_persons", "group_by": ["cpr.region"], "epsilon": 1}
    )
    plan = plan_query(query, catalog, CONTEXT, EngineSettings())
    # Bypass validation on purpose: the compiler alone must keep the value out of the SQL text.
    hostile = Filter(ColumnRef("cpr", "region"), "in", (INJECTION, "Hovedstaden"))
    import dataclasses

    plan = dataclasses.replace(plan, row_filters=(hostile,))
    compiled = compile_plan(plan, catalog)
    assert INJECTION not in compiled.sql and "DROP" not in compiled.sql
    assert INJECTION in compiled.params
    table = backend.execute(compiled)
    assert table.num_rows == 5
    assert backend.execute(_sql("SELECT count(*) AS n FROM cpr")).column("n")[0].as_py() == 400


def test_injection_through_an_open_domain_column_runs_as_a_value(small_db: Path) -> None:
    query = parse_query(
        {
            "project": "p",
            "measure": "count_rows",
            "register": "lpr",
            "where": [{"column": "lpr.diagnosis_code", "op": "=", "value": INJECTION}],
            "epsilon": 1,
        }
    )
    with Engine.open(small_db) as engine:
        exact = engine._exact_for_tests(query, CONTEXT)
    assert list(exact.values["count"]) == [0]
    con = duckdb.connect(str(small_db), read_only=True)
    assert con.sql("SELECT count(*) FROM cpr").fetchall() == [(400,)]
    con.close()
