"""Applications: a signed-in applicant inside the published policy is approved at once; anonymous
applications and anything outside the policy wait for an administrator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.service.svc_helpers import assert_error, bearer

APPLICATION: dict[str, Any] = {
    "title": "Type 2 diabetes by region",
    "purpose": "public_health",
    "institution": "Statens Serum Institut",
    "summary": "How many people have type 2 diabetes in each region, by age band.",
    "registers": ["cpr", "lpr", "lmdb"],
    "epsilon": 0.5,
    "delta": 0.0,
    "duration_days": 90,
    "applicant": {"name": "Karen Jensen", "email": "kj@example.dk"},
}
QUERY = {"measure": "count_persons", "group_by": ["cpr.region"], "epsilon": 0.1}


def test_policy_is_published(http: httpx.Client) -> None:
    policy = http.get("/v1/applications/policy").json()
    assert policy["max_epsilon"] == 1.0 and "research" in policy["allowed_purposes"]
    assert set(policy["purposes"]) >= {"public_health", "policy", "care_improvement"}


def test_inside_policy_is_approved_and_usable_within_two_seconds(
    http: httpx.Client, make_applicant: Callable[..., dict[str, str]]
) -> None:
    applicant = make_applicant()
    started = time.monotonic()
    response = http.post("/v1/applications", json=APPLICATION, headers=applicant)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "approved" and body["route"] == "auto"
    assert body["token"].startswith("sst_analyst_") and body["status_key"].startswith("sak_")
    assert body["project"] and body["policy_reasons"] == []
    release = http.post(
        "/v1/queries", json={**QUERY, "project": body["project"]}, headers=bearer(body["token"])
    )
    assert release.status_code == 200, release.text
    assert time.monotonic() - started < 2.0
    assert body["decision_seconds"] < 1.0
    budget = http.get(f"/v1/projects/{body['project']}/budget", headers=bearer(body["token"])).json()
    assert budget["mode"] == "pure" and budget["epsilon_total"] == 0.5
    status = http.get(f"/v1/applications/{body['id']}", headers={"X-Status-Key": body["status_key"]}).json()
    assert status["status"] == "approved" and status["token"] is None
    transparency = http.get("/v1/transparency").json()
    entry = next(p for p in transparency["projects"] if p["id"] == body["project"])
    # The institution is the applicant's registered one, not what the form said.
    assert entry["approval_route"] == "auto" and entry["institution"] == body["institution"]
    assert body["institution"].startswith("Institution inst-")


def test_anonymous_inside_policy_waits_with_the_reason(
    http: httpx.Client, admin_headers: dict[str, str]
) -> None:
    body = http.post("/v1/applications", json=APPLICATION).json()
    assert body["status"] == "pending" and body["token"] is None and body["project"] is None
    assert any(
        "anonymous applications are decided by an administrator" in r.lower() for r in body["policy_reasons"]
    )
    seen = http.get(f"/v1/applications/{body['id']}", headers=admin_headers).json()
    assert seen["waiting_reasons"] == body["policy_reasons"] and seen["applicant_id"] is None


def test_delta_gives_a_zcdp_project(
    http: httpx.Client, make_applicant: Callable[..., dict[str, str]]
) -> None:
    body = http.post("/v1/applications", json={**APPLICATION, "delta": 1e-7}, headers=make_applicant()).json()
    assert body["status"] == "approved"
    budget = http.get(f"/v1/projects/{body['project']}/budget", headers=bearer(body["token"])).json()
    assert budget["mode"] == "zcdp" and budget["delta_total"] == pytest.approx(1e-7)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"epsilon": 5.0}, id="epsilon"),
        pytest.param({"purpose": "policy"}, id="purpose"),
        pytest.param({"duration_days": 1000}, id="duration"),
        pytest.param({"delta": 1e-4}, id="delta"),
    ],
)
def test_outside_policy_waits_then_approve(
    http: httpx.Client,
    admin_headers: dict[str, str],
    make_applicant: Callable[..., dict[str, str]],
    change: dict[str, Any],
) -> None:
    submitted = http.post("/v1/applications", json={**APPLICATION, **change}, headers=make_applicant()).json()
    assert submitted["status"] == "pending" and submitted["token"] is None
    (reason,) = submitted["policy_reasons"]  # only the policy: the applicant is signed in
    assert "anonymous" not in reason.lower()
    key = {"X-Status-Key": submitted["status_key"]}
    assert http.get(f"/v1/applications/{submitted['id']}", headers=key).json()["status"] == "pending"
    pending = http.get("/v1/applications", params={"status": "pending"}, headers=admin_headers).json()
    assert submitted["id"] in {a["id"] for a in pending}
    decided = http.post(
        f"/v1/applications/{submitted['id']}/decision",
        json={"decision": "approve", "epsilon": 1.0, "expires": "2099-01-01"},
        headers=admin_headers,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved" and decided.json()["route"] == "admin"
    assert decided.json()["token"] is None
    first = http.get(f"/v1/applications/{submitted['id']}", headers=key).json()
    assert first["status"] == "approved" and first["token"].startswith("sst_analyst_")
    assert first["granted_epsilon"] == 1.0 and first["expires"] == "2099-01-01"
    assert http.get(f"/v1/applications/{submitted['id']}", headers=key).json()["token"] is None
    release = http.post(
        "/v1/queries", json={**QUERY, "project": first["project"]}, headers=bearer(first["token"])
    )
    assert release.status_code == 200, release.text
    again = http.post(
        f"/v1/applications/{submitted['id']}/decision",
        json={"decision": "reject", "reason": "x"},
        headers=admin_headers,
    )
    assert_error(again, 409, "conflict")


def test_outside_policy_then_reject(http: httpx.Client, admin_headers: dict[str, str]) -> None:
    submitted = http.post("/v1/applications", json={**APPLICATION, "epsilon": 9.0}).json()
    no_reason = http.post(
        f"/v1/applications/{submitted['id']}/decision", json={"decision": "reject"}, headers=admin_headers
    )
    assert_error(no_reason, 422, "invalid_request")
    rejected = http.post(
        f"/v1/applications/{submitted['id']}/decision",
        json={"decision": "reject", "reason": "Epsilon 9 is far more than the question needs."},
        headers=admin_headers,
    ).json()
    assert rejected["status"] == "rejected" and rejected["project"] is None
    status = http.get(
        f"/v1/applications/{submitted['id']}", headers={"X-Status-Key": submitted["status_key"]}
    ).json()
    assert status["status"] == "rejected" and "far more" in status["reason"] and status["token"] is None


def test_status_needs_the_status_key(http: httpx.Client) -> None:
    submitted = http.post("/v1/applications", json={**APPLICATION, "epsilon": 9.0}).json()
    assert_error(http.get(f"/v1/applications/{submitted['id']}"), 404, "application_not_found")
    wrong = http.get(f"/v1/applications/{submitted['id']}", headers={"X-Status-Key": "sak_wrong"})
    assert_error(wrong, 404, "application_not_found")


def test_unknown_register_gets_a_suggestion(http: httpx.Client) -> None:
    body = assert_error(
        http.post("/v1/applications", json={**APPLICATION, "registers": ["cpr", "lmbd"]}), 422
    )
    assert "lmdb" in body["error"]


def test_decisions_are_in_the_audit_chain(
    http: httpx.Client, admin_headers: dict[str, str], make_applicant: Callable[..., dict[str, str]]
) -> None:
    applicant = make_applicant()
    before = http.get("/v1/transparency").json()["ledger"]["entries"]
    assert http.post("/v1/applications", json=APPLICATION, headers=applicant).json()["status"] == "approved"
    after = http.get("/v1/transparency").json()["ledger"]["entries"]
    # submitted, project created, decided, token issued at least
    assert after - before >= 3
    assert http.get("/v1/admin/ledger/verify", headers=admin_headers).json()["ok"] is True
