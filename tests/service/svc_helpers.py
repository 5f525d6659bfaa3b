"""Helpers of the service tests: a real server in a subprocess, tokens, and request shortcuts."""

from __future__ import annotations

import argparse
import contextlib
import secrets
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.helpers.server_fixtures import Server, build_dataset, create_project
from tests.helpers.server_fixtures import start_server as _start_server

if TYPE_CHECKING:
    from tests.helpers.pg_server import TemporaryPostgres

__all__ = [
    "ADMIN_TOKEN",
    "ERROR_KEYS",
    "Hosts",
    "ProjectAccess",
    "Server",
    "admin_client",
    "assert_error",
    "bearer",
    "build_dataset",
    "cli_commands",
    "create_project",
    "fire_queries",
    "issue_token",
    "start_server",
    "two_hosts",
    "two_hosts_fixture",
]

ADMIN_TOKEN = "sst_admin_test_" + "x" * 40
ERROR_KEYS = {"ok", "code", "error", "status"}


def start_server(db: Path, state_dir: Path, **options: Any) -> Server:
    """``sundstat serve --no-dashboard`` with the service tests' administrator token; ``options`` as for
    ``server_fixtures.start_server`` (workers, settings, args, timeout)."""
    return _start_server(db, state_dir, admin_token=ADMIN_TOKEN, **options)


@dataclass(frozen=True)
class Hosts:
    """Two running API hosts on one PostgreSQL schema (the ledger, and with it the service state)."""

    a: Server
    b: Server
    ledger_url: str
    settings: Mapping[str, str]


@contextlib.contextmanager
def two_hosts(
    db: Path,
    postgres: TemporaryPostgres,
    base: Path,
    settings: Mapping[str, str] | None = None,
    *,
    workers: int,
) -> Iterator[Hosts]:
    """Host A and host B, started at once (each with its own state directory under ``base``) with
    ``settings`` and one audit key, on a fresh schema of ``postgres`` as their ledger; both stopped at
    the end, also when one failed to start."""
    ledger_url = postgres.schema_url()
    settings = {"SUNDSTAT_AUDIT_KEY": secrets.token_hex(32), **(settings or {})}

    def start(name: str) -> Server:
        return start_server(
            db, base / name / "state", settings=settings, args=["--ledger-url", ledger_url], workers=workers
        )

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(start, name) for name in ("host-a", "host-b")]
    started = [f.result() for f in futures if f.exception() is None]
    try:
        if len(started) < 2:
            raise next(e for f in futures if (e := f.exception()) is not None)
        yield Hosts(started[0], started[1], ledger_url, settings)
    finally:
        for server in started:
            server.stop()


def two_hosts_fixture(*, workers: int, settings: Mapping[str, str] | None = None) -> Any:
    """A module's ``hosts`` fixture (assign it to ``hosts``): ``two_hosts`` on the service tests' dataset
    and PostgreSQL server, started once per module."""

    @pytest.fixture(scope="module")
    def hosts(
        dataset: Path, postgres_server: TemporaryPostgres, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Hosts]:
        base = tmp_path_factory.mktemp("two-hosts")
        with two_hosts(dataset, postgres_server, base, settings, workers=workers) as started:
            yield started

    return hosts


def cli_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand of ``parser``, as word tuples (``("ledger", "verify")``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from cli_commands(sub, (*prefix, name))


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


def admin_client(server: Server) -> httpx.Client:
    """An httpx client on ``server`` with the service tests' administrator token."""
    return httpx.Client(base_url=server.url, headers=bearer(ADMIN_TOKEN), timeout=60)


def issue_token(admin: httpx.Client, project: str, name: str) -> str:
    """A new analyst token of ``project``, issued through ``admin`` (an administrator's client)."""
    issued = admin.post(f"/v1/projects/{project}/tokens", json={"name": name})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["token"])


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
