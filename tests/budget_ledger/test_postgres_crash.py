"""Crash safety on PostgreSQL: SIGKILL the client at each fault point, and crash the server itself.

The client test mirrors ``test_ledger_crash``: a child runs reserve_and_commit -> "execute" -> OpenDP
discrete Laplace noise -> store_release -> write the answer to a file, and the parent SIGKILLs it at
the fault point the test chose ("before_commit" is inside the open write transaction, holding the
ledger lock). The server test crashes PostgreSQL (immediate shutdown) while a client spends, then
checks that every spend the client saw committed survived the recovery.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Iterator
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import opendp.prelude as dp
import psycopg
import pytest
from ledger_helpers import pure_spec
from pg_server import (  # noqa: F401
    TemporaryPostgres,
    pg_url_fixture,
    postgres_server_fixture,
    require_bindir,
)

from budget_ledger import Charge, Ledger, LedgerError
from budget_ledger.postgres_store import PostgresLedgerStore

FAULTS = ("before_commit", "after_commit", "after_noise", "after_store", "none", "random")
ROUNDS = 17  # x 6 fault kinds = 102 killed or completed children
VECTOR = [120, 45, 3, 0, 78]
PROJECT = "crash-test"


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresLedgerStore]:
    """Overrides the conftest's SQLite store, so the conftest's ``ledger`` runs on PostgreSQL."""
    opened = PostgresLedgerStore(pg_url)
    yield opened
    opened.close()


class _FaultStore(PostgresLedgerStore):
    """Test-only: pause inside the write transaction, just before COMMIT, when armed."""

    pause_before_commit: Connection | None = None

    def _commit(self, con: psycopg.Connection[Any]) -> None:
        if self.pause_before_commit is not None:
            _pause(self.pause_before_commit, "before_commit")
        super()._commit(con)


def _pause(conn: Connection, point: str) -> None:
    conn.send(point)
    time.sleep(60)  # the parent SIGKILLs us here
    os._exit(3)


def _child(url: str, key: bytes, fault: str, query: str, answer_path: str, conn: Connection) -> None:
    dp.enable_features("contrib")
    laplace = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l1_distance(T=dp.i64), scale=2.0
    )
    charge = Charge.of(epsilon=laplace.map(1))
    store = _FaultStore(url)
    ledger = Ledger(store, key)
    if fault == "before_commit":
        store.pause_before_commit = conn
    result = ledger.reserve_and_commit(PROJECT, ["cpr"], charge, query, query, f"key-{query}", actor="child")
    if result.status != "committed":
        conn.send(f"unexpected status {result.status}")
        os._exit(4)
    if fault == "after_commit":
        _pause(conn, fault)
    noisy = laplace(list(VECTOR))
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


def _run_child(url: str, key: bytes, fault: str, query: str, answer: Path, rng: random.Random) -> None:
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=_child, args=(url, key, fault, query, str(answer), child_end))
    process.start()
    assert process.pid is not None
    if fault == "random":
        time.sleep(rng.uniform(0.0, 0.12))  # the flow (connect included) takes ~30-100 ms: kill anywhere
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


@pytest.mark.slow
def test_sigkill_at_every_fault_point_never_leaks_an_uncharged_answer(
    ledger: Ledger, store: PostgresLedgerStore, pg_url: str, audit_key: bytes, tmp_path: Path
) -> None:
    ledger.create_project(pure_spec(PROJECT, epsilon=10_000), "admin")
    retrier = Ledger(store, audit_key, pending_timeout=0)  # treats any unfinished spend as abandoned
    rng = random.Random(20260301)
    cost = Fraction(1, 2)
    previous_spent = Fraction(0)

    for round_index in range(ROUNDS):
        for fault in FAULTS:
            query = f"q{round_index}-{fault}"
            answer = tmp_path / f"{query}.json"
            _run_child(pg_url, audit_key, fault, query, answer, rng)

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
    assert final.ok and final.entries > 4 * ROUNDS * len(FAULTS) // 2


def _spend_until_the_server_dies(url: str, key: bytes, acknowledged: str) -> None:
    ledger = Ledger(PostgresLedgerStore(url, lock_timeout=5, connect_timeout=2), key)
    fd = os.open(acknowledged, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for i in range(100_000):
        try:
            result = ledger.reserve_and_commit(
                PROJECT, ["cpr"], Charge(epsilon=Fraction(1, 100)), f"s{i}", "q", actor="a"
            )
        except LedgerError:
            os._exit(0)  # the server is gone: stop spending
        os.write(fd, f"{result.spend_id}\n".encode())  # "returned to the analyst" only after the commit
    os._exit(5)


@pytest.mark.slow
def test_server_crash_keeps_every_acknowledged_spend(tmp_path: Path, audit_key: bytes) -> None:
    with TemporaryPostgres(require_bindir()) as server:
        url = server.url(server.create_database())
        store = PostgresLedgerStore(url)
        Ledger(store, audit_key).create_project(pure_spec(PROJECT, epsilon=10_000), "admin")
        store.close()
        acknowledged = tmp_path / "acknowledged.txt"
        for crash in range(2):
            context = multiprocessing.get_context("fork")
            child = context.Process(
                target=_spend_until_the_server_dies, args=(url, audit_key, str(acknowledged))
            )
            child.start()
            time.sleep(0.4 + 0.3 * crash)
            server.crash_and_restart()
            child.join(60)
            assert child.exitcode == 0

        store = PostgresLedgerStore(url)
        ledger = Ledger(store, audit_key)
        with store.snapshot() as tx:
            stored = {spend.spend_id for spend in tx.list_spends()}
        seen = set(acknowledged.read_text().split())
        assert len(seen) > 0 and seen <= stored  # nothing the client saw committed was lost
        assert len(stored - seen) <= 2  # at most one commit per crash was durable but never seen
        assert ledger.get_project(PROJECT).totals.spends == len(stored)
        assert ledger.verify().ok
        store.close()
