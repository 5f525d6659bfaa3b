"""Golden SQL for representative queries: compared exactly. Regenerate with SUNDSTAT_REGEN_GOLDEN=1."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest

from query_engine.catalog import Catalog
from query_engine.compile import compile_plan
from query_engine.plan import plan_query
from query_engine.preaggregate import catalog_preaggregates
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from query_engine.validate import validate

GOLDEN = Path(__file__).resolve().parent / "golden"
REGENERATE = os.environ.get("SUNDSTAT_REGEN_GOLDEN") == "1"
CONTEXT = ProjectContext("zcdp", delta_available=True)


def _c(column: str, op: str, value: Any) -> dict[str, Any]:
    return {"column": column, "op": op, "value": value}


COHORT = [
    _c("cpr.sex", "=", "F"),
    _c("lpr.icd10", "prefix", "E11"),
    _c("lpr.admission_date", "between", ["2018-01-01", "2020-12-31"]),
    _c("lmdb.atc", "=", "A10BA02"),
]

QUERIES: dict[str, dict[str, Any]] = {
    "count_persons_by_region": {"measure": "count_persons", "group_by": ["cpr.region"]},
    "cohort_women_e11_metformin_by_region_age_band": {
        "measure": "count_persons",
        "where": COHORT,
        "group_by": ["cpr.region", "cpr.age_band"],
    },
    "count_persons_by_icd10_chapter_and_sex": {
        "measure": "count_persons",
        "group_by": ["lpr.icd10_chapter", "cpr.sex"],
        "where": [_c("lpr.contact_type", "in", ["inpatient", "emergency"])],
    },
    "count_rows_lmdb_by_atc2_and_year": {
        "measure": "count_rows",
        "register": "lmdb",
        "group_by": ["lmdb.atc_level_2", "lmdb.year"],
        "where": [_c("lmdb.year", ">=", 2020)],
        "max_rows": 4,
        "max_groups": 6,
    },
    "sum_bed_days_by_region": {
        "measure": "sum",
        "register": "lpr",
        "column": "los_days",
        "group_by": ["cpr.region"],
        "bounds": [0, 60],
    },
    "mean_age_of_metformin_users_by_region": {
        "measure": "mean",
        "column": "cpr.age",
        "where": [_c("lmdb.atc", "=", "A10BA02")],
        "group_by": ["cpr.region"],
    },
    "mean_ddd_by_atc1": {
        "measure": "mean",
        "register": "lmdb",
        "column": "ddd",
        "group_by": ["lmdb.atc_level_1"],
    },
    "median_income_by_region": {
        "measure": "quantile",
        "register": "ind",
        "column": "disposable_income",
        "where": [_c("ind.year", "=", 2022)],
        "group_by": ["cpr.region"],
    },
    "deaths_by_cause_chapter_and_vital_status": {
        "measure": "count_rows",
        "register": "dar",
        "group_by": ["dar.cause_chapter", "cpr.vital_status"],
    },
    "count_rows_by_diagnosis_code": {
        "measure": "count_rows",
        "register": "lpr",
        "where": [_c("lpr.diagnosis_code", "prefix", "DE1")],
        "group_by": ["lpr.diagnosis_code"],
    },
    # With the build's pre-aggregate available: read instead of every lpr row (query_engine.preaggregate).
    "count_rows_all_contacts_by_region_chapter_preaggregated": {
        "measure": "count_rows",
        "register": "lpr",
        "group_by": ["cpr.region", "lpr.icd10_chapter"],
        "max_rows": 3,
        "max_groups": 2,
    },
}
PREAGGREGATED = {"count_rows_all_contacts_by_region_chapter_preaggregated"}
DIALECTS = {name: "duckdb" for name in QUERIES} | {
    "cohort_women_e11_metformin_by_region_age_band@spark": "spark"
}


def _render(name: str, catalog: Catalog) -> str:
    base, dialect = name.split("@")[0], DIALECTS[name]
    query = parse_query({"project": "p", "epsilon": 1.0, **QUERIES[base]})
    settings = EngineSettings()
    validate(query, catalog, CONTEXT, settings)
    plan = plan_query(query, catalog, CONTEXT, settings)
    available = (
        frozenset(p.table for p in catalog_preaggregates(catalog)) if base in PREAGGREGATED else frozenset()
    )
    compiled = compile_plan(plan, catalog, dialect, pretty=True, preaggregates=available)
    params = json.dumps([p.isoformat() if isinstance(p, dt.date) else p for p in compiled.params])
    return f"-- {name}\n-- dialect: {dialect}\n-- params: {params}\n{compiled.sql}\n"


@pytest.mark.parametrize("name", list(DIALECTS))
def test_compiled_sql_matches_golden(name: str, catalog: Catalog) -> None:
    text = _render(name, catalog)
    path = GOLDEN / f"{name.replace('@', '.')}.sql"
    if REGENERATE:
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"{path.name} changed; SUNDSTAT_REGEN_GOLDEN=1 to accept"


def test_no_analyst_value_is_pasted_into_sql(catalog: Catalog) -> None:
    text = _render("cohort_women_e11_metformin_by_region_age_band", catalog)
    sql = text.split("\n", 3)[3]
    for value in ("'F'", "'E11'", "A10BA02", "2018-01-01"):
        assert value not in sql
