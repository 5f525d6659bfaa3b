"""The start-up check on a PostgreSQL ledger: the chain from the checkpoint, and only old pending spends
are reconciled (other hosts may still be running theirs)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from budget_ledger import ChainBroken, Charge, Ledger
from budget_ledger.postgres_store import PostgresLedgerStore
from budget_ledger.startup import start_ledger
from tests.budget_ledger.ledger_helpers import pure_spec
from tests.budget_ledger.pg_ledger import postgres_store_fixture  # noqa: F401
from tests.helpers.pg_server import TemporaryPostgres, pg_url_fixture, postgres_server_fixture  # noqa: F401

TENTH = Charge(epsilon=Fraction(1, 10))


def _start(pg_url: str, key: bytes, tmp_path: Path) -> tuple[Ledger, object]:
    return start_ledger(
        lambda: PostgresLedgerStore(pg_url),
        key,
        tmp_path / "ledger.checkpoint",
        where="the test database",
        reconcile_older_than=300,
    )


def test_only_pending_spends_older_than_the_timeout_are_reconciled(
    pg_url: str, audit_key: bytes, tmp_path: Path, postgres_server: TemporaryPostgres
) -> None:
    ledger = Ledger(PostgresLedgerStore(pg_url), audit_key)  # the real clock, as start_ledger's
    ledger.create_project(pure_spec(epsilon=10), "admin")
    old = ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "old", "old", actor="a")
    fresh = ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "fresh", "fresh", actor="a")
    # The old spend was committed ten minutes ago, as if its host had crashed then.
    ledger.close()
    with postgres_server.admin_connect(pg_url) as con:
        con.execute("SET session_replication_role = replica")
        con.execute(
            "UPDATE spends SET created_unix = created_unix - 600 WHERE spend_id = %s", (old.spend_id,)
        )
    started, report = _start(pg_url, audit_key, tmp_path)
    assert report.reconciled == (old.spend_id,)  # type: ignore[attr-defined]
    assert started.get_spend(fresh.spend_id).state == "pending"
    assert started.get_spend(old.spend_id).failure_code == "interrupted"
    started.close()


def test_an_altered_entry_after_the_checkpoint_is_refused(
    ledger: Ledger, pg_url: str, audit_key: bytes, tmp_path: Path, postgres_server: TemporaryPostgres
) -> None:
    ledger.create_project(pure_spec(epsilon=10), "admin")
    _start(pg_url, audit_key, tmp_path)[0].close()
    ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "h", "q", actor="a")
    ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "h2", "q2", actor="a")
    with postgres_server.admin_connect(pg_url) as con:
        con.execute("SET session_replication_role = replica")
        con.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(ChainBroken, match="Entry 2"):
        _start(pg_url, audit_key, tmp_path)
