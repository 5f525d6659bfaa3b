"""The public contract (DESIGN.md §6) against a real server: every route, its status and body shape."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.service.svc_helpers import ERROR_KEYS, ProjectAccess, Server, assert_error, bearer


def count_query(project: str, epsilon: float | None = 0.1, **extra: Any) -> dict[str, Any]:
    """A small count query in ``project``."""
    return {
        "project": project,
        "measure": "count_persons",
        "group_by": ["cpr.region"],
        "epsilon": epsilon,
        **extra,
    }


# --- public routes ------------------------------------------------------------------------------


def test_health(http: httpx.Client) -> None:
    body = http.get("/v1/health").json()
    assert body["ok"] is True and body["status"] == "ok"
    assert set(body["registers"]) == {"cpr", "lpr", "lmdb", "dar", "ind", "udda"}


def test_catalog_lists_registers_columns_domains_controllers(http: httpx.Client) -> None:
    body = http.get("/v1/catalog").json()
    registers = {r["name"]: r for r in body["registers"]}
    assert set(registers) == {"cpr", "lpr", "lmdb", "dar", "ind", "udda"}
    cpr = registers["cpr"]
    assert cpr["controller"] and cpr["coverage"]["from"] <= cpr["coverage"]["to"]
    region = next(c for c in cpr["columns"] if c["name"] == "region")
    assert region["keyset"] == "regions"
    assert "Hovedstaden" in body["keysets"]["regions"]["values"]
    assert body["keysets"]["sex"]["labels"]["F"]


@pytest.mark.parametrize("path", ["/v1/catalog/dcat", "/v1/catalog?format=dcat"], ids=["route", "query"])
def test_catalog_as_dcat_jsonld(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    body = response.json()
    assert body["@type"] == "dcat:Catalog" and "dcat" in body["@context"]
    datasets = body["dcat:dataset"]
    assert {d["dct:identifier"] for d in datasets} == {"cpr", "lpr", "lmdb", "dar", "ind", "udda"}
    lpr = next(d for d in datasets if d["dct:identifier"] == "lpr")
    assert {t["@language"] for t in lpr["dct:title"]} == {"en", "da"}
    assert {t["@language"] for t in lpr["dct:description"]} == {"en", "da"}
    assert lpr["dct:publisher"]["foaf:name"]
    assert lpr["dct:temporal"]["dcat:startDate"]["@value"].endswith("-01-01")
    assert lpr["dcat:theme"] and lpr["healthdcatap:hasCodingSystem"]


def test_transparency_shows_projects_registers_and_ledger_head(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    project = make_project(3.0, registers=("cpr", "lpr"))
    before = next(
        (r for r in http.get("/v1/transparency").json()["registers"] if r["register"] == "cpr"),
        {"epsilon_spent": 0.0, "rho_spent": 0.0},
    )
    release = http.post("/v1/queries", json=count_query(project.id), headers=project.headers)
    assert release.status_code == 200, release.text
    charged = release.json()["privacy"]["epsilon"]
    body = http.get("/v1/transparency").json()
    entry = next(p for p in body["projects"] if p["id"] == project.id)
    assert entry["registers"] == ["cpr", "lpr"] and entry["purpose"] == "research"
    assert entry["epsilon_total"] == 3.0 and 0.09 < entry["epsilon_spent"] <= 0.1
    assert entry["releases"] == 1 and entry["approval_route"] == "admin"
    cpr = next(r for r in body["registers"] if r["register"] == "cpr")
    assert cpr["rho_spent"] > 0 and cpr["spends"] >= 1
    assert cpr["epsilon_spent"] - before["epsilon_spent"] == pytest.approx(charged)
    assert cpr["rho_spent"] - before["rho_spent"] == pytest.approx(charged**2 / 2)
    assert {"register", "epsilon_spent", "rho_spent", "delta_spent", "spends", "cap_rho"} <= set(cpr)
    assert body["ledger"]["entries"] > 0 and len(body["ledger"]["head_hash"]) == 64


def test_openapi_and_docs_are_served(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    for path in ("/v1/health", "/v1/queries", "/v1/queries/preview", "/v1/projects/{project_id}/budget"):
        assert path in schema["paths"]
    assert http.get("/docs").status_code == 200


# --- queries ------------------------------------------------------------------------------------


def test_preview_costs_nothing(http: httpx.Client, make_project: Callable[..., ProjectAccess]) -> None:
    project = make_project(1.0)
    preview = http.post("/v1/queries/preview", json=count_query(project.id, 0.5), headers=project.headers)
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert 0.49 < body["loss"]["epsilon"] <= 0.5 and body["mechanism"] == "discrete_laplace"
    assert body["cells"] == 5 and body["expected_half_width"] > 0
    assert body["budget"]["epsilon_spent"] == 0.0
    budget = http.get(f"/v1/projects/{project.id}/budget", headers=project.headers).json()
    assert budget["epsilon_spent"] == 0.0 and budget["spends"] == 0


def test_release_has_contract_fields_and_fills_budget(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    project = make_project(1.0)
    response = http.post("/v1/queries", json=count_query(project.id, 0.25), headers=project.headers)
    assert response.status_code == 200, response.text
    release = response.json()
    assert release["release_id"].startswith("r_") and release["project"] == project.id
    assert release["cached"] is False
    assert release["privacy"]["mechanism"] == "discrete_laplace" and release["privacy"]["delta"] == 0.0
    assert release["columns"][:5] == ["cpr.region", "value", "ci_low", "ci_high", "suppressed"]
    assert len(release["rows"]) == 5 and release["confidence"] == 0.95
    budget = release["budget"]
    assert budget["epsilon_spent"] == pytest.approx(0.25, abs=1e-9)
    assert budget["epsilon_remaining"] == pytest.approx(0.75, abs=1e-9)


def test_same_query_returns_the_stored_release_free(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    project = make_project(1.0)
    first = http.post("/v1/queries", json=count_query(project.id, 0.5), headers=project.headers).json()
    again = http.post("/v1/queries", json=count_query(project.id, 0.5), headers=project.headers).json()
    assert again["cached"] is True and again["release_id"] == first["release_id"]
    assert again["rows"] == first["rows"]
    assert again["budget"]["spends"] == 1


def test_idempotency_key_retry_returns_the_stored_release(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    project = make_project(1.0)
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    headers = {**project.headers, **key}
    first = http.post("/v1/queries", json=count_query(project.id, 0.2), headers=headers).json()
    retry = http.post("/v1/queries", json=count_query(project.id, 0.2), headers=headers).json()
    assert retry["release_id"] == first["release_id"] and retry["cached"] is True
    other = http.post("/v1/queries", json=count_query(project.id, 0.3), headers=headers)
    assert_error(other, 409, "idempotency_conflict")


def test_releases_list_and_single_release(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    project = make_project(1.0)
    made = http.post("/v1/queries", json=count_query(project.id, 0.1), headers=project.headers).json()
    listing = http.get(f"/v1/projects/{project.id}/releases", headers=project.headers).json()
    assert listing["count"] == 1 and listing["releases"][0]["release_id"] == made["release_id"]
    one = http.get(f"/v1/projects/{project.id}/releases/{made['release_id']}", headers=project.headers)
    assert one.status_code == 200 and one.json()["rows"] == made["rows"]


def test_sql_is_the_same_query_and_the_same_cached_release(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    project = make_project(1.0)
    sql = {"project": project.id, "sql": "SELECT region, COUNT(*) FROM cpr GROUP BY region", "epsilon": 0.25}
    preview = http.post("/v1/sql/preview", json=sql, headers=project.headers)
    assert preview.status_code == 200, preview.text
    assert preview.json()["cells"] == 5
    from_sql = http.post("/v1/sql", json=sql, headers=project.headers).json()
    assert from_sql["cached"] is False and from_sql["columns"][0] == "cpr.region"
    from_json = http.post("/v1/queries", json=count_query(project.id, 0.25), headers=project.headers).json()
    assert from_json["cached"] is True and from_json["release_id"] == from_sql["release_id"]


def test_sql_errors_say_where(http: httpx.Client, own: ProjectAccess) -> None:
    sql = {
        "project": own.id,
        "sql": "SELECT COUNT(*)\nFROM cpr\nWHERE sex = 'F' OR sex = 'M'",
        "epsilon": 0.1,
    }
    response = http.post("/v1/sql", json=sql, headers=own.headers)
    assert response.status_code == 422
    body = response.json()
    assert set(body) == ERROR_KEYS | {"position"} and body["code"] == "unsupported_sql"
    assert body["position"]["line"] == 3 and body["ok"] is False and body["status"] == 422


def _chain(server: Server) -> list[Any]:
    from budget_ledger import SqliteStore

    store = SqliteStore(server.state_dir / "ledger.sqlite")
    try:
        with store.snapshot() as tx:
            return list(tx.audit_entries())
    finally:
        store.close()


def test_every_request_that_touches_a_project_is_in_the_audit_chain(
    server: Server, http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    project = make_project(1.0)
    h = project.headers
    http.post("/v1/queries/preview", json=count_query(project.id), headers=h)
    http.post("/v1/queries", json=count_query(project.id), headers=h)
    http.post("/v1/queries", json=count_query(project.id), headers=h)  # served from the cache
    http.post("/v1/queries", json=count_query(project.id, 5.0), headers=h)  # refused
    http.get(f"/v1/projects/{project.id}/budget", headers=h)
    http.get(f"/v1/projects/{project.id}/releases", headers=h)
    wanted = {"query_previewed", "release_served", "query_refused", "project_read"}
    deadline = time.monotonic() + 5
    while True:
        entries = _chain(server)
        records = [
            r
            for e in entries
            if e.kind == "access_batch"
            for r in e.payload["records"]
            if r["project"] == project.id
        ]
        reads = {r.get("what") for r in records if r["kind"] == "project_read"}
        if (wanted <= {r["kind"] for r in records} and reads >= {"budget", "releases"}) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(0.1)
    assert wanted <= {r["kind"] for r in records}
    assert {r.get("what") for r in records if r["kind"] == "project_read"} >= {"budget", "releases"}
    assert all(r["actor"].startswith("analyst:tok_") and "sst_" not in str(r) for r in records)
    spends = [
        e
        for e in entries
        if e.kind in ("spend_committed", "release_stored") and e.payload["project"] == project.id
    ]
    assert [e.kind for e in spends] == ["spend_committed", "release_stored"]


# --- projects, tokens, caps ---------------------------------------------------------------------


def test_project_create_read_budget_update(http: httpx.Client, admin_headers: dict[str, str]) -> None:
    body = {
        "id": f"diabetes-{uuid.uuid4().hex[:8]}",
        "title": "Diabetes 2026",
        "purpose": "research",
        "registers": ["cpr", "lpr", "lmdb"],
        "mode": "pure",
        "epsilon": 2.0,
        "delta": 0.0,
        "expires": "2099-12-31",
    }
    created = http.post("/v1/projects", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.json()["budget"]["epsilon_total"] == 2.0
    assert_error(http.post("/v1/projects", json=body, headers=admin_headers), 409, "conflict")
    updated = http.put(
        f"/v1/projects/{body['id']}/budget",
        json={"epsilon": 3.0, "delta": 0.0, "reason": "more"},
        headers=admin_headers,
    )
    assert updated.status_code == 200 and updated.json()["epsilon_total"] == 3.0
    read = http.get(f"/v1/projects/{body['id']}", headers=admin_headers).json()
    assert read["registers"] == ["cpr", "lmdb", "lpr"] and read["expires"] == "2099-12-31"
    assert body["id"] in {p["id"] for p in http.get("/v1/projects", headers=admin_headers).json()}


def test_zcdp_project_budget_shows_rho(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    project = make_project(1.0, mode="zcdp", delta=1e-6)
    budget = http.get(f"/v1/projects/{project.id}/budget", headers=project.headers).json()
    assert budget["mode"] == "zcdp" and budget["rho_total"] > 0
    release = http.post(
        "/v1/queries", json=count_query(project.id, rho=0.001, epsilon=None), headers=project.headers
    )
    assert release.status_code == 200, release.text
    assert release.json()["privacy"]["mechanism"] == "discrete_gaussian"


def test_tokens_issue_list_revoke(
    http: httpx.Client, admin_headers: dict[str, str], own: ProjectAccess
) -> None:
    issued = http.post(f"/v1/projects/{own.id}/tokens", json={"name": "temp"}, headers=admin_headers).json()
    assert issued["token"].startswith("sst_analyst_") and len(issued["token"]) >= 12 + 43
    assert issued["role"] == "analyst" and issued["project"] == own.id
    listed = http.get(f"/v1/projects/{own.id}/tokens", headers=admin_headers).json()
    assert issued["id"] in {t["id"] for t in listed} and all("token" not in t for t in listed)
    assert http.get("/v1/me", headers=bearer(issued["token"])).json()["project"] == own.id
    revoked = http.delete(f"/v1/admin/tokens/{issued['id']}", headers=admin_headers).json()
    assert revoked["active"] is False and revoked["revoked_at"]
    assert_error(http.get("/v1/me", headers=bearer(issued["token"])), 401, "unauthorized")
    admin = http.post(
        "/v1/admin/tokens", json={"name": "second admin", "role": "admin"}, headers=admin_headers
    )
    assert admin.status_code == 201 and admin.json()["token"].startswith("sst_admin_")
    assert http.get("/v1/admin/tokens", headers=bearer(admin.json()["token"])).status_code == 200


def test_register_cap_is_enforced(
    http: httpx.Client, admin_headers: dict[str, str], make_project: Callable[..., ProjectAccess]
) -> None:
    project = make_project(5.0, registers=("cpr", "udda"))
    query = count_query(project.id, 1.0, group_by=["udda.isced_level"])
    borne = next(
        (r for r in http.get("/v1/transparency").json()["registers"] if r["register"] == "udda"),
        {"rho_spent": 0.0},
    )["rho_spent"]
    cap = http.put(
        "/v1/registers/udda/cap",
        json={"rho": borne + 0.1, "delta": 0.0, "reason": "test"},
        headers=admin_headers,
    )
    assert cap.status_code == 200, cap.text
    assert cap.json()["register"] == "udda" and cap.json()["cap_rho"] == pytest.approx(borne + 0.1)
    refused = http.post("/v1/queries", json=query, headers=project.headers)
    body = assert_error(refused, 403, "budget_exceeded")
    assert "udda" in body["error"]
    lifted = http.put(
        "/v1/registers/udda/cap", json={"epsilon": 1000.0, "reason": "lift"}, headers=admin_headers
    )
    assert lifted.status_code == 200


def test_ledger_verify_route(http: httpx.Client, admin_headers: dict[str, str]) -> None:
    body = http.get("/v1/admin/ledger/verify", headers=admin_headers).json()
    assert body["ok"] is True and body["entries"] > 0 and body["first_bad_index"] is None


# --- permits ------------------------------------------------------------------------------------


def test_register_not_permitted(http: httpx.Client, make_project: Callable[..., ProjectAccess]) -> None:
    project = make_project(1.0, registers=("cpr",))
    query = count_query(project.id, 0.1, group_by=["lpr.contact_type"])
    body = assert_error(
        http.post("/v1/queries", json=query, headers=project.headers), 403, "register_not_permitted"
    )
    assert "lpr" in body["error"]
    assert http.get(f"/v1/projects/{project.id}/budget", headers=project.headers).json()["spends"] == 0


def test_permit_expired(http: httpx.Client, admin_headers: dict[str, str]) -> None:
    """No token outlives its permit: none is issued for an expired one, and queries are refused."""
    body = {
        "id": "expired-permit",
        "title": "Ended",
        "purpose": "research",
        "registers": ["cpr"],
        "epsilon": 1,
    }
    created = http.post("/v1/projects", json={**body, "expires": "2020-01-01"}, headers=admin_headers)
    assert created.status_code == 201, created.text
    issued = http.post("/v1/projects/expired-permit/tokens", json={"name": "late"}, headers=admin_headers)
    assert "2020-01-01" in assert_error(issued, 403, "permit_expired")["error"]
    refused = http.post("/v1/queries", json=count_query("expired-permit"), headers=admin_headers)
    assert "2020-01-01" in assert_error(refused, 403, "permit_expired")["error"]


def test_budget_exceeded_says_the_numbers(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    project = make_project(0.5)
    body = assert_error(
        http.post("/v1/queries", json=count_query(project.id, 1.0), headers=project.headers),
        403,
        "budget_exceeded",
    )
    assert "0.5" in body["error"]


# --- errors: one body for every error ------------------------------------------------------------


@dataclass(frozen=True)
class Ctx:
    """What an error case may use: the client, the admin header, a rich and a poor project."""

    http: httpx.Client
    admin: dict[str, str]
    own: ProjectAccess
    poor: ProjectAccess


@pytest.fixture(scope="module")
def ctx(
    http: httpx.Client,
    admin_headers: dict[str, str],
    own: ProjectAccess,
    make_project: Callable[..., ProjectAccess],
) -> Ctx:
    return Ctx(http, admin_headers, own, make_project(0.05, prefix="poor"))


ZCDP_WITHOUT_DELTA = {
    "id": "zz",
    "title": "t",
    "purpose": "research",
    "registers": ["cpr"],
    "mode": "zcdp",
    "epsilon": 1,
}

ERROR_CASES: list[Any] = [
    pytest.param(lambda c: c.http.get("/v1/projects"), 401, "unauthorized", id="unauthorized"),
    pytest.param(
        lambda c: c.http.get("/v1/me", headers={"Authorization": "Basic abc"}),
        401,
        "unauthorized",
        id="bad_scheme",
    ),
    pytest.param(
        lambda c: c.http.get("/v1/admin/tokens", headers=c.own.headers), 403, "forbidden", id="forbidden"
    ),
    pytest.param(
        lambda c: c.http.post("/v1/queries", json=count_query(c.poor.id, 1.0), headers=c.poor.headers),
        403,
        "budget_exceeded",
        id="budget_exceeded",
    ),
    pytest.param(
        lambda c: c.http.get("/v1/projects/nope/budget", headers=c.own.headers),
        404,
        "project_not_found",
        id="project",
    ),
    pytest.param(
        lambda c: c.http.get(f"/v1/projects/{c.own.id}/releases/r_nope", headers=c.own.headers),
        404,
        "release_not_found",
        id="release_not_found",
    ),
    pytest.param(
        lambda c: c.http.get("/v1/applications/app_nope", headers={"X-Status-Key": "x"}),
        404,
        "application_not_found",
        id="application_not_found",
    ),
    pytest.param(
        lambda c: c.http.delete("/v1/admin/tokens/tok_nope", headers=c.admin),
        404,
        "token_not_found",
        id="token",
    ),
    pytest.param(lambda c: c.http.get("/v1/nowhere"), 404, "not_found", id="unknown_route"),
    pytest.param(lambda c: c.http.delete("/v1/health"), 405, "method_not_allowed", id="method_not_allowed"),
    pytest.param(
        lambda c: c.http.post("/v1/projects", content=b"x" * 1_100_000, headers=c.admin),
        413,
        "payload_too_large",
        id="payload_too_large",
    ),
    pytest.param(
        lambda c: c.http.post("/v1/projects", json={}, headers=c.admin),
        422,
        "invalid_request",
        id="fastapi_422",
    ),
    pytest.param(
        lambda c: c.http.post(
            "/v1/projects", content=b"{oops", headers={**c.admin, "content-type": "application/json"}
        ),
        400,
        "bad_request",
        id="malformed_json",
    ),
    pytest.param(
        lambda c: c.http.post(
            "/v1/projects",
            content=b"id=x",
            headers={**c.admin, "content-type": "application/x-www-form-urlencoded"},
        ),
        415,
        "unsupported_media_type",
        id="form_body",
    ),
    pytest.param(
        lambda c: c.http.post("/v1/queries", json={"project": c.own.id}, headers=c.own.headers),
        422,
        "invalid_query",
        id="query_shape",
    ),
    pytest.param(
        lambda c: c.http.post(
            "/v1/queries", json={**count_query(c.own.id), "group_by": ["cpr.regoin"]}, headers=c.own.headers
        ),
        422,
        "unknown_column",
        id="unknown_column",
    ),
    pytest.param(
        lambda c: c.http.post(
            "/v1/queries", json={**count_query(c.own.id), "register": "lpx"}, headers=c.own.headers
        ),
        422,
        "unknown_register",
        id="unknown_register",
    ),
    pytest.param(
        lambda c: c.http.post("/v1/projects", json=ZCDP_WITHOUT_DELTA, headers=c.admin),
        422,
        "invalid_budget",
        id="invalid_budget",
    ),
    pytest.param(
        lambda c: c.http.post(
            "/v1/queries", json=count_query(c.own.id, epsilon=None, rho=0.01), headers=c.own.headers
        ),
        422,
        "loss_not_allowed",
        id="rho_in_pure_project",
    ),
    pytest.param(
        lambda c: c.http.post(
            "/v1/queries",
            json=count_query(c.own.id),
            headers={**c.own.headers, "Idempotency-Key": "has space"},
        ),
        422,
        "invalid_query",
        id="bad_idempotency_key",
    ),
]


@pytest.mark.parametrize(("make", "status", "code"), ERROR_CASES)
def test_every_error_has_the_one_body(
    ctx: Ctx, make: Callable[[Ctx], httpx.Response], status: int, code: str
) -> None:
    """Pins the error body: exactly ``ok``, ``code``, ``error``, ``status``; ok is false; status repeated."""
    response = make(ctx)
    body = assert_error(response, status, code)
    assert set(body) == ERROR_KEYS
    assert response.headers["content-type"].startswith("application/json")
    assert len(body["error"]) > 10


def test_unauthorized_says_bearer(http: httpx.Client) -> None:
    assert http.get("/v1/projects").headers.get("www-authenticate") == "Bearer"
