"""16 processes x 8 threads spending against one PostgreSQL ledger: exactly K succeed, nothing else.

Each process opens its own store, as separate API hosts would; they share nothing but the server.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction

import pytest
from ledger_helpers import pure_spec, zcdp_spec
from pg_server import TemporaryPostgres, pg_url_fixture, postgres_server_fixture  # noqa: F401

from budget_ledger import Charge, Ledger, LedgerError
from budget_ledger.postgres_store import PostgresLedgerStore

PROCESSES = 16
THREADS = 8
ATTEMPTS_PER_THREAD = 2
K = 100
COST = Fraction(1, 10)


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresLedgerStore]:
    """Overrides the conftest's SQLite store, so the conftest's ``ledger`` runs on PostgreSQL."""
    opened = PostgresLedgerStore(pg_url)
    yield opened
    opened.close()


def _worker(
    url: str,
    key: bytes,
    project: str,
    charge: Charge,
    registers: tuple[str, ...],
    process_index: int,
    start: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue,
) -> None:
    outcomes: list[str] = []
    try:
        store = PostgresLedgerStore(url, pool_size=THREADS)
        ledger = Ledger(store, key)
    except Exception as exc:  # report, never hang the barrier
        start.abort()
        results.put([f"unexpected:{type(exc).__name__}:{exc}"])
        return
    lock = threading.Lock()
    thread_start = threading.Barrier(THREADS)

    def run(thread_index: int) -> None:
        thread_start.wait()
        for attempt in range(ATTEMPTS_PER_THREAD):
            query = f"p{process_index}-t{thread_index}-a{attempt}"
            outcome: str
            try:
                result = ledger.reserve_and_commit(project, registers, charge, query, query, actor="analyst")
                outcome = result.status
            except LedgerError as exc:
                outcome = exc.code
            except Exception as exc:  # any other failure must show up in the test, not crash the worker
                outcome = f"unexpected:{type(exc).__name__}:{exc}"
            with lock:
                outcomes.append(outcome)

    start.wait()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    results.put(outcomes)


def _hammer(url: str, key: bytes, project: str, charge: Charge, registers: tuple[str, ...]) -> Counter[str]:
    context = multiprocessing.get_context("fork")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(url, key, project, charge, registers, index, start, results))
        for index in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + 120
    for _ in processes:
        outcomes.update(results.get(timeout=max(1.0, deadline - time.monotonic())))
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    return outcomes


@pytest.mark.slow
def test_exactly_k_of_many_concurrent_spends_fit_the_project_budget(
    ledger: Ledger, pg_url: str, audit_key: bytes
) -> None:
    ledger.create_project(pure_spec(epsilon=K * COST), "admin")
    outcomes = _hammer(pg_url, audit_key, "diabetes-2026", Charge(epsilon=COST), ("cpr",))
    attempts = PROCESSES * THREADS * ATTEMPTS_PER_THREAD
    assert outcomes == Counter({"committed": K, "budget_exceeded": attempts - K})
    project = ledger.get_project("diabetes-2026")
    assert project.totals.spends == K and project.totals.epsilon == K * COST == project.limits.epsilon
    with ledger.store.snapshot() as tx:
        assert len(list(tx.list_spends())) == K
    assert ledger.verify().ok


@pytest.mark.slow
def test_exactly_k_fit_under_a_register_cap_shared_with_another_project(
    ledger: Ledger, pg_url: str, audit_key: bytes
) -> None:
    rho = Fraction(1, 1000)
    ledger.create_project(zcdp_spec(epsilon=50), "admin")
    ledger.create_project(zcdp_spec("other", epsilon=50), "admin")
    ledger.reserve_and_commit("other", ["lpr"], Charge(rho=10 * rho), "o", "o", actor="other-analyst")
    ledger.set_register_cap("lpr", rho=(K + 10) * rho, delta=0, reason="test cap", actor="admin")
    outcomes = _hammer(pg_url, audit_key, "heart-2026", Charge(rho=rho), ("cpr", "lpr"))
    attempts = PROCESSES * THREADS * ATTEMPTS_PER_THREAD
    assert outcomes == Counter({"committed": K, "budget_exceeded": attempts - K})
    caps = {c.register: c for c in ledger.register_caps()}
    assert caps["lpr"].rho_spent == (K + 10) * rho and caps["lpr"].rho_remaining == 0
    assert caps["cpr"].rho_spent == K * rho
    assert ledger.get_project("heart-2026").totals.rho == K * rho
    assert ledger.verify().ok


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
