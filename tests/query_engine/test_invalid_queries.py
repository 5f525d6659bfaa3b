"""A corpus of invalid queries, each failing at its named stage with its stable error code."""

from __future__ import annotations

from typing import Any

import pytest

from query_engine.catalog import Catalog
from query_engine.errors import QueryError
from query_engine.plan import plan_query
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from query_engine.validate import validate

PURE = ProjectContext("pure", delta_available=False)
ZCDP = ProjectContext("zcdp", delta_available=True)


def q(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"project": "p", "measure": "count_persons", "epsilon": 0.5}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def cond(column: str, op: str, value: Any) -> dict[str, Any]:
    return {"column": column, "op": op, "value": value}


def invalid(
    code: str, name: str, stage: str = "validate", context: ProjectContext = PURE, **fields: Any
) -> Any:
    """A corpus case: the query ``q(**fields)`` fails at ``stage`` with ``code`` in ``context``."""
    return pytest.param(q(**fields), context, stage, code, id=name)


CORPUS = [
    # stage spec (shape)
    invalid("invalid_query", "no_privacy_loss", stage="spec", epsilon=None),
    invalid("invalid_query", "epsilon_and_rho", stage="spec", rho=0.1),
    invalid("invalid_query", "unknown_measure", stage="spec", measure="avg"),
    invalid("invalid_query", "unknown_operator", stage="spec", where=[cond("cpr.sex", "~", "F")]),
    # stage validate
    invalid("unknown_register", "unknown_register", register="lrp"),
    invalid("unknown_column", "unknown_column", group_by=["cpr.regoin"]),
    invalid("unknown_column", "unqualified_column", group_by=["region"]),
    invalid("unknown_register", "unknown_column_register", group_by=["cpx.region"]),
    invalid("column_not_queryable", "group_person_id", group_by=["cpr.person_id"]),
    invalid("column_not_queryable", "filter_contact_id", where=[cond("lpr.contact_id", "=", 1)]),
    invalid("column_not_queryable", "sum_row_key", measure="sum", register="lpr", column="row_key"),
    invalid("invalid_operator", "prefix_flat", where=[cond("cpr.sex", "prefix", "F")]),
    invalid("invalid_operator", "range_on_text", where=[cond("cpr.region", "<", "S")]),
    invalid("invalid_operator", "equality_on_continuous", where=[cond("lmdb.ddd", "=", 1.5)]),
    invalid("value_outside_domain", "sex_not_key", where=[cond("cpr.sex", "=", "W")]),
    invalid(
        "value_outside_domain", "region_not_key", where=[cond("cpr.region", "in", ["Hovedstaden", "Skåne"])]
    ),
    invalid("value_outside_domain", "prefix_no_key", where=[cond("lpr.icd10", "prefix", "Q9")]),
    invalid(
        "value_outside_domain",
        "date_outside_bounds",
        where=[cond("lpr.admission_date", "between", ["2018-01-01", "2031-01-01"])],
    ),
    invalid("value_outside_domain", "not_a_date", where=[cond("lpr.admission_date", ">=", "2018-13-01")]),
    invalid("value_outside_domain", "year_range", where=[cond("lpr.year", ">", 2030)]),
    invalid("value_outside_domain", "number_for_text", where=[cond("cpr.sex", "=", 1)]),
    invalid("invalid_bounds", "between_reversed", where=[cond("cpr.age", "between", [60, 40])]),
    invalid(
        "invalid_bounds", "bounds_reversed", measure="sum", register="lpr", column="los_days", bounds=[10, 0]
    ),
    invalid(
        "invalid_bounds",
        "bounds_outside_catalog",
        measure="mean",
        register="lpr",
        column="los_days",
        bounds=[0, 1000],
    ),
    invalid(
        "invalid_bounds",
        "quantile_empty_range",
        measure="quantile",
        register="lpr",
        column="los_days",
        bounds=[3, 3],
    ),
    invalid(
        "private_keys_need_delta",
        "open_domain_without_delta",
        measure="count_rows",
        register="lpr",
        group_by=["lpr.diagnosis_code"],
    ),
    invalid(
        "unsupported_query",
        "open_domain_sum",
        context=ZCDP,
        measure="sum",
        register="lpr",
        column="los_days",
        group_by=["lpr.diagnosis_code"],
    ),
    invalid(
        "too_many_group_columns",
        "four_group_columns",
        group_by=["cpr.region", "cpr.sex", "cpr.age_band", "cpr.vital_status"],
    ),
    invalid(
        "too_many_cells", "too_many_cells", group_by=["lpr.icd10", "lpr.hospital_region", "lpr.contact_type"]
    ),
    invalid("loss_out_of_range", "epsilon_zero", epsilon=0),
    invalid("loss_out_of_range", "epsilon_too_large", epsilon=50),
    invalid("loss_out_of_range", "rho_too_large", context=ZCDP, epsilon=None, rho=9.0),
    invalid("loss_not_allowed", "rho_in_pure_project", epsilon=None, rho=0.1),
    invalid("loss_out_of_range", "negative_target", epsilon=None, target_ci=-1.0),
    invalid(
        "unsupported_query",
        "target_ci_for_mean",
        measure="mean",
        register="lpr",
        column="los_days",
        epsilon=None,
        target_ci=2.0,
    ),
    invalid("unsupported_query", "count_with_column", column="cpr.age"),
    invalid("unsupported_query", "sum_without_column", measure="sum", register="lpr"),
    invalid("unsupported_query", "sum_of_text", measure="sum", register="lpr", column="icd10"),
    invalid("unsupported_query", "mean_of_keyset", measure="mean", register="ind", column="year"),
    invalid("unsupported_query", "value_off_grain", measure="sum", register="lpr", column="cpr.age"),
    invalid(
        "unsupported_query",
        "group_off_grain",
        measure="count_rows",
        register="lpr",
        group_by=["lmdb.atc_level_1"],
    ),
    invalid(
        "unsupported_query", "two_event_group_registers", group_by=["lpr.icd10_chapter", "lmdb.atc_level_1"]
    ),
    invalid(
        "unsupported_query",
        "group_by_numeric",
        measure="count_rows",
        register="lpr",
        group_by=["lpr.los_days"],
    ),
    invalid("unsupported_query", "duplicate_group", group_by=["cpr.sex", "cpr.sex"]),
    invalid("invalid_bounding", "max_rows", measure="count_rows", register="lpr", max_rows=500),
    invalid("invalid_bounding", "max_groups", measure="count_rows", register="lmdb", max_groups=51),
]


@pytest.mark.parametrize("data, context, stage, code", CORPUS)
def test_invalid_query_fails_at_its_stage(
    data: dict[str, Any], context: ProjectContext, stage: str, code: str, catalog: Catalog
) -> None:
    settings = EngineSettings(max_cells=100)  # the fixture's key sets are small
    with pytest.raises(QueryError) as info:
        query = parse_query(data)
        validate(query, catalog, context, settings)
        plan_query(query, catalog, context, settings)
    assert (info.value.stage, info.value.code) == (stage, code), info.value.message
    assert info.value.status == 422
    assert info.value.message.endswith((".", "?")), info.value.message
    assert info.value.message[0].isupper(), info.value.message


@pytest.mark.parametrize(
    "data, fragment",
    [
        pytest.param(q(group_by=["cpr.regoin"]), "Did you mean 'region'?", id="column"),
        pytest.param(q(register="lrp"), "Did you mean 'lpr'?", id="register"),
        pytest.param(
            q(where=[cond("cpr.region", "=", "Hovedstadn")]), "Did you mean 'Hovedstaden'?", id="key"
        ),
        pytest.param(q(where=[cond("lpr.icd10", "=", "e11")]), "Did you mean 'E11'?", id="key_case"),
        pytest.param(q(group_by=["cpr.agee"]), "Columns of cpr: sex, birth_date, region", id="lists_columns"),
    ],
)
def test_did_you_mean(data: dict[str, Any], fragment: str, catalog: Catalog) -> None:
    with pytest.raises(QueryError) as info:
        validate(parse_query(data), catalog, PURE, EngineSettings())
    assert fragment in info.value.message


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 25
