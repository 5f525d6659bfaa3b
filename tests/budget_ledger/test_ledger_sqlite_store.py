"""The SQLite store: durability checks that can fail, locking, schema, fork safety."""

from __future__ import annotations

import sqlite3
import threading
from fractions import Fraction
from pathlib import Path

import pytest

from budget_ledger import Charge, Ledger, LedgerUnavailable, SqliteStore, UnsafeStore
from tests.budget_ledger.ledger_concurrency_driver import check_a_forked_child_spends_through_the_parent_store
from tests.budget_ledger.ledger_helpers import pure_spec


class _WeakJournalStore(SqliteStore):
    """A store whose configuration asks for rollback-journal mode instead of WAL."""

    def _configure(self, con: sqlite3.Connection) -> None:
        super()._configure(con)
        con.execute("PRAGMA journal_mode = DELETE")


class _WeakSyncStore(SqliteStore):
    """A store whose configuration lowers synchronous to NORMAL."""

    def _configure(self, con: sqlite3.Connection) -> None:
        super()._configure(con)
        con.execute("PRAGMA synchronous = NORMAL")


def test_default_store_really_is_wal_and_full(store: SqliteStore, db_path: Path) -> None:
    with store.snapshot() as tx:
        con = tx._con
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert con.execute("PRAGMA busy_timeout").fetchone()[0] == 30000


@pytest.mark.parametrize(
    ("store_class", "shown"),
    [
        pytest.param(_WeakJournalStore, "journal_mode=delete", id="journal_delete"),
        pytest.param(_WeakSyncStore, "synchronous=1", id="synchronous_normal"),
    ],
)
def test_weaker_pragmas_refuse_to_start(tmp_path: Path, store_class: type[SqliteStore], shown: str) -> None:
    with pytest.raises(UnsafeStore, match=shown) as info:
        store_class(tmp_path / "weak.sqlite")
    assert info.value.code == "unsafe_store"


def test_in_memory_database_cannot_be_a_ledger() -> None:
    with pytest.raises(UnsafeStore, match="journal_mode=memory"):
        SqliteStore(":memory:")


def test_other_schema_version_is_refused(db_path: Path) -> None:
    SqliteStore(db_path).close()
    con = sqlite3.connect(db_path, isolation_level=None)
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(UnsafeStore, match="schema version 999"):
        SqliteStore(db_path)


def test_amounts_are_stored_as_exact_fraction_text(ledger: Ledger, db_path: Path) -> None:
    ledger.create_project(pure_spec(), "admin")
    ledger.reserve_and_commit("diabetes-2026", ["cpr"], Charge(epsilon=Fraction(1, 3)), "h", "q", actor="a")
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT epsilon FROM spends").fetchone()[0] == "1/3"
    assert con.execute("SELECT epsilon_spent, rho_spent FROM projects").fetchone() == ("1/3", "1/18")


def test_a_held_write_lock_times_out_as_ledger_busy(db_path: Path, audit_key: bytes) -> None:
    ledger = Ledger(SqliteStore(db_path, busy_timeout=0.2), audit_key)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(LedgerUnavailable) as info:
            ledger.create_project(pure_spec(), "admin")
        assert info.value.status == 503
    finally:
        blocker.execute("ROLLBACK")
    ledger.create_project(pure_spec(), "admin")
    assert ledger.get_project("diabetes-2026").title


def test_writers_queue_on_the_lock_file_and_time_out_as_ledger_busy(
    store: SqliteStore, db_path: Path
) -> None:
    impatient = SqliteStore(db_path, busy_timeout=0.2)
    with store.transaction(), pytest.raises(LedgerUnavailable), impatient.transaction():
        pass
    with impatient.transaction() as tx:
        assert tx.list_projects() == []
    impatient.close()


def test_each_thread_gets_its_own_connection(store: SqliteStore) -> None:
    seen: list[int] = []

    def grab() -> None:
        seen.append(id(store._connection()))

    threads = [threading.Thread(target=grab) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen + [id(store._connection())])) == 4


def test_a_forked_child_reopens_instead_of_sharing_the_parent_connection(
    ledger: Ledger, audit_key: bytes
) -> None:
    check_a_forked_child_spends_through_the_parent_store(ledger, audit_key)
