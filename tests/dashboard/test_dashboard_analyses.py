"""The Rates and Survival pages under AppTest against a fake API (``httpx.MockTransport``): the query
the cohort builder sends, a named cohort reused, and a release of each kind shown as the contract
has it (the real service behind these pages: tests/dashboard/test_dashboard_analyses_live.py)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from dashboard import analysis_tables
from dashboard.i18n import translate
from tests.dashboard.dash_helpers import (
    ANALYST,
    FakeApi,
    app_test,
    charts,
    open_page,
    preview_answer,
    project_answer,
    pure_privacy,
    sign_in,
    texts,
)
from tests.helpers.cohorts import RATE_COLUMNS as CONTRACT_RATE_COLUMNS
from tests.helpers.cohorts import lpr_cohort

PROJECT = project_answer("Heart", ["cpr", "lpr", "dar"])
PREVIEW = preview_answer(0.5, 4)
FIRST_MI = lpr_cohort("I21", name="first-mi")
RATE_COLUMNS = ["cohort.age_band", *CONTRACT_RATE_COLUMNS]
RATE_RELEASE: dict[str, Any] = {
    "release_id": "r_rate",
    "project": "p1",
    "cached": False,
    "privacy": pure_privacy(0.5),
    "confidence": 0.95,
    "columns": RATE_COLUMNS,
    "rows": [
        dict(
            zip(
                RATE_COLUMNS,
                ["60-69", 41, 812.5, 50.46, 35.1, 68.9, 44.2, 57.0, 36.9, 66.8, False],
                strict=True,
            )
        ),
        dict(
            zip(
                RATE_COLUMNS,
                ["70-79", 77, 655.25, 117.5, 91.3, 147.2, 109.0, 126.4, 93.0, 145.1, False],
                strict=True,
            )
        ),
    ],
    "budget": {"epsilon_remaining": 1.5},
    "query": {
        "measure": "rate",
        "group_by": ["cohort.age_band"],
        "per_person_years": 1000,
        "cohort": FIRST_MI,
    },
    "standardised": {
        "population": "esp2013",
        "per_person_years": 1000,
        "rows": [
            {
                "rate": 61.25,
                "ci_low": 48.5,
                "ci_high": 77.75,
                "crude_rate": 79.4,
                "crude_ci_low": 66.0,
                "crude_ci_high": 94.3,
            }
        ],
    },
}
SURVIVAL_RELEASE: dict[str, Any] = {
    "release_id": "r_km",
    "project": "p1",
    "cached": False,
    "privacy": pure_privacy(0.5),
    "confidence": 0.95,
    "columns": ["cpr.sex", "bin", "time_start", "time_end", "events", "censored"],
    "rows": [
        {"cpr.sex": s, "bin": b, "time_start": b, "time_end": b + 1, "events": 3, "censored": 1}
        for s in ("F", "M")
        for b in range(5)
    ],
    "budget": {"epsilon_remaining": 1.0},
    "query": {"measure": "survival", "group_by": ["cpr.sex"], "cohort": FIRST_MI},
    "survival": {
        "unit": "years",
        "rows": [
            {
                "cpr.sex": s,
                "time": t,
                "at_risk": 100 - 15 * (t - 1),
                "events": 3,
                "survival": 1 - 0.07 * t - d,
                "ci_low": 0.9 - 0.08 * t - d,
                "ci_high": 1 - 0.05 * t - d,
            }
            for s, d in (("F", 0.0), ("M", 0.04))
            for t in range(1, 6)
        ],
    },
    "horizons": [
        {
            "cpr.sex": s,
            "years": y,
            "survival": 0.86 - d,
            "ci_low": 0.8 - d,
            "ci_high": 0.91 - d,
            "cumulative_incidence": 0.14 + d,
            "ci_ci_low": 0.09 + d,
            "ci_ci_high": 0.2 + d,
        }
        for s, d in (("F", 0.0), ("M", 0.04))
        for y in (1, 5)
    ],
    "median": [
        {"cpr.sex": "F", "median_years": None, "ci_low": None, "ci_high": None},
        {"cpr.sex": "M", "median_years": 4.5, "ci_low": 3.25, "ci_high": None},
    ],
}


def _api(fake: FakeApi, cohorts: list[dict[str, Any]]) -> FakeApi:
    fake.routes.update(
        {
            "GET /v1/me": ANALYST,
            "GET /v1/projects/p1": PROJECT,
            "GET /v1/projects/p1/cohorts": {"project": "p1", "count": len(cohorts), "cohorts": cohorts},
            "POST /v1/queries/preview": PREVIEW,
        }
    )
    return fake


def _sent(fake: FakeApi, path: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(fake.calls("POST", path)[-1].content)
    return body


def test_the_rates_page_sends_the_built_cohort_and_shows_rates_with_both_interval_parts(
    fake_api: FakeApi,
) -> None:
    _api(fake_api, [])
    fake_api.routes["POST /v1/queries"] = RATE_RELEASE
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "rates")
    assert at.title[0].value == "Rates"
    at.date_input(key="rates_entry_from").set_value("2012-01-01")
    at.text_input(key="rates_name").set_value("first-mi").run()
    at.button(key="rates_index_add_condition_lpr").click().run()
    at.selectbox(key="rates_index_cond_lpr_0_column").set_value("lpr.icd10").run()
    at.selectbox(key="rates_index_cond_lpr_0_op").set_value("prefix").run()
    at.text_input(key="rates_index_cond_lpr_0_text").set_value("I21").run()
    at.selectbox(key="rates_standard").set_value("esp2013").run()
    assert not at.exception, [e.value for e in at.exception]
    previewed = _sent(fake_api, "/v1/queries/preview")
    assert previewed["measure"] == "rate" and previewed["standard_population"] == "esp2013"
    assert previewed["group_by"] == ["cohort.age_band"]  # added for the standardisation
    cohort = previewed["cohort"]
    assert cohort["name"] == "first-mi" and cohort["follow_up_years"] == 5
    assert cohort["index"] == {**FIRST_MI["index"]}
    assert "outcome" not in cohort  # death
    assert fake_api.calls("POST", "/v1/queries") == []  # nothing spent before Run

    at.button(key="rates_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _sent(fake_api, "/v1/queries") == previewed
    assert fake_api.calls("POST", "/v1/queries")[-1].headers["idempotency-key"]
    assert len(fake_api.calls("GET", "/v1/projects/p1/cohorts")) == 1
    frames = [t.value for t in at.table]
    rates = next(f for f in frames if "Events" in f.columns)
    assert list(rates["Events"]) == ["41", "77"] and list(rates["Person-years"]) == ["812.5", "655.25"]
    assert list(rates["Noise part"]) == ["44.2 – 57", "109 – 126.4"]
    assert list(rates["Sampling part"]) == ["36.9 – 66.8", "93 – 145.1"]
    assert list(rates["Interval (noise + sampling)"]) == ["35.1 – 68.9", "91.3 – 147.2"]
    standardised = next(f for f in frames if "Age-standardised" in f.columns)
    assert list(standardised["Age-standardised"]) == ["61.25"] and list(standardised["Crude"]) == ["79.4"]
    specs = charts(at)
    assert len(specs) == 2  # rates with error bars; standardised beside crude
    assert "errorbar" in json.dumps(specs[0])
    at.run()  # the next interaction lists the project's cohorts again: the run may have named one
    assert len(fake_api.calls("GET", "/v1/projects/p1/cohorts")) == 2


def test_the_survival_page_reuses_a_named_cohort_and_shows_curve_at_risk_horizons_median(
    fake_api: FakeApi,
) -> None:
    stored = {
        "name": "first-mi",
        "definition": FIRST_MI,
        "created_at": "2026-12-06T10:00:00+00:00",
        "created_by": "analyst:tok_a",
    }
    _api(fake_api, [stored])
    fake_api.routes["POST /v1/queries"] = SURVIVAL_RELEASE
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "survival")
    at.radio(key="survival_cohort_mode").set_value("stored").run()
    at.multiselect(key="survival_group_by").set_value(["cpr.sex"]).run()
    at.selectbox(key="survival_unit").set_value("years").run()
    assert "Index event in lpr (2012-01-01 – 2020-12-31)" in texts(at)
    previewed = _sent(fake_api, "/v1/queries/preview")
    assert previewed["cohort"] == "first-mi" and previewed["measure"] == "survival"
    assert previewed["time_bins"] == {"unit": "years", "width": 1} and previewed["horizons_years"] == [1, 5]
    at.button(key="survival_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (spec,) = charts(at)
    text = json.dumps(spec)
    assert "step-after" in text and '"area"' in text  # step curves with interval bands
    frames = [t.value for t in at.table]
    at_risk = next(f for f in frames if "Time since index (years)" in f.columns)
    assert list(at_risk["Time since index (years)"]) == ["Female", "Male"]
    # A curve row is an exit bin (time: its end; at_risk: the number entering it).
    assert list(at_risk["0"]) == ["100", "100"] and list(at_risk["4"]) == ["40", "40"]
    assert list(at_risk["5"]) == ["", ""]  # the end of follow-up
    horizons = next(f for f in frames if "Cumulative incidence" in f.columns)
    assert list(horizons["Survival"]) == ["86.0%", "86.0%", "82.0%", "82.0%"]
    median = next(f for f in frames if "Median survival (years)" in f.columns)
    assert list(median["Median survival (years)"]) == ["not reached", "4.5"]


def test_the_pages_speak_danish(fake_api: FakeApi) -> None:
    _api(fake_api, [])
    at = sign_in(app_test(fake_api.transport()), "sst_a")
    at.radio(key="lang").set_value("da").run()
    open_page(at, "survival")
    assert at.title[0].value == "Overlevelse"
    assert "Indgangshændelse" in texts(at)
    open_page(at, "rates")
    assert at.title[0].value == "Rater"


def test_an_incomplete_cohort_says_what_is_missing_and_asks_nothing(fake_api: FakeApi) -> None:
    _api(fake_api, [])
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "rates")
    at.text_input(key="rates_name").set_value("First MI").run()
    assert "'First MI' is not a valid cohort name" in texts(at)
    at.text_input(key="rates_name").set_value("").run()
    at.date_input(key="rates_entry_from").set_value("2021-06-01").run()
    assert "The entry window starts (2021-06-01) after it ends (2020-12-31)." in texts(at)
    previews = len(fake_api.calls("POST", "/v1/queries/preview"))
    assert previews == 1  # the one complete draft before the changes; none for the incomplete ones


def test_the_rates_table_says_when_an_interval_is_not_bounded_and_hides_suppressed_cells() -> None:
    frame = pd.DataFrame.from_records(
        [
            dict(
                zip(
                    RATE_COLUMNS,
                    ["60-69", 41, 812.5, 50.46, None, None, None, None, 36.9, 66.8, False],
                    strict=True,
                )
            ),
            dict(
                zip(
                    RATE_COLUMNS,
                    ["70-79", None, 655.25, None, None, None, None, None, None, None, True],
                    strict=True,
                )
            ),
        ]
    )
    table = analysis_tables.rate_table(
        frame, ["cohort.age_band"], {}, {}, lambda key, **v: translate("en", key, **v)
    )
    assert list(table["Interval (noise + sampling)"]) == ["not bounded (too noisy)", ""]
    assert list(table["Sampling part"]) == ["36.9 – 66.8", ""]
    assert list(table["Rate"]) == ["50.46", "too few to show"]
    assert list(table["Events"]) == ["41", ""]
