"""The Models and Table 1 pages under AppTest against the real API (issue 16 item 6): a Poisson model
of a built cohort with its forest plot and terms, then a Table 1 of the same cohort reused by name."""

from __future__ import annotations

import json

from tests.dashboard.dash_helpers import Api, app_test, charts, clean, open_page, sign_in, table_with, texts


def test_a_poisson_model_then_a_table1_of_the_same_named_cohort(real_api: Api) -> None:
    project, token = real_api.new_project(epsilon=3.0)
    at = open_page(sign_in(app_test(timeout=90), token), "models")
    assert at.radio(key="models_kind").value == "poisson_regression"
    at.button(key="models_index_add_condition_lpr").click().run()
    at.selectbox(key="models_index_cond_lpr_0_column").set_value("lpr.icd10").run()
    at.selectbox(key="models_index_cond_lpr_0_op").set_value("prefix").run()
    at.text_input(key="models_index_cond_lpr_0_text").set_value("I").run()
    at.text_input(key="models_name").set_value("any-i-dash").run()
    at.checkbox(key="models_exposure_on").check().run()
    at.text_input(key="models_exposure_name").set_value("statin").run()
    at.button(key="models_exposure_add_condition_lmdb").click().run()
    at.selectbox(key="models_exposure_cond_lmdb_0_column").set_value("lmdb.atc").run()
    at.selectbox(key="models_exposure_cond_lmdb_0_op").set_value("prefix").run()
    at.text_input(key="models_exposure_cond_lmdb_0_text").set_value("C10").run()
    at.multiselect(key="models_poisson_regression_group_by").set_value(["cpr.sex", "cpr.region"]).run()
    at.number_input(key="models_epsilon").set_value(1.0).run()
    at.selectbox(key="models_reference_cpr.sex").set_value("M").run()
    clean(at)
    shown = texts(at)
    assert "Cost (ε)" in shown  # the preview, before anything is spent
    expected = table_with(at, "Events per level")  # what the preview expects of a ratio
    assert set(expected["Covariate"]) == {"Sex", "Region of residence"}
    at.button(key="models_run").click().run()
    clean(at)
    terms = table_with(at, "Rate ratio")
    assert "Sex: Female (vs Male)" in list(terms["Term"])
    assert {"Interval (with the noise)", "Naive interval (without the noise)"} <= set(terms.columns)
    (forest,) = charts(at)
    text = json.dumps(forest)
    assert '"type": "log"' in text and "Sex: Female (vs Male)" in text
    with real_api.admin() as http:
        releases = http.get(f"/v1/projects/{project}/releases").json()["releases"]
    assert [r["query"]["measure"] for r in releases] == ["poisson_regression"]
    assert releases[0]["query"]["reference"]["cpr.sex"] == "M"

    open_page(at, "table1")
    at.radio(key="table1_cohort_mode").set_value("stored").run()
    at.selectbox(key="table1_group_by").set_value("cohort.statin").run()  # the stored cohort's exposure
    at.multiselect(key="table1_variables").set_value(["cpr.sex", "cohort.age_band", "cohort.age"]).run()
    clean(at)
    assert "Persons per group" in table_with(at, "Persons per group").columns
    at.button(key="table1_run").click().run()
    clean(at)
    table = table_with(at, "Level")
    assert list(table.columns) == ["Variable", "Level", "statin: no", "statin: yes"]
    assert "Persons" in list(table["Variable"]) and "Median" in list(table["Level"])
    assert {b.key for b in at.get("download_button")} >= {"table1_result_csv", "table1_result_html"}
    with real_api.admin() as http:
        releases = http.get(f"/v1/projects/{project}/releases").json()["releases"]
    assert [r["query"]["measure"] for r in releases] == ["poisson_regression", "table1"]
    assert releases[1]["query"]["variables"] == ["cpr.sex", "cohort.age_band", "cohort.age"]
    assert releases[1]["query"]["cohort"]["exposures"][0]["name"] == "statin"  # resolved by name
