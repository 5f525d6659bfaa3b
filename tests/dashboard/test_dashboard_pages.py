"""Every page under Streamlit's AppTest against the real API (a real server over a small built dataset)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from service.client import Client
from tests.dashboard.dash_helpers import REGISTERS, Api, app_test, charts, clean, open_page, sign_in, texts


def _budget(api: Api, project: str) -> dict[str, Any]:
    with api.admin() as http:
        body: dict[str, Any] = http.get(f"/v1/projects/{project}/budget").json()
    return body


def _explore(api: Api, epsilon: float = 2.0, mode: str = "pure", delta: float = 0.0) -> tuple[AppTest, str]:
    project, token = api.new_project(epsilon=epsilon, mode=mode, delta=delta)
    at = sign_in(app_test(), token)
    return open_page(at, "explore"), project


def _metric(at: AppTest, label: str) -> str:
    return next(str(m.value) for m in at.metric if m.label == label)


def _frame_with(at: AppTest, column: str) -> Any:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _run(at: AppTest) -> AppTest:
    return clean(at.button(key="explore_run").click().run())


# --- public pages -------------------------------------------------------------------------------


def test_public_pages_work_without_a_token(real_api: Api) -> None:
    at = open_page(app_test(), "catalog")
    assert at.title[0].value == "Catalog"
    assert {e.label.split(" — ")[0].strip("*") for e in at.expander} == REGISTERS
    at.text_input(key="catalog_search").set_value("income").run()
    assert [e.label.split(" — ")[0].strip("*") for e in at.expander] == ["ind"]
    assert "Danmarks Statistik" in texts(at)
    at.text_input(key="catalog_code_search").set_value("diabetes").run()
    codes = at.dataframe[-1].value
    assert {"E10", "E11", "E12", "E13", "E14"} <= set(codes.iloc[:, 0])

    open_page(at, "transparency")
    assert "Ledger head hash" in texts(at) and len(at.code[0].value) == 64
    open_page(at, "apply")
    assert "apply_title" in [widget.key for widget in at.text_input]
    open_page(at, "explore")
    assert "Sign in with a token" in texts(at)
    open_page(at, "project")
    assert "Sign in with a token" in texts(at)


def test_catalog_in_danish(real_api: Api) -> None:
    at = open_page(app_test(), "catalog")
    at.radio(key="lang").set_value("da").run()
    assert at.title[0].value == "Katalog"
    labels = [e.label for e in at.expander]
    assert any("Landspatientregisteret" in label for label in labels)
    assert at.text_input(key="catalog_search").label == "Søg i registre og variable"


def test_sign_in_shows_role_and_project_and_refuses_bad_tokens(real_api: Api) -> None:
    project, token = real_api.new_project()
    at = app_test().run()
    at.text_input(key="signin_token").set_value("sst_analyst_not-a-real-token").run()
    at.button(key="signin_button").click().run()
    assert "401" in at.sidebar.error[0].value
    sign_in(at, token)
    assert "(analyst)" in at.sidebar.success[0].value
    assert project in at.sidebar.caption[0].value
    assert at.session_state["auth_token"] == token
    at.button(key="signout_button").click().run()
    assert "auth_token" not in at.session_state


# --- explore ------------------------------------------------------------------------------------


def test_grouped_count_preview_run_table_chart_and_budget(real_api: Api) -> None:
    at, project = _explore(real_api)
    at.multiselect(key="explore_group_by").set_value(["cpr.region", "cpr.sex"]).run()
    assert _metric(at, "Cost (ε)") == "0.1"
    assert _metric(at, "Expected CI half-width (95%)").startswith("± ")
    assert "10 cells." in texts(at)
    assert _budget(real_api, project)["spends"] == 0  # previews are free

    _run(at)
    (spec,) = charts(at)
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["bar", "errorbar"]
    table = at.table[0].value
    assert list(table.columns) == ["Region of residence", "Sex", "Number of persons", "95% CI"]
    assert len(table) == 10
    assert set(table["Sex"]) == {"Female", "Male"}  # labels, not codes
    assert all(ci == "" or " – " in ci for ci in table["95% CI"])
    assert not table.isin(["None", "nan"]).any().any()
    assert {b.key for b in at.get("download_button")} >= {"explore_result_csv", "explore_result_parquet"}
    assert _metric(at, "ε remaining") == "1.9"
    budget = _budget(real_api, project)
    assert budget["spends"] == 1 and budget["epsilon_spent"] == pytest.approx(0.1)


def test_reruns_and_repeated_runs_never_spend_twice(real_api: Api) -> None:
    at, project = _explore(real_api)
    at.multiselect(key="explore_group_by").set_value(["cpr.age_band"]).run()
    _run(at)
    key = next(iter(at.session_state["explore_idempotency_keys"].values()))
    at.run()
    at.run()
    assert _budget(real_api, project)["spends"] == 1
    _run(at)  # the same query again: the same key, the stored release
    assert "stored release, at no cost" in texts(at)
    assert list(at.session_state["explore_idempotency_keys"].values()) == [key]
    assert _budget(real_api, project)["spends"] == 1


@pytest.mark.parametrize(
    ("measure", "register", "column", "group", "mark"),
    [
        pytest.param("count_rows", "lpr", None, "lpr.year", "line", id="count_rows_by_year_is_a_line"),
        pytest.param("sum", "lpr", "lpr.los_days", "cpr.sex", "bar", id="sum_bed_days"),
        pytest.param("mean", "ind", "ind.disposable_income", "ind.year", "line", id="mean_income_by_year"),
        pytest.param("quantile", "ind", "ind.disposable_income", None, "bar", id="median_income"),
    ],
)
def test_every_measure_runs(
    real_api: Api, measure: str, register: str, column: str | None, group: str | None, mark: str
) -> None:
    at, _ = _explore(real_api)
    at.selectbox(key="explore_measure").set_value(measure).run()
    at.selectbox(key="explore_register").set_value(register).run()
    if column:
        at.selectbox(key="explore_column").set_value(column).run()
    if group:
        at.multiselect(key="explore_group_by").set_value([group]).run()
    assert not at.error, [e.value for e in at.error]
    query = json.loads(at.code[0].value)
    assert (query["measure"], query["register"], query["column"]) == (measure, register, column)
    _run(at)
    (spec,) = charts(at)
    assert spec["layer"][0]["mark"]["type"] == mark


def test_bounds_and_accuracy_first(real_api: Api) -> None:
    at, _ = _explore(real_api)
    at.selectbox(key="explore_measure").set_value("sum").run()
    at.selectbox(key="explore_register").set_value("lpr").run()
    at.checkbox(key="explore_bounds_on").check().run()
    at.number_input(key="explore_hi").set_value(30).run()
    assert json.loads(at.code[0].value)["bounds"] == [0, 30]
    at.selectbox(key="explore_measure").set_value("count_persons").run()
    at.radio(key="explore_loss_kind").set_value("target_ci").run()
    at.number_input(key="explore_target_ci").set_value(50.0).run()
    query = json.loads(at.code[0].value)
    assert query["target_ci"] == 50 and "epsilon" not in query
    assert _metric(at, "Expected CI half-width (95%)") == "± 50"
    cost = float(_metric(at, "Cost (ε)"))
    assert 0 < cost < 0.1  # a wide interval is cheap


def test_cohort_conditions_with_the_code_picker(real_api: Api) -> None:
    at, _ = _explore(real_api)
    at.button(key="explore_add_condition").click().run()
    at.selectbox(key="cond_0_column").set_value("lpr.icd10").run()
    at.selectbox(key="cond_0_op").set_value("in").run()
    at.text_input(key="cond_0_search").set_value("diabetes").run()
    options = at.multiselect(key="cond_0_codes").options
    assert any(o.startswith("E11 — Type 2 diabetes") for o in options)
    at.multiselect(key="cond_0_codes").set_value(["E10", "E11"]).run()
    at.button(key="explore_add_condition").click().run()
    at.selectbox(key="cond_1_column").set_value("lpr.admission_date").run()
    at.multiselect(key="explore_group_by").set_value(["cpr.region"]).run()
    query = json.loads(at.code[0].value)
    assert query["where"] == [
        {"column": "lpr.icd10", "op": "in", "value": ["E10", "E11"]},
        {"column": "lpr.admission_date", "op": "between", "value": ["2010-01-01", "2024-12-31"]},
    ]
    _run(at)
    assert len(at.table[0].value) == 5
    at.button(key="cond_0_remove").click().run()
    assert [c["column"] for c in json.loads(at.code[0].value)["where"]] == ["lpr.admission_date"]


def test_zcdp_projects_offer_rho(real_api: Api) -> None:
    at, _ = _explore(real_api, epsilon=2.0, mode="zcdp", delta=1e-6)
    assert at.radio(key="explore_loss_kind").options == [
        "epsilon (ε)",
        "rho (ρ, zCDP)",
        "accuracy first (CI half-width)",
    ]
    at.radio(key="explore_loss_kind").set_value("rho").run()
    assert json.loads(at.code[0].value)["rho"] == 0.005
    assert _metric(at, "Cost (ρ)") == "0.005"
    _run(at)
    assert _metric(at, "Privacy loss (ρ)") == "0.005"


def test_a_refused_query_shows_the_service_sentence(real_api: Api) -> None:
    at, project = _explore(real_api, epsilon=0.05)
    assert "costs more than the project has left" in texts(at)
    assert at.button(key="explore_run").disabled  # Run is off while the preview says it would be refused
    assert "Run is off: This query costs more than the project has left" in texts(at)
    assert "explore_release" not in at.session_state
    assert _budget(real_api, project)["spends"] == 0


# --- my project ---------------------------------------------------------------------------------


def test_my_project_shows_the_budget_going_down_and_reopens_releases_free(real_api: Api) -> None:
    at, project = _explore(real_api)
    open_page(at, "project")
    assert _metric(at, "ε spent") == "0"
    assert "No releases yet" in texts(at)
    open_page(at, "explore")
    at.multiselect(key="explore_group_by").set_value(["cpr.region"]).run()
    _run(at)
    release_id = at.session_state["explore_release"]["release_id"]

    open_page(at, "project")
    assert (_metric(at, "ε spent"), _metric(at, "ε remaining")) == ("0.1", "1.9")
    assert charts(at), "the budget gauge"
    releases = at.dataframe[0].value
    assert releases["Release"].tolist() == [release_id]
    at.selectbox(key="project_release_pick").set_value(release_id)
    at.button(key="project_release_open").click().run()
    assert "shown again at no cost" in texts(at)
    assert len(charts(at)) == 2 and len(at.table[0].value) == 5
    assert _budget(real_api, project)["spends"] == 1


# --- apply --------------------------------------------------------------------------------------


def _applicant_token(api: Api, institution: str) -> str:
    """An applicant account issued by an administrator (this API has no identity provider)."""
    with Client(api.url, api.admin_token) as admin:
        admin.create_institution(institution, f"Institution {institution}", email_domains=["sdu.dk"])
        return str(admin.create_applicant(institution, name="Ane Analytiker", email="ane@sdu.dk")["token"])


def _fill_application(at: AppTest, epsilon: float, applicant_token: str | None = None) -> AppTest:
    at.text_input(key="apply_title").set_value("Diabetes by region")
    at.selectbox(key="apply_purpose").set_value("research")
    at.text_input(key="apply_institution").set_value("Syddansk Universitet")
    at.text_area(key="apply_summary").set_value("How many persons have type 2 diabetes in each region?")
    at.multiselect(key="apply_registers").set_value(["cpr", "lpr"])
    at.number_input(key="apply_epsilon").set_value(epsilon)
    at.text_input(key="apply_name").set_value("Ane Analytiker")
    at.text_input(key="apply_email").set_value("ane@example.dk")
    if applicant_token:
        at.text_input(key="apply_applicant_token").set_value(applicant_token)
    at.button(key="apply_submit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_an_anonymous_application_inside_the_policy_waits(real_api: Api) -> None:
    at = _fill_application(open_page(app_test(), "apply"), epsilon=0.5)
    last = at.session_state["apply_last"]
    assert last["status"] == "pending" and not last.get("token")
    assert "Anonymous applications are decided by an administrator" in texts(at)


def test_an_applicant_inside_the_policy_gets_its_token_at_once(real_api: Api) -> None:
    token = _applicant_token(real_api, "dash-sdu")
    at = _fill_application(open_page(app_test(), "apply"), epsilon=0.5, applicant_token=token)
    assert "Approved: project" in texts(at)
    last = at.session_state["apply_last"]
    token = last["token"]
    assert token.startswith("sst_") and token in texts(at)
    at.button(key="apply_signin").click().run()
    assert "(analyst)" in at.sidebar.success[0].value
    assert "apply_last" not in at.session_state  # the one-time token goes with the anonymous session
    with Client(real_api.url, token) as client:
        assert client.me()["project"] == last["project"]


def test_an_application_outside_the_policy_waits_for_the_administrator(real_api: Api) -> None:
    applicant = _fill_application(open_page(app_test(), "apply"), epsilon=5.0)
    assert "waits for an administrator" in texts(applicant)
    last = applicant.session_state["apply_last"]
    assert last["status"] == "pending" and last["status_key"]

    admin = open_page(sign_in(app_test(), real_api.admin_token), "admin")
    assert f"admin_approve_{last['id']}" in {b.key for b in admin.button}
    assert "Why it waits for an administrator:" in texts(admin)  # the administrator sees why
    assert "- Epsilon 5 is above the automatic limit 1." in [e.value for e in admin.text]
    admin.number_input(key=f"admin_eps_{last['id']}").set_value(3.0)
    admin.button(key=f"admin_approve_{last['id']}").click().run()
    assert f"Application {last['id']} approved." in texts(admin)

    applicant.button(key="apply_check").click().run()
    last = applicant.session_state["apply_last"]
    assert last["status"] == "approved" and last["granted_epsilon"] == 3.0
    assert last["token"] in texts(applicant)


def test_a_rejection_needs_a_reason_and_reaches_the_applicant(real_api: Api) -> None:
    applicant = _fill_application(open_page(app_test(), "apply"), epsilon=7.0)
    app_id = applicant.session_state["apply_last"]["id"]
    admin = open_page(sign_in(app_test(), real_api.admin_token), "admin")
    admin.button(key=f"admin_reject_{app_id}").click().run()
    assert "Give a reason." in texts(admin)
    admin.text_input(key=f"admin_reason_{app_id}").set_value("Budget too large for a pilot.")
    admin.button(key=f"admin_reject_{app_id}").click().run()
    applicant.button(key="apply_check").click().run()
    assert "Rejected: Budget too large for a pilot." in texts(applicant)


# --- administration -----------------------------------------------------------------------------


def test_admin_budgets_tokens_caps_and_ledger(real_api: Api) -> None:
    project, analyst = real_api.new_project(epsilon=1.0)
    analyst_view = open_page(sign_in(app_test(), analyst), "explore")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        analyst_view.switch_page("views/admin.py")

    at = open_page(sign_in(app_test(), real_api.admin_token), "admin")
    projects = _frame_with(at, "ε budget")
    assert project in projects["Id"].tolist()
    assert not any("_" in str(c) for c in projects.columns)  # readable headers, no snake_case
    assert not projects.isin(["None", "nan"]).any().any()
    assert at.selectbox(key="admin_revoke_id").value is None  # nothing is revoked by accident

    at.selectbox(key="admin_budget_project").set_value(project)
    at.number_input(key="admin_budget_epsilon").set_value(4.0)
    at.text_input(key="admin_budget_reason").set_value("Second phase approved by the board.")
    at.button(key="admin_budget_submit").click().run()
    assert f"Budget of {project} saved." in texts(at)
    assert _budget(real_api, project)["epsilon_total"] == 4.0

    at.selectbox(key="admin_token_project").set_value(project)
    at.text_input(key="admin_token_name").set_value("second analyst")
    at.button(key="admin_token_submit").click().run()
    issued = at.session_state["admin_issued_token"]
    assert issued["token"] in texts(at)
    with Client(real_api.url, issued["token"]) as client:
        assert client.me()["project"] == project

    at.selectbox(key="admin_revoke_id").set_value(issued["id"])
    at.button(key="admin_revoke_submit").click().run()
    assert f"Token {issued['id']} revoked." in texts(at)
    revoked = httpx.get(f"{real_api.url}/v1/me", headers={"Authorization": f"Bearer {issued['token']}"})
    assert revoked.status_code == 401

    at.selectbox(key="admin_cap_register").set_value("udda")
    at.number_input(key="admin_cap_value").set_value(40.0)
    at.text_input(key="admin_cap_reason").set_value("National cap for education data.")
    at.button(key="admin_cap_submit").click().run()
    assert "Cap of udda saved." in texts(at)
    with httpx.Client(base_url=real_api.url) as http:
        caps = {r["register"]: r for r in http.get("/v1/transparency").json()["registers"]}
    assert caps["udda"]["cap_epsilon_requested"] == 40.0

    at.button(key="admin_verify").click().run()
    assert "The ledger is intact" in texts(at)


def test_transparency_lists_projects_and_register_loss(real_api: Api) -> None:
    at, project = _explore(real_api)
    _run(at)
    open_page(at, "transparency")
    projects = at.dataframe[0].value
    row = projects[projects["Project"] == project].iloc[0]
    assert row["Releases"] == 1 and row["ε spent"] == "0.1"
    assert len(charts(at)) == 3  # budget per project, projects per purpose, loss per register
    registers = at.table[-1].value.set_index("Register")
    borne = registers.loc["cpr", "Borne by all projects"]
    assert borne[:2] in ("ε ", "ρ ") and float(borne.split()[1].replace(",", "")) > 0, borne
    assert "Pure differential privacy (ε adds up)" in texts(at)


# --- explore: contribution bounding, SQL, Danish labels -------------------------------------------


def _tab(at: AppTest, label: str) -> Any:
    return next(tab for tab in at.tabs if tab.label == label)


def test_builder_tightens_max_groups_and_max_rows_within_the_catalog(real_api: Api) -> None:
    at, _ = _explore(real_api)
    assert "there is nothing to tighten" in texts(at)  # persons, no groups: one row per person
    at.selectbox(key="explore_measure").set_value("count_rows").run()
    at.selectbox(key="explore_register").set_value("lpr").run()
    at.multiselect(key="explore_group_by").set_value(["lpr.year"]).run()
    wide = float(_metric(at, "Expected CI half-width (95%)").removeprefix("± "))
    assert "max_groups" not in json.loads(at.code[0].value)
    at.number_input(key="explore_max_groups_lpr").set_value(2).run()
    at.number_input(key="explore_max_rows_lpr").set_value(3).run()
    query = json.loads(at.code[0].value)
    assert (query["max_groups"], query["max_rows"]) == (2, 3)
    narrow = float(_metric(at, "Expected CI half-width (95%)").removeprefix("± "))
    assert narrow < wide  # tighter bounds, smaller sensitivity, less noise
    _run(at)
    release = at.session_state["explore_release"]
    assert (release["query"]["max_groups"], release["query"]["max_rows"]) == (2, 3)


SQL_BY_REGION = "SELECT region, COUNT(*) AS persons\nFROM cpr\nGROUP BY region"


def test_sql_tab_previews_runs_and_shows_the_release(real_api: Api) -> None:
    at, project = _explore(real_api)
    at.text_area(key="explore_sql_text").set_value(SQL_BY_REGION).run()
    sql_tab = _tab(at, "SQL")
    assert not sql_tab.error, [e.value for e in sql_tab.error]
    metrics = {m.label: str(m.value) for m in sql_tab.metric}
    assert metrics["Cost (ε)"] == "0.1" and metrics["Expected CI half-width (95%)"].startswith("± ")
    assert "5 cells." in [c.value for c in sql_tab.caption]
    assert _budget(real_api, project)["spends"] == 0  # previews are free

    at.button(key="explore_sql_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    sql_tab = _tab(at, "SQL")
    release = at.session_state["explore_sql_release"]
    assert release["query"]["measure"] == "count_persons" and release["query"]["group_by"] == ["cpr.region"]
    assert release["small_cell_threshold"] == 5  # the service's default, stated on the release
    table = sql_tab.table[0].value
    assert list(table.columns) == ["Region of residence", "Number of persons", "95% CI"] and len(table) == 5
    assert len(charts(at)) == 1
    assert {b.key for b in sql_tab.get("download_button")} >= {
        "explore_sql_result_csv",
        "explore_sql_result_parquet",
        "explore_sql_result_code_sql",
        "explore_sql_result_code_py",
    }
    shown = [c.value for c in sql_tab.code]
    assert SQL_BY_REGION in shown  # the query as SQL
    assert any("api.sql(sql, project=" in c and "idempotency_key=key" in c for c in shown)  # as Python
    assert any(json.loads(c).get("group_by") == ["cpr.region"] for c in shown if c.startswith("{"))
    assert _budget(real_api, project)["spends"] == 1

    keys = dict(at.session_state["explore_sql_idempotency_keys"])
    at.run()
    at.button(key="explore_sql_run").click().run()  # the same text and loss: the same key, no spend
    assert "stored release, at no cost" in texts(at)
    assert dict(at.session_state["explore_sql_idempotency_keys"]) == keys
    assert _budget(real_api, project)["spends"] == 1

    at.number_input(key="explore_sql_epsilon").set_value(0.2).run()
    at.button(key="explore_sql_run").click().run()  # another loss: another key, another release
    assert len(at.session_state["explore_sql_idempotency_keys"]) == 2
    assert _budget(real_api, project)["spends"] == 2


def test_sql_errors_show_their_line_and_column(real_api: Api) -> None:
    at, project = _explore(real_api)
    sql = "SELECT region, COUNT(*)\nFROM cpr\nWHERE sex = 'F' OR sex = 'M'\nGROUP BY region"
    at.text_area(key="explore_sql_text").set_value(sql).run()
    (error,) = _tab(at, "SQL").error
    assert "unsupported_sql" in error.value and "Line 3, column 17: OR is not supported" in error.value
    assert "The error is at line 3, column 17:" in texts(at)
    assert "3 | WHERE sex = 'F' OR sex = 'M'\n  |                 ^" in [c.value for c in at.code]
    assert at.button(key="explore_sql_run").disabled
    assert "explore_sql_release" not in at.session_state
    assert _budget(real_api, project)["spends"] == 0


def test_danish_labels_in_code_search_and_charts(real_api: Api) -> None:
    at, _ = _explore(real_api)
    at.radio(key="lang").set_value("da").run()
    at.button(key="explore_add_condition").click().run()
    at.selectbox(key="cond_0_column").set_value("lpr.icd10").run()
    at.selectbox(key="cond_0_op").set_value("in").run()
    at.text_input(key="cond_0_search").set_value("diabetes").run()
    options = at.multiselect(key="cond_0_codes").options
    assert "E11 — Type 2-diabetes" in options and "E10 — Type 1-diabetes" in options
    at.text_input(key="cond_0_search").set_value("blodprop").run()  # a Danish word only
    assert {o.split(" — ")[0] for o in at.multiselect(key="cond_0_codes").options} >= {"I21", "I63"}
    at.button(key="cond_0_remove").click().run()
    at.multiselect(key="explore_group_by").set_value(["cpr.sex"]).run()
    _run(at)
    (chart,) = at.get("vega_lite_chart")
    sent = chart.proto.SerializeToString()  # the spec and the chart's data (Arrow), with the tooltip labels
    assert b"Kvinde" in sent and b"Mand" in sent and b"Female" not in sent

    open_page(at, "catalog")
    at.selectbox(key="catalog_keyset").set_value("isced").run()
    labels = at.dataframe[-1].value.iloc[:, 1].tolist()
    assert "Ph.d.- og forskeruddannelser" in labels
