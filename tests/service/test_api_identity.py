"""Institutions, applicant accounts, the applicant role, quotas, the pool, and the application rate limit.

The quota, pool and rate-limit tests run their own servers with small limits; source addresses
127.0.0.x (all loopback) keep their rate-limit buckets apart.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.cli import main
from tests.helpers.server_fixtures import free_port
from tests.service.svc_helpers import ADMIN_TOKEN, Server, assert_error, bearer, start_server

APPLICATION: dict[str, Any] = {
    "title": "Asthma medication by age band",
    "purpose": "research",
    "institution": "as typed",
    "summary": "How many persons collect asthma medication, by age band.",
    "registers": ["cpr", "lmdb"],
    "epsilon": 0.25,
    "delta": 0.0,
    "duration_days": 30,
    "applicant": {"name": "Ida", "email": "ida@example.dk"},
}
QUERY = {"measure": "count_persons", "epsilon": 0.1}


def _client(server: Server, source: str, headers: dict[str, str] | None = None) -> httpx.Client:
    """A client on ``server`` whose connections come from the loopback address ``source``."""
    return httpx.Client(
        base_url=server.url,
        timeout=60,
        headers=headers,
        transport=httpx.HTTPTransport(local_address=source),
    )


def _applicant(http: httpx.Client, institution: str, name: str) -> dict[str, str]:
    issued = http.post(
        f"/v1/institutions/{institution}/applicants",
        json={"name": name, "email": f"{name.lower()}@{institution}.dk"},
        headers=bearer(ADMIN_TOKEN),
    )
    assert issued.status_code == 201, issued.text
    return bearer(issued.json()["token"])


def _institution(http: httpx.Client, institution: str) -> None:
    created = http.post(
        "/v1/institutions", json={"id": institution, "name": institution.upper()}, headers=bearer(ADMIN_TOKEN)
    )
    assert created.status_code == 201, created.text


# --- institutions and applicant accounts (the session server) -----------------------------------


def test_institutions_are_registered_and_listed_by_administrators(
    http: httpx.Client, admin_headers: dict[str, str]
) -> None:
    body = {
        "id": "ku-test",
        "name": "University of Copenhagen",
        "email_domains": ["@KU.dk"],
        "org_values": ["ku"],
    }
    created = http.post("/v1/institutions", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.json()["email_domains"] == ["ku.dk"] and created.json()["org_values"] == ["ku"]
    listed = http.get("/v1/institutions", headers=admin_headers).json()
    assert "ku-test" in {i["id"] for i in listed}
    assert_error(http.post("/v1/institutions", json=body, headers=admin_headers), 409, "conflict")
    bad = http.post(
        "/v1/institutions", json={**body, "id": "x", "email_domains": ["no domain"]}, headers=admin_headers
    )
    assert "ku.dk" in assert_error(bad, 422, "invalid_request")["error"]
    assert_error(http.post("/v1/institutions", json={**body, "id": "KU!"}, headers=admin_headers), 422)
    assert_error(http.get("/v1/institutions"), 401, "unauthorized")
    missing = http.post(
        "/v1/institutions/nope/applicants", json={"name": "A", "email": "a@b.dk"}, headers=admin_headers
    )
    assert_error(missing, 404, "institution_not_found")


def test_an_applicant_token_only_applies_and_reads_its_own_applications(
    http: httpx.Client,
    admin_headers: dict[str, str],
    make_applicant: Callable[..., dict[str, str]],
    own: Any,
) -> None:
    applicant, someone_else = make_applicant(), make_applicant()
    assert http.get("/v1/me", headers=applicant).json()["role"] == "applicant"
    mine = http.post("/v1/applications", json={**APPLICATION, "epsilon": 5.0}, headers=applicant).json()
    theirs = http.post("/v1/applications", json={**APPLICATION, "epsilon": 5.0}, headers=someone_else).json()
    assert mine["status"] == theirs["status"] == "pending"
    assert http.get(f"/v1/applications/{mine['id']}", headers=applicant).json()["id"] == mine["id"]
    assert_error(
        http.get(f"/v1/applications/{theirs['id']}", headers=applicant), 404, "application_not_found"
    )
    assert [a["id"] for a in http.get("/v1/applications", headers=applicant).json()] == [mine["id"]]
    decide = http.post(
        f"/v1/applications/{mine['id']}/decision", json={"decision": "approve"}, headers=applicant
    )
    assert "applicant token" in assert_error(decide, 403, "forbidden")["error"]
    assert_error(http.get("/v1/institutions", headers=applicant), 403, "forbidden")
    query = http.post("/v1/queries", json={**QUERY, "project": own.id}, headers=applicant)
    assert_error(query, 404, "project_not_found")
    # After an administrator's approval the applicant collects the analyst token with its own token.
    http.post(f"/v1/applications/{mine['id']}/decision", json={"decision": "approve"}, headers=admin_headers)
    collected = http.get(f"/v1/applications/{mine['id']}", headers=applicant).json()
    assert collected["status"] == "approved" and collected["token"].startswith("sst_analyst_")
    assert http.get(f"/v1/applications/{mine['id']}", headers=applicant).json()["token"] is None


def test_analyst_and_admin_tokens_do_not_count_as_signed_in(
    http: httpx.Client, admin_headers: dict[str, str], own: Any
) -> None:
    for headers in (admin_headers, own.headers):
        body = http.post("/v1/applications", json=APPLICATION, headers=headers).json()
        assert body["status"] == "pending" and body["token"] is None


def test_a_revoked_applicant_token_is_refused(http: httpx.Client, admin_headers: dict[str, str]) -> None:
    http.post("/v1/institutions", json={"id": "revoke-test", "name": "R"}, headers=admin_headers)
    issued = http.post(
        "/v1/institutions/revoke-test/applicants",
        json={"name": "R", "email": "r@r.dk"},
        headers=admin_headers,
    ).json()
    http.delete(f"/v1/admin/tokens/{issued['token_id']}", headers=admin_headers)
    assert_error(http.post("/v1/applications", json=APPLICATION, headers=bearer(issued["token"])), 401)


def test_cli_registers_an_institution_and_issues_an_applicant_token(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    def admin(*args: str) -> Any:
        code = main(["admin", *args, "--json", "--api", server.url, "--token", ADMIN_TOKEN])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        return json.loads(captured.out)

    created = admin(
        "create-institution",
        "sdu-cli",
        "--name",
        "Syddansk Universitet",
        "--email-domain",
        "sdu.dk",
        "--org",
        "sdu",
    )
    assert created["email_domains"] == ["sdu.dk"] and created["org_values"] == ["sdu"]
    assert "sdu-cli" in {i["id"] for i in admin("institutions")}
    issued = admin(
        "create-applicant", "--institution", "sdu-cli", "--name", "Sofie", "--email", "sofie@sdu.dk"
    )
    assert issued["applicant"]["institution"] == "sdu-cli" and issued["token"].startswith("sst_applicant_")
    approved = httpx.post(
        f"{server.url}/v1/applications", json=APPLICATION, headers=bearer(issued["token"])
    ).json()
    assert approved["status"] == "approved" and approved["institution"] == "Syddansk Universitet"


def test_concurrent_applications_cannot_overdraw_the_quota(
    server: Server, make_applicant: Callable[..., dict[str, str]]
) -> None:
    """Twelve applications at once, spread over the server's two workers: exactly the quota of 3."""
    applicant = make_applicant()
    with (
        httpx.Client(base_url=server.url, timeout=60, headers=applicant) as http,
        ThreadPoolExecutor(12) as pool,
    ):
        answers = list(pool.map(lambda _: http.post("/v1/applications", json=APPLICATION).json(), range(12)))
    assert sorted(a["status"] for a in answers) == ["approved"] * 3 + ["pending"] * 9


# --- quotas, pool and rate limit (own servers) ---------------------------------------------------


@pytest.fixture(scope="module")
def guarded(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default quotas but an applicant epsilon quota of 1, and 40 applications per
    minute per address."""
    settings = {
        "SUNDSTAT_APPLICATION_RATE_LIMIT_PER_MINUTE": "40",
        "SUNDSTAT_QUOTA_APPLICANT_EPSILON": "1",
        # An identity provider that does not answer (nothing listens on this port).
        "SUNDSTAT_OIDC_ISSUER": f"http://127.0.0.1:{free_port()}",
        "SUNDSTAT_OIDC_CLIENT_ID": "sundstat",
        "SUNDSTAT_OIDC_CLIENT_SECRET": "secret",
    }
    with start_server(dataset, tmp_path_factory.mktemp("guarded") / "state", settings=settings) as running:
        yield running


def test_an_identity_provider_that_does_not_answer_is_a_503(guarded: Server) -> None:
    response = httpx.get(f"{guarded.url}/v1/auth/login")
    assert "does not answer" in assert_error(response, 503, "sign_in_unavailable")["error"]


def test_a_crowd_of_anonymous_applications_gets_no_budget_and_the_41st_is_rate_limited(
    guarded: Server,
) -> None:
    with _client(guarded, "127.0.0.3") as crowd:
        answers = [crowd.post("/v1/applications", json=APPLICATION) for _ in range(40)]
        assert [a.status_code for a in answers] == [201] * 40
        assert {a.json()["status"] for a in answers} == {"pending"}
        assert all(a.json()["token"] is None and a.json()["project"] is None for a in answers)
        limited = crowd.post("/v1/applications", json=APPLICATION)
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1
    # Another address is counted on its own; the crowd's applications wait for an administrator.
    with _client(guarded, "127.0.0.5", bearer(ADMIN_TOKEN)) as admin:
        assert admin.post("/v1/applications", json=APPLICATION).status_code == 201
        pending = admin.get("/v1/applications", params={"status": "pending"}).json()
        assert len(pending) >= 40 and all(a["waiting_reasons"] for a in pending)
        transparency = admin.get("/v1/transparency").json()
        assert all(p["approval_route"] != "auto" for p in transparency["projects"])


def test_a_signed_in_applicant_gets_at_most_the_quota_automatically(guarded: Server) -> None:
    with _client(guarded, "127.0.0.4") as http:
        _institution(http, "crowd-inst")
        applicant = _applicant(http, "crowd-inst", "Mallory")
        answers = [
            http.post("/v1/applications", json=APPLICATION, headers=applicant).json() for _ in range(40)
        ]
    approved = [a for a in answers if a["status"] == "approved"]
    # 3 projects per applicant (default); 3 x 0.25 stays within the epsilon quota of 1.
    assert len(approved) == 3 and all(a["token"] for a in approved)
    waiting = answers[3:]
    assert all(a["status"] == "pending" and a["token"] is None for a in waiting)
    assert all("applicant quota is 3" in " ".join(a["policy_reasons"]) for a in waiting)


def test_quotas_count_exact_amounts(guarded: Server) -> None:
    """1e-16 + 1.0 is 1.0 in floating point, but more than the applicant quota of 1 exactly."""
    with _client(guarded, "127.0.0.6") as http:
        _institution(http, "exact-inst")
        applicant = _applicant(http, "exact-inst", "Tiny")
        tiny = http.post("/v1/applications", json={**APPLICATION, "epsilon": 1e-16}, headers=applicant).json()
        assert tiny["status"] == "approved"
        one = http.post("/v1/applications", json={**APPLICATION, "epsilon": 1.0}, headers=applicant).json()
    assert one["status"] == "pending"
    assert any("applicant quota of 1" in r for r in one["policy_reasons"]), one["policy_reasons"]


def test_institution_quota_and_pool(dataset: Path, tmp_path: Path) -> None:
    settings = {"SUNDSTAT_QUOTA_INSTITUTION_PROJECTS": "2", "SUNDSTAT_AUTO_APPROVAL_POOL_EPSILON": "1.5"}
    half = {**APPLICATION, "epsilon": 0.5}
    with (
        start_server(dataset, tmp_path / "state", settings=settings) as server,
        _client(server, "127.0.0.7") as http,
    ):
        _institution(http, "x")
        _institution(http, "y")
        a1, a2, a3 = (_applicant(http, "x", n) for n in ("Ann", "Arne", "Asta"))
        assert [http.post("/v1/applications", json=half, headers=h).json()["status"] for h in (a1, a2)] == [
            "approved",
            "approved",
        ]
        third = http.post("/v1/applications", json=half, headers=a3).json()
        assert third["status"] == "pending" and "institution quota is 2" in " ".join(third["policy_reasons"])
        b1, b2 = _applicant(http, "y", "Bo"), _applicant(http, "y", "Britt")
        # The pool of 1.5 is reached exactly (0.5 + 0.5 + 0.5), not passed: approved.
        assert http.post("/v1/applications", json=half, headers=b1).json()["status"] == "approved"
        over = http.post("/v1/applications", json={**APPLICATION, "epsilon": 0.01}, headers=b2).json()
        assert over["status"] == "pending" and "pool of 1.5" in " ".join(over["policy_reasons"])
        seen = http.get(f"/v1/applications/{over['id']}", headers=bearer(ADMIN_TOKEN)).json()
        assert seen["waiting_reasons"] == over["policy_reasons"]


# --- an older state directory -------------------------------------------------------------------

_OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'analyst')), project TEXT, name TEXT NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, expires_at TEXT, revoked_at TEXT,
    CHECK ((role = 'admin') = (project IS NULL))
);
CREATE INDEX tokens_project ON tokens (project);
CREATE TABLE applications (
    id TEXT PRIMARY KEY, status_key_hash TEXT NOT NULL, body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')), submitted_at TEXT NOT NULL,
    decided_at TEXT, decided_by TEXT, route TEXT, reason TEXT, project TEXT, granted_epsilon REAL,
    granted_delta REAL, expires TEXT, token_collected INTEGER NOT NULL DEFAULT 0
);
INSERT INTO tokens VALUES ('tok_old', 'h1', 'sst_analyst_abcd', 'analyst', 'demo', 'old', '2026-01-01T00:00:00+00:00',
    'system', NULL, NULL);
INSERT INTO applications VALUES ('app_old', 'k', '{}', 'pending', '2026-01-01T00:00:00+00:00', NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, 0);
"""


def test_an_older_service_database_is_migrated(tmp_path: Path) -> None:
    from service.state.sqlite import SqliteStateStore
    from service.tokens import TokenStore

    path = tmp_path / "service.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(_OLD_SCHEMA)
    for _ in range(2):  # a second open finds nothing left to migrate
        store = SqliteStateStore(path)
        tokens = TokenStore(store)
        assert tokens.get("tok_old").project == "demo"
        row = store.read().execute("SELECT applicant, waiting_reasons FROM applications").fetchone()
        assert tuple(row) == (None, None)
        store.close()
    store = SqliteStateStore(path)
    issued = TokenStore(store).issue("applicant", name="a", applicant="apl_1")
    assert TokenStore(store).authenticate(issued.token) is not None
    with pytest.raises(sqlite3.IntegrityError):  # the checks came along: an analyst needs a project
        store.read().execute(
            "INSERT INTO tokens (id, hash, prefix, role, name, created_at, created_by) "
            "VALUES ('t', 'h2', 'p', 'analyst', 'n', 'now', 'me')"
        )
    store.close()
