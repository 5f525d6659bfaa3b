"""The SIGKILL crash test of the release flow, shared by the SQLite and PostgreSQL stores.

A child runs reserve_and_commit -> "execute" -> OpenDP discrete Laplace noise -> store_release ->
write the answer to a file. The test driver chooses a fault point (an argument, never a product code
path): the child reports reaching it over a pipe and waits, and the parent kills it with SIGKILL.
The "before_commit" point lives in a test-only store subclass (:class:`PauseBeforeCommit`), inside the
open write transaction (for PostgreSQL: while holding the ledger lock). After every child the parent
checks that spent budget never decreased, that no answer exists without a charge, and that the chain
verifies. ``test_ledger_crash`` and ``test_postgres_crash`` choose the store and the number of rounds.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import opendp.prelude as dp

from budget_ledger import Charge, Ledger, LedgerStore
from tests.budget_ledger.ledger_helpers import pure_spec

FAULTS = ("before_commit", "after_commit", "after_noise", "after_store", "none", "random")
VECTOR = [120, 45, 3, 0, 78]
PROJECT = "crash-test"


class PauseBeforeCommit:
    """Test-only mixin for a store class: pause inside the write transaction, just before COMMIT."""

    pause_before_commit: Connection | None = None

    def _commit(self, con: Any) -> None:
        if self.pause_before_commit is not None:
            _pause(self.pause_before_commit, "before_commit")
        super()._commit(con)  # type: ignore[misc]


FaultStore = Callable[[str], Any]
"""A store class with :class:`PauseBeforeCommit` mixed in, opened on a path or URL."""


def _pause(conn: Connection, point: str) -> None:
    conn.send(point)
    time.sleep(60)  # the parent SIGKILLs us here
    os._exit(3)


def _child(
    fault_store: FaultStore,
    target: str,
    key: bytes,
    fault: str,
    query: str,
    answer_path: str,
    conn: Connection,
) -> None:
    # OpenDP is imported by the parent, so the forked child starts warm.
    dp.enable_features("contrib")
    laplace = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l1_distance(T=dp.i64), scale=2.0
    )
    charge = Charge.of(epsilon=laplace.map(1))
    store = fault_store(target)
    ledger = Ledger(store, key)
    if fault == "before_commit":
        store.pause_before_commit = conn
    result = ledger.reserve_and_commit(PROJECT, ["cpr"], charge, query, query, f"key-{query}", actor="child")
    if result.status != "committed":
        conn.send(f"unexpected status {result.status}")
        os._exit(4)
    if fault == "after_commit":
        _pause(conn, fault)
    exact = list(VECTOR)  # "execute": the exact aggregate
    noisy = laplace(exact)
    if fault == "after_noise":
        _pause(conn, fault)
    release_json = json.dumps({"spend_id": result.spend_id, "values": noisy})
    ledger.store_release(result.spend_id, f"r_{query}", release_json)
    if fault == "after_store":
        _pause(conn, fault)
    temporary = answer_path + ".tmp"
    with open(temporary, "w") as handle:
        handle.write(release_json)
    os.replace(temporary, answer_path)  # the answer is "returned" only once it is complete
    store.close()
    conn.send("done")


def _run_child(
    fault_store: FaultStore,
    target: str,
    key: bytes,
    fault: str,
    query: str,
    answer: Path,
    rng: random.Random,
    kill_window: float,
) -> None:
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    process = context.Process(
        target=_child, args=(fault_store, target, key, fault, query, str(answer), child_end)
    )
    process.start()
    assert process.pid is not None
    if fault == "random":
        time.sleep(rng.uniform(0.0, kill_window))  # kill anywhere in the flow
        os.kill(process.pid, signal.SIGKILL)
    else:
        assert parent_end.poll(30), f"child never reached {fault}"
        message = parent_end.recv()
        assert message == ("done" if fault == "none" else fault)
        if fault != "none":
            os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    assert process.exitcode in (0, -signal.SIGKILL)
    parent_end.close()


def check_sigkill_at_every_fault_point(
    ledger: Ledger,
    store: LedgerStore,
    fault_store: FaultStore,
    target: str,
    audit_key: bytes,
    tmp_path: Path,
    *,
    rounds: int,
    kill_window: float,
) -> None:
    """Run ``rounds`` x ``len(FAULTS)`` children on ``target`` and check the ledger after each.

    ``kill_window`` (s) bounds the random kill: about the time the whole flow takes on this store.
    """
    ledger.create_project(pure_spec(PROJECT, epsilon=10_000), "admin")
    # Retries come from a ledger that treats any unfinished spend as abandoned at once.
    retrier = Ledger(store, audit_key, pending_timeout=0)
    rng = random.Random(20260301)
    cost = Fraction(1, 2)
    previous_spent = Fraction(0)

    for round_index in range(rounds):
        for fault in FAULTS:
            query = f"q{round_index}-{fault}"
            answer = tmp_path / f"{query}.json"
            _run_child(fault_store, target, audit_key, fault, query, answer, rng, kill_window)

            with ledger.store.snapshot() as tx:
                spends = [s for s in tx.list_spends() if s.query_hash == query]
                release = tx.find_latest_release(PROJECT, query)
            spent = ledger.get_project(PROJECT).totals.epsilon
            assert spent >= previous_spent, "spent budget decreased"
            committed = len(spends) == 1
            assert len(spends) <= 1
            assert spent == previous_spent + (cost if committed else 0)
            if fault == "before_commit":
                assert not committed
            elif fault != "random":
                assert committed
            if answer.exists():
                # An answer was returned: it must be charged and identical to the stored release.
                assert committed and release is not None and spends[0].state == "released"
                assert answer.read_text() == release.release_json
                assert json.loads(release.release_json)["spend_id"] == spends[0].spend_id
            else:
                assert fault != "none"
            report = ledger.verify()
            assert report.ok, report.reason

            retry = retrier.reserve_and_commit(
                PROJECT, ["cpr"], Charge(epsilon=cost), query, query, f"key-{query}", actor="retry"
            )
            if not committed:
                assert retry.status == "committed"  # nothing was charged before, so a fresh run is honest
                retrier.mark_failed(retry.spend_id, "test_cleanup")
                spent += cost
            elif release is not None:
                assert retry.status == "replayed" and retry.release_json == release.release_json
            else:
                assert retry.status == "failed" and retry.failure_code == "abandoned"
            previous_spent = spent

    assert ledger.get_project(PROJECT).totals.epsilon == previous_spent
    final = ledger.verify()
    assert final.ok and final.entries > 4 * rounds * len(FAULTS) // 2
