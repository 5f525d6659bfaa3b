"""16 processes x 8 threads spending against one PostgreSQL ledger: exactly K succeed, nothing else.

Each process opens its own store, as separate API hosts would; they share nothing but the server.
The driver, shared with ``test_ledger_concurrency``, is ``ledger_concurrency_driver``.
"""

from __future__ import annotations

import multiprocessing
from functools import partial

import pytest

from budget_ledger import Charge, Ledger
from budget_ledger.postgres_store import PostgresLedgerStore
from tests.budget_ledger.ledger_concurrency_driver import (
    COST,
    THREADS,
    OpenStore,
    check_exactly_k_fit_the_project_budget,
    check_exactly_k_fit_under_a_shared_register_cap,
)
from tests.budget_ledger.ledger_helpers import pure_spec
from tests.budget_ledger.pg_ledger import postgres_store_fixture  # noqa: F401
from tests.helpers.pg_server import TemporaryPostgres, pg_url_fixture, postgres_server_fixture  # noqa: F401


def _open_store(url: str) -> OpenStore:
    return partial(PostgresLedgerStore, url, pool_size=THREADS)


@pytest.mark.slow
def test_exactly_k_of_many_concurrent_spends_fit_the_project_budget(
    ledger: Ledger, pg_url: str, audit_key: bytes
) -> None:
    check_exactly_k_fit_the_project_budget(ledger, _open_store(pg_url), audit_key)


@pytest.mark.slow
def test_exactly_k_fit_under_a_register_cap_shared_with_another_project(
    ledger: Ledger, pg_url: str, audit_key: bytes
) -> None:
    check_exactly_k_fit_under_a_shared_register_cap(ledger, _open_store(pg_url), audit_key)


@pytest.mark.slow
def test_spends_in_different_projects_interleave_without_forking_the_chain(
    ledger: Ledger, pg_url: str, audit_key: bytes
) -> None:
    """Different projects and registers still share one audit chain: every seq exactly once."""
    projects = [f"p{i}" for i in range(4)]
    for name in projects:
        ledger.create_project(pure_spec(name, epsilon=1000), "admin")
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_spend_many, args=(pg_url, audit_key, projects[i % 4], i)) for i in range(8)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    report = ledger.verify()
    assert report.ok and report.entries == len(projects) + 8 * 20
    assert sum(ledger.budget(name).spends for name in projects) == 8 * 20


def _spend_many(url: str, key: bytes, project: str, index: int) -> None:
    store = PostgresLedgerStore(url, pool_size=1)
    ledger = Ledger(store, key)
    for i in range(20):
        ledger.reserve_and_commit(project, ["cpr"], Charge(epsilon=COST), f"{index}-{i}", "q", actor="a")
    store.close()
