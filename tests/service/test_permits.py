"""Permits: every project has a permit id and an expiry; the transparency page names its permit and
analysts; no token outlives the permit; registers are named once.

The app runs in-process on the real dataset and a fresh state directory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from tests.service.svc_helpers import ADMIN_TOKEN, assert_error, bearer

ADMIN = bearer(ADMIN_TOKEN)


def _project(client: Any, project_id: str, **fields: Any) -> Any:
    body = {"id": project_id, "title": project_id, "purpose": "research", "registers": ["cpr"], "epsilon": 1}
    return client.post("/v1/projects", json={**body, **fields}, headers=ADMIN)


def _transparency(client: Any) -> dict[str, dict[str, Any]]:
    report = client.get("/v1/transparency").json()
    return {p["id"]: p for p in report["projects"]}


@pytest.fixture
def client(app_with: Callable[..., Any]) -> Any:
    return app_with(permit_default_days=90).client_from("127.0.0.1")


def test_permit_ids_expiries_and_named_analysts_are_public(client: Any) -> None:
    given = _project(client, "given", permit_id="SDS-2026-0042", expires="2030-06-30")
    assert given.status_code == 201 and given.json()["permit_id"] == "SDS-2026-0042"
    generated = _project(client, "generated")  # an old request: no permit_id, no expires
    assert generated.status_code == 201
    assert generated.json()["permit_id"].startswith("pmt_")
    assert generated.json()["expires"] == (dt.datetime.now(dt.UTC) + dt.timedelta(days=90)).date().isoformat()
    for name in ("Dr. Jensen", "Dr. Nielsen", "Dr. Jensen"):
        assert client.post("/v1/projects/given/tokens", json={"name": name}, headers=ADMIN).status_code == 201
    gone = client.post("/v1/projects/given/tokens", json={"name": "Revoked One"}, headers=ADMIN).json()
    assert client.delete(f"/v1/admin/tokens/{gone['id']}", headers=ADMIN).status_code == 200

    application = {
        "title": "Auto approved",
        "purpose": "research",
        "institution": "KU",
        "summary": "Inside the policy.",
        "registers": ["cpr"],
        "epsilon": 0.5,
        "duration_days": 30,
        "applicant": {"name": "A. Applicant", "email": "a@example.org"},
    }
    # Automatic approval (the application becomes the permit) needs a signed-in applicant.
    institution = {"id": "ku", "name": "KU", "email_domains": ["ku.dk"]}
    assert client.post("/v1/institutions", json=institution, headers=ADMIN).status_code == 201
    account = client.post(
        "/v1/institutions/ku/applicants", json={"name": "Ane", "email": "ane@ku.dk"}, headers=ADMIN
    )
    assert account.status_code == 201, account.text
    signed_in = {"Authorization": f"Bearer {account.json()['token']}"}
    approved = client.post("/v1/applications", json=application, headers=signed_in).json()
    assert approved["status"] == "approved", approved

    projects = _transparency(client)
    assert projects["given"]["permit_id"] == "SDS-2026-0042"
    assert projects["given"]["analysts"] == ["Dr. Jensen", "Dr. Nielsen"]  # active tokens, each name once
    assert projects["given"]["expires"] == "2030-06-30"
    assert projects["generated"]["permit_id"] == generated.json()["permit_id"]
    assert projects["generated"]["analysts"] == []
    assert projects[approved["project"]]["permit_id"] == approved["id"]  # the application is the permit
    assert projects[approved["project"]]["analysts"] == [f"applicant:{approved['id']}"]
    assert _transparency(client) == projects  # stable: generated once
    chained = client.get("/v1/admin/ledger/verify", headers=ADMIN).json()
    assert chained["ok"] is True


def test_a_permit_id_belongs_to_one_project(client: Any) -> None:
    assert _project(client, "first", permit_id="P-1").status_code == 201
    assert_error(_project(client, "second", permit_id="P-1"), 409, "conflict")
    # the refused project was not created, and its id stays free
    assert client.get("/v1/projects/second", headers=ADMIN).status_code == 404
    assert _project(client, "second", permit_id="P-2").status_code == 201


def test_an_analyst_token_ends_with_the_permit(client: Any) -> None:
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).date()
    assert _project(client, "short", expires=expires.isoformat()).status_code == 201
    issued = client.post("/v1/projects/short/tokens", json={"name": "ana", "ttl_days": 365}, headers=ADMIN)
    assert issued.status_code == 201
    token_end = dt.datetime.fromisoformat(issued.json()["expires_at"])
    assert token_end == dt.datetime.combine(expires + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)

    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).date()
    assert _project(client, "ended", expires=past.isoformat()).status_code == 201
    refused = client.post("/v1/projects/ended/tokens", json={"name": "late"}, headers=ADMIN)
    assert_error(refused, 403, "permit_expired")


def test_registers_named_twice_are_refused(client: Any) -> None:
    body = _project(client, "twice", registers=["cpr", "lpr", "cpr"])
    assert "'cpr' is listed more than once" in assert_error(body, 422, "invalid_request")["error"]
    application = {
        "title": "Twice",
        "purpose": "research",
        "institution": "KU",
        "summary": "Lists a register twice.",
        "registers": ["lpr", "lpr"],
        "epsilon": 0.5,
        "duration_days": 30,
        "applicant": {"name": "A. Applicant", "email": "a@example.org"},
    }
    assert_error(client.post("/v1/applications", json=application), 422, "invalid_request")
    assert client.get("/v1/projects/twice", headers=ADMIN).status_code == 404
