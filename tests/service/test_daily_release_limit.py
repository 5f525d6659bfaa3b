"""The per-project limit on fresh releases per UTC day, against a real server with a limit of 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.svc_helpers import Server, admin_client, assert_error, bearer, create_project, start_server


@pytest.fixture(scope="module")
def limited(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    state = tmp_path_factory.mktemp("release-limit") / "state"
    settings = {"SUNDSTAT_MAX_RELEASES_PER_DAY": "2", "SUNDSTAT_RESPONSE_LADDER": "0.5,1,2,4,8,16,30"}
    with start_server(dataset, state, settings=settings) as server:
        yield server


def _analyst(server: Server, project: str) -> httpx.Client:
    body = {
        "id": project,
        "title": "Limited",
        "purpose": "research",
        "registers": ["cpr", "lpr"],
        "mode": "pure",
        "epsilon": 5.0,
        "delta": 0.0,
    }
    with admin_client(server) as admin:
        token = create_project(admin, body, token_name="analyst")
    return httpx.Client(base_url=server.url, headers=bearer(token), timeout=60)


def _query(project: str, epsilon: float, **extra: Any) -> dict[str, Any]:
    return {"project": project, "measure": "count_persons", "epsilon": epsilon, **extra}


def test_fresh_releases_beyond_the_daily_limit_are_refused_and_cost_nothing(limited: Server) -> None:
    with _analyst(limited, "limited-a") as client:
        for epsilon in (0.1, 0.2):
            assert client.post("/v1/queries", json=_query("limited-a", epsilon)).status_code == 200
        spent = client.get("/v1/projects/limited-a/budget").json()["epsilon_spent"]

        refused = client.post("/v1/queries", json=_query("limited-a", 0.3))
        body = assert_error(refused, 429, "daily_release_limit")
        assert "limit of 2 per UTC day" in body["error"] and "resets at" in body["error"], body
        assert 1 <= int(refused.headers["Retry-After"]) <= 86_400
        sql = client.post(
            "/v1/sql", json={"project": "limited-a", "sql": "SELECT count(*) FROM cpr", "epsilon": 0.4}
        )
        assert_error(sql, 429, "daily_release_limit")
        assert client.get("/v1/projects/limited-a/budget").json()["epsilon_spent"] == spent

        # A query released before is still answered, free, from its stored release.
        again = client.post("/v1/queries", json=_query("limited-a", 0.1))
        assert again.status_code == 200 and again.json()["cached"] is True
        # Previews are free, stay available and state the response time of a fresh release.
        preview = client.post("/v1/queries/preview", json=_query("limited-a", 0.3))
        assert preview.status_code == 200 and preview.json()["response_seconds"] == 0.5
        # ... and say that a fresh release would be refused today, while a stored one is still free.
        assert (
            preview.json()["fits"] is False and "its limit of 2 per UTC day" in preview.json()["fit_problem"]
        )
        stored = client.post("/v1/queries/preview", json=_query("limited-a", 0.1)).json()
        assert stored["cached"] is True and stored["fits"] is True
        sql_body = {"project": "limited-a", "sql": "SELECT count(*) FROM cpr", "epsilon": 0.4}
        assert client.post("/v1/sql/preview", json=sql_body).json()["response_seconds"] == 0.5

    # The limit is per project.
    with _analyst(limited, "limited-b") as other:
        assert other.post("/v1/queries", json=_query("limited-b", 0.3)).status_code == 200


def test_an_idempotent_retry_is_served_at_the_limit(limited: Server) -> None:
    with _analyst(limited, "limited-c") as client:
        key = {"Idempotency-Key": "limit-replay-1"}
        first = client.post("/v1/queries", json=_query("limited-c", 0.1), headers=key)
        assert first.status_code == 200 and first.json()["cached"] is False
        assert client.post("/v1/queries", json=_query("limited-c", 0.2)).status_code == 200
        replay = client.post("/v1/queries", json=_query("limited-c", 0.1), headers=key)
        assert replay.status_code == 200, replay.text
        assert replay.json()["release_id"] == first.json()["release_id"]
        assert_error(client.post("/v1/queries", json=_query("limited-c", 0.3)), 429, "daily_release_limit")
