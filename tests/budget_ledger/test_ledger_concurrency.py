"""Many processes x threads spending against one budget: exactly K succeed, nothing else happens."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from ledger_helpers import pure_spec, zcdp_spec

from budget_ledger import Charge, Ledger, LedgerError, SqliteStore

PROCESSES = 16
THREADS = 8
ATTEMPTS_PER_THREAD = 2
K = 100
COST = Fraction(1, 10)


def _worker(
    db_path: str,
    key: bytes,
    project: str,
    charge: Charge,
    registers: tuple[str, ...],
    process_index: int,
    start: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue,
) -> None:
    store = SqliteStore(db_path)
    ledger = Ledger(store, key)
    outcomes: list[str] = []
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


def _hammer(
    db_path: Path, key: bytes, project: str, charge: Charge, registers: tuple[str, ...]
) -> Counter[str]:
    context = multiprocessing.get_context("fork")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(
            target=_worker, args=(str(db_path), key, project, charge, registers, index, start, results)
        )
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
    ledger: Ledger, db_path: Path, audit_key: bytes
) -> None:
    ledger.create_project(pure_spec(epsilon=K * COST), "admin")
    outcomes = _hammer(db_path, audit_key, "diabetes-2026", Charge(epsilon=COST), ("cpr",))
    attempts = PROCESSES * THREADS * ATTEMPTS_PER_THREAD
    assert outcomes == Counter({"committed": K, "budget_exceeded": attempts - K})
    project = ledger.get_project("diabetes-2026")
    assert project.totals.spends == K and project.totals.epsilon == K * COST == project.limits.epsilon
    with ledger.store.snapshot() as tx:
        assert len(list(tx.list_spends())) == K
    assert ledger.verify().ok


@pytest.mark.slow
def test_exactly_k_fit_under_a_register_cap_shared_with_another_project(
    ledger: Ledger, db_path: Path, audit_key: bytes
) -> None:
    rho = Fraction(1, 1000)
    ledger.create_project(zcdp_spec(epsilon=50), "admin")
    ledger.create_project(zcdp_spec("other", epsilon=50), "admin")
    ledger.reserve_and_commit("other", ["lpr"], Charge(rho=10 * rho), "o", "o", actor="other-analyst")
    ledger.set_register_cap("lpr", rho=(K + 10) * rho, delta=0, reason="test cap", actor="admin")
    outcomes = _hammer(db_path, audit_key, "heart-2026", Charge(rho=rho), ("cpr", "lpr"))
    attempts = PROCESSES * THREADS * ATTEMPTS_PER_THREAD
    assert outcomes == Counter({"committed": K, "budget_exceeded": attempts - K})
    caps = {c.register: c for c in ledger.register_caps()}
    assert caps["lpr"].rho_spent == (K + 10) * rho and caps["lpr"].rho_remaining == 0
    assert caps["cpr"].rho_spent == K * rho
    assert ledger.get_project("heart-2026").totals.rho == K * rho
    assert ledger.verify().ok
