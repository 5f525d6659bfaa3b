"""Many processes x threads spending against one ledger, shared by the SQLite and PostgreSQL tests.

``PROCESSES`` forked processes each open their own store (as separate API hosts would; they share
nothing but the database) and run ``THREADS`` threads of ``ATTEMPTS_PER_THREAD`` spends, all released
at once. Exactly ``K`` fit, and every other attempt must be refused as ``budget_exceeded``.
``test_ledger_concurrency`` and ``test_postgres_concurrency`` choose the store; ``test_ledger_sqlite_store``
and ``test_postgres_store`` share the fork-safety check.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

from budget_ledger import Charge, Ledger, LedgerError, LedgerStore
from tests.budget_ledger.ledger_helpers import pure_spec, zcdp_spec

PROCESSES = 16
THREADS = 8
ATTEMPTS_PER_THREAD = 2
K = 100
COST = Fraction(1, 10)

OpenStore = Callable[[], LedgerStore]
"""Opens a new store on the shared database (called in each worker process)."""


def _worker(
    open_store: OpenStore,
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
        store = open_store()
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


def _hammer(
    open_store: OpenStore, key: bytes, project: str, charge: Charge, registers: tuple[str, ...]
) -> Counter[str]:
    context = multiprocessing.get_context("fork")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(
            target=_worker, args=(open_store, key, project, charge, registers, index, start, results)
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


def check_exactly_k_fit_the_project_budget(ledger: Ledger, open_store: OpenStore, key: bytes) -> None:
    """A project affording K spends of ``COST``: exactly K of the concurrent attempts commit."""
    ledger.create_project(pure_spec(epsilon=K * COST), "admin")
    outcomes = _hammer(open_store, key, "diabetes-2026", Charge(epsilon=COST), ("cpr",))
    attempts = PROCESSES * THREADS * ATTEMPTS_PER_THREAD
    assert outcomes == Counter({"committed": K, "budget_exceeded": attempts - K})
    project = ledger.get_project("diabetes-2026")
    assert project.totals.spends == K and project.totals.epsilon == K * COST == project.limits.epsilon
    with ledger.store.snapshot() as tx:
        assert len(list(tx.list_spends())) == K
    assert ledger.verify().ok


def check_exactly_k_fit_under_a_shared_register_cap(
    ledger: Ledger, open_store: OpenStore, key: bytes
) -> None:
    """A register cap another project has already used: exactly K of the concurrent attempts commit."""
    rho = Fraction(1, 1000)
    ledger.create_project(zcdp_spec(epsilon=50), "admin")
    ledger.create_project(zcdp_spec("other", epsilon=50), "admin")
    ledger.reserve_and_commit("other", ["lpr"], Charge(rho=10 * rho), "o", "o", actor="other-analyst")
    ledger.set_register_cap("lpr", rho=(K + 10) * rho, delta=0, reason="test cap", actor="admin")
    outcomes = _hammer(open_store, key, "heart-2026", Charge(rho=rho), ("cpr", "lpr"))
    attempts = PROCESSES * THREADS * ATTEMPTS_PER_THREAD
    assert outcomes == Counter({"committed": K, "budget_exceeded": attempts - K})
    caps = {c.register: c for c in ledger.register_caps()}
    assert caps["lpr"].rho_spent == (K + 10) * rho and caps["lpr"].rho_remaining == 0
    assert caps["cpr"].rho_spent == K * rho
    assert ledger.get_project("heart-2026").totals.rho == K * rho
    assert ledger.verify().ok


def _spend_in_child(store: LedgerStore, key: bytes, queue: multiprocessing.Queue) -> None:
    ledger = Ledger(store, key)
    result = ledger.reserve_and_commit(
        "diabetes-2026", ["cpr"], Charge(epsilon=Fraction(1, 4)), "c", "q", actor="a"
    )
    queue.put(result.status)


def check_a_forked_child_spends_through_the_parent_store(ledger: Ledger, key: bytes) -> None:
    """A forked child spends through its parent's store object; afterwards the parent's still works."""
    ledger.create_project(pure_spec(), "admin")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_spend_in_child, args=(ledger.store, key, queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0 and queue.get(timeout=5) == "committed"
    # The parent's connections were not touched by the child and still work.
    assert ledger.budget("diabetes-2026").epsilon_spent == Fraction(1, 4)
    assert ledger.verify().ok
