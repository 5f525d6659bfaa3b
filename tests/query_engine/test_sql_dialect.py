"""``sql_to_query``: the fields beside the SQL, the semantics choices, errors and positions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from query_engine.catalog import Catalog
from query_engine.errors import (
    ColumnNotQueryable,
    QueryError,
    UnknownColumn,
    UnknownRegister,
    ValueOutsideDomain,
)
from query_engine.sql import MAX_SQL_CHARS, sql_to_query
from query_engine.sql.errors import (
    SqlAmbiguousColumn,
    SqlColumnNotQueryable,
    SqlError,
    SqlSyntaxError,
    SqlUnknownColumn,
    SqlUnknownRegister,
    SqlValueError,
    UnsupportedSql,
)


@pytest.mark.parametrize(
    ("cls", "code", "json_class"),
    [
        pytest.param(SqlSyntaxError, "sql_syntax_error", None, id="syntax"),
        pytest.param(UnsupportedSql, "unsupported_sql", None, id="unsupported"),
        pytest.param(SqlAmbiguousColumn, "ambiguous_column", None, id="ambiguous"),
        pytest.param(SqlUnknownRegister, "unknown_register", UnknownRegister, id="unknown_register"),
        pytest.param(SqlUnknownColumn, "unknown_column", UnknownColumn, id="unknown_column"),
        pytest.param(SqlColumnNotQueryable, "column_not_queryable", ColumnNotQueryable, id="not_queryable"),
        pytest.param(SqlValueError, "value_outside_domain", ValueOutsideDomain, id="value"),
    ],
)
def test_error_classes(cls: type[SqlError], code: str, json_class: type[QueryError] | None) -> None:
    error = cls("Line 2, column 3: no.", position={"line": 2, "column": 3}, construct="OR")
    assert (error.code, error.status, error.stage) == (code, 422, "sql")
    assert error.position == {"line": 2, "column": 3} and error.construct == "OR"
    assert isinstance(error, SqlError) and isinstance(error, QueryError)
    if json_class is not None:
        assert isinstance(error, json_class)


def test_loss_and_bounding_fields_are_the_json_fields(catalog: Catalog) -> None:
    sql = "SELECT region, COUNT(*) FROM cpr GROUP BY region"
    query = sql_to_query(sql, project="x", catalog=catalog, rho=0.1, confidence=0.9, max_groups=1, max_rows=1)
    assert (query.project, query.rho, query.epsilon, query.confidence) == ("x", 0.1, None, 0.9)
    assert (query.max_groups, query.max_rows) == (1, 1)
    assert sql_to_query(sql, project="x", catalog=catalog, target_ci=10).target_ci == 10


@pytest.mark.parametrize(
    "loss",
    [pytest.param({}, id="no_loss"), pytest.param({"epsilon": 1.0, "rho": 0.1}, id="two_losses")],
)
def test_loss_errors_are_the_json_errors(catalog: Catalog, loss: dict[str, Any]) -> None:
    with pytest.raises(QueryError) as raised:
        sql_to_query("SELECT COUNT(*) FROM cpr", project="x", catalog=catalog, **loss)
    assert not isinstance(raised.value, SqlError)
    assert raised.value.stage == "spec" and "exactly one of epsilon, rho or target_ci" in raised.value.message


@pytest.mark.parametrize(
    ("sql", "measure", "register"),
    [
        pytest.param("SELECT COUNT(*) FROM cpr", "count_persons", "cpr", id="cpr_rows_are_persons"),
        pytest.param("SELECT COUNT(*) FROM lpr", "count_rows", "lpr", id="event_rows"),
        pytest.param("SELECT COUNT(*) FROM ind", "count_rows", "ind", id="person_year_rows"),
        pytest.param(
            "SELECT COUNT(*) FROM lpr JOIN cpr USING (person_id)", "count_rows", "lpr", id="bare_cpr_join"
        ),
        pytest.param(
            "SELECT COUNT(*) FROM cpr JOIN lpr USING (person_id)", "count_persons", "lpr", id="persons_in_lpr"
        ),
        pytest.param(
            "SELECT COUNT(DISTINCT person_id) FROM lpr JOIN cpr USING (person_id) WHERE icd10 = 'E11'",
            "count_persons",
            "cpr",
            id="persons_with_e11",
        ),
    ],
)
def test_grain_and_count_semantics(catalog: Catalog, sql: str, measure: str, register: str) -> None:
    query = sql_to_query(sql, project="x", catalog=catalog, epsilon=1.0)
    assert (query.measure, query.canonical()["register"]) == (measure, register)


def test_names_unquoted_fold_quoted_are_exact(catalog: Catalog) -> None:
    query = sql_to_query(
        "SELECT REGION, count(*) FROM CPR GROUP BY Region", project="x", catalog=catalog, epsilon=1
    )
    assert query.group_by == ("cpr.region",)
    with pytest.raises(SqlUnknownColumn, match="Did you mean 'region'"):
        sql_to_query('SELECT "Region", COUNT(*) FROM cpr GROUP BY 1', project="x", catalog=catalog, epsilon=1)


def test_positions_count_characters(catalog: Catalog) -> None:
    sql = "SELECT COUNT(*) FROM cpr WHERE region = 'Sjælland' OR sex = 'F'"
    with pytest.raises(UnsupportedSql) as raised:
        sql_to_query(sql, project="x", catalog=catalog, epsilon=1)
    assert raised.value.position == {"line": 1, "column": sql.index(" OR ") + 2}


def test_a_comment_inside_a_string_is_not_a_hint(catalog: Catalog) -> None:
    sql = "SELECT SUM(los_days) FROM lpr WHERE contact_type = '/* bounds: 0, 1 */'"
    query = sql_to_query(sql, project="x", catalog=catalog, epsilon=1)
    assert query.bounds is None and query.where[0].value == "/* bounds: 0, 1 */"


def test_other_comments_are_ignored(catalog: Catalog) -> None:
    sql = "/* diabetes */ SELECT SUM(los_days) -- bed-days\nFROM lpr /* all contacts */"
    assert sql_to_query(sql, project="x", catalog=catalog, epsilon=1).bounds is None


def test_text_length_is_limited(catalog: Catalog) -> None:
    sql = "SELECT COUNT(*) FROM cpr WHERE sex = 'F'" + " " * MAX_SQL_CHARS
    with pytest.raises(UnsupportedSql, match=f"at most {MAX_SQL_CHARS}"):
        sql_to_query(sql, project="x", catalog=catalog, epsilon=1)


def test_sql_and_json_hash_alike(catalog: Catalog) -> None:
    a = sql_to_query(
        "SELECT sex, COUNT(*) FROM cpr WHERE age > 17 GROUP BY sex", project="p", catalog=catalog, epsilon=1
    )
    b = sql_to_query(
        "select sex , count ( * )\nfrom cpr\nwhere 17 < age\ngroup by 1 ;",
        project="p",
        catalog=catalog,
        epsilon=1,
    )
    assert a.query_hash() == b.query_hash()


_CORPUS = Path(__file__).resolve().parent / "sql_corpus"
_SQL = [
    e["sql"]
    for f in ("supported.yaml", "refused.yaml")
    for e in yaml.safe_load((_CORPUS / f).read_text("utf-8"))
]
_WORDS = sorted({w for sql in _SQL for w in sql.split()}) + [
    "(",
    ")",
    ",",
    ".",
    ";",
    "'",
    '"',
    "/*",
    "*/",
    "--",
    "%",
    "$1",
]


@st.composite
def _mutated_sql(draw: st.DrawFn) -> str:
    words = draw(st.sampled_from(_SQL)).split(" ")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(words)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        if action == "insert" or not words:
            words.insert(at, draw(st.sampled_from(_WORDS)))
        elif action == "delete":
            del words[min(at, len(words) - 1)]
        else:
            words[min(at, len(words) - 1)] = draw(st.sampled_from(_WORDS))
    return " ".join(words)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(sql=st.one_of(_mutated_sql(), st.lists(st.sampled_from(_WORDS), max_size=30).map(" ".join)))
def test_any_text_gives_a_query_or_a_positioned_error(catalog: Catalog, sql: str) -> None:
    try:
        sql_to_query(sql, project="p", catalog=catalog, epsilon=1.0)
    except SqlError as error:
        line, column = error.position["line"], error.position["column"]
        lines = sql.split("\n")
        assert 1 <= line <= len(lines) and 1 <= column <= len(lines[line - 1]) + 1
        assert error.message.startswith(f"Line {line}, column {column}: ")
    except QueryError as error:
        assert error.stage == "spec"  # a shape error of the translated Query (e.g. too many conditions)
