"""Limits against a strict server: per-token rate limit (429), query slots (503 busy), response padding."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.service.svc_helpers import ADMIN_TOKEN, Server, assert_error, bearer, start_server

PADDING = 0.3


@pytest.fixture(scope="module")
def strict(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = {
        "SUNDSTAT_RATE_LIMIT_PER_SECOND": "2",
        "SUNDSTAT_RATE_LIMIT_BURST": "5",
        "SUNDSTAT_MAX_CONCURRENT_QUERIES": "1",
        "SUNDSTAT_QUEUE_TIMEOUT_SECONDS": "0",
        "SUNDSTAT_MIN_RESPONSE_SECONDS": str(PADDING),
    }
    with start_server(
        dataset, tmp_path_factory.mktemp("strict") / "state", workers=1, settings=settings
    ) as running:
        yield running


def _patient(send: Callable[[], httpx.Response]) -> httpx.Response:
    """Send, waiting out the administrator's own rate limit."""
    while (response := send()).status_code == 429:
        time.sleep(float(response.headers["retry-after"]))
    return response


def _analysts(server: Server, count: int, epsilon: float = 10.0) -> tuple[str, list[str]]:
    """A project and ``count`` analyst tokens for it (each token has its own rate bucket)."""
    with httpx.Client(base_url=server.url, headers=bearer(ADMIN_TOKEN)) as admin:
        project = f"strict-{time.monotonic_ns()}"
        body = {"id": project, "title": "t", "purpose": "research", "registers": ["cpr"], "epsilon": epsilon}
        assert _patient(lambda: admin.post("/v1/projects", json=body)).status_code == 201
        path = f"/v1/projects/{project}/tokens"
        tokens = [
            str(_patient(partial(admin.post, path, json={"name": f"a{i}"})).json()["token"])
            for i in range(count)
        ]
    return project, tokens


def test_rate_limit_is_per_token_with_retry_after(strict: Server) -> None:
    project, (first, second) = _analysts(strict, 2)
    with httpx.Client(base_url=strict.url) as http:
        statuses = [
            http.get(f"/v1/projects/{project}/budget", headers=bearer(first)).status_code for _ in range(8)
        ]
        assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
        limited = http.get(f"/v1/projects/{project}/budget", headers=bearer(first))
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        assert http.get(f"/v1/projects/{project}/budget", headers=bearer(second)).status_code == 200


def test_query_responses_are_padded_to_the_minimum_time(strict: Server) -> None:
    project, (token,) = _analysts(strict, 1)
    with httpx.Client(base_url=strict.url, headers=bearer(token)) as http:
        for body in (
            {"project": project, "measure": "count_persons", "epsilon": 0.1},
            {"project": project, "measure": "count_persons", "epsilon": 0.1},  # cached
            {"project": project, "measure": "count_persons", "epsilon": 100.0},  # refused
            {"project": project, "measure": "count_persons", "group_by": ["cpr.nope"], "epsilon": 0.1},
        ):
            started = time.monotonic()
            response = http.post("/v1/queries", json=body)
            assert time.monotonic() - started >= PADDING, response.text
        started = time.monotonic()
        assert http.get(f"/v1/projects/{project}/budget").status_code == 200
        assert time.monotonic() - started < PADDING


def test_query_slots_refuse_with_busy_and_spend_nothing(strict: Server) -> None:
    project, tokens = _analysts(strict, 5, epsilon=100.0)
    queries = [
        (
            tokens[i % 5],
            {
                "project": project,
                "measure": "count_persons",
                "group_by": ["cpr.region"],
                "epsilon": 0.01,
                "confidence": 0.5 + i / 100,
            },
        )
        for i in range(20)
    ]

    def post(item: tuple[str, dict[str, object]]) -> httpx.Response:
        token, body = item
        with httpx.Client(base_url=strict.url, headers=bearer(token), timeout=60) as http:
            return http.post("/v1/queries", json=body)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(post, queries))
    codes = Counter(r.status_code for r in responses)
    assert codes[503] >= 1 and set(codes) <= {200, 503}, codes
    for response in responses:
        if response.status_code == 503:
            assert_error(response, 503, "busy")
            assert response.headers["retry-after"] == "1"
    with httpx.Client(base_url=strict.url, headers=bearer(tokens[0])) as http:
        assert http.get(f"/v1/projects/{project}/budget").json()["spends"] == codes[200]
