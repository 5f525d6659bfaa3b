"""Pages under AppTest against a fake API (``httpx.MockTransport``): errors, retries with the same
idempotency key, per-session data, and answers the real service gives only rarely."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.dashboard.dash_helpers import (
    ANALYST,
    FakeApi,
    app_test,
    error,
    open_page,
    preview_answer,
    project_answer,
    pure_privacy,
    query_options_answer,
    sign_in,
    texts,
)

PROJECT = project_answer("Diabetes", ["cpr", "lpr"])
BUDGET = {
    "project": "p1",
    "mode": "pure",
    "epsilon_total": 1.0,
    "epsilon_spent": 0.0,
    "epsilon_remaining": 1.0,
}
PREVIEW = preview_answer(0.1, 1)
RELEASE = {
    "release_id": "r_1",
    "project": "p1",
    "cached": False,
    "privacy": pure_privacy(0.1),
    "confidence": 0.95,
    "columns": ["cpr.sex", "value", "ci_low", "ci_high", "suppressed"],
    "rows": [
        {"cpr.sex": "F", "value": 40, "ci_low": 10, "ci_high": 70, "suppressed": False},
        {"cpr.sex": "M", "value": None, "ci_low": None, "ci_high": None, "suppressed": True},
    ],
    "budget": {"epsilon_remaining": 0.9},
    "small_cell_threshold": 10,
}


def _analyst_api(fake: FakeApi) -> FakeApi:
    fake.routes.update(
        {
            "GET /v1/me": ANALYST,
            "GET /v1/projects/p1": PROJECT,
            "GET /v1/projects/p1/budget": BUDGET,
            "GET /v1/projects/p1/releases": {"project": "p1", "count": 0, "releases": []},
            "POST /v1/queries/preview": PREVIEW,
            "POST /v1/queries": RELEASE,
        }
    )
    return fake


def test_an_unreachable_api_is_named_on_public_pages(fake_api: FakeApi) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    at = open_page(app_test(httpx.MockTransport(refuse)), "catalog")
    assert "Cannot reach the API at http://fake-" in at.error[0].value
    open_page(at, "transparency")
    assert "Cannot reach the API" in at.error[0].value


def test_a_refused_preview_shows_the_sentence_and_run_is_off_saying_why(fake_api: FakeApi) -> None:
    _analyst_api(fake_api)
    fake_api.routes["POST /v1/queries/preview"] = error(
        422, "invalid_query", "Unknown column 'cpr.regoin'. Did you mean 'cpr.region'?"
    )
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "explore")
    assert "Did you mean 'cpr.region'?" in at.error[0].value
    run = at.button(key="explore_run")
    assert run.disabled
    assert any(
        "Did you mean 'cpr.region'?" in c.value and c.value.startswith("Run is off") for c in at.caption
    )
    assert fake_api.calls("POST", "/v1/queries") == []


def test_a_transient_preview_error_leaves_run_on(fake_api: FakeApi) -> None:
    _analyst_api(fake_api)
    fake_api.routes["POST /v1/queries/preview"] = error(503, "execution_failed", "Try again.")
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "explore")
    assert not at.button(key="explore_run").disabled  # the service could not be asked: Run may try


def test_a_retry_after_a_failure_sends_the_same_idempotency_key(fake_api: FakeApi) -> None:
    _analyst_api(fake_api)
    answers = iter(
        [
            error(503, "execution_failed", "The query could not be executed."),
            error(409, "in_progress", "The same query is still being executed."),
            (200, RELEASE),
        ]
    )
    fake_api.routes["POST /v1/queries"] = lambda request: next(answers)
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "explore")
    for _ in range(3):
        at.button(key="explore_run").click().run()
    at.run()  # reruns without a click never send the query
    at.run()
    runs = fake_api.calls("POST", "/v1/queries")
    assert len(runs) == 3
    keys = {r.headers["Idempotency-Key"] for r in runs}
    assert len(keys) == 1 and all(len(k) >= 32 for k in keys)
    assert at.session_state["explore_release"]["release_id"] == "r_1"

    at.multiselect(key="explore_group_by").set_value(["cpr.sex"]).run()
    at.button(key="explore_run").click().run()
    assert fake_api.calls("POST", "/v1/queries")[-1].headers["Idempotency-Key"] not in keys
    assert json.loads(fake_api.calls("POST", "/v1/queries")[-1].content)["group_by"] == ["cpr.sex"]


def test_each_distinct_query_is_previewed_once(fake_api: FakeApi) -> None:
    _analyst_api(fake_api)
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "explore")
    at.run()
    at.run()
    assert len(fake_api.calls("POST", "/v1/queries/preview")) == 1
    at.multiselect(key="explore_group_by").set_value(["cpr.sex"]).run()
    at.multiselect(key="explore_group_by").set_value([]).run()
    assert len(fake_api.calls("POST", "/v1/queries/preview")) == 2


def test_small_cells_are_shown_below_the_release_threshold(fake_api: FakeApi) -> None:
    _analyst_api(fake_api)
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "explore")
    at.button(key="explore_run").click().run()
    table = at.table[0].value
    assert list(table.columns) == ["Sex", "Value", "95% CI"]
    assert table["Sex"].tolist() == ["Female", "Male"]
    assert table["Value"].tolist() == ["40", "<10"] and table["95% CI"].tolist() == ["10 – 70", ""]
    assert "1 cell(s) with a noisy count below 10 are shown as <10" in texts(at)


def test_sessions_never_see_each_others_token_or_results(fake_api: FakeApi) -> None:
    """Two browser sessions with different tokens: each sees only what the API gives its own token."""
    who = {"sst_a": ANALYST, "sst_b": {**ANALYST, "token_id": "tok_b", "project": "p2", "name": "bo"}}

    def me(request: httpx.Request) -> Any:
        return who[request.headers["Authorization"].removeprefix("Bearer ")]

    def releases(project: str) -> Any:
        return {
            "project": project,
            "count": 1,
            "releases": [{**RELEASE, "release_id": f"r_{project}", "project": project}],
        }

    _analyst_api(fake_api)
    fake_api.routes.update(
        {
            "GET /v1/me": me,
            "GET /v1/projects/p2": {**PROJECT, "id": "p2", "title": "Other"},
            "GET /v1/projects/p2/budget": {**BUDGET, "project": "p2"},
            "GET /v1/projects/p1/releases": releases("p1"),
            "GET /v1/projects/p2/releases": releases("p2"),
        }
    )
    first = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "project")
    second = open_page(sign_in(app_test(fake_api.transport()), "sst_b"), "project")
    assert first.dataframe[0].value["Release"].tolist() == ["r_p1"]
    assert second.dataframe[0].value["Release"].tolist() == ["r_p2"]
    assert first.session_state["auth_token"] == "sst_a" and second.session_state["auth_token"] == "sst_b"
    sent = {
        (r.url.path, r.headers.get("Authorization")) for r in fake_api.requests if "projects" in r.url.path
    }
    assert ("/v1/projects/p2/releases", "Bearer sst_a") not in sent
    assert ("/v1/projects/p1/releases", "Bearer sst_b") not in sent


def test_a_pending_application_is_polled_with_its_status_key(fake_api: FakeApi) -> None:
    pending = {"id": "app_1", "status": "pending", "status_key": "sk_secret", "policy_reasons": ["ε 5 > 1"]}
    approved = {
        "id": "app_1",
        "status": "approved",
        "project": "p9",
        "granted_epsilon": 5.0,
        "token": "sst_new",
    }
    fake_api.routes.update(
        {
            "GET /v1/applications/policy": {"purposes": ["research"], "allowed_purposes": ["research"]},
            "POST /v1/applications": (201, pending),
            "GET /v1/applications/app_1": approved,
        }
    )
    at = open_page(app_test(fake_api.transport()), "apply")
    at.text_input(key="apply_title").set_value("T")
    at.button(key="apply_submit").click().run()
    assert "Please fill in: Institution, Lay summary, Your name, Your e-mail." in texts(at)
    for key, value in (("apply_institution", "SDU"), ("apply_name", "A"), ("apply_email", "a@b.dk")):
        at.text_input(key=key).set_value(value)
    at.text_area(key="apply_summary").set_value("S")
    at.button(key="apply_submit").click().run()
    body = json.loads(fake_api.calls("POST", "/v1/applications")[0].content)
    assert body["applicant"] == {"name": "A", "email": "a@b.dk"} and body["registers"] == ["cpr"]
    assert "ε 5 > 1" in texts(at) and "sk_secret" in texts(at)

    at.button(key="apply_check").click().run()
    (poll,) = fake_api.calls("GET", "/v1/applications/app_1")
    assert poll.headers["X-Status-Key"] == "sk_secret" and "Authorization" not in poll.headers
    assert "sst_new" in texts(at) and "Approved: project p9" in texts(at)


def test_a_broken_ledger_is_reported_with_its_first_bad_entry(fake_api: FakeApi) -> None:
    fake_api.routes.update(
        {
            "GET /v1/me": {"role": "admin", "token_id": "tok_admin", "project": None, "name": "admin"},
            "GET /v1/projects": [],
            "GET /v1/applications/policy": {"purposes": ["research"]},
            "GET /v1/applications": [],
            "GET /v1/admin/tokens": [],
            "GET /v1/transparency": {
                "projects": [],
                "registers": [],
                "ledger": {"entries": 0, "head_hash": None},
            },
            "GET /v1/admin/ledger/verify": {
                "ok": False,
                "entries": 12,
                "head_hash": "ab" * 32,
                "first_bad_index": 7,
                "reason": "hash mismatch",
                "problems": ["entry 7: stored hash differs"],
            },
        }
    )
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_admin"), "admin")
    at.button(key="admin_verify").click().run()
    assert "The ledger is broken at entry 7: hash mismatch" in texts(at)
    assert "entry 7: stored hash differs" in texts(at)


def test_administrators_are_sent_to_an_analyst_token_on_explore(fake_api: FakeApi) -> None:
    fake_api.routes["GET /v1/me"] = {
        "role": "admin",
        "token_id": "tok_admin",
        "project": None,
        "name": "admin",
    }
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_admin"), "explore")
    assert "This page needs a token with the role: analyst." in texts(at)
    assert not fake_api.calls("POST", "/v1/queries/preview")


def test_a_token_revoked_during_the_session_signs_the_user_out(fake_api: FakeApi) -> None:
    _analyst_api(fake_api)
    fake_api.routes["GET /v1/projects/p1"] = error(401, "unauthorized", "The token was revoked.")
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "explore")
    assert "401 (unauthorized): The token was revoked." in at.error[0].value
    assert "you have been signed out" in texts(at)
    assert "auth_token" not in at.session_state
    at.run()
    assert "Sign in with a token" in texts(at)


def test_the_form_follows_the_served_limits_and_bounds(fake_api: FakeApi) -> None:
    """The group-by limit and the bounding inputs come from GET /v1/query-options, not the dashboard."""
    _analyst_api(fake_api)
    served = query_options_answer
    fake_api.routes["GET /v1/query-options"] = lambda request: {
        **served(request),
        "limits": {**served(request)["limits"], "max_group_columns": 2},
    }
    at = open_page(sign_in(app_test(fake_api.transport()), "sst_a"), "explore")
    group_by = at.multiselect(key="explore_group_by")
    assert group_by.max_selections == 2 and "2" in group_by.label
    assert not [n for n in at.number_input if n.key and n.key.startswith("explore_max_")]
    group_by.set_value(["lpr.contact_type"]).run()
    inputs = {n.key: n for n in at.number_input if n.key and n.key.startswith("explore_max_")}
    assert set(inputs) == {"explore_max_groups_lpr"} and inputs["explore_max_groups_lpr"].max == 50
    asked = fake_api.calls("GET", "/v1/query-options")[-1].url.params
    assert asked.get_list("group_by") == ["lpr.contact_type"] and asked["measure"] == "count_persons"
