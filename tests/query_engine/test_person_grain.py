"""Person grain is enforced: a database whose person-grain register repeats a person is refused at
open, and the SQL keeps one row per person of such a register even when the data repeat one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
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
