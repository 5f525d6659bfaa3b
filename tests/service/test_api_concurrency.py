"""Budget enforcement under concurrency: many clients, several processes, two workers, one ledger."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import httpx
import pytest

from tests.service.svc_helpers import ProjectAccess, Server, fire_queries

PROCESSES = 4
THREADS = 50
AFFORDABLE = 10


@pytest.mark.slow
def test_200_concurrent_distinct_queries_spend_exactly_the_budget(
    server: Server, http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    """4 processes x 50 threads send 200 distinct queries to a project that can afford exactly 10."""
    probe = make_project(1.0, prefix="probe")
    query = {"project": probe.id, "measure": "count_persons", "group_by": ["cpr.sex"], "epsilon": 0.125}
    charged = http.post("/v1/queries/preview", json=query, headers=probe.headers).json()["loss"]["epsilon"]
    # Room for exactly 10 charges: 10.5 of them (the 11th would need 11).
    project = make_project(charged * (AFFORDABLE + 0.5), prefix="race")
    queries = [
        {**query, "project": project.id, "confidence": round(0.5 + i / 1000, 3)}
        for i in range(PROCESSES * THREADS)
    ]
    assert len({q["confidence"] for q in queries}) == len(queries)
    batches = [queries[i::PROCESSES] for i in range(PROCESSES)]
    with ProcessPoolExecutor(PROCESSES) as pool:
        futures = [pool.submit(fire_queries, server.url, project.token, batch, THREADS) for batch in batches]
        results = [result for future in futures for result in future.result()]

    statuses = Counter(status for status, _ in results)
    assert statuses == {200: AFFORDABLE, 403: len(queries) - AFFORDABLE}, statuses
    assert {code for status, code in results if status == 403} == {"budget_exceeded"}
    released = {code for status, code in results if status == 200}
    listing = http.get(f"/v1/projects/{project.id}/releases", headers=project.headers).json()
    assert listing["count"] == AFFORDABLE and {r["release_id"] for r in listing["releases"]} == released
    budget = http.get(f"/v1/projects/{project.id}/budget", headers=project.headers).json()
    assert budget["spends"] == AFFORDABLE
    assert budget["epsilon_spent"] == pytest.approx(charged * AFFORDABLE, rel=1e-12)
    assert budget["epsilon_spent"] <= budget["epsilon_total"]
