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


CORPUS = [
    # stage spec (shape)
    pytest.param(q(epsilon=None), PURE, "spec", "invalid_query", id="no_privacy_loss"),
    pytest.param(q(rho=0.1), PURE, "spec", "invalid_query", id="epsilon_and_rho"),
    pytest.param(q(measure="avg"), PURE, "spec", "invalid_query", id="unknown_measure"),
    pytest.param(q(where=[cond("cpr.sex", "~", "F")]), PURE, "spec", "invalid_query", id="unknown_operator"),
    # stage validate
    pytest.param(q(register="lrp"), PURE, "validate", "unknown_register", id="unknown_register"),
    pytest.param(q(group_by=["cpr.regoin"]), PURE, "validate", "unknown_column", id="unknown_column"),
    pytest.param(q(group_by=["region"]), PURE, "validate", "unknown_column", id="unqualified_column"),
    pytest.param(
        q(group_by=["cpx.region"]), PURE, "validate", "unknown_register", id="unknown_column_register"
    ),
    pytest.param(
        q(group_by=["cpr.person_id"]), PURE, "validate", "column_not_queryable", id="group_person_id"
    ),
    pytest.param(
        q(where=[cond("lpr.contact_id", "=", 1)]),
        PURE,
        "validate",
        "column_not_queryable",
        id="filter_contact_id",
    ),
    pytest.param(
        q(measure="sum", register="lpr", column="row_key"),
        PURE,
        "validate",
        "column_not_queryable",
        id="sum_row_key",
    ),
    pytest.param(
        q(where=[cond("cpr.sex", "prefix", "F")]), PURE, "validate", "invalid_operator", id="prefix_flat"
    ),
    pytest.param(
        q(where=[cond("cpr.region", "<", "S")]), PURE, "validate", "invalid_operator", id="range_on_text"
    ),
    pytest.param(
        q(where=[cond("lmdb.ddd", "=", 1.5)]),
        PURE,
        "validate",
        "invalid_operator",
        id="equality_on_continuous",
    ),
    pytest.param(
        q(where=[cond("cpr.sex", "=", "W")]), PURE, "validate", "value_outside_domain", id="sex_not_key"
    ),
    pytest.param(
        q(where=[cond("cpr.region", "in", ["Hovedstaden", "Skåne"])]),
        PURE,
        "validate",
        "value_outside_domain",
        id="region_not_key",
    ),
    pytest.param(
        q(where=[cond("lpr.icd10", "prefix", "Q9")]),
        PURE,
        "validate",
        "value_outside_domain",
        id="prefix_no_key",
    ),
    pytest.param(
        q(where=[cond("lpr.admission_date", "between", ["2018-01-01", "2031-01-01"])]),
        PURE,
        "validate",
        "value_outside_domain",
        id="date_outside_bounds",
    ),
    pytest.param(
        q(where=[cond("lpr.admission_date", ">=", "2018-13-01")]),
        PURE,
        "validate",
        "value_outside_domain",
        id="not_a_date",
    ),
    pytest.param(
        q(where=[cond("lpr.year", ">", 2030)]), PURE, "validate", "value_outside_domain", id="year_range"
    ),
    pytest.param(
        q(where=[cond("cpr.sex", "=", 1)]), PURE, "validate", "value_outside_domain", id="number_for_text"
    ),
    pytest.param(
        q(where=[cond("cpr.age", "between", [60, 40])]),
        PURE,
        "validate",
        "invalid_bounds",
        id="between_reversed",
    ),
    pytest.param(
        q(measure="sum", register="lpr", column="los_days", bounds=[10, 0]),
        PURE,
        "validate",
        "invalid_bounds",
        id="bounds_reversed",
    ),
    pytest.param(
        q(measure="mean", register="lpr", column="los_days", bounds=[0, 1000]),
        PURE,
        "validate",
        "invalid_bounds",
        id="bounds_outside_catalog",
    ),
    pytest.param(
        q(measure="quantile", register="lpr", column="los_days", bounds=[3, 3]),
        PURE,
        "validate",
        "invalid_bounds",
        id="quantile_empty_range",
    ),
    pytest.param(
        q(measure="count_rows", register="lpr", group_by=["lpr.diagnosis_code"]),
        PURE,
        "validate",
        "private_keys_need_delta",
        id="open_domain_without_delta",
    ),
    pytest.param(
        q(measure="sum", register="lpr", column="los_days", group_by=["lpr.diagnosis_code"]),
        ZCDP,
        "validate",
        "unsupported_query",
        id="open_domain_sum",
    ),
    pytest.param(
        q(group_by=["cpr.region", "cpr.sex", "cpr.age_band", "cpr.vital_status"]),
        PURE,
        "validate",
        "too_many_group_columns",
        id="four_group_columns",
    ),
    pytest.param(
        q(group_by=["lpr.icd10", "lpr.hospital_region", "lpr.contact_type"]),
        PURE,
        "validate",
        "too_many_cells",
        id="too_many_cells",
    ),
    pytest.param(q(epsilon=0), PURE, "validate", "loss_out_of_range", id="epsilon_zero"),
    pytest.param(q(epsilon=50), PURE, "validate", "loss_out_of_range", id="epsilon_too_large"),
    pytest.param(q(epsilon=None, rho=9.0), ZCDP, "validate", "loss_out_of_range", id="rho_too_large"),
    pytest.param(q(epsilon=None, rho=0.1), PURE, "validate", "loss_not_allowed", id="rho_in_pure_project"),
    pytest.param(
        q(epsilon=None, target_ci=-1.0), PURE, "validate", "loss_out_of_range", id="negative_target"
    ),
    pytest.param(
        q(measure="mean", register="lpr", column="los_days", epsilon=None, target_ci=2.0),
        PURE,
        "validate",
        "unsupported_query",
        id="target_ci_for_mean",
    ),
    pytest.param(q(column="cpr.age"), PURE, "validate", "unsupported_query", id="count_with_column"),
    pytest.param(
        q(measure="sum", register="lpr"), PURE, "validate", "unsupported_query", id="sum_without_column"
    ),
    pytest.param(
        q(measure="sum", register="lpr", column="icd10"),
        PURE,
        "validate",
        "unsupported_query",
        id="sum_of_text",
    ),
    pytest.param(
        q(measure="mean", register="ind", column="year"),
        PURE,
        "validate",
        "unsupported_query",
        id="mean_of_keyset",
    ),
    pytest.param(
        q(measure="sum", register="lpr", column="cpr.age"),
        PURE,
        "validate",
        "unsupported_query",
        id="value_off_grain",
    ),
    pytest.param(
        q(measure="count_rows", register="lpr", group_by=["lmdb.atc_level_1"]),
        PURE,
        "validate",
        "unsupported_query",
        id="group_off_grain",
    ),
    pytest.param(
        q(group_by=["lpr.icd10_chapter", "lmdb.atc_level_1"]),
        PURE,
        "validate",
        "unsupported_query",
        id="two_event_group_registers",
    ),
    pytest.param(
        q(measure="count_rows", register="lpr", group_by=["lpr.los_days"]),
        PURE,
        "validate",
        "unsupported_query",
        id="group_by_numeric",
    ),
    pytest.param(
        q(group_by=["cpr.sex", "cpr.sex"]), PURE, "validate", "unsupported_query", id="duplicate_group"
    ),
    pytest.param(
        q(measure="count_rows", register="lpr", max_rows=500),
        PURE,
        "validate",
        "invalid_bounding",
        id="max_rows",
    ),
    pytest.param(
        q(measure="count_rows", register="lmdb", max_groups=51),
        PURE,
        "validate",
        "invalid_bounding",
        id="max_groups",
    ),
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
