"""Exact aggregates (sums, means, quantile scores) against a Python reference on a small database."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from query_engine.catalog import Catalog
from query_engine.engine import Engine
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query

CONTEXT = ProjectContext("pure")


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on a plain read-only connection to the test database."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def _lpr_by_region(db: Path) -> dict[Any, list[Any]]:
    rows = _rows(db, "SELECT c.region, l.los_days FROM lpr l JOIN cpr c USING (person_id)")
    out: dict[Any, list[Any]] = defaultdict(list)
    for region, los in rows:
        out[region].append(los)
    return out


def _ages_by_region(db: Path, reference: dt.date) -> dict[Any, list[int]]:
    rows = _rows(db, "SELECT region, birth_date, death_date FROM cpr")
    out: dict[Any, list[int]] = defaultdict(list)
    for region, birth, death in rows:
        at = death if death is not None and death < reference else reference
        out[region].append(at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day)))
    return out


def test_sum_and_mean_match_reference(small_db: Path, catalog: Catalog) -> None:
    by_region = _lpr_by_region(small_db)
    assert max(len(v) for v in by_region.values()) > 0

    def clamp(x: int | None) -> int:
        return min(max(0 if x is None else x, 0), 60)

    query = {
        "project": "p",
        "register": "lpr",
        "column": "los_days",
        "group_by": ["cpr.region"],
        "bounds": [0, 60],
    }
    with Engine.open(small_db) as engine:
        total = engine._exact_for_tests(parse_query({**query, "measure": "sum", "epsilon": 1}), CONTEXT)
        mean = engine._exact_for_tests(parse_query({**query, "measure": "mean", "epsilon": 1}), CONTEXT)
    regions = catalog.keyset("regions").values
    assert [k[0] for k in total.keys] == list(regions)
    # random_dataset gives at most 6 contacts per person, below c = 10: nothing is dropped.
    assert list(total.values["sum"]) == [sum(clamp(x) for x in by_region[r]) for r in regions]
    # A mean sums the values centred on the midpoint of the bounds [0, 60].
    assert list(mean.values["sum"]) == [sum(clamp(x) - 30 for x in by_region[r]) for r in regions]
    assert list(mean.values["count"]) == [len(by_region[r]) for r in regions]


def _scores(values: Sequence[float], candidates: Sequence[float], num: int, den: int) -> list[int]:
    return [
        abs((den - num) * sum(x < c for x in values) - num * sum(x > c for x in values)) for c in candidates
    ]


@pytest.mark.parametrize(
    "bounds, quantile, step",
    [
        pytest.param([0, 40], 0.5, 1, id="grid_step_1"),
        pytest.param([0, 365], 0.25, 4, id="grid_step_4"),
        pytest.param([3, 30], 0.9, 1, id="offset_grid"),
    ],
)
def test_quantile_scores_match_reference(
    small_db: Path, catalog: Catalog, bounds: list[int], quantile: float, step: int
) -> None:
    query = parse_query(
        {
            "project": "p",
            "measure": "quantile",
            "register": "lpr",
            "column": "los_days",
            "bounds": bounds,
            "quantile": quantile,
            "group_by": ["cpr.region"],
            "epsilon": 1,
        }
    )
    # A 100-point grid, so that [0, 365] needs a step of 4 (rows between grid points are scored too).
    with Engine.open(small_db, EngineSettings(max_quantile_candidates=100)) as engine:
        exact = engine._exact_for_tests(query, CONTEXT)
        plan = engine._prepare(query, CONTEXT).plan
    assert plan.quantile is not None and plan.quantile.step_units == step
    candidates = list(plan.quantile.candidate_values(1.0))
    assert candidates[0] == bounds[0] and candidates[-1] <= bounds[1]
    num, den = plan.quantile.numerator, plan.quantile.denominator
    by_region = _lpr_by_region(small_db)
    for (region,), row in zip(exact.keys, exact.values["scores"], strict=True):
        clamped = [min(max(0 if x is None else x, bounds[0]), bounds[1]) for x in by_region[region]]
        assert list(row) == _scores(clamped, candidates, num, den), region
    for i, (region,) in enumerate(exact.keys):
        clamped = [min(max(0 if x is None else x, bounds[0]), bounds[1]) for x in by_region[region]]
        assert list(exact.values["below"][i]) == [sum(x < c for x in clamped) for c in candidates], region
        assert exact.values["rows"][i] == len(clamped), region


def test_median_age_scores_and_age_derivation(small_db: Path, catalog: Catalog) -> None:
    query = parse_query(
        {"project": "p", "measure": "quantile", "column": "cpr.age", "group_by": ["cpr.region"], "epsilon": 1}
    )
    with Engine.open(small_db) as engine:
        exact = engine._exact_for_tests(query, CONTEXT)
        plan = engine._prepare(query, CONTEXT).plan
    assert plan.quantile is not None
    candidates = list(plan.quantile.candidate_values(1.0))
    ages = _ages_by_region(small_db, dt.date.fromisoformat(catalog.reference_date))
    for (region,), row in zip(exact.keys, exact.values["scores"], strict=True):
        clamped = [min(max(a, 0), 110) for a in ages[region]]
        assert list(row) == _scores(clamped, candidates, 1, 2)
    assert math.isclose(candidates[1] - candidates[0], plan.quantile.step_units)
