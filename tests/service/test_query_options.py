"""GET /v1/query-options: the engine's limits and the contribution bounds a query may set, over HTTP
(the dashboard builds its form from it instead of keeping its own copy of the engine's rules)."""

from __future__ import annotations

import httpx
import pytest

from datasets.packaged_catalog import load_packaged_catalog
from query_engine.bounding_options import bounding_options
from query_engine.settings import EngineSettings
from query_engine.spec import Query
from service.query_options import query_options
from tests.service.svc_helpers import assert_error


def _options(http: httpx.Client, **params: object) -> dict[str, object]:
    response = http.get("/v1/query-options", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_limits_are_the_served_engine_settings(http: httpx.Client) -> None:
    limits = _options(http)["limits"]
    assert isinstance(limits, dict)
    assert limits["max_group_columns"] == EngineSettings().max_group_columns
    assert set(limits) == {
        "max_group_columns",
        "max_cells",
        "max_epsilon",
        "max_rho",
        "min_epsilon",
        "min_rho",
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, [], id="count_persons_on_persons"),
        pytest.param(
            {"group_by": ["lpr.contact_type", "cpr.sex"]},
            [("max_groups", "lpr")],
            id="count_persons_grain_from_the_group",
        ),
        pytest.param(
            {"measure": "count_rows", "register": "lpr"}, [("max_rows", "lpr")], id="rows_no_groups"
        ),
        pytest.param(
            {"measure": "count_rows", "register": "lpr", "group_by": ["lpr.contact_type"]},
            [("max_groups", "lpr"), ("max_rows", "lpr")],
            id="rows_grouped_on_grain",
        ),
        pytest.param(
            {"measure": "sum", "register": "lmdb", "group_by": ["cpr.region"]},
            [("max_rows", "lmdb")],
            id="person_groups_fix_G",
        ),
        pytest.param({"measure": "rate"}, [], id="rate_counts_a_person_once"),
        pytest.param({"measure": "survival", "group_by": ["cpr.sex"]}, [], id="survival_one_cell"),
        pytest.param({"measure": "prevalence", "register": "lpr"}, [], id="prevalence_one_cell"),
        pytest.param({"measure": "poisson_regression"}, [], id="poisson_model_one_row_per_person"),
        pytest.param({"measure": "linear_regression", "register": "ind"}, [], id="linear_one_row_per_person"),
        pytest.param({"measure": "table1"}, [], id="table1_one_cell_per_variable"),
    ],
)
def test_bounding_options_follow_the_planner(
    http: httpx.Client, params: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    bounding = _options(http, **params)["bounding"]
    assert isinstance(bounding, list)
    assert [(b["name"], b["register"]) for b in bounding] == expected
    catalog = load_packaged_catalog()
    for option in bounding:
        register = catalog.register(option["register"])
        limits = register.groups_per_person if option["name"] == "max_groups" else register.rows_per_person
        assert (option["default"], option["maximum"]) == limits


def test_an_option_is_exactly_the_bound_the_plan_uses() -> None:
    """A bound offered is one the plan reads: setting it below the default changes the query's G or c."""
    from query_engine.plan import plan_query
    from query_engine.spec import ProjectContext

    catalog = load_packaged_catalog()
    settings = EngineSettings()
    for measure, register, group_by in [
        ("count_persons", "cpr", ("lpr.contact_type",)),
        ("count_rows", "lpr", ("lpr.contact_type",)),
        ("sum", "lmdb", ("cpr.region",)),
        ("count_persons", "cpr", ("cpr.sex",)),
    ]:
        base = dict(project="p", measure=measure, register=register, group_by=group_by, epsilon=1.0)
        if measure == "sum":
            base["column"] = "lmdb.ddd"
        offered = {o.name for o in bounding_options(Query(**base), catalog)}
        plain = plan_query(Query(**base), catalog, ProjectContext("pure"), settings).bounding
        for name in ("max_groups", "max_rows"):
            tightened = plan_query(Query(**base, **{name: 1}), catalog, ProjectContext("pure"), settings)
            changed = getattr(tightened.bounding, name) != getattr(plain, name)
            assert changed == (name in offered), (measure, group_by, name)
    assert query_options(catalog, settings, "count_rows", "lpr", []).limits.max_cells == settings.max_cells


@pytest.mark.parametrize(
    ("measure", "register", "group_by", "expected"),
    [
        pytest.param(
            "count_rows",
            "lpr",
            ["lpr.year"],
            [("max_groups", "lpr", 5, 50), ("max_rows", "lpr", 10, 200)],
            id="rows_of_lpr_by_year",
        ),
        pytest.param(
            "sum", "lpr", ["cpr.sex"], [("max_rows", "lpr", 10, 200)], id="groups_on_the_person_only"
        ),
        pytest.param(
            "count_persons",
            "cpr",
            ["lmdb.atc_level_2", "cpr.sex"],
            [("max_groups", "lmdb", 5, 50)],
            id="persons_by_a_grain_group",
        ),
        pytest.param("count_persons", "cpr", ["cpr.region"], [], id="persons_by_region"),
        pytest.param("mean", "cpr", [], [], id="person_register"),
        pytest.param("quantile", "dar", [], [], id="one_row_per_person_at_most"),
        pytest.param(
            "mean",
            "ind",
            ["ind.year"],
            [("max_groups", "ind", 1, 10), ("max_rows", "ind", 1, 10)],
            id="person_years",
        ),
    ],
)
def test_bounding_options_of_the_packaged_catalog(
    measure: str, register: str, group_by: list[str], expected: list[tuple[object, ...]]
) -> None:
    options = query_options(load_packaged_catalog(), EngineSettings(), measure, register, group_by).bounding  # type: ignore[arg-type]
    assert [(o.name, o.register, o.default, o.maximum) for o in options] == expected


@pytest.mark.parametrize(
    ("params", "code"),
    [
        pytest.param({"register": "lpx"}, "unknown_register", id="register"),
        pytest.param({"group_by": ["lpr.nope"]}, "unknown_column", id="column"),
        pytest.param({"measure": "median"}, "invalid_request", id="measure"),
        pytest.param({"group_by": [f"cpr.c{i}" for i in range(21)]}, "invalid_request", id="too_many"),
    ],
)
def test_bad_parameters_are_clear_errors(http: httpx.Client, params: dict[str, object], code: str) -> None:
    assert_error(http.get("/v1/query-options", params=params), 422, code)


@pytest.mark.parametrize("measure", ["poisson_regression", "logistic_regression", "linear_regression"])
def test_a_regression_takes_as_many_covariates_as_the_models_allow(http: httpx.Client, measure: str) -> None:
    """The dashboard's covariate picker reads this limit; the model planners refuse one more."""
    from query_engine.models_plan import MAX_COVARIATES

    assert _options(http, measure=measure)["limits"]["max_group_columns"] == MAX_COVARIATES
    assert (
        _options(http, measure="table1")["limits"]["max_group_columns"] == EngineSettings().max_group_columns
    )
