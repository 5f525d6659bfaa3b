"""Sensitivity, checked on the real compiled SQL: adding or removing one person (with all their rows,
however many and however extreme) changes each exact aggregate vector by no more than the plan's
declared Sensitivity, in L1, L2, Linf and L0.

The added person may also break the person grain: up to three rows in cpr, and in dar, which this
test's catalog declares person grain (one row per person), so "one row per person" is shown to be
enforced by the SQL, not trusted."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from query_engine.catalog import Catalog
from query_engine.compile import CompiledQuery, compile_plan
from query_engine.plan import Plan, plan_query
from query_engine.preaggregate import catalog_preaggregates
from query_engine.quantile_interval import end_scores
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from query_engine.validate import validate
from tests.query_engine.engine_fixtures import (
    build_fixture_catalog,
    create_tables,
    insert_rows,
    random_dataset,
)

CONTEXT = ProjectContext("zcdp", delta_available=True)
SETTINGS = EngineSettings(max_quantile_candidates=25)


def _q(measure: str, **fields: Any) -> dict[str, Any]:
    return {"project": "p", "measure": measure, "epsilon": 1.0, **fields}


def _c(column: str, op: str, value: Any) -> dict[str, Any]:
    return {"column": column, "op": op, "value": value}


QUERIES: dict[str, list[dict[str, Any]]] = {
    "count_persons": [
        _q("count_persons", group_by=["cpr.region"]),
        _q("count_persons", group_by=["cpr.sex", "cpr.age_band"], where=[_c("lpr.icd10", "prefix", "E1")]),
        _q(
            "count_persons",
            group_by=["lpr.icd10_chapter", "cpr.sex"],
            where=[_c("lmdb.atc", "prefix", "A10"), _c("lpr.contact_type", "!=", "emergency")],
        ),
        _q("count_persons", group_by=["lpr.icd10"], max_groups=3),
        _q("count_persons", group_by=["lpr.diagnosis_code"]),
    ],
    "count_rows": [
        _q("count_rows", register="lpr", group_by=["cpr.region"]),
        _q("count_rows", register="lpr", group_by=["lpr.year", "lpr.contact_type"], max_rows=4, max_groups=7),
        _q("count_rows", register="lmdb", group_by=["lmdb.atc_level_2"], where=[_c("cpr.sex", "=", "F")]),
        _q("count_rows", register="lpr", group_by=["lpr.diagnosis_code"], max_groups=2, max_rows=3),
        _q("count_rows", register="ind"),
    ],
    "sum": [
        _q("sum", register="lpr", column="los_days", group_by=["cpr.region"]),
        _q(
            "sum", register="ind", column="disposable_income", group_by=["ind.year"], max_groups=3, max_rows=2
        ),
        _q("sum", register="lmdb", column="ddd", group_by=["lmdb.atc_level_1"], bounds=[0.5, 100.25]),
    ],
    "mean": [
        _q("mean", register="lmdb", column="ddd", group_by=["lmdb.atc_level_1"], max_groups=2),
        _q("mean", column="cpr.age", group_by=["cpr.region"], where=[_c("lmdb.atc", "=", "A10BA02")]),
        _q("mean", register="ind", column="disposable_income", bounds=[-1000, 500000]),
        # Centred sums: an odd width in units, and bounds between grid points (rounded like SQL).
        _q("mean", register="lmdb", column="ddd", bounds=[0.5, 100.25], group_by=["cpr.sex"], max_rows=7),
        _q("mean", register="lmdb", column="ddd", bounds=[0.004, 0.015], max_rows=3),
        _q("mean", register="lpr", column="los_days", bounds=[3, 365], group_by=["lpr.year", "cpr.sex"]),
    ],
    # Person-grain registers with a person who has several rows there (cpr, and dar declared person).
    "person_grain": [
        _q("count_rows", register="cpr", group_by=["cpr.region", "cpr.sex"]),
        _q("count_rows", register="dar", group_by=["dar.cause_chapter"]),
        _q("count_persons", register="dar", group_by=["dar.year", "cpr.region"]),
        _q("count_rows", register="lpr", group_by=["cpr.region"], max_rows=200),
        _q("mean", column="cpr.age", group_by=["cpr.sex"]),
        _q("quantile", column="cpr.age", group_by=["cpr.region"]),
    ],
    # Read from the build-time pre-aggregate (query_engine.preaggregate), rebuilt for each dataset.
    "preaggregated": [
        _q(
            "count_rows",
            register="lpr",
            group_by=["cpr.region", "lpr.icd10_chapter"],
            max_groups=2,
            max_rows=3,
        ),
        _q("count_rows", register="lpr", group_by=["lpr.icd10_chapter"]),
        _q("count_persons", group_by=["lpr.icd10_chapter", "cpr.sex"], max_groups=1),
    ],
    "quantile": [
        _q("quantile", register="ind", column="disposable_income", group_by=["cpr.region"]),
        _q(
            "quantile",
            register="lpr",
            column="los_days",
            group_by=["lpr.contact_type"],
            quantile=0.25,
            max_rows=3,
            max_groups=2,
        ),
        _q("quantile", column="cpr.age", quantile=0.9),
        _q("quantile", register="lmdb", column="ddd", bounds=[0, 100], quantile=0.5, max_rows=5),
    ],
}

# G from the groups one person can reach: person-level columns (cpr.sex, cpr.region) add no factor, so
# these plans have G = the grain columns' key sets, below max_groups = 50 and the cells. They run with
# the queries of their measure (one dataset per example).
REACH: list[dict[str, Any]] = [
    _q("count_rows", register="lpr", group_by=["lpr.year", "cpr.sex"], max_groups=50),
    _q("count_persons", group_by=["lpr.contact_type", "cpr.region", "cpr.sex"], max_groups=50),
    _q("sum", register="lmdb", column="ddd", group_by=["lmdb.atc_level_1", "cpr.sex"], max_groups=50),
    _q(
        "mean",
        register="lpr",
        column="los_days",
        group_by=["lpr.contact_type", "cpr.region"],
        max_groups=50,
    ),
    _q("count_rows", register="lpr", group_by=["lpr.diagnosis_code", "cpr.sex"], max_groups=50),
]


@dataclass(frozen=True)
class Case:
    plan: Plan
    compiled: CompiledQuery
    reach: bool = False


def _dar_person_grain(catalog: Catalog) -> Catalog:
    """The fixture catalog with dar declared grain person (one death per person)."""
    registers = tuple(
        dataclasses.replace(r, grain="person") if r.name == "dar" else r for r in catalog.registers
    )
    return dataclasses.replace(catalog, registers=registers)


def _preaggregate_tables(catalog: Catalog) -> frozenset[str]:
    return frozenset(p.table for p in catalog_preaggregates(catalog))


def _refresh_preaggregates(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    """The pre-aggregates of the current rows, by the SQL the build runs."""
    for pre in catalog_preaggregates(catalog):
        con.execute(f'CREATE OR REPLACE TABLE "{pre.table}" AS {pre.select_sql}')


@cache
def _world() -> tuple[Catalog, duckdb.DuckDBPyConnection, dict[str, list[Case]]]:
    import tempfile

    catalog = _dar_person_grain(build_fixture_catalog(Path(tempfile.mkdtemp(prefix="sens-catalog-"))))
    con = duckdb.connect()
    create_tables(con, catalog)
    cases: dict[str, list[Case]] = {}
    listed = [(measure, data, False) for measure, queries in QUERIES.items() for data in queries]
    for measure, data, reach in [*listed, *((data["measure"], data, True) for data in REACH)]:
        query = parse_query(data)
        validate(query, catalog, CONTEXT, SETTINGS)
        plan = plan_query(query, catalog, CONTEXT, SETTINGS)
        available = _preaggregate_tables(catalog) if measure == "preaggregated" else frozenset()
        compiled = compile_plan(plan, catalog, preaggregates=available)
        assert (measure == "preaggregated") == any(t in compiled.sql for t in _preaggregate_tables(catalog))
        cases.setdefault(measure, []).append(Case(plan, compiled, reach))
    return catalog, con, cases


EXTREME_LOS = [None, -5, 0, 1, 365, 366, 10**9, -(10**9)]
EXTREME_INCOME = [None, -(10**12), -200_000, 0, 2_000_000, 10**12]
EXTREME_DDD = [None, float("nan"), float("inf"), -float("inf"), -1.0, 0.004, 0.005, 999.995, 1e300]
DIAGNOSES = ["DE11", "DE110", "DX99", "", None]


def adversary(
    pid: int, seed: int, rows: int, catalog: Catalog, cpr_rows: int
) -> dict[str, list[dict[str, Any]]]:
    """One person with ``rows`` rows in each event register, values drawn from the extremes, and
    ``cpr_rows`` rows in each person-grain register (cpr, dar): more than one breaks the grain."""
    rng = random.Random(seed)
    icd10 = [*catalog.keyset("icd10").values, "ZZZ", None]
    atc = [*catalog.keyset("atc5").values, "A10XX99", None]
    day = lambda: dt.date(2009, 6, 1) + dt.timedelta(days=rng.randrange(0, 365 * 17))  # noqa: E731
    key = iter(rng.sample(range(10**9, 2 * 10**9), 4 * rows + 2 * cpr_rows))
    tables: dict[str, list[dict[str, Any]]] = {"cpr": [], "lpr": [], "lmdb": [], "ind": [], "dar": []}
    for _ in range(cpr_rows):
        tables["dar"].append(
            {
                "person_id": pid,
                "row_key": next(key),
                "death_date": rng.choice([day(), None]),
                "cause_icd10": rng.choice(icd10),
            }
        )
        birth = rng.choice([dt.date(1900, 1, 1), dt.date(2024, 12, 31), dt.date(1980, 2, 29), day()])
        tables["cpr"].append(
            {
                "person_id": pid,
                "row_key": next(key),
                "sex": rng.choice(["F", "M", None]),
                "birth_date": birth,
                "region": rng.choice([*catalog.keyset("regions").values, "Atlantis", None]),
                "municipality": "101",
                "death_date": rng.choice([None, dt.date(2015, 5, 5), dt.date(1800, 1, 1)]),
            }
        )
    for _ in range(rows):
        tables["lpr"].append(
            {
                "person_id": pid,
                "row_key": next(key),
                "contact_id": 1,
                "admission_date": rng.choice([day(), None]),
                "los_days": rng.choice(EXTREME_LOS),
                "icd10": rng.choice(icd10),
                "diagnosis_code": rng.choice(DIAGNOSES),
                "contact_type": rng.choice(["inpatient", "outpatient", "emergency", None]),
                "hospital_region": "Hovedstaden",
            }
        )
        tables["lmdb"].append(
            {
                "person_id": pid,
                "row_key": next(key),
                "date": day(),
                "atc": rng.choice(atc),
                "ddd": rng.choice(EXTREME_DDD),
                "packages": 1,
            }
        )
        tables["ind"].append(
            {
                "person_id": pid,
                "row_key": next(key),
                "year": rng.choice([2014, 2015, 2020, 2024, None]),
                "disposable_income": rng.choice(EXTREME_INCOME),
            }
        )
    return tables


def _load(con: duckdb.DuckDBPyConnection, catalog: Catalog, tables: dict[str, list[dict[str, Any]]]) -> None:
    for register in catalog.registers:
        con.execute(f'DELETE FROM "{register.name}"')
    insert_rows(con, catalog, tables)


def _run(con: duckdb.DuckDBPyConnection, compiled: CompiledQuery) -> pa.Table:
    return con.sql(compiled.sql, params=list(compiled.params)).to_arrow_table()


def _vectors(plan: Plan, table: pa.Table) -> dict[str, dict[tuple[Any, ...], int]]:
    """Each output as {cell key: value} (quantile: {(cell..., j): score})."""
    keys = [f"g{i}" for i in range(len(plan.groups))]
    rows = table.to_pylist()
    out: dict[str, dict[tuple[Any, ...], int]] = {}
    for output in plan.outputs:
        if output.name in ("lower_scores", "upper_scores"):
            continue
        column = {"count": "n", "sum": "s", "scores": "score"}[output.name]
        extra = ["j"] if output.name == "scores" else []
        out[output.name] = {tuple(r[k] for k in keys + extra): int(r[column]) for r in rows}
    if plan.quantile is not None:
        out.update(_end_score_vectors(plan, rows, keys))
    return out


def _end_score_vectors(
    plan: Plan, rows: list[dict[str, Any]], keys: list[str]
) -> dict[str, dict[tuple[Any, ...], int]]:
    """The interval ends' scores (engine code on the SQL's ``below``/``rows``), at small shifts."""
    assert plan.quantile is not None
    m = plan.quantile.candidates
    cells = [tuple(r[k] for k in keys) for r in rows[::m]]
    below = np.array([r["below"] for r in rows], dtype=np.int64).reshape(len(cells), m)
    counts = np.array([r["n_rows"] for r in rows[::m]], dtype=np.int64)
    out: dict[str, dict[tuple[Any, ...], int]] = {"lower_scores": {}, "upper_scores": {}}
    for shift in (1, 7):
        lower, upper = end_scores(below, counts, plan.quantile.numerator, plan.quantile.denominator, shift)
        for name, matrix in (("lower_scores", lower), ("upper_scores", upper)):
            for cell, row in zip(cells, matrix.tolist(), strict=True):
                out[name].update({(*cell, shift, j): int(v) for j, v in enumerate(row)})
    return out


def _check(plan: Plan, before: pa.Table, after: pa.Table) -> None:
    if not plan.partition_selection:
        assert before.num_rows == after.num_rows, "public keys must not depend on the data"
        assert before.select([f"g{i}" for i in range(len(plan.groups))]).equals(
            after.select([f"g{i}" for i in range(len(plan.groups))])
        )
    vb, va = _vectors(plan, before), _vectors(plan, after)
    for output in plan.outputs:
        b, a = vb[output.name], va[output.name]
        cells = sorted(set(b) | set(a), key=repr)
        diff = np.array([a.get(k, 0) - b.get(k, 0) for k in cells], dtype=np.int64)
        sens = output.sensitivity
        if output.name in ("scores", "lower_scores", "upper_scores"):
            width = 1 if output.name == "scores" else 2  # (cell..., j) or (cell..., shift, j)
            changed_cells = {k[:-width] for k, d in zip(cells, diff, strict=True) if d != 0}
            assert np.abs(diff).max(initial=0) <= sens.linf, (plan, diff)
            assert len(changed_cells) <= sens.l0
            continue
        assert np.abs(diff).sum() <= sens.l1, (output.name, diff, sens)
        assert math.sqrt(float((diff.astype(float) ** 2).sum())) <= sens.l2 * (1 + 1e-12), (diff, sens)
        assert np.abs(diff).max(initial=0) <= sens.linf, (diff, sens)
        assert np.count_nonzero(diff) <= sens.l0, (diff, sens)


neighbours = st.tuples(
    st.integers(0, 2**32 - 1),  # base dataset seed
    st.integers(0, 6),  # base persons
    st.integers(0, 2**32 - 1),  # adversary seed
    st.one_of(st.integers(0, 12), st.integers(13, 3000)),  # adversary rows per register
    st.integers(0, 3),  # adversary's rows in the person-grain registers cpr and dar
)


def _check_measure(measure: str, draw: tuple[int, int, int, int, int]) -> None:
    catalog, con, cases = _world()
    base_seed, persons, adv_seed, rows, cpr_rows = draw
    base = random_dataset(base_seed, persons, catalog)
    _load(con, catalog, base)
    _refresh_preaggregates(con, catalog)
    before = [_run(con, case.compiled) for case in cases[measure]]
    insert_rows(con, catalog, adversary(10_000, adv_seed, rows, catalog, cpr_rows))
    _refresh_preaggregates(con, catalog)
    after = [_run(con, case.compiled) for case in cases[measure]]
    for case, b, a in zip(cases[measure], before, after, strict=True):
        _check(case.plan, b, a)


_settings = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("measure", list(QUERIES))
def test_declared_sensitivity_bounds_one_person(measure: str) -> None:
    @_settings
    @given(neighbours)
    def run(draw: tuple[int, int, int, int, int]) -> None:
        _check_measure(measure, draw)

    run()


def test_reach_cases_use_the_reduced_g() -> None:
    """The "reach" plans pay for the groups a person can reach, fewer than max_groups and the cells."""
    _, _, cases = _world()
    reach = [case for measure in cases.values() for case in measure if case.reach]
    assert len(reach) == len(REACH)
    for case in reach:
        bounding, plan = case.plan.bounding, case.plan
        assert bounding.bound_groups and bounding.max_groups < 50, plan.groups
        assert plan.partition_selection or bounding.max_groups < plan.cells, plan.groups
        assert all(o.sensitivity.l0 == bounding.max_groups for o in plan.outputs)


def test_bound_is_reached_by_a_heavy_person() -> None:
    """The bounding is not vacuous: a person with many rows reaches the declared L1 of a count."""
    catalog, con, cases = _world()
    _load(con, catalog, {})
    case = cases["count_rows"][0]  # lpr rows by region: c = 10 rows, one group
    rows = adversary(1, 3, 500, catalog, cpr_rows=1)
    rows["cpr"][0]["region"] = "Hovedstaden"
    insert_rows(con, catalog, rows)
    total = sum(_vectors(case.plan, _run(con, case.compiled))["count"].values())
    assert total == case.plan.outputs[0].sensitivity.l1 == 10
