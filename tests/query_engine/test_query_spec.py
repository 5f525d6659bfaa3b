"""The Query model: shape errors at stage spec, canonical form and hash."""

from __future__ import annotations

import pytest

from query_engine.errors import QueryError
from query_engine.spec import ProjectContext, Query, parse_query

BASE = {"project": "p", "measure": "count_persons", "epsilon": 0.5}


def test_defaults_and_example_from_design() -> None:
    query = parse_query(
        {
            "project": "diabetes-2026",
            "measure": "count_persons",
            "register": "cpr",
            "column": None,
            "bounds": None,
            "quantile": None,
            "where": [
                {"column": "lpr.icd10", "op": "prefix", "value": "E11"},
                {"column": "lpr.admission_date", "op": "between", "value": ["2018-01-01", "2020-12-31"]},
                {"column": "cpr.sex", "op": "in", "value": ["F"]},
            ],
            "group_by": ["cpr.region", "cpr.age_band"],
            "epsilon": 0.5,
            "confidence": 0.95,
        }
    )
    assert query.register == "cpr" and query.confidence == 0.95
    assert query.canonical()["where"][0]["column"] == "cpr.sex"


def test_hash_ignores_order_of_where_and_in_values_but_not_group_by() -> None:
    a = parse_query(
        {
            **BASE,
            "where": [
                {"column": "cpr.sex", "op": "in", "value": ["M", "F"]},
                {"column": "lpr.icd10", "op": "prefix", "value": "E11"},
            ],
            "group_by": ["cpr.region", "cpr.sex"],
        }
    )
    b = parse_query(
        {
            **BASE,
            "where": [
                {"column": "lpr.icd10", "op": "prefix", "value": "E11"},
                {"column": "cpr.sex", "op": "in", "value": ["F", "M", "F"]},
            ],
            "group_by": ["cpr.region", "cpr.sex"],
            "confidence": 0.95,
            "register": "cpr",
        }
    )
    c = parse_query({**BASE, "where": list(b.model_dump()["where"]), "group_by": ["cpr.sex", "cpr.region"]})
    assert a.query_hash() == b.query_hash()
    assert a.query_hash() != c.query_hash()
    assert len(a.query_hash()) == 64


def test_canonical_fills_defaults_and_qualifies_column() -> None:
    q = parse_query(
        {"project": "p", "measure": "quantile", "register": "ind", "column": "disposable_income", "rho": 1}
    )
    canonical = q.canonical()
    assert canonical["column"] == "ind.disposable_income"
    assert canonical["quantile"] == 0.5
    assert canonical["confidence"] == 0.95
    same = parse_query(
        {
            "project": "p",
            "measure": "quantile",
            "register": "ind",
            "column": "ind.disposable_income",
            "quantile": 0.5,
            "rho": 1.0,
        }
    )
    assert same.query_hash() == q.query_hash()


def test_count_persons_grain_is_the_non_person_group_register() -> None:
    q = parse_query({**BASE, "group_by": ["cpr.sex", "lpr.icd10_chapter"]})
    assert q.effective_register == "lpr"
    assert q.canonical()["register"] == "lpr"


def test_query_json_text_is_accepted() -> None:
    q = parse_query('{"project": "p", "measure": "count_rows", "register": "lpr", "epsilon": 1}')
    assert q.register == "lpr"


@pytest.mark.parametrize(
    "changes, fragment",
    [
        pytest.param({"epsilon": None}, "exactly one of", id="no_loss"),
        pytest.param({"rho": 0.1}, "exactly one of", id="two_losses"),
        pytest.param({"measure": "median"}, "measure", id="unknown_measure"),
        pytest.param({"colour": "red"}, "colour", id="extra_field"),
        pytest.param(
            {"where": [{"column": "cpr.sex", "op": "like", "value": "F"}]}, "where.0.op", id="bad_op"
        ),
        pytest.param(
            {"where": [{"column": "cpr.sex", "op": "in", "value": "F"}]}, "non-empty list", id="in_scalar"
        ),
        pytest.param(
            {"where": [{"column": "cpr.age", "op": "between", "value": [1]}]},
            "two values",
            id="between_arity",
        ),
        pytest.param(
            {"where": [{"column": "cpr.sex", "op": "=", "value": ["F"]}]}, "single value", id="eq_list"
        ),
        pytest.param({"quantile": 0.5}, "only for measure", id="quantile_on_count"),
        pytest.param({"confidence": 1.5}, "confidence", id="confidence_range"),
        pytest.param({"max_rows": 0}, "max_rows", id="max_rows_zero"),
    ],
)
def test_shape_errors_are_query_errors_at_stage_spec(changes: dict[str, object], fragment: str) -> None:
    data = {**BASE, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(QueryError) as info:
        parse_query(data)
    assert info.value.stage == "spec"
    assert info.value.code == "invalid_query"
    assert fragment in info.value.message
    assert info.value.message[0].isupper(), info.value.message


def test_query_is_frozen() -> None:
    q = Query.model_validate(BASE)
    with pytest.raises(Exception, match="frozen"):
        q.epsilon = 2.0


def test_project_context_checks_mode() -> None:
    with pytest.raises(ValueError):
        ProjectContext(mode="approx")  # type: ignore[arg-type]
