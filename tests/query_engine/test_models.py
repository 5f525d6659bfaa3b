"""Models and Table 1 in the engine (issue 16): releases, loss splits, previews and error messages."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from query_engine.engine import Engine
from query_engine.errors import QueryError
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from tests.helpers.cohorts import INCOME_ON_AGE, lpr_cohort, metformin

PURE = ProjectContext("pure")
ZCDP = ProjectContext("zcdp")
COHORT = lpr_cohort("I", exposures=[metformin("A10")])


def _json(release: Any) -> dict[str, Any]:
    """The release as the service stores it: JSON, with no numpy scalar left behind."""
    body: dict[str, Any] = json.loads(json.dumps(release.model_dump(mode="json"), allow_nan=False))
    return body


def _query(**fields: Any) -> Any:
    return parse_query({"project": "p", "cohort": COHORT, "epsilon": 1.0, **fields})


@pytest.fixture(scope="module")
def engine(generated_db: Path) -> Engine:
    return Engine.open(generated_db)


def test_poisson_regression_releases_the_rate_table_and_rate_ratios(engine: Engine) -> None:
    query = _query(
        measure="poisson_regression",
        group_by=["cohort.metformin", "cpr.sex"],
        reference={"cpr.sex": "M"},
    )
    release = engine.run(query, PURE)
    _json(release)
    assert release.measure == "poisson_regression"
    assert release.columns[:2] == ["cohort.metformin", "cpr.sex"] and "person_years" in release.columns
    assert len(release.rows) == 4
    assert [p.part for p in release.privacy.loss_split or []] == ["events", "person_time"]
    assert release.privacy.epsilon is not None and release.privacy.epsilon <= 1.0
    assert math.isclose(sum(p.epsilon or 0 for p in release.privacy.loss_split or []), 1.0, rel_tol=1e-9)
    model = release.model
    assert model is not None and model["estimate"] == "rate_ratio"
    assert model["reference"] == {"cohort.metformin": 0, "cpr.sex": "M"}
    assert [t["term"] for t in model["terms"]] == ["cohort.metformin=1", "cpr.sex=F"]
    for term in model["terms"]:
        assert 0 < term["ci_low"] <= term["estimate"] <= term["ci_high"]
        # The noise-aware interval is wider than the naive one (the noise only adds uncertainty).
        assert term["ci_high"] / term["ci_low"] > term["naive_ci_high"] / term["naive_ci_low"]
    assert release.query is not None and release.query["reference"] == {"cpr.sex": "M"}


def test_four_covariates_are_accepted(engine: Engine) -> None:
    covariates = ["cohort.metformin", "cpr.sex", "cohort.age_band", "cohort.period"]
    for measure in ("poisson_regression", "logistic_regression"):
        cost = engine.cost(_query(measure=measure, group_by=covariates), PURE)
        assert cost.loss.epsilon is not None and cost.loss.epsilon <= 1.0


def test_logistic_regression_with_a_follow_up_in_days(engine: Engine) -> None:
    cohort = {k: v for k, v in COHORT.items() if k != "follow_up_years"} | {"follow_up_days": 365}
    query = parse_query(
        {
            "project": "p",
            "measure": "logistic_regression",
            "cohort": cohort,
            "group_by": ["cpr.sex", "cohort.metformin"],
            "rho": 0.5,
        }
    )
    release = engine.run(query, ZCDP)
    _json(release)
    assert release.columns[:3] == ["cpr.sex", "cohort.metformin", "cohort.event"]
    assert len(release.rows) == 8 and release.privacy.mechanism == "discrete_gaussian"
    assert release.model is not None and release.model["estimate"] == "odds_ratio"
    assert [t["term"] for t in release.model["terms"]] == ["cpr.sex=M", "cohort.metformin=1"]
    assert release.query is not None and release.query["cohort"]["follow_up_days"] == 365


def test_table1_splits_the_loss_evenly_and_percentages_add_up(engine: Engine) -> None:
    variables = ["cpr.sex", "cohort.age_band", "cohort.age"]
    query = _query(measure="table1", group_by=["cohort.metformin"], variables=variables)
    # No small-cell suppression here (tested below), so that every percentage is shown.
    unsuppressed = Engine(engine.backend, engine.catalog, EngineSettings(small_cell_threshold=0))
    release = unsuppressed.run(query, PURE)
    _json(release)
    split = release.privacy.loss_split or []
    assert [p.part for p in split] == variables
    assert len({p.epsilon for p in split}) == 1 and len({p.scale for p in split}) == 1
    rows = release.rows
    for group in (0, 1):
        shares = [r["value"] for r in rows if r["variable"] == "cpr.sex" and r["group"] == group]
        assert len(shares) == 2 and math.isclose(sum(shares), 100.0)
        q1, median, q3 = (
            next(
                r["value"]
                for r in rows
                if r["variable"] == "cohort.age" and r["statistic"] == s and r["group"] == group
            )
            for s in ("q1", "median", "q3")
        )
        assert 0 <= q1 <= median <= q3 <= 105
    for row in rows:
        assert row["suppressed"] == (row["value"] is None and row["statistic"] in ("n", "percent"))
        if row["value"] is not None and row["ci_low"] is not None:
            assert row["ci_low"] <= row["value"] + 1e-9 <= row["ci_high"] + 2e-9


def test_linear_regression_recovers_a_coefficient_sign(engine: Engine) -> None:
    query = parse_query({"project": "p", **INCOME_ON_AGE, "group_by": ["cpr.sex"], "epsilon": 2.0})
    release = engine.run(query, PURE)
    _json(release)
    assert [r["term"] for r in release.rows] == ["intercept", "cpr.age", "cpr.sex=M"]
    moments = release.model["moments"] if release.model else {}
    assert moments["count"] > 100 and len(moments["xtx"]) == 3
    # An indicator squared is the indicator: the same released moment, not a second one.
    assert moments["xtx"][2][2] == moments["xtx"][0][2]
    parts = [p.part for p in release.privacy.loss_split or []]
    assert "cpr.sex=M*cpr.sex=M" not in parts and "n" in parts
    for row in release.rows:
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
        assert row["ci_high"] - row["ci_low"] >= row["naive_ci_high"] - row["naive_ci_low"]


def test_previews_state_the_expected_ratio_interval(engine: Engine) -> None:
    small = engine.preview(_query(measure="poisson_regression", group_by=["cpr.sex"]), PURE)
    big = engine.preview(_query(measure="poisson_regression", group_by=["cpr.sex"], epsilon=4.0), PURE)
    assert small.expected_intervals and big.expected_intervals
    at_100 = [r for r in small.expected_intervals if r["events_per_level"] == 100][0]
    assert at_100["half_width_log"] > at_100["naive_half_width_log"]
    # More loss, less noise: the expected interval narrows towards the naive one.
    assert [r["half_width_log"] for r in big.expected_intervals] < [
        r["half_width_log"] for r in small.expected_intervals
    ]
    assert small.loss.loss_split and len(small.loss.loss_split) == 2


BAD = [
    pytest.param(dict(measure="poisson_regression", group_by=[]), "needs covariates", id="no_covariates"),
    pytest.param(
        dict(measure="poisson_regression", group_by=["cpr.sex", "cohort.event"]),
        "outcome",
        id="event_covariate",
    ),
    pytest.param(
        dict(measure="logistic_regression", group_by=["cpr.sex"], reference={"cpr.sex": "X"}),
        "not one of its keys",
        id="bad_reference",
    ),
    pytest.param(
        dict(measure="logistic_regression", group_by=["cpr.sex"], reference={"cpr.region": "X"}),
        "not a covariate",
        id="reference_not_covariate",
    ),
    pytest.param(
        dict(
            measure="poisson_regression",
            group_by=["cpr.sex", "cpr.region", "cohort.age_band", "cohort.period", "cohort.metformin"],
        ),
        "at most 4",
        id="five_covariates",
    ),
    pytest.param(
        dict(measure="table1", group_by=["cpr.sex"], variables=["cpr.sex"]), "splits", id="group_as_variable"
    ),
    pytest.param(dict(measure="table1", variables=["cpr.nope"]), "Variable cpr.nope", id="unknown_variable"),
]


@pytest.mark.parametrize(("fields", "message"), BAD)
def test_bad_model_queries_say_what_to_change(engine: Engine, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryError) as caught:
        engine.cost(_query(**fields), PURE)
    assert message in caught.value.message


SHAPE = [
    pytest.param({"measure": "table1", "cohort": COHORT}, "needs 'variables'", id="table1_without_variables"),
    pytest.param({"measure": "linear_regression"}, "needs the outcome", id="linear_without_column"),
    pytest.param(
        {"measure": "poisson_regression", "group_by": ["cpr.sex"]}, "needs a 'cohort'", id="no_cohort"
    ),
    pytest.param(
        {"measure": "logistic_regression", "cohort": {**COHORT, "follow_up_days": 30}},
        "exactly one of follow_up_years",
        id="two_follow_ups",
    ),
    pytest.param(
        {"measure": "count_persons", "reference": {"cpr.sex": "F"}}, "only for measure", id="stray_reference"
    ),
]


@pytest.mark.parametrize(("fields", "message"), SHAPE)
def test_model_query_shape_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query({"project": "p", "epsilon": 1.0, **fields})
    assert message in caught.value.message


def test_linear_bounds_that_could_overflow_are_refused(engine: Engine) -> None:
    query = parse_query(
        {
            "project": "p",
            "measure": "linear_regression",
            "register": "ind",
            "column": "ind.disposable_income",
            "epsilon": 1.0,
        }
    )
    with pytest.raises(QueryError) as caught:
        engine.cost(query, PURE)
    assert caught.value.code == "fixed_point_overflow" and "narrow the bounds" in caught.value.message


def test_model_estimates_are_reproducible_from_the_release(engine: Engine) -> None:
    """The fit is post-processing: rerunning the estimator on the released table with the release's
    noise block and seed gives the same rate ratios."""
    from query_engine import estimators

    query = _query(measure="poisson_regression", group_by=["cpr.sex"])
    release = engine.run(query, PURE)
    noise = release.noise or {}
    assert all(r["events"] is not None for r in release.rows), "a cell was suppressed: use a larger cohort"
    assert release.model is not None
    result = estimators.poisson_regression(
        {"cpr.sex": [r["cpr.sex"] for r in release.rows]},
        np.array([r["events"] for r in release.rows], dtype=float),
        np.array([r["person_years"] * 365.25 for r in release.rows]),
        events_noise=estimators.NoiseModel("laplace", noise["events"]["scale"]),
        time_noise=estimators.NoiseModel("laplace", noise["person_time"]["scale"]),
        draws=release.model["draws"],
        rng=np.random.default_rng(int(release.release_id[2:], 16)),
    )
    assert math.isclose(result.estimate[0], release.model["terms"][0]["estimate"], rel_tol=1e-6)


def test_a_table_the_model_cannot_be_fitted_to_is_released_with_a_reason(catalog: Any) -> None:
    """Every person-time cell of one level lost to noise: the table is still released (it was paid
    for), and the model section says why it has no terms."""
    from query_engine.mechanisms import DPArray
    from query_engine.models import prepare_model
    from query_engine.models_release import make_model_release

    query = _query(measure="poisson_regression", group_by=["cpr.sex", "cohort.metformin"])
    prepared = prepare_model(query, catalog, PURE, EngineSettings())
    events = np.array([5, 7, 9, 11]).view(DPArray)
    person_time = np.array([-40, -3, 90_000, 120_000]).view(DPArray)  # sex F: no person-time left
    release = make_model_release(
        query,
        prepared.plan,  # type: ignore[arg-type]
        prepared.calibrations,
        [{"events": events, "person_time": person_time}],
        small_cell_threshold=0,
    )
    assert release.model is not None and release.model["terms"] == []
    assert "could not be fitted" in release.model["error"] and len(release.rows) == 4


def test_table1_small_cells_lose_their_numbers(engine: Engine) -> None:
    """Every region within the small metformin group is below a large threshold: those rows are shown
    as suppressed, without numbers; the larger cells keep theirs."""
    from query_engine.models_release import make_model_release

    query = _query(measure="table1", group_by=["cohort.metformin"], variables=["cpr.sex"])
    prepared = engine._model(query, PURE)
    from query_engine.mechanisms import DPArray

    counts = np.array([400, 380, 3, 2]).view(DPArray)  # metformin 0: F, M; metformin 1: F, M
    release = make_model_release(
        query,
        prepared.plan,
        prepared.calibrations,
        [{"count": counts}],
        small_cell_threshold=5,  # type: ignore[arg-type]
    )
    shown = {(r["group"], r["level"]): r for r in release.rows if r["variable"] == "cpr.sex"}
    assert (
        shown[(1, "F")]["suppressed"]
        and shown[(1, "F")]["value"] is None
        and shown[(1, "F")]["count"] is None
    )
    assert not shown[(0, "F")]["suppressed"] and shown[(0, "F")]["count"] == 400
    assert release.small_cell_threshold == 5 and _json(release)["rows"]


def test_table1_under_zcdp_is_one_combined_gaussian_release(engine: Engine) -> None:
    """Item 5: k histograms of L2 sensitivity 1 with rho split evenly are one discrete Gaussian release
    of the stacked vector with L2 = sqrt(k): every scale is sqrt(k / (2 rho))."""
    variables = ["cpr.sex", "cpr.region", "cohort.age"]
    query = parse_query(
        {
            "project": "p",
            "measure": "table1",
            "cohort": COHORT,
            "group_by": ["cohort.metformin"],
            "variables": variables,
            "rho": 0.5,
        }
    )
    preview = engine.preview(query, ZCDP)
    split = preview.loss.loss_split or []
    assert preview.loss.rho is not None and preview.loss.rho <= 0.5
    assert math.isclose(preview.loss.rho, 0.5, rel_tol=1e-9)
    for part in split:
        assert part.mechanism == "discrete_gaussian"
        assert math.isclose(part.scale, math.sqrt(len(variables) / (2 * 0.5)), rel_tol=1e-9)
