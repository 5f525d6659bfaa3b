"""Analyses through ``Engine``: the contract's release shape, the loss as charged, and clear errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from query_engine import Engine, ProjectContext
from query_engine.cohort import plan_analysis
from query_engine.errors import EngineError, PrivacyInvariantError
from query_engine.settings import EngineSettings
from query_engine.spec import parse_query
from tests.helpers.cohorts import RATE_COLUMNS, icd10, lpr_cohort, lpr_history, metformin

PURE = ProjectContext("pure")
ZCDP = ProjectContext("zcdp")
COHORT = lpr_cohort(
    "E11",
    name="first-e11",
    exclude=[lpr_history(icd10("E11"), lookback_days=730)],
    outcome={"register": "dar", "date": "death_date"},
    exposures=[metformin(op="=")],
    period_years=3,
)

RATE: dict[str, Any] = {
    "measure": "rate",
    "cohort": COHORT,
    "group_by": ["cpr.sex", "cohort.age_band"],
    "epsilon": 1.0,
}
SURVIVAL = {
    "measure": "survival",
    "cohort": COHORT,
    "group_by": ["cpr.sex"],
    "time_bins": {"unit": "months", "width": 6},
    "horizons_years": [1, 5],
    "epsilon": 1.0,
}
PREVALENCE = {
    "measure": "prevalence",
    "condition": {"register": "lmdb", "where": [{"column": "lmdb.atc", "op": "=", "value": "A10BA02"}]},
    "where": [{"column": "cpr.sex", "op": "=", "value": "F"}],
    "group_by": ["cpr.region"],
    "epsilon": 1.0,
}
PERSONS = {
    "measure": "count_persons",
    "cohort": COHORT,
    "group_by": ["cohort.event", "cohort.metformin"],
    "epsilon": 1.0,
}


def _query(body: dict[str, Any], **changes: Any) -> Any:
    return parse_query({"project": "p", **body, **changes})


@pytest.fixture(scope="module")
def engine(small_db: Path) -> Any:
    with Engine.open(small_db) as opened:
        yield opened


def test_rate_release_has_the_contract_columns_and_the_loss_split(engine: Engine) -> None:
    query = _query(RATE, standard_population="esp2013")
    release = engine.run(query, PURE, cost=engine.cost(query, PURE))
    assert release.measure == "rate"
    assert release.columns == [
        "cpr.sex",
        "cohort.age_band",
        *RATE_COLUMNS,
        "ci_unbounded",
        "noise_ci_unbounded",
    ]
    assert all(r["ci_unbounded"] == (r["ci_high"] is None and not r["suppressed"]) for r in release.rows)
    bands = engine.catalog.keyset("age_band_10").values
    assert [(r["cpr.sex"], r["cohort.age_band"]) for r in release.rows] == [
        (s, b) for s in ("F", "M") for b in bands
    ]
    split = release.privacy.loss_split
    assert split is not None and [p.part for p in split] == ["events", "person_time"]
    assert split[0].epsilon == pytest.approx(0.5, rel=1e-9) and split[1].epsilon == pytest.approx(
        0.5, rel=1e-9
    )
    assert release.privacy.epsilon is not None and release.privacy.epsilon <= 1.0
    assert release.noise is not None
    assert release.noise["events"]["scale"] == pytest.approx(2.0, rel=1e-9)
    assert release.noise["person_time"]["scale"] == pytest.approx(2 * 1826, rel=1e-9)  # T / (epsilon / 2)
    assert release.standardised is not None
    assert release.standardised["population"] == "esp2013"
    assert [r["cpr.sex"] for r in release.standardised["rows"]] == ["F", "M"]
    assert set(release.standardised["rows"][0]) >= {
        "rate",
        "ci_low",
        "ci_high",
        "crude_rate",
        "age_bands_used",
    }
    assert all(set(r["age_bands_used"]) <= set(bands) for r in release.standardised["rows"])


def test_rate_in_a_zcdp_project_splits_rho(engine: Engine) -> None:
    query = _query(RATE, epsilon=None, rho=0.5)
    release = engine.run(query, ZCDP)
    split = release.privacy.loss_split
    assert split is not None and [p.rho for p in split] == [pytest.approx(0.25, rel=1e-9)] * 2
    assert release.noise is not None and {n["mechanism"] for n in release.noise.values()} == {
        "discrete_gaussian"
    }


def test_survival_release_has_the_histogram_curve_horizons_and_median(engine: Engine) -> None:
    query = _query(SURVIVAL)
    release = engine.run(query, PURE)
    assert release.columns == ["cpr.sex", "bin", "time_start", "time_end", "events", "censored"]
    assert len(release.rows) == 2 * 10  # two sexes x 10 half-year bins
    assert release.rows[-1]["time_end"] == pytest.approx(60.0)  # months: the declared follow-up
    assert release.survival is not None and release.survival["unit"] == "months"
    assert {r["cpr.sex"] for r in release.survival["rows"]} == {"F", "M"}
    assert release.horizons is not None and [(h["cpr.sex"], h["years"]) for h in release.horizons] == [
        ("F", 1.0),
        ("F", 5.0),
        ("M", 1.0),
        ("M", 5.0),
    ]
    assert all(h["survival"] is not None for h in release.horizons)
    assert release.median is not None and len(release.median) == 2
    assert release.noise is not None and list(release.noise) == ["count"]


def test_prevalence_and_count_persons_over_a_cohort(engine: Engine) -> None:
    prevalence = engine.run(_query(PREVALENCE), PURE)
    regions = engine.catalog.keyset("regions").values
    assert [r["cpr.region"] for r in prevalence.rows] == list(regions)
    assert prevalence.columns[1:4] == ["cases", "persons", "proportion"]
    persons = engine.run(_query(PERSONS), PURE)
    assert [(r["cohort.event"], r["cohort.metformin"]) for r in persons.rows] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    assert persons.columns == [
        "cohort.event",
        "cohort.metformin",
        "value",
        "ci_low",
        "ci_high",
        "suppressed",
        "value_raw",
    ]


def test_target_ci_for_count_persons_over_a_cohort(engine: Engine) -> None:
    preview = engine.preview(_query(PERSONS, epsilon=None, target_ci=5.0), PURE)
    assert preview.expected_half_width is not None and preview.expected_half_width <= 5.0
    assert preview.loss.epsilon is not None and 0 < preview.loss.epsilon < 5


def test_preview_and_cost_agree_and_touch_no_data(engine: Engine) -> None:
    query = _query(RATE)
    cost = engine.cost(query, PURE)
    preview = engine.preview(query, PURE)
    assert preview.loss.epsilon == cost.loss.epsilon
    assert cost.registers == ("cpr", "dar", "lmdb", "lpr")
    assert "person-time" in preview.notes[0]


def test_a_release_refuses_a_cost_that_differs_from_the_derived_loss(engine: Engine) -> None:
    query = _query(RATE)
    other = engine.cost(_query(RATE, epsilon=0.5), PURE)
    with pytest.raises(PrivacyInvariantError, match="charged cost"):
        engine.run(query, PURE, cost=other)


def test_the_canonical_form_carries_the_analysis_fields() -> None:
    rate = _query(RATE)
    changed = copy.deepcopy(RATE)
    changed["cohort"]["follow_up_years"] = 4
    assert rate.query_hash() != _query(changed).query_hash()
    assert rate.canonical()["per_person_years"] == 1000
    assert _query(RATE, per_person_years=100).query_hash() != rate.query_hash()
    plain = parse_query({"project": "p", "measure": "count_persons", "epsilon": 1.0}).canonical()
    assert not {"cohort", "per_person_years", "time_bins", "condition"} & set(plain)


def test_the_sql_compiles_for_spark(engine: Engine) -> None:
    for body in (RATE, SURVIVAL, PREVALENCE, PERSONS):
        compiled = engine.compiled(_query(body), PURE, dialect="spark")
        assert "DATEDIFF" in compiled.sql or body is PREVALENCE
        assert "$1" not in compiled.sql


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``body`` with the dotted ``path`` set to ``value`` (``None`` deletes it)."""
    result = copy.deepcopy(body)
    *parents, last = path.split(".")
    target: Any = result
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return result


BAD = [
    pytest.param(
        _with(RATE, "cohort", "first-mi"), "unsupported_query", "the service looks up", id="named_cohort"
    ),
    pytest.param(
        _with(RATE, "cohort.index.register", "lrp"), "unknown_register", "Did you mean 'lpr'", id="register"
    ),
    pytest.param(
        _with(RATE, "cohort.index.date", "admision_date"), "unknown_column", "admission_date", id="date_typo"
    ),
    pytest.param(
        _with(RATE, "cohort.index.date", "icd10"), "unsupported_query", "must be a date column", id="not_date"
    ),
    pytest.param(
        _with(RATE, "cohort.index.entry", ["2020-01-01", "2012-01-01"]),
        "invalid_bounds",
        "reversed",
        id="entry",
    ),
    pytest.param(
        _with(RATE, "cohort.index.entry", ["2012-01-01", "soon"]),
        "value_outside_domain",
        "YYYY-MM-DD",
        id="date",
    ),
    pytest.param(
        _with(RATE, "cohort.exclude.0.where", [{"column": "lmdb.atc", "op": "=", "value": "A10BA02"}]),
        "unsupported_query",
        "must be on its register lpr",
        id="rule_register",
    ),
    pytest.param(
        _with(RATE, "group_by", ["cohort.age_bnd"]), "unknown_column", "Did you mean 'age_band'", id="group"
    ),
    pytest.param(
        _with(RATE, "group_by", ["cohort.event"]), "unsupported_query", "counts the events", id="event"
    ),
    pytest.param(
        _with(RATE, "group_by", ["lpr.icd10"]), "unsupported_query", "groups persons", id="off_person"
    ),
    pytest.param(
        _with(RATE, "standard_population", "esp2031"), "value_outside_domain", "esp2013", id="population"
    ),
    pytest.param(
        RATE | {"standard_population": "mine", "standard_population_persons": {"0-49": 5, "40-99": 5}},
        "value_outside_domain",
        "overlaps",
        id="supplied_overlap",
    ),
    pytest.param(
        RATE | {"standard_population": "mine", "standard_population_persons": {"0-44": 5, "45+": 5}},
        "value_outside_domain",
        "does not line up",
        id="supplied_misaligned",
    ),
    pytest.param(
        RATE | {"standard_population": "mine", "standard_population_persons": {"0-49": 5}},
        "value_outside_domain",
        "does not line up",
        id="supplied_missing_ages",
    ),
    pytest.param(
        _with(_with(RATE, "group_by", ["cpr.sex"]), "standard_population", "esp2013"),
        "unsupported_query",
        "cohort.age_band",
        id="standardise_without_age",
    ),
    pytest.param(
        _with(RATE, "epsilon", None) | {"target_ci": 3}, "unsupported_query", "Give epsilon", id="target"
    ),
    pytest.param(
        _with(SURVIVAL, "group_by", ["cpr.sex", "cpr.region", "cohort.period"]),
        "too_many_group_columns",
        "at most 2",
        id="survival_groups",
    ),
    pytest.param(
        _with(SURVIVAL, "time_bins", {"unit": "days", "width": 1}), "value_outside_domain", "400", id="bins"
    ),
    pytest.param(
        _with(SURVIVAL, "horizons_years", [10]), "value_outside_domain", "beyond the follow-up", id="horizon"
    ),
    pytest.param(
        _with(PREVALENCE, "group_by", ["cohort.period"]),
        "unsupported_query",
        "add a 'cohort'",
        id="no_cohort",
    ),
    pytest.param(
        _with(PERSONS, "where", [{"column": "cohort.event", "op": "=", "value": 1}]),
        "unsupported_query",
        "group by it",
        id="where_cohort",
    ),
    pytest.param(_with(PERSONS, "max_rows", 3), "unsupported_query", "remove it", id="max_rows"),
    pytest.param(
        _with(RATE, "cohort.exposures.0.name", "period"), "unsupported_query", "rename", id="exposure_name"
    ),
]


@pytest.mark.parametrize(("body", "code", "fragment"), BAD)
def test_bad_analyses_get_clear_errors(
    engine: Engine, body: dict[str, Any], code: str, fragment: str
) -> None:
    with pytest.raises(EngineError) as raised:
        engine.cost(_query(body), PURE)
    assert raised.value.code == code
    assert fragment in raised.value.message
    assert raised.value.message[0].isupper()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({"measure": "rate", "epsilon": 1.0}, "needs a 'cohort'", id="rate_without_cohort"),
        pytest.param(
            {"measure": "prevalence", "epsilon": 1.0}, "needs a 'condition'", id="prevalence_without"
        ),
        pytest.param(
            {"measure": "sum", "column": "ind.income", "cohort": COHORT, "epsilon": 1.0},
            "A cohort is for",
            id="sum",
        ),
        pytest.param(
            {**PERSONS, "time_bins": {"unit": "days"}}, "only for measure 'survival'", id="bins_on_count"
        ),
        pytest.param(_with(RATE, "cohort.follow_up_years", 40), "less than or equal to 30", id="follow_up"),
        pytest.param(
            RATE | {"standard_population_persons": {"0+": 1}}, "need a 'standard_population'", id="unnamed"
        ),
        pytest.param(
            {**SURVIVAL, "standard_population": "x", "standard_population_persons": {"0+": 1}},
            "only for measure 'rate'",
            id="supplied_on_survival",
        ),
        pytest.param(
            RATE | {"standard_population": "x", "standard_population_persons": {"0-9": 0}},
            "greater than 0",
            id="supplied_zero",
        ),
    ],
)
def test_shape_errors_name_the_field(body: dict[str, Any], fragment: str) -> None:
    from query_engine.errors import QueryError

    with pytest.raises(QueryError) as raised:
        _query(body)
    assert raised.value.stage == "spec"
    assert fragment in raised.value.message


def test_cohort_columns_list_the_exposures(engine: Engine) -> None:
    plan = plan_analysis(_query(PERSONS), engine.catalog, PURE, EngineSettings())
    assert [g.name for g in plan.groups] == ["cohort.event", "cohort.metformin"]
    periods = plan_analysis(
        _query(_with(PERSONS, "group_by", ["cohort.period"])), engine.catalog, PURE, EngineSettings()
    )
    assert periods.groups[0].keys == ("2012-2014", "2015-2017", "2018-2020")


def test_exact_table_for_tests_matches_the_release_cells(engine: Engine) -> None:
    query = _query(PERSONS)
    exact = engine._exact_analysis_for_tests(query)
    assert exact.keys == ((0, 0), (0, 1), (1, 0), (1, 1))
    assert int(exact.values["count"].sum()) > 0
    release = engine.run(query, PURE)
    assert len(release.rows) == len(exact.keys)


def test_prevalence_population_from_where_matches_a_direct_count(engine: Engine) -> None:
    """Persons with an I21 admission (a condition on another register), by sex: has metformin or not."""
    from query_engine.compile import CompiledQuery

    body = {
        **PREVALENCE,
        "where": [{"column": "lpr.icd10", "op": "prefix", "value": "I21"}],
        "group_by": ["cpr.sex"],
    }
    exact = engine._exact_analysis_for_tests(_query(body))

    def rows(sql: str) -> list[dict[str, Any]]:
        return engine.backend.execute(CompiledQuery(sql, (), "duckdb")).to_pylist()

    sex = {r["person_id"]: r["sex"] for r in rows("SELECT person_id, sex FROM cpr")}
    i21 = {r["person_id"] for r in rows("SELECT person_id FROM lpr WHERE icd10 LIKE 'I21%'")}
    metformin = {r["person_id"] for r in rows("SELECT person_id FROM lmdb WHERE atc = 'A10BA02'")}
    expected = {(s, h): 0 for s in ("F", "M") for h in (0, 1)}
    for person in i21:
        expected[(sex[person], int(person in metformin))] += 1
    assert exact.keys == tuple(expected)
    assert exact.values["count"].tolist() == list(expected.values())
    assert sum(expected.values()) > 10


def test_prevalence_within_a_cohort_and_where_on_another_register(engine: Engine) -> None:
    """The population is the cohort's members having a metformin row; prevalence of an I21 admission."""
    body = {
        **PREVALENCE,
        "cohort": COHORT,
        "condition": {"register": "lpr", "where": [{"column": "lpr.icd10", "op": "prefix", "value": "I21"}]},
        "where": [{"column": "lmdb.atc", "op": "=", "value": "A10BA02"}],
        "group_by": ["cohort.period"],
    }
    members = engine._exact_analysis_for_tests(_query(PERSONS, group_by=["cohort.metformin"]))
    exact = engine._exact_analysis_for_tests(_query(body))
    assert [k[1] for k in exact.keys] == [0, 1] * 3
    exposed_any_time = int(exact.values["count"].sum())
    # Members with a metformin row at any time include those exposed within the 365 days before the index.
    assert exposed_any_time >= int(members.values["count"][1])
    assert exposed_any_time <= int(members.values["count"].sum())
    release = engine.run(_query(body), PURE)
    assert [r["cohort.period"] for r in release.rows] == ["2012-2014", "2015-2017", "2018-2020"]


def test_a_cohort_definition_is_checked_on_its_own(engine: Engine) -> None:
    from query_engine.cohort import check_cohort
    from query_engine.spec import CohortDefinition

    checked = check_cohort(CohortDefinition.model_validate(COHORT), engine.catalog)
    assert checked.follow_up_days == 1826 and checked.outcome_same_day
    with pytest.raises(EngineError, match="Did you mean 'lmdb'"):
        check_cohort(
            CohortDefinition.model_validate(_with(COHORT, "outcome.register", "lmbd")), engine.catalog
        )


def _esp_figures() -> dict[str, float]:
    """The shipped ESP 2013 figures, as an analyst would type them in for a population of their own."""
    import csv
    from importlib import resources

    text = resources.files("query_engine.estimators").joinpath("standard_populations.csv").read_text()
    return {
        r["age_band"]: float(r["persons"])
        for r in csv.DictReader(text.splitlines())
        if r["population"] == "esp2013"
    }


def test_supplied_standard_population_weights_like_the_shipped_one(engine: Engine) -> None:
    """Figures the analyst supplies (e.g. Statistics Denmark's FOLK1A for a year) weight the age bands
    exactly as a shipped table with the same figures; the name only labels them in the release."""
    from query_engine.estimators import standard_weights

    labels = [f"{a}-{a + 9}" for a in range(0, 90, 10)] + ["90+"]
    shipped = standard_weights("esp2013", labels)
    supplied = standard_weights("my-esp", labels, persons=_esp_figures())
    assert supplied.tolist() == shipped.tolist()
    halved = standard_weights("young", labels, persons={**_esp_figures(), "0-4": 2500})
    assert halved[0] < shipped[0]

    query = _query(RATE, standard_population="dk-test", standard_population_persons=_esp_figures())
    release = engine.run(query, PURE, cost=engine.cost(query, PURE))
    assert release.standardised is not None
    assert release.standardised["population"] == "dk-test"
    assert [r["cpr.sex"] for r in release.standardised["rows"]] == ["F", "M"]
    other = _query(
        RATE, standard_population="dk-test", standard_population_persons={**_esp_figures(), "0-4": 1}
    )
    assert other.query_hash() != query.query_hash()  # the figures are part of the cached query
