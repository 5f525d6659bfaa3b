"""Cohort semantics against hand-written reference SQL, and every public key in the output."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from query_engine.catalog import Catalog
from query_engine.engine import Engine
from query_engine.spec import ProjectContext, parse_query
from tests.query_engine.engine_fixtures import create_db

CONTEXT = ProjectContext("pure")


def _c(column: str, op: str, value: Any) -> dict[str, Any]:
    return {"column": column, "op": op, "value": value}


COHORT_QUERY = {
    "project": "p",
    "measure": "count_persons",
    "where": [
        _c("cpr.sex", "=", "F"),
        _c("lpr.icd10", "prefix", "E11"),
        _c("lpr.admission_date", "between", ["2018-01-01", "2020-12-31"]),
        _c("lmdb.atc", "=", "A10BA02"),
    ],
    "group_by": ["cpr.region", "cpr.age_band"],
    "epsilon": 1.0,
}

# Written by hand, independently of the compiler: EXISTS per register, both lpr conditions on one row.
REFERENCE_SQL = """
SELECT c.region, c.birth_date, c.death_date
FROM cpr AS c
WHERE c.sex = 'F'
  AND EXISTS (SELECT 1 FROM lpr AS l WHERE l.person_id = c.person_id
              AND l.icd10 LIKE 'E11%' AND l.admission_date BETWEEN DATE '2018-01-01' AND DATE '2020-12-31')
  AND EXISTS (SELECT 1 FROM lmdb AS m WHERE m.person_id = c.person_id AND m.atc = 'A10BA02')
"""


def _age(birth: dt.date, death: dt.date | None, reference: dt.date) -> int:
    at = death if death is not None and death < reference else reference
    return at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))


def _band(age: int) -> str:
    return "90+" if age >= 90 else f"{age // 10 * 10}-{age // 10 * 10 + 9}"


def test_cohort_matches_reference_sql(generated_db: Path) -> None:
    with Engine.open(generated_db) as engine:
        exact = engine._exact_for_tests(parse_query(COHORT_QUERY), CONTEXT)
        reference_date = dt.date.fromisoformat(engine.catalog.reference_date)
        regions = engine.catalog.keyset("regions").values
        bands = engine.catalog.keyset("age_band_10").values
    con = duckdb.connect(str(generated_db), read_only=True)
    rows = con.sql(REFERENCE_SQL).fetchall()
    con.close()
    expected = Counter((region, _band(_age(birth, death, reference_date))) for region, birth, death in rows)
    assert sum(expected.values()) > 20, "the generated cohort should not be trivially small"
    assert exact.keys == tuple(itertools.product(regions, bands))
    assert [int(v) for v in exact.values["count"]] == [expected.get(key, 0) for key in exact.keys]


def _person(pid: int, sex: str = "F", region: str = "Hovedstaden") -> dict[str, Any]:
    return {
        "person_id": pid,
        "row_key": 1000 + pid,
        "sex": sex,
        "birth_date": dt.date(1970, 6, 15),
        "region": region,
        "municipality": "101",
        "death_date": None,
    }


def _contact(pid: int, rk: int, icd10: str, day: str) -> dict[str, Any]:
    return {
        "person_id": pid,
        "row_key": rk,
        "contact_id": rk,
        "admission_date": dt.date.fromisoformat(day),
        "los_days": 1,
        "icd10": icd10,
        "contact_type": "inpatient",
        "hospital_region": "Hovedstaden",
    }


def _metformin(pid: int, rk: int) -> dict[str, Any]:
    return {"person_id": pid, "row_key": rk, "date": dt.date(2019, 1, 1), "atc": "A10BA02", "packages": 1}


@pytest.fixture(scope="module")
def handmade_db(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Path:
    tables = {
        "cpr": [_person(1), _person(2), _person(3), _person(4, sex="M"), _person(5, region="Nordjylland")],
        "lpr": [
            _contact(1, 1, "E11", "2019-03-01"),  # counted
            _contact(2, 2, "E11", "2015-03-01"),  # E11 too early ...
            _contact(2, 3, "J45", "2019-03-01"),  # ... and the 2019 contact is not E11: not counted
            _contact(3, 4, "E11", "2019-03-01"),  # no metformin: not counted
            _contact(4, 5, "E11", "2019-03-01"),  # a man: not counted
            _contact(5, 6, "E11", "2020-12-31"),  # counted (bounds inclusive)
        ],
        "lmdb": [
            _metformin(1, 11),
            _metformin(2, 12),
            _metformin(4, 14),
            _metformin(5, 15),
            _metformin(5, 16),
        ],
    }
    return create_db(tmp_path_factory.mktemp("handmade") / "h.duckdb", catalog, tables)


def test_conditions_on_one_register_hold_on_the_same_row(handmade_db: Path) -> None:
    with Engine.open(handmade_db) as engine:
        exact = engine._exact_for_tests(parse_query(COHORT_QUERY), CONTEXT)
    counts = dict(zip(exact.keys, (int(v) for v in exact.values["count"]), strict=True))
    assert counts[("Hovedstaden", "50-59")] == 1
    assert counts[("Nordjylland", "50-59")] == 1
    assert sum(counts.values()) == 2


def test_every_public_key_in_order_zeros_included(handmade_db: Path, catalog: Catalog) -> None:
    query = parse_query(
        {
            "project": "p",
            "measure": "count_rows",
            "register": "lpr",
            "group_by": ["lpr.icd10_chapter", "cpr.sex", "lpr.year"],
            "epsilon": 1.0,
        }
    )
    with Engine.open(handmade_db) as engine:
        exact = engine._exact_for_tests(query, CONTEXT)
    chapters = catalog.keyset("icd10_chapters").values
    expected_keys = tuple(itertools.product(chapters, ("F", "M"), range(2010, 2025)))
    assert exact.keys == expected_keys
    counts = dict(zip(exact.keys, (int(v) for v in exact.values["count"]), strict=True))
    assert counts[("IV", "F", 2019)] == 2 and counts[("X", "F", 2019)] == 1
    assert sum(counts.values()) == 6
    assert sum(1 for v in counts.values() if v == 0) == len(expected_keys) - 5


def test_keys_outside_the_key_set_are_dropped_not_added(tmp_path: Path, catalog: Catalog) -> None:
    tables = {"cpr": [_person(1, region="Atlantis"), _person(2, region="Sjælland"), _person(3, sex="X")]}
    db = create_db(tmp_path / "odd.duckdb", catalog, tables)
    query = parse_query(
        {"project": "p", "measure": "count_persons", "group_by": ["cpr.region", "cpr.sex"], "epsilon": 1}
    )
    with Engine.open(db) as engine:
        exact = engine._exact_for_tests(query, CONTEXT)
    assert exact.keys == tuple(itertools.product(catalog.keyset("regions").values, ("F", "M")))
    counts = dict(zip(exact.keys, (int(v) for v in exact.values["count"]), strict=True))
    assert counts == {k: int(k == ("Sjælland", "F")) for k in exact.keys}
