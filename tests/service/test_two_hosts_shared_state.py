"""Two API hosts on one PostgreSQL behave as one service: tokens, revocations, applications (with
applicant accounts and their quotas) and rate limits are shared, not per host.

Two ``sundstat serve --no-dashboard`` processes run as two hosts would: each with its own state
directory, both with ``--ledger-url`` on one PostgreSQL schema (which then also holds the service
state), the same audit key and administrator token. Per-token limits are tight (bursts of 10, about
no refill) and failed authentications per address allow bursts of 5; everything comes from 127.0.0.1.
"""

from __future__ import annotations

from tests.service.svc_helpers import (
    Hosts,
    admin_client,
    assert_error,
    bearer,
    issue_token,
    two_hosts_fixture,
)

TOKEN_BURST = 10
AUTH_FAILURE_BURST = 5


hosts = two_hosts_fixture(
    workers=2,
    settings={
        "SUNDSTAT_RATE_LIMIT_PER_SECOND": "0.0001",
        "SUNDSTAT_RATE_LIMIT_BURST": str(TOKEN_BURST),
        "SUNDSTAT_AUTH_FAILURE_RATE_PER_SECOND": "0.0001",
        "SUNDSTAT_AUTH_FAILURE_BURST": str(AUTH_FAILURE_BURST),
    },
)


def test_two_hosts_share_tokens_revocations_applications_applicants_and_rate_limits(hosts: Hosts) -> None:
    with admin_client(hosts.a) as on_a, admin_client(hosts.b) as on_b:
        body = {"id": "shared-state", "title": "Two hosts", "purpose": "research", "registers": ["cpr"]}
        assert on_a.post("/v1/projects", json={**body, "epsilon": 1}).status_code == 201

        # A token issued on host A works on host B (and the other way round).
        kept, revoked = (
            issue_token(on_a, "shared-state", "kept"),
            issue_token(on_b, "shared-state", "revoked"),
        )
        budget = "/v1/projects/shared-state/budget"
        assert on_b.get(budget, headers=bearer(kept)).status_code == 200
        assert on_a.get(budget, headers=bearer(revoked)).status_code == 200
        # A revocation on host B holds on host A at once (and on B's other worker).
        token_id = on_a.get("/v1/me", headers=bearer(revoked)).json()["token_id"]
        assert on_b.delete(f"/v1/admin/tokens/{token_id}").status_code == 200
        for client in (on_a, on_b, on_a, on_b):
            assert_error(client.get(budget, headers=bearer(revoked)), 401, "unauthorized")

        # An application filed on host A is on host B's desk.
        application = {
            "title": "Shared desk",
            "purpose": "policy",
            "institution": "SDU",
            "summary": "Waits for an administrator (policy is not automatic).",
            "registers": ["cpr"],
            "epsilon": 0.5,
            "duration_days": 30,
            "applicant": {"name": "A. Applicant", "email": "a@example.org"},
        }
        filed = on_a.post("/v1/applications", json=application, headers={"Authorization": ""})
        assert filed.status_code == 201, filed.text
        pending = on_b.get("/v1/applications", params={"status": "pending"}).json()
        assert filed.json()["id"] in [a["id"] for a in pending]

        # An applicant account made on host B applies on host A: approved at once (the quotas are
        # counted in the shared state), its analyst token works on host B, and the application is the
        # project's permit.
        institution = {"id": "two-hosts", "name": "Two Hosts", "email_domains": ["th.dk"]}
        assert on_a.post("/v1/institutions", json=institution).status_code == 201
        account = on_b.post(
            "/v1/institutions/two-hosts/applicants", json={"name": "Ane", "email": "ane@th.dk"}
        )
        assert account.status_code == 201, account.text
        signed_in = bearer(account.json()["token"])
        auto = on_a.post("/v1/applications", json={**application, "purpose": "research"}, headers=signed_in)
        assert auto.status_code == 201 and auto.json()["status"] == "approved", auto.text
        project = auto.json()["project"]
        assert (
            on_b.get(f"/v1/applications/{auto.json()['id']}", headers=signed_in).json()["project"] == project
        )
        own_budget = on_b.get(f"/v1/projects/{project}/budget", headers=bearer(auto.json()["token"]))
        assert own_budget.status_code == 200, own_budget.text
        shown = on_b.get("/v1/transparency", headers={"Authorization": ""}).json()["projects"]
        assert [p["permit_id"] for p in shown if p["id"] == project] == [auto.json()["id"]]

        # One per-token limit across both hosts: 6 requests on A and 6 on B, 10 accepted, 2 refused.
        limited = issue_token(on_b, "shared-state", "limited")
        statuses = []
        for client in [on_a, on_b] * 6:
            statuses.append(client.get(budget, headers=bearer(limited)).status_code)
        assert sorted(statuses) == [200] * TOKEN_BURST + [429] * 2, statuses
        assert statuses[:TOKEN_BURST] == [200] * TOKEN_BURST

        # Failed authentications from this address, counted across hosts: the revoked token's four
        # 401s above already count; one more 401, then 429 on both hosts, even for a good token.
        bad = [c.get(budget, headers=bearer(f"sst_analyst_guess{i}")) for i, c in enumerate([on_a, on_b] * 2)]
        assert [r.status_code for r in bad] == [401, 429, 429, 429]
        assert_error(bad[-1], 429, "rate_limited")
        assert on_a.get(budget, headers=bearer(kept)).status_code == 429
        assert on_b.get("/v1/me").status_code == 429
