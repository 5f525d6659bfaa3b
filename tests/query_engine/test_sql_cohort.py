"""Rates over a named cohort in the SQL dialect: ``FROM cohort('name')`` parses into the JSON query with
``"cohort": "name"``, and every misuse is refused with a sentence and its position."""

from __future__ import annotations

from typing import Any

import pytest

from query_engine.catalog import Catalog
from query_engine.spec import parse_query
from query_engine.sql import sql_to_query
from query_engine.sql.errors import SqlError


@pytest.mark.parametrize(
    ("sql", "fields"),
    [
        pytest.param(
            "SELECT cpr.sex, cohort.age_band, RATE(1000) FROM cohort('first-mi') GROUP BY cpr.sex, cohort.age_band",
            {"measure": "rate", "cohort": "first-mi", "group_by": ["cpr.sex", "cohort.age_band"],
             "per_person_years": 1000},
            id="rate_by_sex_and_age",
        ),
        pytest.param(
            "select Cohort.Attained_Age_Band, rate(100000, 'esp2013') from COHORT('adults-2010') "
            "group by cohort.attained_age_band",
            {"measure": "rate", "cohort": "adults-2010", "group_by": ["cohort.attained_age_band"],
             "per_person_years": 100000, "standard_population": "esp2013"},
            id="standardised_any_case",
        ),
        pytest.param("SELECT RATE() FROM cohort('x')", {"measure": "rate", "cohort": "x"}, id="overall_rate"),
        pytest.param(
            "SELECT cohort.event, COUNT(*) FROM cohort('x') GROUP BY cohort.event",
            {"measure": "count_persons", "cohort": "x", "group_by": ["cohort.event"]},
            id="members_by_event",
        ),
    ],
)  # fmt: skip
def test_a_cohort_query_is_the_json_query(sql: str, fields: dict[str, Any], catalog: Catalog) -> None:
    query = sql_to_query(sql, project="p", catalog=catalog, epsilon=1.0)
    assert query.canonical() == parse_query({"project": "p", "epsilon": 1.0, **fields}).canonical()


@pytest.mark.parametrize(
    ("sql", "column", "words"),
    [
        pytest.param("SELECT sex, RATE(1000) FROM cohort('x') GROUP BY sex", 8, "cohort.sex", id="unqualified"),
        pytest.param("SELECT cpr.sex, RATE(1000) FROM cohort('x')", 8, "GROUP BY must list", id="no_group_by"),
        pytest.param(
            "SELECT cpr.sex, RATE(1000) FROM cohort('x') GROUP BY cpr.region", 54, "GROUP BY must list",
            id="other_group_by",
        ),
        pytest.param("SELECT cpr.sex, SURVIVAL(1) FROM cohort('x') GROUP BY cpr.sex", 17, "JSON-only",
                     id="survival_is_json_only"),
        pytest.param("SELECT RATE(-5) FROM cohort('x')", 8, "positive number", id="negative_per"),
        pytest.param("SELECT RATE(1000, 7) FROM cohort('x')", 8, "quoted standard population", id="bad_population"),
        pytest.param("SELECT RATE(1000) FROM cohort(3)", 24, "one quoted name", id="name_not_a_string"),
        pytest.param("SELECT RATE(1000) FROM cohort('x', 'y')", 24, "one quoted name", id="two_names"),
        pytest.param("SELECT RATE(1000) FROM cohort('x') AS c", 24, "takes no alias", id="alias"),
        pytest.param("SELECT RATE(1000) FROM cohort('x') WHERE cpr.sex = 'F'", 42, "WHERE is not available",
                     id="where"),
        pytest.param("SELECT RATE(1000) FROM cohort('x') JOIN lpr USING (person_id)", 41, "JOIN is not available",
                     id="join"),
        pytest.param("SELECT RATE(1000), COUNT(*) FROM cohort('x')", 20, "one measure", id="two_measures"),
        pytest.param("SELECT cpr.sex FROM cohort('x') GROUP BY cpr.sex", 8, "add RATE(1000)", id="no_measure"),
        pytest.param("SELECT AVG(cpr.sex) FROM cohort('x')", 8, "one measure: RATE(1000)", id="other_aggregate"),
        pytest.param("SELECT RATE(1000) FROM cohort('x') ORDER BY 1", 36, "ORDER BY", id="order_by"),
    ],
)  # fmt: skip
def test_misuse_is_refused_with_a_sentence_and_a_position(
    sql: str, column: int, words: str, catalog: Catalog
) -> None:
    with pytest.raises(SqlError) as error:
        sql_to_query(sql, project="p", catalog=catalog, epsilon=1.0)
    assert error.value.position == {"line": 1, "column": column}, str(error.value)
    assert words in str(error.value)
