"""The Python client with ``httpx.MockTransport``: requests it sends and the exceptions it raises."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from service.client import (
    ApiError,
    BudgetExceeded,
    Client,
    Conflict,
    Forbidden,
    InvalidQuery,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
)


def _client(handler: Any, token: str | None = "sst_analyst_t") -> Client:
    return Client("http://api.test", token=token, transport=httpx.MockTransport(handler))


def test_run_sends_the_query_token_and_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"release_id": "r_1", "cached": False})

    with _client(handler) as api:
        release = api.run({"project": "p", "measure": "count_persons", "epsilon": 0.1}, idempotency_key="k-1")
    assert release["release_id"] == "r_1"
    request = seen[0]
    assert request.method == "POST" and request.url.path == "/v1/queries"
    assert request.headers["authorization"] == "Bearer sst_analyst_t"
    assert request.headers["idempotency-key"] == "k-1"
    assert json.loads(request.content)["epsilon"] == 0.1


def test_application_status_sends_the_status_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-status-key"] == "sak_1" and "authorization" not in request.headers
        return httpx.Response(200, json={"id": "app_1", "status": "pending"})

    with _client(handler, token=None) as api:
        assert api.application_status("app_1", "sak_1")["status"] == "pending"


def test_apply_sends_the_applicant_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer sst_applicant_a"
        return httpx.Response(201, json={"id": "app_1", "status": "approved"})

    with _client(handler, token=None) as api:
        assert api.apply({"title": "t"}, applicant_token="sst_applicant_a")["status"] == "approved"


@pytest.mark.parametrize(
    ("status", "code", "exception"),
    [
        pytest.param(401, "unauthorized", Unauthorized, id="401"),
        pytest.param(403, "forbidden", Forbidden, id="403"),
        pytest.param(403, "budget_exceeded", BudgetExceeded, id="budget"),
        pytest.param(403, "register_cap_pure_only", BudgetExceeded, id="register_cap_pure_only"),
        pytest.param(404, "project_not_found", NotFound, id="404"),
        pytest.param(409, "in_progress", Conflict, id="409"),
        pytest.param(422, "unknown_column", InvalidQuery, id="422"),
        pytest.param(429, "rate_limited", RateLimited, id="429"),
        pytest.param(500, "internal_error", ServerError, id="500"),
        pytest.param(503, "busy", ServerError, id="503"),
        pytest.param(405, "method_not_allowed", ApiError, id="405"),
    ],
)
def test_errors_become_typed_exceptions(status: int, code: str, exception: type[ApiError]) -> None:
    body = {"ok": False, "code": code, "error": "A sentence.", "status": status}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers={"Retry-After": "3"})

    with _client(handler) as api, pytest.raises(exception) as raised:
        api.budget("p")
    assert type(raised.value) is exception
    assert (raised.value.status, raised.value.code, raised.value.error) == (status, code, "A sentence.")
    assert raised.value.body == body
    if isinstance(raised.value, RateLimited):
        assert raised.value.retry_after == 3.0


def test_a_non_json_error_still_raises() -> None:
    with (
        _client(lambda r: httpx.Response(502, text="bad gateway")) as api,
        pytest.raises(ServerError) as raised,
    ):
        api.health()
    assert raised.value.code == "http_error" and raised.value.status == 502


ROUTES: list[tuple[str, Any, str, str]] = [
    ("health", lambda a: a.health(), "GET", "/v1/health"),
    ("catalog", lambda a: a.catalog(), "GET", "/v1/catalog"),
    ("catalog_dcat", lambda a: a.catalog_dcat(), "GET", "/v1/catalog/dcat"),
    ("transparency", lambda a: a.transparency(), "GET", "/v1/transparency"),
    ("me", lambda a: a.me(), "GET", "/v1/me"),
    ("preview", lambda a: a.preview({"project": "p"}), "POST", "/v1/queries/preview"),
    ("sql_preview", lambda a: a.sql_preview("SELECT 1", project="p", epsilon=0.1), "POST", "/v1/sql/preview"),
    ("sql", lambda a: a.sql("SELECT 1", project="p", epsilon=0.1), "POST", "/v1/sql"),
    ("budget", lambda a: a.budget("p"), "GET", "/v1/projects/p/budget"),
    ("releases", lambda a: a.releases("p"), "GET", "/v1/projects/p/releases"),
    ("release", lambda a: a.release("p", "r_1"), "GET", "/v1/projects/p/releases/r_1"),
    ("project", lambda a: a.project("p"), "GET", "/v1/projects/p"),
    ("list_projects", lambda a: a.list_projects(), "GET", "/v1/projects"),
    (
        "create_project",
        lambda a: a.create_project("p", title="t", purpose="research", registers=["cpr"], epsilon=1.0),
        "POST",
        "/v1/projects",
    ),
    ("set_budget", lambda a: a.set_budget("p", epsilon=2.0, reason="r"), "PUT", "/v1/projects/p/budget"),
    ("create_token", lambda a: a.create_token("p", "n"), "POST", "/v1/projects/p/tokens"),
    ("create_admin_token", lambda a: a.create_admin_token("n"), "POST", "/v1/admin/tokens"),
    ("list_tokens", lambda a: a.list_tokens(), "GET", "/v1/admin/tokens"),
    ("list_project_tokens", lambda a: a.list_tokens("p"), "GET", "/v1/projects/p/tokens"),
    ("revoke_token", lambda a: a.revoke_token("tok_1"), "DELETE", "/v1/admin/tokens/tok_1"),
    (
        "set_register_cap",
        lambda a: a.set_register_cap("lpr", epsilon=5.0, reason="r"),
        "PUT",
        "/v1/registers/lpr/cap",
    ),
    ("ledger_verify", lambda a: a.ledger_verify(), "GET", "/v1/admin/ledger/verify"),
    ("policy", lambda a: a.policy(), "GET", "/v1/applications/policy"),
    ("apply", lambda a: a.apply({"title": "t"}), "POST", "/v1/applications"),
    ("list_applications", lambda a: a.list_applications("pending"), "GET", "/v1/applications"),
    ("decide", lambda a: a.decide("app_1", "reject", reason="r"), "POST", "/v1/applications/app_1/decision"),
    ("create_institution", lambda a: a.create_institution("ku", "KU"), "POST", "/v1/institutions"),
    ("list_institutions", lambda a: a.list_institutions(), "GET", "/v1/institutions"),
    (
        "create_applicant",
        lambda a: a.create_applicant("ku", name="A", email="a@ku.dk"),
        "POST",
        "/v1/institutions/ku/applicants",
    ),
]


@pytest.mark.parametrize(("call", "method", "path"), [pytest.param(c, m, p, id=i) for i, c, m, p in ROUTES])
def test_every_method_calls_its_route(call: Any, method: str, path: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    with _client(handler) as api:
        call(api)
    assert (seen[0].method, seen[0].url.path) == (method, path)
