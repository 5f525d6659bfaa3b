"""Spark and DuckDB compute the same exact private table of every analysis on the same data.

The engine's small dataset is exported to Parquet (``export_parquet``) and each analysis of
``test_cohort_engine`` is compiled for both dialects; the complete result tables must be identical
(keys, counts, events and person-days, in order).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from query_engine import Engine, ProjectContext
from query_engine.backends.spark_backend import SparkBackend
from query_engine.spec import parse_query
from tests.query_engine.spark_fixtures import duckdb_beside_spark
from tests.query_engine.test_cohort_engine import PERSONS, PREVALENCE, RATE, SURVIVAL

CONTEXT = ProjectContext("pure")
DEATH_OUTCOME = {**RATE, "cohort": {**RATE["cohort"], "outcome": None}}
ATTAINED = ["cpr.sex", "cohort.attained_age_band", "cohort.attained_period"]
E11 = [{"column": "lpr.icd10", "op": "prefix", "value": "E11"}]
POPULATION_BY_ATTAINED_AGE = {
    "measure": "rate",
    "epsilon": 1.0,
    "cohort": {
        "index": {"register": "cpr", "entry": ["2012-01-01", "2020-12-31"], "min_age": 40},
        "exclude": [{"register": "lpr", "date": "admission_date", "where": E11}],
        "outcome": {"register": "lpr", "date": "admission_date", "where": E11},
        "follow_up_years": 5,
        "period_years": 2,
    },
    "group_by": ATTAINED,
}


@pytest.fixture(scope="module")
def backends(
    small_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, SparkBackend]]:
    with duckdb_beside_spark(small_db, tmp_path_factory.mktemp("cohort_parquet")) as opened:
        yield opened


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(RATE, id="rate_dar_by_sex_age_band"),
        pytest.param(DEATH_OUTCOME, id="rate_death_by_sex_age_band"),
        pytest.param(SURVIVAL, id="survival_by_sex"),
        pytest.param(PREVALENCE, id="prevalence_by_region"),
        pytest.param(PERSONS, id="persons_by_event_exposure"),
        pytest.param(POPULATION_BY_ATTAINED_AGE, id="population_rate_by_attained_age_and_period"),
        pytest.param({**RATE, "group_by": ATTAINED}, id="rate_dar_by_attained_age_and_period"),
    ],
)
def test_spark_and_duckdb_agree_on_the_analysis_table(
    backends: tuple[Engine, SparkBackend], body: dict[str, Any]
) -> None:
    engine, spark = backends
    query = parse_query({"project": "p", **body})
    expected = engine.backend.execute(engine.compiled(query, CONTEXT, "duckdb"))
    actual = spark.execute(engine.compiled(query, CONTEXT, "spark"))
    assert actual.column_names == expected.column_names
    assert expected.num_rows > 0
    assert actual.to_pydict() == expected.to_pydict()
    values = [c for c in expected.column_names if c in ("n", "ev", "pt")]
    assert sum(sum(expected.column(c).to_pylist()) for c in values) > 0  # not an all-zero table
