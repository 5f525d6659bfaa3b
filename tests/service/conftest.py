"""Fixtures of the service tests: one real server (2 uvicorn workers) on a real small dataset.

The dataset (5,000 synthetic persons) is generated and built once per session; the server is
``sundstat serve`` in a subprocess with a real SQLite ledger in a temporary state directory.
``postgres_server`` is the ledger tests' throwaway PostgreSQL server (``tests/budget_ledger/pg_server.py``,
one per session, shared with those tests), started only by tests that ask for it.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

# The same module object as the ledger tests' ``pg_server``, so the whole session shares one server.
from tests.helpers.pg_server import postgres_server_fixture  # noqa: F401
from tests.service.svc_helpers import (
    ADMIN_TOKEN,
    ProjectAccess,
    Server,
    bearer,
    build_dataset,
    create_project,
    start_server,
)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real DuckDB file built from 5,000 synthetic persons."""
    return build_dataset(tmp_path_factory.mktemp("service-data"), persons=5000)


@pytest.fixture(scope="session")
def server(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``sundstat serve`` with 2 workers on loopback; generous rate limits, no response padding."""
    with start_server(dataset, tmp_path_factory.mktemp("service-state") / "state", workers=2) as running:
        yield running


@pytest.fixture(scope="session")
def http(server: Server) -> Iterator[httpx.Client]:
    """A plain HTTP client on the server (no token)."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def admin_headers() -> dict[str, str]:
    """The administrator's Authorization header (the token from SUNDSTAT_ADMIN_TOKEN)."""
    return bearer(ADMIN_TOKEN)


_counter = itertools.count()


@pytest.fixture(scope="session")
def make_project(http: httpx.Client, admin_headers: dict[str, str]) -> Callable[..., ProjectAccess]:
    """Create a project (pure, all registers unless given) and an analyst token for it."""

    def make(
        epsilon: float = 5.0,
        *,
        registers: tuple[str, ...] = ("cpr", "lpr", "lmdb", "dar", "ind", "udda"),
        mode: str = "pure",
        delta: float = 0.0,
        expires: str | None = None,
        prefix: str = "p",
    ) -> ProjectAccess:
        project_id = f"{prefix}-{next(_counter)}"
        body = {
            "id": project_id,
            "title": f"Test project {project_id}",
            "purpose": "research",
            "registers": list(registers),
            "mode": mode,
            "epsilon": epsilon,
            "delta": delta,
            "expires": expires,
        }
        token = create_project(http, body, token_name="analyst", headers=admin_headers)
        return ProjectAccess(project_id, token)

    return make


@pytest.fixture(scope="session")
def own(make_project: Callable[..., ProjectAccess]) -> ProjectAccess:
    """A project with a generous budget, for the authorization matrix and contract tests."""
    return make_project(50.0, prefix="own")


@pytest.fixture(scope="session")
def other(make_project: Callable[..., ProjectAccess]) -> ProjectAccess:
    """Someone else's project."""
    return make_project(50.0, prefix="other")


@pytest.fixture(scope="session")
def make_applicant(http: httpx.Client, admin_headers: dict[str, str]) -> Callable[..., dict[str, str]]:
    """An applicant account issued by hand (no identity provider) and its Authorization header; each
    call registers a fresh institution unless ``institution`` names one, so quotas do not interfere."""

    def make(institution: str | None = None, name: str = "Ane Analytiker") -> dict[str, str]:
        if institution is None:
            institution = f"inst-{next(_counter)}"
            created = http.post(
                "/v1/institutions",
                json={"id": institution, "name": f"Institution {institution}", "email_domains": ["inst.dk"]},
                headers=admin_headers,
            )
            assert created.status_code == 201, created.text
        issued = http.post(
            f"/v1/institutions/{institution}/applicants",
            json={"name": name, "email": f"{name.split()[0].lower()}@inst.dk"},
            headers=admin_headers,
        )
        assert issued.status_code == 201, issued.text
        return bearer(issued.json()["token"])

    return make


@dataclass
class InProcess:
    """The app in this process on a fresh state directory: its services and test clients that present
    their requests from a chosen client address."""

    services: Any
    client_from: Callable[[str], Any]


@pytest.fixture
def app_with(dataset: Path, tmp_path: Path) -> Iterator[Callable[..., InProcess]]:
    """Build the app in-process with setting overrides (no response padding, the test admin token)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # starlette prefers httpx2 for its TestClient
        from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings
    from service.worker_services import open_services

    opened: list[Any] = []
    clients = contextlib.ExitStack()

    def build(**overrides: Any) -> InProcess:
        options: dict[str, Any] = {"admin_token": SecretStr(ADMIN_TOKEN), "min_response_seconds": 0}
        settings = Settings(
            db=dataset, state_dir=tmp_path / f"state-{len(opened)}", **{**options, **overrides}
        )
        services = open_services(settings)
        opened.append(services)
        app = create_app(settings, services=services)

        def client_from(address: str) -> Any:
            client = TestClient(app, client=(address, 50000), raise_server_exceptions=False)
            return clients.enter_context(client)  # entered: the app's lifespan runs

        return InProcess(services, client_from)

    with clients:
        yield build
    for services in opened:
        services.close()
