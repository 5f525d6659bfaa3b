"""Helpers of the service tests: a real server in a subprocess, tokens, and request shortcuts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.server_fixtures import Server, build_dataset, create_project
from tests.helpers.server_fixtures import start_server as _start_server

__all__ = [
    "ADMIN_TOKEN",
    "ERROR_KEYS",
    "ProjectAccess",
    "Server",
    "assert_error",
    "bearer",
    "build_dataset",
    "create_project",
    "fire_queries",
    "start_server",
]

ADMIN_TOKEN = "sst_admin_test_" + "x" * 40
ERROR_KEYS = {"ok", "code", "error", "status"}


def start_server(db: Path, state_dir: Path, **options: Any) -> Server:
    """``sundstat serve --no-dashboard`` with the service tests' administrator token; ``options`` as for
    ``server_fixtures.start_server`` (workers, settings, args, timeout)."""
    return _start_server(db, state_dir, admin_token=ADMIN_TOKEN, **options)


@dataclass(frozen=True)
class ProjectAccess:
    """A project created through the API and an analyst token for it."""

    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The analyst's Authorization header."""
        return bearer(self.token)


def bearer(token: str | None) -> dict[str, str]:
    """The Authorization header for ``token`` (none for None)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the one error body with this status (and code)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["ok"] is False and body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    if code is not None:
        assert body["code"] == code, body
    return dict(body)


def fire_queries(url: str, token: str, queries: list[dict[str, Any]], threads: int) -> list[tuple[int, str]]:
    """POST every query at once from ``threads`` threads; returns (status, code or release id) each.

    Top-level so that a process pool can run it in several client processes.
    """
    from concurrent.futures import ThreadPoolExecutor

    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    with httpx.Client(base_url=url, headers=bearer(token), timeout=120, limits=limits) as client:

        def one(query: dict[str, Any]) -> tuple[int, str]:
            response = client.post("/v1/queries", json=query)
            body = response.json()
            return response.status_code, str(body.get("release_id") or body.get("code"))

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, queries))
