"""The moments of a linear regression through the real SQL on DuckDB files: they equal an independent
reading of the rules (one row per person: the matching row with the smallest row_key, values clamped
with NULL replaced), and removing one person changes each moment by at most its declared sensitivity."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from query_engine.backends import DuckDBBackend
from query_engine.catalog import Catalog
from query_engine.compile_linear import exact_moments
from query_engine.linear_plan import LinearPlan, plan_linear
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from tests.query_engine.engine_fixtures import create_db, random_dataset

QUERY = {
    "project": "p",
    "measure": "linear_regression",
    "register": "lpr",
    "column": "lpr.los_days",
    "bounds": [0, 20],
    "where": [{"column": "lpr.contact_type", "op": "in", "value": ["inpatient", "emergency"]}],
    "group_by": ["cpr.sex", "cpr.region"],
    "reference": {"cpr.sex": "M"},
    "epsilon": 1.0,
}


def _plan(catalog: Catalog) -> LinearPlan:
    return plan_linear(parse_query(QUERY), catalog, ProjectContext("pure"), EngineSettings())


def _moments(path: Path, catalog: Catalog, plan: LinearPlan) -> np.ndarray:
    backend = DuckDBBackend(path)
    try:
        return exact_moments(backend, catalog, plan)
    finally:
        backend.close()


def _expected(tables: Mapping[str, list[dict[str, Any]]], plan: LinearPlan) -> np.ndarray:
    """The moments read directly from the rows, by the rules in linear_plan's docstring."""
    persons = {row["person_id"]: row for row in tables["cpr"]}
    chosen: dict[int, dict[str, Any]] = {}
    for row in tables["lpr"]:
        if row["contact_type"] in ("inpatient", "emergency"):
            best = chosen.get(row["person_id"])
            if best is None or row["row_key"] < best["row_key"]:
                chosen[row["person_id"]] = row
    totals = np.zeros(len(plan.parts), dtype=np.int64)
    for pid, row in chosen.items():
        person = persons[pid]
        y = min(max(row["los_days"] if row["los_days"] is not None else 0, 0), 20)
        slots = [1, *(1 if person[i.column.column] == i.level else 0 for i in plan.indicators), y]
        for k, part in enumerate(plan.parts):
            totals[k] += slots[part.a] * slots[part.b]
    return totals


def test_moments_match_an_independent_reading(catalog: Catalog, tmp_path: Path) -> None:
    tables = random_dataset(seed=3, persons=300, catalog=catalog)
    plan = _plan(catalog)
    path = create_db(tmp_path / "full.duckdb", catalog, tables)
    got = _moments(path, catalog, plan)
    assert got[0] > 50  # enough persons that the check means something
    np.testing.assert_array_equal(got, _expected(tables, plan))


@pytest.mark.parametrize("removed", [1, 2, 5, 17])
def test_removing_a_person_moves_each_moment_within_its_sensitivity(
    catalog: Catalog, tmp_path: Path, removed: int
) -> None:
    tables = random_dataset(seed=removed, persons=40, catalog=catalog)
    # The removed person gets the largest values the clamps allow, so the bound is reached.
    tables["lpr"].append(
        {"person_id": removed, "row_key": 0, "contact_id": 1, "los_days": 10_000, "contact_type": "inpatient"}
    )
    neighbour = {name: [r for r in rows if r["person_id"] != removed] for name, rows in tables.items()}
    plan = _plan(catalog)
    full = _moments(create_db(tmp_path / "a.duckdb", catalog, tables), catalog, plan)
    less = _moments(create_db(tmp_path / "b.duckdb", catalog, neighbour), catalog, plan)
    change = np.abs(full - less)
    bounds = np.array([part.sensitivity.l1 for part in plan.parts])
    assert np.all(change <= bounds)
    y_squared = next(i for i, part in enumerate(plan.parts) if part.name == "y*y")
    assert change[y_squared] == bounds[y_squared] == 400  # the clamp, not the data's 10,000 days
    assert change[0] == 1  # n


def test_sensitivities_come_from_the_clamps(catalog: Catalog) -> None:
    plan = _plan(catalog)
    by_name = {part.name: part.sensitivity.l1 for part in plan.parts}
    assert by_name["n"] == 1 and by_name["sum y"] == 20 and by_name["y*y"] == 400
    assert by_name["cpr.sex=F*y"] == 20
    # Two indicators of one covariate are never both 1: no moment is released for them.
    regions = [i.name for i in plan.indicators if i.covariate == "cpr.region"]
    assert f"{regions[0]}*{regions[1]}" not in by_name


def test_the_moments_compile_for_spark(catalog: Catalog) -> None:
    from query_engine.compile_linear import compile_linear

    compiled = compile_linear(_plan(catalog), catalog, "spark")
    assert compiled.dialect == "spark" and "ROW_NUMBER() OVER (PARTITION BY" in compiled.sql
    assert compiled.sql.count(":p") == len(compiled.params) > 0
