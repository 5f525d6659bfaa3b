"""Spark and DuckDB return identical exact aggregates (before noise) for the same plan on the same data.

Each case compiles one query for both dialects and compares the complete result tables (keys, counts,
fixed-point sums, quantile scores, in order). Two datasets: the real generator's 3,000 persons (Spark
reads its Parquet files, DuckDB the database built from them) and the engine's small adversarial
dataset (NaN and NULL values, extreme incomes), exported from DuckDB with ``export_parquet``.
Cases marked ``tight`` also show that their contribution bounds really drop rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest

from query_engine.backends.spark_backend import SparkBackend
from query_engine.engine import Engine
from query_engine.spec import ProjectContext, Query, parse_query
from tests.query_engine.spark_fixtures import FAST_SQL_CONF, duckdb_beside_spark, spark_session

# Partition selection needs delta; every other query runs the same in this context.
CONTEXT = ProjectContext("zcdp", delta_available=True)


def _c(column: str, op: str, value: Any) -> dict[str, Any]:
    return {"column": column, "op": op, "value": value}


def _q(measure: str, *, tight: bool = False, **fields: Any) -> Any:
    return {"measure": measure, "tight": tight, **fields}


E11 = _c("lpr.icd10", "prefix", "E11")
METFORMIN = _c("lmdb.atc", "=", "A10BA02")

GENERATED_CASES = [
    # --- count_persons --------------------------------------------------------------------------
    pytest.param(_q("count_persons", group_by=["cpr.region"]), id="persons_by_region"),
    pytest.param(_q("count_persons", group_by=["cpr.sex", "cpr.age_band"]), id="persons_by_sex_age_band"),
    pytest.param(
        _q("count_persons", group_by=["cpr.age_band_5", "cpr.vital_status"]),
        id="persons_by_age_band_5_vital_status_null_death",
    ),
    pytest.param(_q("count_persons", group_by=["cpr.birth_year"]), id="persons_by_birth_year"),
    pytest.param(
        _q("count_persons", where=[E11], group_by=["cpr.region", "cpr.sex"]), id="persons_e11_by_region_sex"
    ),
    pytest.param(
        _q("count_persons", where=[E11, METFORMIN, _c("cpr.sex", "!=", "F")], group_by=["cpr.municipality"]),
        id="persons_cohorts_lpr_lmdb_by_municipality",
    ),
    pytest.param(_q("count_persons", group_by=["lpr.icd10_chapter"]), id="persons_by_icd10_chapter"),
    pytest.param(
        _q("count_persons", tight=True, group_by=["lpr.icd10_chapter"], max_groups=1),
        id="persons_by_icd10_chapter_one_group",
    ),
    pytest.param(
        _q("count_persons", tight=True, group_by=["lmdb.atc_level_1", "cpr.region"], max_groups=2),
        id="persons_by_atc1_region_two_groups",
    ),
    pytest.param(
        _q(
            "count_persons",
            where=[_c("lpr.admission_date", "between", ["2015-01-01", "2019-12-31"])],
            group_by=["lpr.year", "lpr.contact_type"],
            max_groups=3,
            tight=True,
        ),
        id="persons_by_year_contact_type_dates_between",
    ),
    pytest.param(_q("count_persons", group_by=["dar.cause_chapter"]), id="persons_by_death_cause_chapter"),
    pytest.param(
        _q("count_persons", tight=True, group_by=["udda.isced_level", "udda.year"], max_groups=2),
        id="persons_by_isced_year_integer_keys",
    ),
    pytest.param(
        _q("count_persons", where=[_c("lpr.icd10", "prefix", "E1")], group_by=["lpr.diagnosis_code"]),
        id="partition_selection_persons_by_diagnosis_code",
    ),
    # --- count_rows -----------------------------------------------------------------------------
    pytest.param(
        _q("count_rows", tight=True, register="lpr", group_by=["cpr.region"], max_rows=3),
        id="contacts_by_region_person_level_group",
    ),
    pytest.param(
        _q(
            "count_rows",
            tight=True,
            register="lpr",
            group_by=["lpr.contact_type", "lpr.hospital_region"],
            max_rows=1,
            max_groups=2,
        ),
        id="contacts_by_type_hospital_region_c1_g2",
    ),
    pytest.param(
        _q(
            "count_rows",
            tight=True,
            register="lpr",
            where=[_c("lpr.contact_type", "in", ["inpatient", "emergency"])],
            group_by=["lpr.icd10_chapter", "lpr.year"],
            max_rows=3,
            max_groups=4,
        ),
        id="contacts_by_chapter_year_in_filter",
    ),
    pytest.param(
        _q(
            "count_rows",
            tight=True,
            register="lmdb",
            where=[_c("lmdb.date", ">=", "2020-01-01")],
            group_by=["lmdb.atc_level_2"],
            max_rows=2,
        ),
        id="prescriptions_by_atc2_since_2020",
    ),
    pytest.param(
        _q(
            "count_rows",
            register="lmdb",
            where=[_c("cpr.sex", "=", "M"), _c("lpr.icd10", "prefix", "I")],
            group_by=["lmdb.atc_level_3"],
        ),
        id="prescriptions_by_atc3_cohort_men_with_i_diagnosis",
    ),
    pytest.param(
        _q(
            "count_rows",
            tight=True,
            register="lmdb",
            where=[_c("lmdb.atc", "prefix", "A10")],
            group_by=["lmdb.atc_level_4", "cpr.age_band"],
            max_rows=1,
            max_groups=1,
        ),
        id="prescriptions_a10_by_atc4_age_band_c1_g1",
    ),
    pytest.param(_q("count_rows", register="ind", group_by=["ind.year"]), id="income_rows_by_year"),
    # DuckDB reads the build's pre-aggregate here, Spark the lpr rows (query_engine.preaggregate).
    pytest.param(
        _q(
            "count_rows",
            tight=True,
            register="lpr",
            group_by=["cpr.region", "lpr.icd10_chapter"],
            max_rows=2,
            max_groups=2,
        ),
        id="contacts_by_region_chapter_preaggregated",
    ),
    pytest.param(
        _q("count_rows", tight=True, register="lpr", max_rows=1), id="contacts_total_one_per_person"
    ),
    pytest.param(
        _q(
            "count_rows",
            register="lpr",
            where=[_c("lpr.diagnosis_code", "prefix", "DE1")],
            max_rows=2,
            group_by=["lpr.diagnosis_code"],
            max_groups=2,
        ),
        id="partition_selection_contacts_by_diagnosis_code",
    ),
    # --- sum ------------------------------------------------------------------------------------
    pytest.param(
        _q("sum", register="lpr", column="los_days", bounds=[0, 60], group_by=["cpr.region"]),
        id="bed_days_by_region_null_los",
    ),
    pytest.param(
        _q(
            "sum",
            tight=True,
            register="lpr",
            column="los_days",
            bounds=[1, 30],
            group_by=["lpr.icd10_chapter"],
            max_rows=1,
            max_groups=1,
        ),
        id="bed_days_by_chapter_c1_g1",
    ),
    pytest.param(
        _q("sum", tight=True, register="lmdb", column="ddd", group_by=["lmdb.atc_level_1"], max_rows=3),
        id="ddd_by_atc1_fixed_point_float",
    ),
    pytest.param(
        _q("sum", register="ind", column="disposable_income", group_by=["ind.year"], max_groups=10),
        id="income_by_year_negative_bounds",
    ),
    pytest.param(_q("sum", register="lmdb", column="packages"), id="packages_total_no_groups"),
    pytest.param(_q("sum", column="cpr.age", group_by=["cpr.region"]), id="age_sum_by_region_derived_value"),
    # --- mean -----------------------------------------------------------------------------------
    pytest.param(
        _q("mean", column="cpr.age", where=[METFORMIN], group_by=["cpr.region"]),
        id="mean_age_metformin_by_region",
    ),
    pytest.param(
        _q(
            "mean",
            tight=True,
            register="lmdb",
            column="ddd",
            bounds=[0, 100],
            group_by=["lmdb.year"],
            max_rows=2,
            max_groups=2,
        ),
        id="mean_ddd_by_year_c2_g2",
    ),
    pytest.param(
        _q(
            "mean",
            register="lpr",
            column="los_days",
            where=[_c("lpr.los_days", ">", 2)],
            group_by=["lpr.contact_type"],
        ),
        id="mean_los_by_contact_type",
    ),
    pytest.param(
        _q(
            "mean",
            register="ind",
            column="disposable_income",
            where=[_c("ind.year", "in", [2020, 2021])],
            group_by=["cpr.sex"],
        ),
        id="mean_income_by_sex_two_years",
    ),
    # --- quantile -------------------------------------------------------------------------------
    pytest.param(
        _q(
            "quantile",
            register="ind",
            column="disposable_income",
            where=[_c("ind.year", "=", 2023)],
            group_by=["cpr.region"],
        ),
        id="median_income_by_region",
    ),
    pytest.param(
        _q(
            "quantile",
            tight=True,
            register="lpr",
            column="los_days",
            bounds=[0, 40],
            quantile=0.9,
            group_by=["lpr.icd10_chapter"],
            max_rows=2,
            max_groups=2,
        ),
        id="p90_los_by_chapter_c2_g2",
    ),
    pytest.param(
        _q("quantile", register="lmdb", column="ddd", bounds=[0, 200], quantile=0.25),
        id="p25_ddd_float_no_groups",
    ),
    pytest.param(
        _q("quantile", column="cpr.age", where=[E11], group_by=["cpr.sex"]), id="median_age_e11_by_sex"
    ),
]

SMALL_CASES = [
    pytest.param(
        _q("sum", register="lmdb", column="ddd", bounds=[0, 100], group_by=["lmdb.atc_level_1"]),
        id="small_ddd_nan_null_huge",
    ),
    pytest.param(
        _q("mean", register="lmdb", column="ddd", bounds=[0.5, 99.5], group_by=["cpr.region"]),
        id="small_mean_ddd_nan",
    ),
    pytest.param(
        _q("quantile", register="lmdb", column="ddd", bounds=[0, 100], quantile=0.5),
        id="small_median_ddd_nan",
    ),
    pytest.param(
        _q("sum", register="ind", column="disposable_income", group_by=["ind.year"]),
        id="small_income_clamped",
    ),
    pytest.param(
        _q("quantile", register="lpr", column="los_days", bounds=[0, 40], group_by=["cpr.region"]),
        id="small_median_los_null",
    ),
    pytest.param(
        _q("count_persons", group_by=["cpr.vital_status", "cpr.age_band"]), id="small_persons_vital_age"
    ),
    pytest.param(
        _q("count_persons", group_by=["lpr.diagnosis_code"]), id="small_partition_selection_open_keys"
    ),
]


def _query(case: dict[str, Any]) -> Query:
    fields = {k: v for k, v in case.items() if k != "tight"}
    return parse_query({"project": "parity", "rho": 0.5, **fields})


def _columns(table: pa.Table) -> dict[str, list[Any]]:
    return {name: table.column(name).to_pylist() for name in table.column_names}


@pytest.fixture(scope="module")
def generated(generated_db: Path) -> Iterator[tuple[Engine, SparkBackend]]:
    """DuckDB on the built database and Spark on the generator's Parquet files it was built from."""
    spark = SparkBackend(spark_session(), generated_db.parent / "raw", sql_conf=FAST_SQL_CONF)
    with Engine.open(generated_db) as engine:
        yield engine, spark
    spark.close()


@pytest.fixture(scope="module")
def small(small_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, SparkBackend]]:
    """DuckDB on the small adversarial database and Spark on its export."""
    with duckdb_beside_spark(small_db, tmp_path_factory.mktemp("small_parquet")) as backends:
        yield backends


def _assert_same(engine: Engine, spark: SparkBackend, query: Query) -> pa.Table:
    expected = engine.backend.execute(engine.compiled(query, CONTEXT, "duckdb"))
    actual = spark.execute(engine.compiled(query, CONTEXT, "spark"))
    assert actual.column_names == expected.column_names
    assert expected.num_rows > 0
    assert _columns(actual) == _columns(expected)
    return expected


def _loosened(engine: Engine, case: dict[str, Any]) -> Query:
    """The same query with the largest bounds the catalog allows for its grain."""
    query = _query(case)
    grain = engine.catalog.register(engine._prepare(query, CONTEXT).plan.grain)
    return _query({**case, "max_groups": grain.groups_per_person[1], "max_rows": grain.rows_per_person[1]})


def _total(table: pa.Table) -> int:
    name = "n" if "n" in table.column_names else "s"
    return sum(table.column(name).to_pylist())


@pytest.mark.parametrize("case", GENERATED_CASES)
def test_generated_data_same_exact_aggregates(
    generated: tuple[Engine, SparkBackend], case: dict[str, Any]
) -> None:
    engine, spark = generated
    assert engine.preaggregates, "the built database has its pre-aggregate"
    table = _assert_same(engine, spark, _query(case))
    if case["tight"]:
        loose = engine.backend.execute(engine.compiled(_loosened(engine, case), CONTEXT, "duckdb"))
        if "score" in table.column_names:
            assert table.column("score").to_pylist() != loose.column("score").to_pylist()
        else:
            assert _total(table) < _total(loose), "the tight bounds dropped nothing"


@pytest.mark.parametrize("case", SMALL_CASES)
def test_exported_small_data_same_exact_aggregates(
    small: tuple[Engine, SparkBackend], case: dict[str, Any]
) -> None:
    engine, spark = small
    _assert_same(engine, spark, _query(case))


def test_corpus_covers_every_measure_and_shape() -> None:
    cases: list[dict[str, Any]] = [cast(dict[str, Any], p.values[0]) for p in GENERATED_CASES + SMALL_CASES]
    assert len(cases) >= 30
    assert {c["measure"] for c in cases} == {"count_persons", "count_rows", "sum", "mean", "quantile"}
    assert sum(c["tight"] for c in cases) >= 10
    assert any(c.get("max_rows") == 1 and c.get("max_groups") == 1 for c in cases)
