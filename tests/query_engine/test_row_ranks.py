"""The build's stored row ranks (``query_engine.row_ranks``): bounding an event register by its
stored rank keeps exactly the rows the ROW_NUMBER window keeps, and is used only where the ranks hold."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from query_engine import Engine, ProjectContext
from query_engine.backends import DuckDBBackend
from query_engine.catalog import ROW_RANK_COLUMN
from query_engine.spec import parse_query

CONTEXT = ProjectContext("pure")
LOS = {
    "measure": "sum",
    "register": "lpr",
    "column": "los_days",
    "bounds": [0, 60],
    "group_by": ["cpr.region"],
}
STORED = {
    "lpr sum, c=1": {**LOS, "max_rows": 1},
    "lpr sum, c=3": {**LOS, "max_rows": 3},
    "lpr sum of women": {**LOS, "max_rows": 2, "where": [{"column": "cpr.sex", "op": "=", "value": "F"}]},
    "lmdb mean": {
        "measure": "mean",
        "register": "lmdb",
        "column": "ddd",
        "bounds": [0, 100],
        "max_rows": 2,
        "group_by": ["cpr.sex"],
    },  # fmt: skip
    "ind median": {
        "measure": "quantile",
        "register": "ind",
        "column": "disposable_income",
        "max_rows": 1,
        "group_by": ["cpr.region"],
    },  # fmt: skip
}
WINDOW = {
    "lpr sum in one year": {
        **LOS,
        "max_rows": 1,
        "where": [{"column": "lpr.year", "op": "=", "value": 2020}],
    },
}
WEIGHTED = {
    "lpr rows by region": {
        "measure": "count_rows",
        "register": "lpr",
        "max_rows": 2,
        "group_by": ["cpr.region"],
    }
}


@pytest.fixture(scope="module")
def engines(generated_db: Path) -> Any:
    with Engine.open(generated_db) as stored:
        window = Engine(
            DuckDBBackend(generated_db), dataclasses.replace(stored.catalog, row_ranked_registers=())
        )
        try:
            yield stored, window
        finally:
            window.close()


def test_the_build_stores_each_rows_rank_within_its_person(generated_db: Path) -> None:
    con = duckdb.connect(str(generated_db), read_only=True)
    try:
        for register in ("lpr", "lmdb", "ind"):
            wrong = con.sql(
                f"SELECT count(*) FROM (SELECT {ROW_RANK_COLUMN} AS stored, ROW_NUMBER() OVER "
                f"(PARTITION BY person_id ORDER BY row_key) AS computed FROM {register}) WHERE stored <> computed"
            ).fetchall()[0][0]
            assert wrong == 0, register
        columns = con.sql(
            f"SELECT table_name FROM information_schema.columns WHERE column_name = '{ROW_RANK_COLUMN}'"
        )
        assert "cpr" not in {r[0] for r in columns.fetchall()}  # person grain: one row per person
    finally:
        con.close()


def _exact(engine: Engine, fields: dict[str, Any]) -> Any:
    return engine._exact_for_tests(parse_query({"project": "p", "epsilon": 1, **fields}))


@pytest.mark.parametrize("name", [*STORED, *WINDOW, *WEIGHTED])
def test_stored_ranks_keep_the_rows_the_window_keeps(engines: Any, name: str) -> None:
    stored, window = engines
    fields = {**STORED, **WINDOW, **WEIGHTED}[name]
    query = parse_query({"project": "p", "epsilon": 1, **fields})
    sql = stored.compiled(query, CONTEXT).sql
    assert ("ROW_NUMBER" in sql) == (name in WINDOW), sql
    assert (ROW_RANK_COLUMN in sql) == (name in STORED), sql
    assert ROW_RANK_COLUMN not in stored.compiled(query, CONTEXT, dialect="spark").sql
    mine, theirs = _exact(stored, fields), _exact(window, fields)
    assert mine.keys == theirs.keys and mine.values.keys() == theirs.values.keys()
    for column, values in mine.values.items():
        np.testing.assert_array_equal(values, theirs.values[column], err_msg=f"{name}: {column}")
    assert any(np.any(v != 0) for v in mine.values.values())
