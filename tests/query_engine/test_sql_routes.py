"""The SQL route and the JSON route are one route: same plan, compiled SQL, loss and preview.

Every supported corpus entry is run both ways through separate engines (so no cache is shared)
and compared on everything that is not noise. Noisy values are never compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from query_engine.backends import DuckDBBackend
from query_engine.catalog import Catalog
from query_engine.compile import CompiledQuery, compile_plan
from query_engine.engine import Engine
from query_engine.plan import plan_query
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, Query, parse_query
from query_engine.sql import sql_to_query

CORPUS = Path(__file__).resolve().parent / "sql_corpus"
SUPPORTED: list[dict[str, Any]] = yaml.safe_load((CORPUS / "supported.yaml").read_text(encoding="utf-8"))
CONTEXTS = {"pure": ProjectContext("pure"), "zcdp": ProjectContext("zcdp", delta_available=True)}
SETTINGS = EngineSettings()


class _NoData:
    """A backend that refuses to execute: cost, preview and compile must not touch data."""

    dialect = "duckdb"

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def execute(self, compiled: CompiledQuery) -> pa.Table:
        raise AssertionError(f"data was touched: {compiled.sql[:80]}")

    def read_catalog_json(self) -> str:
        return self._catalog.dumps()

    def close(self) -> None:
        """Nothing to release."""


class _Recording:
    """The DuckDB backend, recording every compiled query it is given."""

    def __init__(self, inner: DuckDBBackend) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.executed: list[CompiledQuery] = []

    def execute(self, compiled: CompiledQuery) -> pa.Table:
        self.executed.append(compiled)
        return self.inner.execute(compiled)

    def read_catalog_json(self) -> str:
        return self.inner.read_catalog_json()

    def close(self) -> None:
        self.inner.close()


def _both(entry: dict[str, Any], catalog: Catalog) -> tuple[Query, Query, ProjectContext]:
    params = entry.get("params", {"epsilon": 1.0})
    from_sql = sql_to_query(entry["sql"], project="p", catalog=catalog, **params)
    from_json = parse_query({"project": "p", **params, **entry["query"]})
    return from_sql, from_json, CONTEXTS[entry.get("context", "pure")]


def _cases() -> list[Any]:
    return [pytest.param(entry, id=entry["id"]) for entry in SUPPORTED]


@pytest.mark.parametrize("entry", _cases())
def test_same_plan_and_compiled_sql(entry: dict[str, Any], catalog: Catalog) -> None:
    from_sql, from_json, context = _both(entry, catalog)
    plan = plan_query(from_sql, catalog, context, SETTINGS)
    assert plan == plan_query(from_json, catalog, context, SETTINGS)
    for dialect in ("duckdb", "spark"):
        assert compile_plan(plan, catalog, dialect) == compile_plan(
            plan_query(from_json, catalog, context, SETTINGS), catalog, dialect
        )


@pytest.mark.parametrize("entry", _cases())
def test_same_cost_and_preview(entry: dict[str, Any], catalog: Catalog) -> None:
    from_sql, from_json, context = _both(entry, catalog)
    sql_engine, json_engine = Engine(_NoData(catalog), catalog), Engine(_NoData(catalog), catalog)
    sql_cost, json_cost = sql_engine.cost(from_sql, context), json_engine.cost(from_json, context)
    assert sql_cost == json_cost
    assert sql_cost.loss == json_cost.loss and sql_cost.canonical == json_cost.canonical
    assert sql_engine.preview(from_sql, context) == json_engine.preview(from_json, context)
    assert sql_engine.compiled(from_sql, context) == json_engine.compiled(from_json, context)


@pytest.fixture(scope="module")
def engines(small_db: Path, catalog: Catalog) -> Iterator[tuple[Engine, _Recording, Engine, _Recording]]:
    sql_backend = _Recording(DuckDBBackend(small_db, threads=1))
    json_backend = _Recording(DuckDBBackend(small_db, threads=1))
    with Engine(sql_backend, catalog) as sql_engine, Engine(json_backend, catalog) as json_engine:
        yield sql_engine, sql_backend, json_engine, json_backend


@pytest.mark.parametrize("entry", _cases())
def test_same_execution_and_release_shape(
    entry: dict[str, Any], catalog: Catalog, engines: tuple[Engine, _Recording, Engine, _Recording]
) -> None:
    from_sql, from_json, context = _both(entry, catalog)
    sql_engine, sql_backend, json_engine, json_backend = engines
    sql_release = sql_engine.run(from_sql, context, cost=sql_engine.cost(from_sql, context))
    json_release = json_engine.run(from_json, context, cost=json_engine.cost(from_json, context))
    # The backend sees the compiled plan (identical for both routes), never the analyst's text.
    assert sql_backend.executed[-1] == json_backend.executed[-1]
    assert entry["sql"].strip() not in sql_backend.executed[-1].sql
    assert sql_release.privacy == json_release.privacy
    assert sql_release.query == json_release.query
    assert (sql_release.columns, sql_release.measure, sql_release.confidence) == (
        json_release.columns,
        json_release.measure,
        json_release.confidence,
    )
    if not any(g == "lpr.diagnosis_code" for g in from_sql.group_by):  # released keys are noisy there
        keys = list(from_sql.group_by)
        assert [[r[k] for k in keys] for r in sql_release.rows] == [
            [r[k] for k in keys] for r in json_release.rows
        ]
