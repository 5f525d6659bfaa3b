"""Fixtures of the dashboard tests: one small real dataset, one real API server, a fake API per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.dash_helpers import (
    Api,
    FakeApi,
    build_dataset,
    catalog_body,
    query_options_answer,
    start_api,
)

_FAKE_HOSTS = itertools.count()


@pytest.fixture(scope="session")
def dashboard_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 synthetic persons, generated and built by the real tools."""
    return build_dataset(tmp_path_factory.mktemp("dashboard-data"), persons=1500)


@pytest.fixture(scope="session")
def catalog(dashboard_db: Path) -> dict[str, Any]:
    """The public catalog JSON of the test database."""
    return catalog_body(dashboard_db)


@pytest.fixture(scope="session")
def api_server(dashboard_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The real API on loopback, with a fresh state directory, for the whole session."""
    api = start_api(dashboard_db, tmp_path_factory.mktemp("dashboard-state") / "state")
    with api.server:
        yield api


@pytest.fixture
def real_api(api_server: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    """The dashboard pointed at the real API (``SUNDSTAT_API_URL``)."""
    monkeypatch.setenv("SUNDSTAT_API_URL", api_server.url)
    return api_server


@pytest.fixture
def fake_api(catalog: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    """A fake API serving the real catalog; the dashboard gets a URL of its own (no shared cache)."""
    monkeypatch.setenv("SUNDSTAT_API_URL", f"http://fake-{next(_FAKE_HOSTS)}.invalid")
    return FakeApi(routes={"GET /v1/catalog": catalog, "GET /v1/query-options": query_options_answer})
