"""Crash safety on PostgreSQL: SIGKILL the client at each fault point, and crash the server itself.

The client test runs ``test_ledger_crash``'s driver (``ledger_crash_driver``) on PostgreSQL: a child
runs reserve_and_commit -> "execute" -> OpenDP discrete Laplace noise -> store_release -> write the
answer to a file, and the parent SIGKILLs it at the fault point the test chose ("before_commit" is
inside the open write transaction, holding the ledger lock). The server test crashes PostgreSQL
(immediate shutdown) while a client spends, then checks that every spend the client saw committed
survived the recovery.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from fractions import Fraction
from pathlib import Path

import pytest

from budget_ledger import Charge, Ledger, LedgerError
from budget_ledger.postgres_store import PostgresLedgerStore
from tests.budget_ledger.ledger_crash_driver import (
    PROJECT,
    PauseBeforeCommit,
    check_sigkill_at_every_fault_point,
)
from tests.budget_ledger.ledger_helpers import pure_spec
from tests.budget_ledger.pg_ledger import postgres_store_fixture  # noqa: F401
from tests.helpers.pg_server import (  # noqa: F401
    TemporaryPostgres,
    pg_url_fixture,
    postgres_server_fixture,
    require_bindir,
)

ROUNDS = 17  # x 6 fault kinds = 102 killed or completed children
KILL_WINDOW = 0.12  # s: the flow (connect included) takes ~30-100 ms, so a random kill lands anywhere


class _FaultStore(PauseBeforeCommit, PostgresLedgerStore):
    """Test-only: pause inside the write transaction (holding the ledger lock), just before COMMIT."""


@pytest.mark.slow
def test_sigkill_at_every_fault_point_never_leaks_an_uncharged_answer(
    ledger: Ledger, store: PostgresLedgerStore, pg_url: str, audit_key: bytes, tmp_path: Path
) -> None:
    check_sigkill_at_every_fault_point(
        ledger, store, _FaultStore, pg_url, audit_key, tmp_path, rounds=ROUNDS, kill_window=KILL_WINDOW
    )


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


def _acknowledged(path: Path) -> int:
    """How many spends the children have been answered so far."""
    return len(path.read_text().split()) if path.exists() else 0


def _wait_for_acknowledged(path: Path, at_least: int, timeout: float = 60.0) -> None:
    """Poll until ``path`` lists ``at_least`` acknowledged spends (the child's own progress)."""
    deadline = time.monotonic() + timeout
    while _acknowledged(path) < at_least:
        assert time.monotonic() < deadline, (
            f"the child acknowledged fewer than {at_least} spends in {timeout:g} s"
        )
        time.sleep(0.01)


@pytest.mark.slow
def test_server_crash_keeps_every_acknowledged_spend(tmp_path: Path, audit_key: bytes) -> None:
    with TemporaryPostgres(require_bindir()) as server:
        url = server.url(server.create_database())
        store = PostgresLedgerStore(url)
        Ledger(store, audit_key).create_project(pure_spec(PROJECT, epsilon=10_000), "admin")
        store.close()
        acknowledged = tmp_path / "acknowledged.txt"
        for _ in range(2):  # two crashes
            context = multiprocessing.get_context("fork")
            child = context.Process(
                target=_spend_until_the_server_dies, args=(url, audit_key, str(acknowledged))
            )
            before = _acknowledged(acknowledged)
            child.start()
            # Crash mid-stream: once this child has been answered a few times, not after a fixed time.
            _wait_for_acknowledged(acknowledged, at_least=before + 5)
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
