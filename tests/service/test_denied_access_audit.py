"""Denied requests reach the audit chain: one coalesced record per actor, route and project per window.

The app runs in-process on the real dataset and a fresh state directory; requests come from a
chosen client address. The window is long, and the test flushes it, so counts are exact.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from service.denied_access import ACCESS_DENIED, DeniedAccessLog
from tests.service.svc_helpers import ADMIN_TOKEN, bearer

REMOTE = "203.0.113.7"


def _denied(services: Any) -> list[dict[str, Any]]:
    services.denied.flush()
    services.access.flush()
    return [
        record
        for entry in services.ledger.audit_entries()
        if entry.kind == "access_batch"
        for record in entry.payload["records"]
        if record["kind"] == ACCESS_DENIED
    ]


def test_401_403_and_another_projects_404_are_chained_with_counts(app_with: Callable[..., Any]) -> None:
    app = app_with(denied_audit_window_seconds=3600)
    client = app.client_from(REMOTE)
    admin = bearer(ADMIN_TOKEN)
    for project in ("mine", "theirs"):
        body = {"id": project, "title": project, "purpose": "research", "registers": ["cpr"], "epsilon": 1}
        assert client.post("/v1/projects", json=body, headers=admin).status_code == 201
    issued = client.post("/v1/projects/mine/tokens", json={"name": "ana"}, headers=admin).json()
    analyst, analyst_id = bearer(issued["token"]), issued["id"]
    assert _denied(app.services) == []  # nothing denied yet

    for _ in range(3):
        assert client.get("/v1/projects/mine/budget", headers=bearer("sst_analyst_bad")).status_code == 401
    assert client.get("/v1/admin/tokens").status_code == 401
    for _ in range(2):
        assert client.get("/v1/admin/tokens", headers=analyst).status_code == 403
    for _ in range(4):
        assert client.get("/v1/projects/theirs/budget", headers=analyst).status_code == 404
    query = {"project": "theirs", "measure": "count_persons", "epsilon": 0.1}
    assert client.post("/v1/queries/preview", json=query, headers=analyst).status_code == 404
    assert client.get("/v1/projects/mine/budget", headers=analyst).status_code == 200  # allowed: not recorded

    records = _denied(app.services)
    counts = Counter()
    for r in records:
        counts[(r["actor"], r["address"], r["route"], r["project"], r["status"])] += r["count"]
    actor = f"analyst:{analyst_id}"
    assert counts == {
        ("anonymous", REMOTE, "/v1/projects/{project_id}/budget", "mine", 401): 3,
        ("anonymous", REMOTE, "/v1/admin/tokens", None, 401): 1,
        (actor, None, "/v1/admin/tokens", None, 403): 2,
        (actor, None, "/v1/projects/{project_id}/budget", "theirs", 404): 4,
        (actor, None, "/v1/queries/preview", "theirs", 404): 1,
    }
    assert len(records) == 5  # one record per key: repeated denials are counted, not repeated
    assert all("sst_" not in str(r) for r in records)  # never a token


class _Sink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record(self, kind: str, project: str | None, actor: str, **details: Any) -> None:
        self.records.append({"kind": kind, "project": project, "actor": actor, **details})


def test_a_flood_of_distinct_denials_adds_a_bounded_number_of_records() -> None:
    sink = _Sink()
    log = DeniedAccessLog(sink, max_keys=3)
    for i in range(1000):
        log.record("anonymous", REMOTE, "/v1/projects/{project_id}", f"guess-{i}", 401, "unauthorized")
    assert log.flush() == 4
    assert [r["count"] for r in sink.records] == [1, 1, 1, 997]
    assert sink.records[-1]["route"] == "overflow"
    assert log.flush() == 0  # a new window starts empty


def test_each_window_is_flushed_in_the_background() -> None:
    sink = _Sink()
    log = DeniedAccessLog(sink, window=0.05)
    log.start()
    try:
        log.record("analyst:tok_x", None, "/v1/admin/tokens", None, 403, "forbidden")
        log.record("analyst:tok_x", None, "/v1/admin/tokens", None, 403, "forbidden")
        deadline = time.monotonic() + 10
        while not sink.records and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        log.close()
    assert [(r["actor"], r["count"]) for r in sink.records] == [("analyst:tok_x", 2)]
