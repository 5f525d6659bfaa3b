"""Fuzzing the OpenAPI schema with schemathesis: no 5xx, and every error is the one error body.

Runs against its own server, so random administrator requests (caps, budgets, tokens) cannot disturb
the other tests. Bounded: a few positive and negative examples per operation and role.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.service.svc_helpers import ADMIN_TOKEN, ERROR_KEYS, Server, bearer, create_project, start_server

EXAMPLES = 6


@pytest.fixture(scope="module")
def fuzz_server(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(dataset, tmp_path_factory.mktemp("fuzz-state") / "state", workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def analyst_token(fuzz_server: Server) -> str:
    with httpx.Client(base_url=fuzz_server.url, headers=bearer(ADMIN_TOKEN)) as client:
        project = {
            "id": "fuzz",
            "title": "Fuzz",
            "purpose": "research",
            "registers": ["cpr", "lpr"],
            "epsilon": 1000,
        }
        return create_project(client, project, token_name="fuzz")


def _check(response: Any) -> None:
    status = response.status_code
    assert status < 500, f"{response.request.method} {response.request.url} -> {status}: {response.text}"
    if status >= 400:
        body = response.json()
        assert set(body) - {"position"} == ERROR_KEYS, body
        assert body["ok"] is False and body["status"] == status and isinstance(body["code"], str)


def _has_inputs(operation: Any) -> bool:
    """Whether negative generation has anything to break besides the Authorization header."""
    return bool(len(operation.path_parameters) or len(operation.query) or len(operation.body))


def _fuzz(operation: Any, mode: Any, url: str, token: str | None, session: requests.Session) -> int:
    """Run a few generated cases of one operation with one token; returns how many were sent."""
    sent = 0

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal sent
        headers = {**dict(case.headers or {}), **bearer(token)}
        _check(case.call(base_url=url, headers=headers, session=session, timeout=30))
        sent += 1

    try:
        run()
    except Unsatisfiable:
        # Some negative cases cannot be generated (e.g. an invalid string path parameter).
        assert mode == schemathesis.GenerationMode.NEGATIVE
    return sent


@pytest.mark.slow
def test_fuzz_openapi_no_server_errors_and_one_error_body(fuzz_server: Server, analyst_token: str) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    sent = 0
    with requests.Session() as session:
        for operation in operations:
            for mode in schemathesis.GenerationMode:
                if mode == schemathesis.GenerationMode.NEGATIVE and not _has_inputs(operation):
                    continue
                for token in (ADMIN_TOKEN, analyst_token, None):
                    sent += _fuzz(operation, mode, fuzz_server.url, token, session)
    assert sent > 200
