"""The build-time pre-aggregate (query_engine.preaggregate): same exact aggregates as the register path
for every G, c and person-attribute grouping it answers, used only where it answers exactly, and
never used once its register changed or its definition differs from the catalog's."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.build_preaggregate import _write_preaggregates
from query_engine.catalog import Catalog
from query_engine.compile import CompiledQuery
from query_engine.engine import Engine
from query_engine.preaggregate import PREAGGREGATE_MANIFEST, catalog_preaggregates
from query_engine.spec import ProjectContext, parse_query
from tests.query_engine.engine_fixtures import create_db, random_dataset

CONTEXT = ProjectContext("zcdp", delta_available=True)
TABLE = "__preagg_lpr_icd10_chapter"
SLICED = "__preagg_lpr_year_icd10_chapter"  # by person, year and chapter
TABLES = frozenset({TABLE, SLICED})
YEAR_FILTERS = {
    "year_equal": [{"column": "lpr.year", "op": "=", "value": 2020}],
    "years_in": [{"column": "lpr.year", "op": "in", "value": [2016, 2019, 2023]}],
    "years_between": [{"column": "lpr.year", "op": "between", "value": [2012, 2015]}],
    "years_from_and_not": [
        {"column": "lpr.year", "op": ">=", "value": 2018},
        {"column": "lpr.year", "op": "!=", "value": 2021},
    ],
}
GROUPINGS = {
    "chapter": ["lpr.icd10_chapter"],
    "region_chapter": ["cpr.region", "lpr.icd10_chapter"],
    "chapter_sex_age_band": ["lpr.icd10_chapter", "cpr.sex", "cpr.age_band"],
}


def _query(measure: str, group_by: list[str], **fields: Any) -> Any:
    body = {"project": "p", "measure": measure, "register": "lpr", "group_by": group_by, "epsilon": 1.0}
    return parse_query({**body, **fields})


def _both(engine: Engine, query: Any) -> tuple[Any, Any, str]:
    """Exact aggregates with the pre-aggregate and without it (same backend), and the first's SQL."""
    plain = Engine(engine.backend, engine.catalog, engine.settings)
    sql = engine.compiled(query, CONTEXT).sql
    return engine._exact_for_tests(query, CONTEXT), plain._exact_for_tests(query, CONTEXT), sql


def _as_lists(exact: Any) -> dict[str, Any]:
    return {"keys": exact.keys, **{name: list(map(int, values)) for name, values in exact.values.items()}}


@pytest.fixture(scope="module")
def engine(generated_db: Path) -> Any:
    with Engine.open(generated_db) as opened:
        yield opened


def test_build_writes_a_current_preaggregate_with_unique_group_ranks(engine: Engine) -> None:
    assert engine.preaggregates == TABLES
    run = engine.backend.execute

    def scalar(sql: str) -> int:
        return int(run(CompiledQuery(sql, (), "duckdb")).column(0)[0].as_py())

    # Row keys are unique, so a person's groups have distinct smallest row_keys: the rank has no ties.
    assert scalar('SELECT count(*) - count(DISTINCT "row_key") FROM "lpr"') == 0
    assert (
        scalar(f"SELECT count(*) FROM (SELECT pid, grk FROM {TABLE} GROUP BY ALL HAVING count(*) > 1)") == 0
    )
    # Ranks run 1..k within each person.
    ranks = f"SELECT pid FROM {TABLE} GROUP BY pid HAVING min(gn) <> 1 OR max(gn) <> count(*)"
    assert scalar(f"SELECT count(*) FROM ({ranks})") == 0


@pytest.mark.parametrize("grouping", list(GROUPINGS))
@pytest.mark.parametrize(("max_groups", "max_rows"), [(1, 1), (2, 3), (3, 1), (5, 10), (7, 50)])
def test_count_rows_from_the_preaggregate_equals_the_register_path(
    engine: Engine, grouping: str, max_groups: int, max_rows: int
) -> None:
    query = _query("count_rows", GROUPINGS[grouping], max_groups=max_groups, max_rows=max_rows)
    with_pre, without, sql = _both(engine, query)
    assert TABLE in sql
    assert _as_lists(with_pre) == _as_lists(without)
    assert sum(sum(map(int, v)) for v in without.values.values()) > 0


@pytest.mark.parametrize("grouping", ["chapter", "region_chapter"])
@pytest.mark.parametrize("max_groups", [1, 2, 4, 7])
def test_count_persons_from_the_preaggregate_equals_the_register_path(
    engine: Engine, grouping: str, max_groups: int
) -> None:
    query = _query("count_persons", GROUPINGS[grouping], max_groups=max_groups)
    with_pre, without, sql = _both(engine, query)
    assert TABLE in sql
    assert _as_lists(with_pre) == _as_lists(without)


@pytest.mark.parametrize("years", list(YEAR_FILTERS))
@pytest.mark.parametrize("grouping", ["chapter", "region_chapter"])
@pytest.mark.parametrize(
    ("measure", "max_groups", "max_rows"),
    [("count_rows", 1, 1), ("count_rows", 3, 2), ("count_rows", 7, 50), ("count_persons", 2, 1)],
)
def test_year_filtered_counts_from_the_sliced_preaggregate_equal_the_register_path(
    engine: Engine, years: str, grouping: str, measure: str, max_groups: int, max_rows: int
) -> None:
    extra = {"max_rows": max_rows} if measure == "count_rows" else {}
    query = _query(measure, GROUPINGS[grouping], where=YEAR_FILTERS[years], max_groups=max_groups, **extra)
    with_pre, without, sql = _both(engine, query)
    assert SLICED in sql and f'"{TABLE}"' not in sql and '"lpr"' not in sql
    assert ("DENSE_RANK" in sql) == (years != "year_equal")  # one year: the stored rank in the slice
    assert _as_lists(with_pre) == _as_lists(without)
    assert sum(sum(map(int, v)) for v in without.values.values()) > 0


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(
            {"where": [{"column": "lpr.contact_type", "op": "=", "value": "inpatient"}]}, id="row_filter"
        ),
        pytest.param(
            {
                "where": [
                    *YEAR_FILTERS["year_equal"],
                    {"column": "lpr.contact_type", "op": "=", "value": "inpatient"},
                ]
            },
            id="year_and_another_row_filter",
        ),
        pytest.param({"where": [{"column": "cpr.sex", "op": "=", "value": "F"}]}, id="person_filter"),
        pytest.param({"where": [{"column": "lmdb.atc", "op": "prefix", "value": "A10"}]}, id="cohort"),
        pytest.param({"group_by": ["lpr.icd10_chapter", "lpr.year"]}, id="second_lpr_group"),
        pytest.param({"measure": "sum", "column": "los_days", "bounds": [0, 30]}, id="sum"),
    ],
)
def test_preaggregate_is_not_used_where_it_does_not_answer_exactly(engine: Engine, fields: Any) -> None:
    body = {"measure": "count_rows", "group_by": ["cpr.region", "lpr.icd10_chapter"], **fields}
    query = _query(body.pop("measure"), body.pop("group_by"), **body)
    with_pre, without, sql = _both(engine, query)
    assert "__preagg" not in sql
    assert _as_lists(with_pre) == _as_lists(without)


def _reopened_preaggregates(db: Path) -> frozenset[str]:
    with Engine.open(db) as opened:
        return opened.preaggregates


@pytest.mark.parametrize(
    "change",
    [
        pytest.param('DELETE FROM "lpr" WHERE "row_key" % 97 = 0', id="rows_removed"),
        pytest.param(
            'INSERT INTO "lpr" SELECT * REPLACE ("row_key" + 1000000000 AS "row_key") FROM "lpr" LIMIT 1',
            id="row_added",
        ),
        pytest.param(f"UPDATE {PREAGGREGATE_MANIFEST} SET definition_sha256 = 'other'", id="definition"),
        pytest.param(f"DELETE FROM {PREAGGREGATE_MANIFEST}", id="not_in_manifest"),
        pytest.param(f"DROP TABLE {PREAGGREGATE_MANIFEST}", id="no_manifest"),
    ],
)
def test_a_stale_preaggregate_is_never_used(generated_db: Path, tmp_path: Path, change: str) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(generated_db, db)
    assert _reopened_preaggregates(db) == TABLES
    con = duckdb.connect(str(db))
    try:
        con.execute(change)
    finally:
        con.close()
    assert _reopened_preaggregates(db) == frozenset()
    with Engine.open(db) as opened:
        query = _query("count_rows", GROUPINGS["region_chapter"])
        assert "__preagg" not in opened.compiled(query, CONTEXT).sql


def _random_db(path: Path, catalog: Catalog, seed: int, persons: int) -> Path:
    """A random small database (the fixture generator) with the build's own pre-aggregate step."""
    create_db(path, catalog, random_dataset(seed=seed, persons=persons, catalog=catalog))
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{path}' AS out")
        _write_preaggregates(con, catalog)
        con.execute("DETACH out")
    finally:
        con.close()
    return path


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    max_groups=st.integers(1, 7),
    max_rows=st.integers(1, 12),
    measure=st.sampled_from(["count_rows", "count_persons"]),
    grouping=st.sampled_from(list(GROUPINGS)),
    years=st.sampled_from([None, *YEAR_FILTERS]),
)
def test_random_data_same_exact_aggregates_either_path(
    catalog: Catalog,
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    max_groups: int,
    max_rows: int,
    measure: str,
    grouping: str,
    years: str | None,
) -> None:
    db = _random_db(tmp_path_factory.mktemp("pre") / "r.duckdb", catalog, seed, persons=60)
    fields: dict[str, Any] = {"max_groups": max_groups}
    if years is not None:
        fields["where"] = YEAR_FILTERS[years]
    if measure == "count_rows":
        fields["max_rows"] = max_rows
    with Engine.open(db) as opened:
        assert opened.preaggregates == frozenset(p.table for p in catalog_preaggregates(catalog))
        with_pre, without, sql = _both(opened, _query(measure, GROUPINGS[grouping], **fields))
    assert (TABLE if years is None else SLICED) in sql
    assert _as_lists(with_pre) == _as_lists(without)


def test_the_test_can_fail_a_wrong_rank_changes_the_answer(generated_db: Path, tmp_path: Path) -> None:
    """Ranking groups by the group key instead of the row_key would give another table: the
    comparison above detects a pre-aggregate that keeps different groups."""
    db = tmp_path / "copy.duckdb"
    shutil.copy(generated_db, db)
    con = duckdb.connect(str(db))
    try:
        con.execute(
            f"UPDATE {TABLE} SET gn = r FROM (SELECT pid AS p, g AS k, dense_rank() OVER "
            f"(PARTITION BY pid ORDER BY g DESC) AS r FROM {TABLE}) WHERE pid = p AND g = k"
        )
    finally:
        con.close()
    with Engine.open(db) as opened:
        with_pre, without, sql = _both(opened, _query("count_rows", GROUPINGS["chapter"], max_groups=1))
    assert TABLE in sql
    assert _as_lists(with_pre) != _as_lists(without)
