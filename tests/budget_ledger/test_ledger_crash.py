"""Crash safety: SIGKILL a child running the release flow at each fault point, then check the ledger.

The child runs reserve_and_commit -> "execute" -> OpenDP discrete Laplace noise -> store_release ->
write the answer to a file. The test driver chooses a fault point (an argument, never a product code
path): the child reports reaching it over a pipe and waits, and the parent kills it with SIGKILL.
The "before_commit" point lives in a test-only store subclass, inside the open write transaction.
The driver, shared with ``test_postgres_crash``, is ``ledger_crash_driver``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from budget_ledger import Ledger, SqliteStore
from tests.budget_ledger.ledger_crash_driver import PauseBeforeCommit, check_sigkill_at_every_fault_point

ROUNDS = 42  # x 6 fault kinds = 252 killed or completed children
KILL_WINDOW = 0.08  # s: the flow takes ~20-60 ms, so a random kill lands anywhere in it


class _FaultStore(PauseBeforeCommit, SqliteStore):
    """Test-only: pause inside the write transaction, just before COMMIT, when armed."""


@pytest.mark.slow
def test_sigkill_at_every_fault_point_never_leaks_an_uncharged_answer(
    ledger: Ledger, store: SqliteStore, db_path: Path, audit_key: bytes, tmp_path: Path
) -> None:
    check_sigkill_at_every_fault_point(
        ledger, store, _FaultStore, str(db_path), audit_key, tmp_path, rounds=ROUNDS, kill_window=KILL_WINDOW
    )
