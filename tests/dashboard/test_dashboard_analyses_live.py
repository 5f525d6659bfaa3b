"""The Rates and Survival pages under AppTest against the real API: a cohort built and named on one
page, released with its intervals, then reused by name on the other (issue 15 item 6)."""

from __future__ import annotations

import json

from tests.dashboard.dash_helpers import Api, app_test, charts, clean, open_page, sign_in, table_with, texts


def test_rates_then_survival_on_the_same_named_cohort(real_api: Api) -> None:
    project, token = real_api.new_project(epsilon=3.0)
    at = open_page(sign_in(app_test(timeout=90), token), "rates")
    at.button(key="rates_index_add_condition_lpr").click().run()
    at.selectbox(key="rates_index_cond_lpr_0_column").set_value("lpr.icd10").run()
    at.selectbox(key="rates_index_cond_lpr_0_op").set_value("prefix").run()
    at.text_input(key="rates_index_cond_lpr_0_text").set_value("I21").run()
    at.text_input(key="rates_name").set_value("first-mi-dash").run()
    at.multiselect(key="rates_group_by").set_value(["cpr.sex"]).run()
    at.selectbox(key="rates_standard").set_value("esp2013").run()
    clean(at)
    assert "Cost (ε)" in texts(at)  # the preview, before anything is spent
    at.button(key="rates_run").click().run()
    clean(at)
    rates = table_with(at, "Events")
    assert {"Person-years", "Noise part", "Sampling part"} <= set(rates.columns)
    assert len(rates) == 2 * 10  # sex x the ten age bands added for the standardisation
    standardised = table_with(at, "Age-standardised")
    assert len(standardised) == 2 and "Crude" in standardised.columns
    assert len(charts(at)) == 2

    open_page(at, "survival")
    at.radio(key="survival_cohort_mode").set_value("stored").run()
    assert at.selectbox(key="survival_stored").value == "first-mi-dash"
    at.multiselect(key="survival_group_by").set_value(["cpr.sex"]).run()
    at.button(key="survival_run").click().run()
    clean(at)
    (spec,) = charts(at)
    assert "step-after" in json.dumps(spec)
    at_risk = table_with(at, "Time since index (months)")
    assert len(at_risk) == 2
    horizons = table_with(at, "Cumulative incidence")
    assert sorted(set(horizons["Years"])) == ["1", "5"]
    assert len(table_with(at, "Median survival (years)")) == 2
    with real_api.admin() as http:
        listed = http.get(f"/v1/projects/{project}/cohorts").json()
        releases = http.get(f"/v1/projects/{project}/releases").json()["releases"]
    assert [c["name"] for c in listed["cohorts"]] == ["first-mi-dash"]
    assert [r["query"]["measure"] for r in releases] == ["rate", "survival"]
    assert releases[1]["query"]["cohort"] == releases[0]["query"]["cohort"]  # resolved by name

    open_page(at, "project")  # a past analysis reopens as an analysis
    at.selectbox(key="project_release_pick").set_value(releases[0]["release_id"]).run()
    at.button(key="project_release_open").click().run()
    clean(at)
    assert table_with(at, "Events") is not None
