"""Authorization matrix: each role x each route gives the expected status (against a real server).

Roles: ``none`` (no token), ``own`` (analyst of the project in the path or body), ``other`` (analyst
of another project) and ``admin``. Another analyst's project answers 404 exactly like an unknown one;
administrator routes answer 403 to analysts and 401 without a token.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.service.svc_helpers import ERROR_KEYS, ProjectAccess

ROLES = ("none", "own", "other", "admin")


@dataclass(frozen=True)
class World:
    """Everything a route call may need."""

    http: httpx.Client
    admin: dict[str, str]
    own: ProjectAccess
    other: ProjectAccess
    release_id: str

    def headers(self, role: str) -> dict[str, str]:
        return {"none": {}, "own": self.own.headers, "other": self.other.headers, "admin": self.admin}[role]

    def pending_application(self) -> str:
        body = {**APPLICATION, "epsilon": 50.0}
        response = self.http.post("/v1/applications", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def institution(self) -> str:
        """A new institution's id."""
        institution_id = f"m-{uuid.uuid4().hex[:8]}"
        created = self.http.post(
            "/v1/institutions", json={"id": institution_id, "name": "Matrix"}, headers=self.admin
        )
        assert created.status_code == 201, created.text
        return institution_id

    def throwaway_token(self) -> str:
        issued = self.http.post(
            f"/v1/projects/{self.own.id}/tokens", json={"name": "throwaway"}, headers=self.admin
        )
        return str(issued.json()["id"])


APPLICATION = {
    "title": "Authorization matrix",
    "purpose": "research",
    "institution": "Test",
    "summary": "A test application.",
    "registers": ["cpr"],
    "epsilon": 0.5,
    "delta": 0.0,
    "duration_days": 30,
    "applicant": {"name": "Tester", "email": "tester@example.dk"},
}


@pytest.fixture(scope="module")
def world(
    http: httpx.Client, admin_headers: dict[str, str], own: ProjectAccess, other: ProjectAccess
) -> World:
    query = {"project": own.id, "measure": "count_persons", "epsilon": 0.01}
    release = http.post("/v1/queries", json=query, headers=own.headers)
    assert release.status_code == 200, release.text
    return World(http, admin_headers, own, other, release.json()["release_id"])


Call = Callable[[World, dict[str, str]], httpx.Response]


def _query(w: World) -> dict[str, Any]:
    return {"project": w.own.id, "measure": "count_persons", "epsilon": 0.01}


def _sql(w: World) -> dict[str, Any]:
    return {"project": w.own.id, "sql": "SELECT COUNT(*) FROM cpr", "epsilon": 0.01}


def _new_project(w: World) -> dict[str, Any]:
    return {
        "id": f"matrix-{uuid.uuid4().hex[:8]}",
        "title": "t",
        "purpose": "research",
        "registers": ["cpr"],
        "epsilon": 1.0,
    }


# (id, call, expected status for none / own / other / admin)
ROUTES: list[tuple[str, Call, tuple[int, int, int, int]]] = [
    ("health", lambda w, h: w.http.get("/v1/health", headers=h), (200, 200, 200, 200)),
    ("catalog", lambda w, h: w.http.get("/v1/catalog", headers=h), (200, 200, 200, 200)),
    ("catalog_dcat", lambda w, h: w.http.get("/v1/catalog/dcat", headers=h), (200, 200, 200, 200)),
    ("query_options", lambda w, h: w.http.get("/v1/query-options", headers=h), (200, 200, 200, 200)),
    ("transparency", lambda w, h: w.http.get("/v1/transparency", headers=h), (200, 200, 200, 200)),
    ("me", lambda w, h: w.http.get("/v1/me", headers=h), (200, 200, 200, 200)),
    ("policy", lambda w, h: w.http.get("/v1/applications/policy", headers=h), (200, 200, 200, 200)),
    (
        "preview",
        lambda w, h: w.http.post("/v1/queries/preview", json=_query(w), headers=h),
        (401, 200, 404, 200),
    ),
    ("run", lambda w, h: w.http.post("/v1/queries", json=_query(w), headers=h), (401, 200, 404, 200)),
    (
        "sql_preview",
        lambda w, h: w.http.post("/v1/sql/preview", json=_sql(w), headers=h),
        (401, 200, 404, 200),
    ),
    ("sql", lambda w, h: w.http.post("/v1/sql", json=_sql(w), headers=h), (401, 200, 404, 200)),
    ("list_projects", lambda w, h: w.http.get("/v1/projects", headers=h), (401, 200, 200, 200)),
    (
        "create_project",
        lambda w, h: w.http.post("/v1/projects", json=_new_project(w), headers=h),
        (401, 403, 403, 201),
    ),
    ("project", lambda w, h: w.http.get(f"/v1/projects/{w.own.id}", headers=h), (401, 200, 404, 200)),
    ("budget", lambda w, h: w.http.get(f"/v1/projects/{w.own.id}/budget", headers=h), (401, 200, 404, 200)),
    (
        "set_budget",
        lambda w, h: w.http.put(
            f"/v1/projects/{w.own.id}/budget", json={"epsilon": 50.0, "reason": "m"}, headers=h
        ),
        (401, 403, 403, 200),
    ),
    (
        "releases",
        lambda w, h: w.http.get(f"/v1/projects/{w.own.id}/releases", headers=h),
        (401, 200, 404, 200),
    ),
    (
        "release",
        lambda w, h: w.http.get(f"/v1/projects/{w.own.id}/releases/{w.release_id}", headers=h),
        (401, 200, 404, 200),
    ),
    (
        "cohorts",
        lambda w, h: w.http.get(f"/v1/projects/{w.own.id}/cohorts", headers=h),
        (401, 200, 404, 200),
    ),
    (
        "create_token",
        lambda w, h: w.http.post(f"/v1/projects/{w.own.id}/tokens", json={"name": "m"}, headers=h),
        (401, 403, 403, 201),
    ),
    (
        "project_tokens",
        lambda w, h: w.http.get(f"/v1/projects/{w.own.id}/tokens", headers=h),
        (401, 403, 403, 200),
    ),
    ("list_tokens", lambda w, h: w.http.get("/v1/admin/tokens", headers=h), (401, 403, 403, 200)),
    (
        "create_admin_token",
        lambda w, h: w.http.post("/v1/admin/tokens", json={"name": "m", "role": "admin"}, headers=h),
        (401, 403, 403, 201),
    ),
    (
        "revoke_token",
        lambda w, h: w.http.delete(f"/v1/admin/tokens/{w.throwaway_token()}", headers=h),
        (401, 403, 403, 200),
    ),
    (
        "set_cap",
        lambda w, h: w.http.put("/v1/registers/dar/cap", json={"epsilon": 1000.0, "reason": "m"}, headers=h),
        (401, 403, 403, 200),
    ),
    ("verify", lambda w, h: w.http.get("/v1/admin/ledger/verify", headers=h), (401, 403, 403, 200)),
    (
        "apply",
        lambda w, h: w.http.post("/v1/applications", json=APPLICATION, headers=h),
        (201, 201, 201, 201),
    ),
    ("applications", lambda w, h: w.http.get("/v1/applications", headers=h), (401, 403, 403, 200)),
    (
        "application_without_key",
        lambda w, h: w.http.get(f"/v1/applications/{w.pending_application()}", headers=h),
        (404, 404, 404, 200),
    ),
    (
        "decide",
        lambda w, h: w.http.post(
            f"/v1/applications/{w.pending_application()}/decision",
            json={"decision": "reject", "reason": "matrix"},
            headers=h,
        ),
        (401, 403, 403, 200),
    ),
    ("institutions", lambda w, h: w.http.get("/v1/institutions", headers=h), (401, 403, 403, 200)),
    (
        "create_institution",
        lambda w, h: w.http.post(
            "/v1/institutions", json={"id": f"m-{uuid.uuid4().hex[:8]}", "name": "Matrix"}, headers=h
        ),
        (401, 403, 403, 201),
    ),
    (
        "institution_applicants",
        lambda w, h: w.http.get(f"/v1/institutions/{w.institution()}/applicants", headers=h),
        (401, 403, 403, 200),
    ),
    (
        "create_applicant",
        lambda w, h: w.http.post(
            f"/v1/institutions/{w.institution()}/applicants",
            json={"name": "Matrix", "email": "matrix@example.dk"},
            headers=h,
        ),
        (401, 403, 403, 201),
    ),
    # This server has no identity provider: sign-in is unavailable to everyone.
    ("sign_in", lambda w, h: w.http.get("/v1/auth/login", headers=h), (404, 404, 404, 404)),
    ("sign_in_callback", lambda w, h: w.http.get("/v1/auth/callback", headers=h), (404, 404, 404, 404)),
]

CASES = [
    pytest.param(call, role, expected[i], id=f"{name}-{role}")
    for name, call, expected in ROUTES
    for i, role in enumerate(ROLES)
]


@pytest.mark.parametrize(("call", "role", "status"), CASES)
def test_authorization_matrix(world: World, call: Call, role: str, status: int) -> None:
    response = call(world, world.headers(role))
    assert response.status_code == status, response.text
    if status >= 400:
        assert set(response.json()) == ERROR_KEYS


def test_other_projects_look_exactly_like_unknown_ones(world: World) -> None:
    """An analyst cannot tell another project from a project that does not exist."""
    h = world.other.headers
    for suffix in ("", "/budget", "/releases", f"/releases/{world.release_id}", "/cohorts"):
        existing = world.http.get(f"/v1/projects/{world.own.id}{suffix}", headers=h)
        missing = world.http.get(f"/v1/projects/no-such-project{suffix}", headers=h)
        assert existing.status_code == missing.status_code == 404
        assert existing.json() == {
            **missing.json(),
            "error": missing.json()["error"].replace("no-such-project", world.own.id),
        }


def test_every_route_is_in_the_matrix(http: httpx.Client) -> None:
    operations = {
        (method.upper(), path)
        for path, item in http.get("/openapi.json").json()["paths"].items()
        for method in item
    }
    assert len(operations) == len(ROUTES), "a new route needs a row in ROUTES"
