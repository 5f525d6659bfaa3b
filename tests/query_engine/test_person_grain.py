"""Person grain is enforced: a database whose person-grain register repeats a person is refused at
open, and the SQL keeps one row per person of such a register even when the data repeat one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from query_engine import Engine, ProjectContext
from query_engine.backends import DuckDBBackend
from query_engine.catalog import CATALOG_TABLE, Catalog
from query_engine.errors import PersonGrainViolated
from query_engine.person_grain import check_person_grain
from query_engine.spec import parse_query
from tests.query_engine.engine_fixtures import create_db, random_dataset

CONTEXT = ProjectContext("pure")


def _duplicate(path: Path, register: str, persons: list[int]) -> None:
    """Insert a second row (new row_key, other region where there is one) for each of ``persons``."""
    con = duckdb.connect(str(path))
    try:
        for pid in persons:
            con.execute(
                f'INSERT INTO "{register}" SELECT * REPLACE (row_key + 1000000000 AS row_key) '
                f'FROM "{register}" WHERE person_id = ?',
                [pid],
            )
        if register == "cpr":
            con.execute("UPDATE cpr SET region = 'Nordjylland' WHERE row_key > 1000000000")
    finally:
        con.close()


@pytest.fixture
def duplicated_cpr(tmp_path: Path, catalog: Catalog) -> Path:
    path = create_db(tmp_path / "dup.duckdb", catalog, random_dataset(seed=3, persons=120, catalog=catalog))
    _duplicate(path, "cpr", [17, 42])
    return path


def test_a_clean_database_opens(small_db: Path) -> None:
    with Engine.open(small_db) as engine:
        assert engine.catalog.register("cpr").grain == "person"


def test_a_duplicated_cpr_person_is_refused_at_open(duplicated_cpr: Path) -> None:
    with pytest.raises(PersonGrainViolated) as refused:
        Engine.open(duplicated_cpr)
    message = refused.value.message
    assert "cpr has 2 person(s) with more than one row" in message
    assert "17" not in message and "42" not in message  # never a person id
    assert refused.value.code == "person_grain_violated"


def test_another_register_declared_person_grain_is_checked(tmp_path: Path, catalog: Catalog) -> None:
    registers = tuple(
        dataclasses.replace(r, grain="person") if r.name == "dar" else r for r in catalog.registers
    )
    dar_person = dataclasses.replace(catalog, registers=registers)
    data = random_dataset(seed=5, persons=300, catalog=dar_person)
    path = create_db(tmp_path / "dar.duckdb", dar_person, data)
    _duplicate(path, "dar", [data["dar"][0]["person_id"]])
    with pytest.raises(PersonGrainViolated, match=r"dar has 1 person\(s\)"):
        Engine.open(path)
    # The same rows under the packaged catalog (dar is event grain) are served.
    con = duckdb.connect(str(path))
    con.execute(f"UPDATE {CATALOG_TABLE} SET catalog = ?", [catalog.dumps()])
    con.close()
    with Engine.open(path) as engine:
        assert engine.catalog.register("dar").grain == "event"


def test_the_sql_keeps_one_row_per_person_when_the_data_repeat_one(
    duplicated_cpr: Path, catalog: Catalog
) -> None:
    """Past the open check (a backend used directly), the bounded SQL still counts each person once."""
    backend = DuckDBBackend(duplicated_cpr)
    with pytest.raises(PersonGrainViolated):
        check_person_grain(backend, catalog)
    engine = Engine(backend, catalog)
    try:
        for fields in (
            {"measure": "count_persons", "group_by": ["cpr.region"]},
            {"measure": "count_rows", "register": "cpr", "group_by": ["cpr.region"]},
        ):
            exact = engine._exact_for_tests(parse_query({"project": "p", "epsilon": 1, **fields}))
            assert int(exact.values["count"].sum()) == 120
        # lpr rows joined to the person register: each row once, though cpr repeats two persons.
        query = parse_query({"project": "p", "epsilon": 1, "measure": "count_rows", "register": "lpr",
                             "group_by": ["cpr.region"], "max_rows": 200})  # fmt: skip
        lpr_rows = backend._con.sql("SELECT count(*) FROM lpr").fetchall()[0][0]
        assert int(engine._exact_for_tests(query).values["count"].sum()) == lpr_rows
    finally:
        engine.close()


SHAPES = {
    "persons by region": {"measure": "count_persons", "group_by": ["cpr.region"]},
    "cpr rows by region": {"measure": "count_rows", "register": "cpr", "group_by": ["cpr.region"]},
    "lpr sum by region": {
        "measure": "sum",
        "register": "lpr",
        "column": "los_days",
        "bounds": [0, 60],
        "max_rows": 1,  # most persons have more: the kept row must be each person's first
        "group_by": ["cpr.region"],
    },
    "mean age of E11 persons": {
        "measure": "mean",
        "column": "cpr.age",
        "where": [{"column": "lpr.icd10", "op": "prefix", "value": "E11"}],
        "group_by": ["cpr.sex"],
    },
    "median income by region": {
        "measure": "quantile",
        "register": "ind",
        "column": "disposable_income",
        "where": [{"column": "ind.year", "op": "=", "value": 2020}],
        "group_by": ["cpr.region"],
    },  # fmt: skip
}
PREVALENCE = {
    "measure": "prevalence",
    "condition": {"register": "lmdb", "where": [{"column": "lmdb.atc", "op": "=", "value": "A10BA02"}]},
    "group_by": ["cpr.region", "cpr.sex"],
}


def _assert_same(mine: Any, theirs: Any, name: str) -> None:
    assert mine.keys == theirs.keys and mine.values.keys() == theirs.values.keys(), name
    for column, values in mine.values.items():
        np.testing.assert_array_equal(values, theirs.values[column], err_msg=f"{name}: {column}")
    assert any(np.any(v != 0) for v in mine.values.values()), name  # not an empty database


def test_a_verified_person_register_is_read_as_it_is_with_the_same_answers(small_db: Path) -> None:
    """After the open check, the SQL reads cpr without ranking its rows; the exact answers are those
    of the ranking SQL (an engine over the same file whose catalog is not marked verified)."""
    with Engine.open(small_db) as verified:
        assert verified.catalog.person_grain_verified
        unverified = Engine(
            DuckDBBackend(small_db), dataclasses.replace(verified.catalog, person_grain_verified=False)
        )
        try:
            for name, fields in SHAPES.items():
                query = parse_query({"project": "p", "epsilon": 1, **fields})
                sql = verified.compiled(query, CONTEXT).sql
                assert "persons_ranked" not in sql, name
                if "register" not in fields or fields["register"] == "cpr":
                    assert "ROW_NUMBER" not in sql, name  # cpr is the grain: no row ranking at all
                assert "ROW_NUMBER" in unverified.compiled(query, CONTEXT).sql, name
                # Spark reads files that may change after the check: it always ranks.
                assert "ROW_NUMBER" in verified.compiled(query, CONTEXT, dialect="spark").sql, name
                mine, theirs = verified._exact_for_tests(query), unverified._exact_for_tests(query)
                _assert_same(mine, theirs, name)
            analysis = parse_query({"project": "p", "epsilon": 1, **PREVALENCE})
            assert "persons_ranked" not in verified.compiled(analysis, CONTEXT).sql
            mine_a = verified._exact_analysis_for_tests(analysis)
            theirs_a = unverified._exact_analysis_for_tests(analysis)
            _assert_same(mine_a, theirs_a, "prevalence")
        finally:
            unverified.close()
