"""Hardening of the HTTP layer against the shared real server: streamed bodies, deep SQL, security headers,
locally served API docs, and one log line (not a traceback) per unexpected error."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg.errors
import pytest
import uvicorn

from budget_ledger import LedgerUnavailable
from query_engine.sql import MAX_SQL_CONDITIONS, MAX_SQL_DEPTH
from service.app import create_app
from service.http_guard import MAX_BODY_BYTES
from service.settings import Settings
from tests.helpers.server_fixtures import free_port
from tests.service.svc_helpers import ADMIN_TOKEN, ProjectAccess, Server, assert_error

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def assert_secured(response: httpx.Response) -> None:
    """The security headers every response carries, errors included."""
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code, dict(response.headers))
    csp = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, csp
    assert response.headers.get("x-request-id"), dict(response.headers)


def _send_chunked(url: str, path: str, total: int, chunk: int = 64 * 1024) -> tuple[int, bytes]:
    """POST a chunked body of up to ``total`` bytes, stopping as soon as the server answers or closes;
    returns (bytes sent, the server's answer)."""
    parts = urlsplit(url)
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        piece = f"{chunk:x}\r\n".encode() + b"x" * chunk + b"\r\n"
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(piece)
            except OSError:  # the server closed the connection (or stopped reading) after answering
                break
            sent += chunk
        else:
            sock.sendall(b"0\r\n\r\n")  # the whole body was taken: end it, so the server answers
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            data = sock.recv(65536)
            assert data, f"the connection closed after {answer!r}"
            answer += data
    return sent, answer


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise AssertionError(f"no Content-Length in {answer!r}")


def test_streamed_body_over_the_limit_is_refused_while_it_streams(server: Server) -> None:
    sent, answer = _send_chunked(server.url, "/v1/applications", total=30_000_000)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"code":"payload_too_large"' in body and b"chunked" in body, body
    assert b"frame-ancestors 'none'" in head.lower() and b"x-content-type-options: nosniff" in head.lower()
    # The server answered mid-stream (the old code read all 30 MB, then parsed it).
    assert sent < 30_000_000, f"the whole body ({sent} bytes) was sent before the server answered"
    assert httpx.get(f"{server.url}/v1/health", timeout=10).status_code == 200


def test_streamed_body_within_the_limit_is_read(http: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"title": '
        yield b'"x"}'

    response = http.post("/v1/applications", content=body(), headers={"Content-Type": "application/json"})
    assert_error(response, 422, "invalid_request")  # read and validated, not refused for its size
    assert MAX_BODY_BYTES == 1_000_000


def _deep_parentheses(n: int) -> str:
    return "SELECT COUNT(*) FROM cpr WHERE " + "(" * n + "sex = 'F'" + ")" * n


@pytest.mark.parametrize(
    ("sql", "construct"),
    [
        pytest.param(_deep_parentheses(200), "nesting", id="200_parentheses"),
        pytest.param(_deep_parentheses(6000), "nesting", id="6000_parentheses"),
        pytest.param(
            "SELECT " + "LOWER(" * 300 + "region" + ")" * 300 + ", COUNT(*) FROM cpr GROUP BY region",
            "nesting",
            id="nested_functions",
        ),
        pytest.param(
            "SELECT COUNT(*) FROM cpr WHERE " + "NOT " * 400 + "sex = 'F'", "nesting", id="not_chain"
        ),
        pytest.param(
            "SELECT COUNT(*) FROM cpr WHERE sex = " + "CASE WHEN 1 = 1 THEN " * 200 + "'F'" + " END" * 200,
            "nesting",
            id="case_nesting",
        ),
        pytest.param(
            "SELECT COUNT(*) FROM cpr WHERE " + " AND ".join(["sex='F'"] * 1000),
            "conditions",
            id="and_chain",
        ),
    ],
)
def test_deep_sql_is_refused_before_parsing(
    http: httpx.Client, server: Server, own: ProjectAccess, sql: str, construct: str
) -> None:
    before = len(server.output())
    response = http.post(
        "/v1/sql/preview", json={"project": own.id, "sql": sql, "epsilon": 0.5}, headers=own.headers
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "sql_too_deep", body
    limit = MAX_SQL_DEPTH if construct == "nesting" else MAX_SQL_CONDITIONS
    assert f"more than {limit}" in body["error"], body
    assert set(body["position"]) == {"line", "column"}
    assert_secured(response)
    assert "Traceback" not in server.output()[before:]


def test_sql_nested_within_the_limit_is_previewed(http: httpx.Client, own: ProjectAccess) -> None:
    depth = MAX_SQL_DEPTH - 2
    response = http.post(
        "/v1/sql/preview",
        json={"project": own.id, "sql": _deep_parentheses(depth), "epsilon": 0.5},
        headers=own.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["loss"]["epsilon"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("send", "status"),
    [
        pytest.param(lambda c: c.get("/v1/health"), 200, id="health"),
        pytest.param(lambda c: c.get("/openapi.json"), 200, id="openapi"),
        pytest.param(lambda c: c.get("/v1/nothing-here"), 404, id="not_found"),
        pytest.param(lambda c: c.get("/v1/projects/x/budget"), 401, id="unauthorized"),
        pytest.param(lambda c: c.post("/v1/applications", json={}), 422, id="invalid"),
        pytest.param(
            lambda c: c.post("/v1/applications", content=b"x" * (MAX_BODY_BYTES + 1)), 413, id="too_large"
        ),
    ],
)
def test_security_headers_on_every_response(
    http: httpx.Client, send: Callable[[httpx.Client], httpx.Response], status: int
) -> None:
    response = send(http)
    assert response.status_code == status, response.text
    assert_secured(response)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_their_assets_from_this_host(http: httpx.Client, page: str) -> None:
    response = http.get(page)
    assert response.status_code == 200
    html = response.text
    assert "http://" not in html and "https://" not in html and "cdn" not in html.lower(), html
    assert "<script>" not in html, "no inline script: the CSP allows scripts from this origin only"
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
    assert response.headers["referrer-policy"] == "no-referrer"
    scripts = [part.split('"', 1)[0] for part in html.split('<script src="')[1:]]
    assert scripts, html
    for src in scripts:
        asset = http.get(src)
        assert asset.status_code == 200, src
        assert "javascript" in asset.headers["content-type"], (src, asset.headers["content-type"])
        assert len(asset.content) > 200, src


def test_openapi_is_served_with_docs(http: httpx.Client) -> None:
    assert http.get("/openapi.json").json()["info"]["title"] == "sundstat"


# --- one log line per unexpected error ----------------------------------------------------------


class _Boom(RuntimeError):
    pass


@pytest.fixture(scope="module")
def failing_server(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app (real services on the test dataset) with extra routes that fail, served by uvicorn
    on loopback in this process, so its log records can be inspected."""
    state_dir = tmp_path_factory.mktemp("failing-server") / "state"
    settings = Settings(db=dataset, state_dir=state_dir, admin_token=ADMIN_TOKEN)
    app = create_app(settings)

    @app.get("/v1/test-failure")
    def fail() -> None:
        raise _Boom("a message that could quote data: person 0101901234")

    @app.post("/v1/test-ledger-disk-full")
    def ledger_disk_full() -> None:
        # What budget_ledger.postgres_store raises when PostgreSQL's disk is full at commit.
        try:
            raise psycopg.errors.DiskFull("could not extend file: No space left on device")
        except psycopg.Error:
            raise LedgerUnavailable("The PostgreSQL ledger failed at commit; retry.") from None

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the in-process server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_unexpected_error_is_one_log_line_and_the_error_body(
    failing_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), httpx.Client(base_url=failing_server, timeout=30) as client:
        response = client.get("/v1/test-failure", headers={"X-Request-ID": "trace-0123456789"})
        assert client.get("/v1/health").status_code == 200  # the server lives on
    body = assert_error(response, 500, "internal_error")
    assert "trace-0123456789" in body["error"]
    assert response.headers["x-request-id"] == "trace-0123456789"
    assert_secured(response)
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1, [r.getMessage() for r in problems]
    (record,) = problems
    line = record.getMessage()
    assert "\n" not in line and record.exc_info is None and record.exc_text is None
    assert "_Boom" in line and "/v1/test-failure" in line and "trace-0123456789" in line, line
    assert "0101901234" not in line


def test_a_full_postgresql_ledger_is_storage_unavailable(failing_server: str) -> None:
    with httpx.Client(base_url=failing_server, timeout=30) as client:
        response = client.post("/v1/test-ledger-disk-full")
    body = assert_error(response, 503, "storage_unavailable")
    assert "out of disk space" in body["error"] and "operator" in body["error"]
    assert response.headers["retry-after"] == "30"
    assert_secured(response)
