"""Persons whose rows break the catalog's promises (a NULL birth date in a non-nullable column) still
contribute within the declared sensitivity: the bound must hold whatever the data hold.

A Parquet directory (the Spark backend) or a hand-built DuckDB file does not enforce the catalog's
NOT NULL, so the cohort SQL must not rely on it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from query_engine.catalog import Catalog
from query_engine.cohort import plan_analysis
from query_engine.compile_cohort import compile_analysis
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from tests.query_engine.engine_fixtures import create_db

I21 = [{"column": "lpr.icd10", "op": "prefix", "value": "I21"}]
COHORT = {
    "index": {
        "register": "lpr",
        "date": "admission_date",
        "where": I21,
        "entry": ["2012-01-01", "2020-12-31"],
    },
    "follow_up_years": 2,
}


def _tables(birth: dt.date | None) -> dict[str, list[dict[str, Any]]]:
    return {
        "cpr": [{"person_id": 1, "row_key": 11, "sex": "F", "birth_date": birth, "death_date": None}],
        "lpr": [{"person_id": 1, "row_key": 12, "admission_date": dt.date(2014, 2, 2), "icd10": "I21"}],
    }


def _person_time(catalog: Catalog, path: Path, group_by: list[str]) -> tuple[np.ndarray, int]:
    query = parse_query(
        {"project": "p", "measure": "rate", "epsilon": 1.0, "cohort": COHORT, "group_by": group_by}
    )
    plan = plan_analysis(query, catalog, ProjectContext("pure"), EngineSettings())
    compiled = compile_analysis(plan, catalog)
    con = duckdb.connect(str(path))
    try:
        table = con.sql(compiled.sql, params=list(compiled.params)).to_arrow_table()
    finally:
        con.close()
    (time,) = [o for o in plan.outputs if o.name == "person_time"]
    return np.array(table.column("pt").to_pylist(), dtype=np.int64), time.sensitivity.l1


def test_a_null_birth_date_does_not_multiply_person_time_over_attained_age_bands(
    catalog: Catalog, tmp_path: Path
) -> None:
    """Without the person the table is all zeros, so the person's whole contribution is the table."""
    path = create_db(tmp_path / "null_birth.duckdb", catalog, _tables(None))
    for group_by in (["cohort.attained_age_band"], ["cohort.attained_age_band", "cohort.attained_period"]):
        person_time, declared = _person_time(catalog, path, group_by)
        assert int(np.abs(person_time).sum()) <= declared, (group_by, person_time.tolist(), declared)


def test_a_known_birth_date_still_splits_the_person_time(catalog: Catalog, tmp_path: Path) -> None:
    """The control: with a birth date the same person's two years are split over the age bands."""
    path = create_db(tmp_path / "birth.duckdb", catalog, _tables(dt.date(1954, 6, 1)))
    person_time, declared = _person_time(catalog, path, ["cohort.attained_age_band"])
    assert int(person_time.sum()) == declared  # alive and followed for the whole T days
    assert int(np.count_nonzero(person_time)) == 2  # aged 59 then 60: two bands
