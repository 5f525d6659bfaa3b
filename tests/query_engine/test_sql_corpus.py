"""The SQL corpora: supported SQL maps to the Query of the JSON route; refused SQL fails with code and position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from query_engine.catalog import Catalog
from query_engine.errors import QueryError
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from query_engine.sql import sql_to_query
from query_engine.sql.errors import SqlError
from query_engine.validate import validate

CORPUS = Path(__file__).resolve().parent / "sql_corpus"
SUPPORTED: list[dict[str, Any]] = yaml.safe_load((CORPUS / "supported.yaml").read_text(encoding="utf-8"))
REFUSED: list[dict[str, Any]] = yaml.safe_load((CORPUS / "refused.yaml").read_text(encoding="utf-8"))
CONTEXTS = {"pure": ProjectContext("pure"), "zcdp": ProjectContext("zcdp", delta_available=True)}
DEFAULT_PARAMS = {"epsilon": 1.0}


def _supported() -> list[Any]:
    return [pytest.param(entry, id=entry["id"]) for entry in SUPPORTED]


def _refused() -> list[Any]:
    return [pytest.param(entry, id=entry["id"]) for entry in REFUSED]


def test_corpus_sizes_and_unique_ids() -> None:
    assert len(SUPPORTED) >= 40
    assert len(REFUSED) >= 30
    ids = [e["id"] for e in SUPPORTED + REFUSED]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("entry", _supported())
def test_supported_sql_is_the_json_query(entry: dict[str, Any], catalog: Catalog) -> None:
    params = entry.get("params", DEFAULT_PARAMS)
    from_sql = sql_to_query(entry["sql"], project="p", catalog=catalog, **params)
    from_json = parse_query({"project": "p", **params, **entry["query"]})
    assert from_sql.canonical() == from_json.canonical()
    assert from_sql.query_hash() == from_json.query_hash()
    # The corpus holds queries the engine accepts, not just shapes that parse.
    validate(from_sql, catalog, CONTEXTS[entry.get("context", "pure")], EngineSettings())


@pytest.mark.parametrize("entry", _refused())
def test_refused_sql(entry: dict[str, Any], catalog: Catalog) -> None:
    with pytest.raises(SqlError) as raised:
        sql_to_query(entry["sql"], project="p", catalog=catalog, epsilon=1.0)
    error = raised.value
    assert error.code == entry["code"]
    assert error.position == {"line": entry["line"], "column": entry["column"]}
    assert isinstance(error, QueryError) and error.status == 422 and error.stage == "sql"
    line = entry["sql"].splitlines()[entry["line"] - 1] if entry["sql"].strip() else ""
    assert line[entry["column"] - 1 :].startswith(entry.get("at", ""))
    assert f"Line {entry['line']}, column {entry['column']}: " in error.message
    assert entry.get("says", "") in error.message
    assert error.construct


def test_corpus_covers_every_measure_and_operator(catalog: Catalog) -> None:
    queries = [
        sql_to_query(e["sql"], project="p", catalog=catalog, **e.get("params", DEFAULT_PARAMS))
        for e in SUPPORTED
    ]
    assert {q.measure for q in queries} == {"count_persons", "count_rows", "sum", "mean", "quantile"}
    assert {c.op for q in queries for c in q.where} == {
        "=",
        "!=",
        "in",
        "prefix",
        "between",
        "<",
        "<=",
        ">",
        ">=",
    }
    assert {q.register for q in queries} >= {"cpr", "lpr", "lmdb", "dar", "ind", "udda"}
    assert any(q.bounds for q in queries)
    derived = {f"{r.name}.{c.name}" for r in catalog.registers for c in r.columns if c.derivation is not None}
    used = {c.column for q in queries for c in q.where} | {g for q in queries for g in q.group_by}
    assert derived <= used, f"derived columns without a corpus query: {sorted(derived - used)}"
