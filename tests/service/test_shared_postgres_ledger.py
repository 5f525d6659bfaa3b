"""Two API hosts, one PostgreSQL ledger: one budget, spent exactly once across both.

Two ``sundstat serve --no-dashboard`` processes run as two hosts would: each with its own state
directory, both on the same DuckDB file, with the same
``SUNDSTAT_AUDIT_KEY`` and administrator token (``SUNDSTAT_ADMIN_TOKEN``), and one ledger in
PostgreSQL through ``--ledger-url``. They start at the same moment, racing on the ledger's first start.
Distinct queries are then fired at both hosts at once, from several threads each, at a project that
affords exactly ``K`` of them.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict

from service.cli import main
from tests.service.svc_helpers import (
    ADMIN_TOKEN,
    Hosts,
    admin_client,
    bearer,
    fire_queries,
    issue_token,
    two_hosts_fixture,
)

K = 6
QUERIES_PER_HOST = 12
THREADS_PER_HOST = 4


hosts = two_hosts_fixture(workers=1)
"""Host A and host B, started at once on a fresh PostgreSQL schema."""


def test_two_hosts_spend_one_budget_exactly_once(
    hosts: Hosts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with admin_client(hosts.a) as on_a, admin_client(hosts.b) as on_b:
        # The project is created on host A; its budget is set on host B: one ledger.
        project = "shared-budget"
        body = {
            "id": project,
            "title": "Two hosts",
            "purpose": "research",
            "registers": ["cpr"],
            "epsilon": 1,
        }
        assert on_a.post("/v1/projects", json=body).status_code == 201
        query: dict[str, Any] = {
            "project": project,
            "measure": "count_persons",
            "group_by": ["cpr.sex"],
            "epsilon": 0.25,
        }
        charged = on_b.post("/v1/queries/preview", json=query).json()["loss"]["epsilon"]
        budget = {"epsilon": charged * (K + 0.5), "delta": 0.0, "reason": "room for exactly K queries"}
        assert on_b.put(f"/v1/projects/{project}/budget", json=budget).status_code == 200

        # With a PostgreSQL ledger the service state is there too: a token works on either host.
        token_a = issue_token(on_a, project, "analyst on host A")
        token_b = issue_token(on_b, project, "analyst on host B")
        assert on_b.get(f"/v1/projects/{project}/budget", headers=bearer(token_a)).status_code == 200

        queries = [{**query, "confidence": round(0.5 + i / 1000, 3)} for i in range(2 * QUERIES_PER_HOST)]
        to_a, to_b = queries[0::2], queries[1::2]
        with ThreadPoolExecutor(2) as pool:
            on_host_a = pool.submit(fire_queries, hosts.a.url, token_a, to_a, THREADS_PER_HOST)
            on_host_b = pool.submit(fire_queries, hosts.b.url, token_b, to_b, THREADS_PER_HOST)
            results_a, results_b = on_host_a.result(), on_host_b.result()

        results = results_a + results_b
        statuses = Counter(status for status, _ in results)
        assert statuses == {200: K, 403: len(queries) - K}, (statuses, results_a, results_b)
        assert {code for status, code in results if status == 403} == {"budget_exceeded"}

        for client in (on_a, on_b):
            status = client.get(f"/v1/projects/{project}/budget").json()
            assert status["spends"] == K and status["epsilon_spent"] == pytest.approx(K * charged)
            assert status["epsilon_remaining"] < charged
            releases = client.get(f"/v1/projects/{project}/releases").json()
            assert releases["count"] == K
            report = client.get("/v1/transparency").json()
            cpr = next(r for r in report["registers"] if r["register"] == "cpr")
            assert cpr["epsilon_spent"] == pytest.approx(K * charged) and cpr["spends"] == K

        # A query released through one host is the other host's cached release: free, same answer.
        released_by_a = [(q, rid) for q, (status, rid) in zip(to_a, results_a, strict=True) if status == 200]
        released_by_b = [(q, rid) for q, (status, rid) in zip(to_b, results_b, strict=True) if status == 200]
        for (released, release_id), host, token in (
            *((pair, hosts.b, token_b) for pair in released_by_a[:1]),
            *((pair, hosts.a, token_a) for pair in released_by_b[:1]),
        ):
            again = httpx.post(f"{host.url}/v1/queries", json=released, headers=bearer(token), timeout=60)
            assert again.status_code == 200, again.text
            assert again.json()["cached"] is True and again.json()["release_id"] == release_id
        assert on_a.get(f"/v1/projects/{project}/budget").json()["spends"] == K

        for client in (on_a, on_b):
            verified = client.get("/v1/admin/ledger/verify").json()
            assert verified["ok"] is True, verified

    # Offline, from the URL and the key alone (no state directory).
    monkeypatch.setenv("SUNDSTAT_AUDIT_KEY", hosts.settings["SUNDSTAT_AUDIT_KEY"])
    monkeypatch.delenv("SUNDSTAT_LEDGER_URL", raising=False)
    assert main(["ledger", "verify", "--ledger-url", hosts.ledger_url]) == 0
    printed = capsys.readouterr().out
    assert "(PostgreSQL): OK" in printed
    assert str(conninfo_to_dict(hosts.ledger_url)["password"]) not in printed
    # ... and from SUNDSTAT_LEDGER_URL, as on a host configured through the environment.
    monkeypatch.setenv("SUNDSTAT_LEDGER_URL", hosts.ledger_url)
    assert main(["ledger", "verify", "--state-dir", str(hosts.a.state_dir)]) == 0
    assert "(PostgreSQL): OK" in capsys.readouterr().out


def test_both_hosts_report_the_postgres_ledger_and_one_demo_project(hosts: Hosts) -> None:
    """Starting together, the hosts created the shared demo project once; neither prints the password."""
    password = str(conninfo_to_dict(hosts.ledger_url)["password"])
    for host in (hosts.a, hosts.b):
        output = host.output()
        assert "(PostgreSQL)" in output and password not in output
    with httpx.Client(headers=bearer(ADMIN_TOKEN), timeout=60) as admin:
        listed = [admin.get(f"{host.url}/v1/projects").json() for host in (hosts.a, hosts.b)]
    assert listed[0] == listed[1]
    assert [p["id"] for p in listed[0]].count("demo") == 1
