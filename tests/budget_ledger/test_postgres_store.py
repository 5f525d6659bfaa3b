"""The PostgreSQL store on a real server: durability refusal, schema, locking, connections, the factory."""

from __future__ import annotations

import multiprocessing
import threading
import time
from fractions import Fraction
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from budget_ledger import Charge, InvalidRequest, Ledger, LedgerUnavailable, SqliteStore, UnsafeStore
from budget_ledger.postgres_store import SCHEMA_VERSION, WRITE_LOCK_SQL, PostgresLedgerStore, describe_url
from budget_ledger.store import open_store
from tests.budget_ledger.ledger_concurrency_driver import check_a_forked_child_spends_through_the_parent_store
from tests.budget_ledger.ledger_helpers import pure_spec
from tests.budget_ledger.pg_ledger import postgres_store_fixture  # noqa: F401
from tests.helpers.pg_server import (  # noqa: F401
    TemporaryPostgres,
    hang_up,
    hang_up_new_connections,
    pg_url_fixture,
    postgres_server_fixture,
)

TENTH = Charge(epsilon=Fraction(1, 10))


def _schema(url: str) -> str:
    return str(conninfo_to_dict(url)["options"]).split("search_path=")[1]


# --- durability refusal ---------------------------------------------------------------------------


def test_default_server_settings_are_accepted(store: PostgresLedgerStore) -> None:
    with store.snapshot() as tx:
        row = tx._con.execute("SHOW fsync").fetchone()
        assert row is not None and row["fsync"] == "on"
        row = tx._con.execute("SHOW synchronous_commit").fetchone()
        assert row is not None and row["synchronous_commit"] == "on"
        row = tx._con.execute("SHOW lock_timeout").fetchone()
        assert row is not None and row["lock_timeout"] == "30s"


def test_database_with_synchronous_commit_off_is_refused(postgres_server: TemporaryPostgres) -> None:
    name = postgres_server.create_database("weak")
    postgres_server.sql(f"ALTER DATABASE {name} SET synchronous_commit = off")
    with pytest.raises(UnsafeStore, match="synchronous_commit=off") as info:
        PostgresLedgerStore(postgres_server.url(name))
    assert info.value.code == "unsafe_store"
    assert postgres_server.password not in info.value.message


def test_url_options_lowering_synchronous_commit_are_refused(postgres_server: TemporaryPostgres) -> None:
    url = postgres_server.url(postgres_server.create_database(), options="-c synchronous_commit=off")
    with pytest.raises(UnsafeStore, match="synchronous_commit=off"):
        open_store(url)


def test_server_with_fsync_off_is_refused(postgres_server: TemporaryPostgres, pg_url: str) -> None:
    postgres_server.sql("ALTER SYSTEM SET fsync = off")
    postgres_server.sql("SELECT pg_reload_conf()")
    try:
        postgres_server.wait_for_setting("fsync", "off")
        with pytest.raises(UnsafeStore, match="fsync=off"):
            PostgresLedgerStore(pg_url)
    finally:
        postgres_server.sql("ALTER SYSTEM RESET fsync")
        postgres_server.sql("SELECT pg_reload_conf()")
        postgres_server.wait_for_setting("fsync", "on")
    PostgresLedgerStore(pg_url).close()


def test_weakened_setting_is_caught_on_the_next_new_connection(
    postgres_server: TemporaryPostgres, audit_key: bytes
) -> None:
    name = postgres_server.create_database("weakened")
    url = postgres_server.url(name, application_name=name)
    store = PostgresLedgerStore(url)
    ledger = Ledger(store, audit_key)
    ledger.create_project(pure_spec(), "admin")
    postgres_server.sql(f"ALTER DATABASE {name} SET synchronous_commit = off")
    assert postgres_server.terminate_sessions(url) >= 1  # the pool must open a new connection
    with pytest.raises(UnsafeStore, match="synchronous_commit=off"):
        ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "h", "q", actor="a")
    store.close()


# --- schema ---------------------------------------------------------------------------------------


def test_schema_is_created_once_and_reopening_is_idempotent(
    postgres_server: TemporaryPostgres, pg_url: str
) -> None:
    for _ in range(3):
        PostgresLedgerStore(pg_url).close()
    rows = postgres_server.sql("SELECT version FROM ledger_schema_migrations", pg_url)
    assert rows == [(SCHEMA_VERSION,)]


def test_processes_starting_together_create_the_schema_once(
    postgres_server: TemporaryPostgres, pg_url: str
) -> None:
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_open_and_close, args=(pg_url,)) for _ in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert postgres_server.sql("SELECT count(*) FROM ledger_schema_migrations", pg_url) == [(1,)]


def _open_and_close(url: str) -> None:
    PostgresLedgerStore(url).close()


def test_newer_schema_version_is_refused(postgres_server: TemporaryPostgres, pg_url: str) -> None:
    PostgresLedgerStore(pg_url).close()
    postgres_server.sql(
        "INSERT INTO ledger_schema_migrations (version, description) VALUES (999, 'x')", pg_url
    )
    with pytest.raises(UnsafeStore, match="schema version 999"):
        PostgresLedgerStore(pg_url)


def test_amounts_are_stored_as_exact_fraction_text(
    ledger: Ledger, postgres_server: TemporaryPostgres, pg_url: str
) -> None:
    ledger.create_project(pure_spec(), "admin")
    ledger.reserve_and_commit("diabetes-2026", ["cpr"], Charge(epsilon=Fraction(1, 3)), "h", "q", actor="a")
    db = pg_url
    assert postgres_server.sql("SELECT epsilon FROM spends", db) == [("1/3",)]
    assert postgres_server.sql("SELECT epsilon_spent, rho_spent FROM projects", db) == [("1/3", "1/18")]
    with pytest.raises(psycopg.errors.CheckViolation):
        postgres_server.sql("UPDATE projects SET epsilon = '0.5'", db)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE audit SET actor = 'x' WHERE seq = 1", id="update_audit"),
        pytest.param("DELETE FROM audit WHERE seq = 1", id="delete_audit"),
        pytest.param("TRUNCATE audit CASCADE", id="truncate_audit"),
        pytest.param("UPDATE spends SET epsilon = '1/1000'", id="update_spend_amount"),
        pytest.param("UPDATE spends SET state = 'pending'", id="reopen_released_spend"),
        pytest.param("DELETE FROM spends", id="delete_spends"),
        pytest.param("UPDATE releases SET release_json = '{}'", id="update_release"),
        pytest.param("DELETE FROM releases", id="delete_releases"),
    ],
)
def test_triggers_keep_tables_append_only(ledger: Ledger, pg_url: str, statement: str) -> None:
    ledger.create_project(pure_spec(), "admin")
    result = ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "h", "q", actor="a")
    ledger.store_release(result.spend_id, "r_1", "{}")
    with psycopg.connect(pg_url, autocommit=True) as con, pytest.raises(psycopg.errors.IntegrityError):
        con.execute(statement.encode())
    assert ledger.verify().ok


# --- locking, timeouts and connections ------------------------------------------------------------


def test_a_held_ledger_lock_times_out_as_ledger_busy(pg_url: str, audit_key: bytes) -> None:
    store = PostgresLedgerStore(pg_url, lock_timeout=0.2)
    ledger = Ledger(store, audit_key)
    with psycopg.connect(pg_url) as blocker:
        blocker.execute(f"SET search_path = {_schema(pg_url)}")
        blocker.execute(WRITE_LOCK_SQL)  # inside the blocker's open transaction: held until rollback
        started = time.monotonic()
        with pytest.raises(LedgerUnavailable) as info:
            ledger.create_project(pure_spec(), "admin")
        assert info.value.status == 503 and time.monotonic() - started < 5
        assert ledger.list_projects() == []  # snapshots never wait for the lock
        blocker.rollback()
    ledger.create_project(pure_spec(), "admin")
    store.close()


def test_a_hung_lock_holder_is_cut_off_by_the_server(pg_url: str, audit_key: bytes) -> None:
    hung = PostgresLedgerStore(pg_url, idle_in_transaction_timeout=0.5)
    other = Ledger(PostgresLedgerStore(pg_url, lock_timeout=10), audit_key)
    with pytest.raises(LedgerUnavailable), hung.transaction() as tx:
        tx.list_projects()
        time.sleep(1.5)  # holds the lock, idle: the server ends the session after 0.5 s
        tx.list_projects()
    other.create_project(pure_spec(), "admin")
    assert [p.id for p in Ledger(hung, audit_key).list_projects()] == ["diabetes-2026"]
    hung.close()
    other.store.close()


def test_stale_pooled_connections_are_replaced(
    ledger: Ledger, postgres_server: TemporaryPostgres, pg_url: str
) -> None:
    ledger.create_project(pure_spec(), "admin")
    assert postgres_server.terminate_sessions(pg_url) >= 1
    assert ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "h", "q", actor="a").charged


@pytest.mark.parametrize("how", ["terminated", "hung up"])
def test_every_lost_idle_connection_is_replaced_not_only_the_first(
    pg_url: str, postgres_server: TemporaryPostgres, audit_key: bytes, how: str
) -> None:
    store = PostgresLedgerStore(pg_url, pool_size=4)
    ledger = Ledger(store, audit_key)
    ledger.create_project(pure_spec(), "admin")
    pool = store._current_pool()
    held = [pool.acquire() for _ in range(3)]
    for con in held:
        pool.release(con)
    if how == "terminated":
        assert postgres_server.terminate_sessions(pg_url) >= 3
    else:
        for con in held:
            hang_up(con)
    assert ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "h", "q", actor="a").charged
    assert ledger.budget("diabetes-2026").spends == 1
    store.close()


def test_a_connection_dropped_while_it_is_set_up_is_a_retryable_error(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server goes away between accepting a connection and the durability check (a crash)."""
    hang_up_new_connections(monkeypatch)
    with pytest.raises(LedgerUnavailable, match="dropped a new connection.*nothing was written, retry"):
        PostgresLedgerStore(pg_url)
    monkeypatch.undo()
    PostgresLedgerStore(pg_url).close()


def test_snapshot_refuses_writes(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    project = ledger.get_project("diabetes-2026")
    with pytest.raises(Exception, match="read-only"), ledger.store.snapshot() as tx:
        tx.update_project(project)


def test_threads_share_a_bounded_pool(pg_url: str, audit_key: bytes) -> None:
    store = PostgresLedgerStore(pg_url, pool_size=2)
    ledger = Ledger(store, audit_key)
    ledger.create_project(pure_spec(epsilon=10), "admin")
    errors: list[BaseException] = []

    def spend(index: int) -> None:
        try:
            ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, f"h{index}", "q", actor="a")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and ledger.budget("diabetes-2026").spends == 12
    assert describe_url(pg_url).startswith("sundstat@127.0.0.1:") and "@127.0.0.1" in store.where
    store.close()


def test_a_forked_child_opens_its_own_connections(ledger: Ledger, audit_key: bytes) -> None:
    check_a_forked_child_spends_through_the_parent_store(ledger, audit_key)


def test_unreachable_server_is_ledger_busy_without_the_password(postgres_server: TemporaryPostgres) -> None:
    url = postgres_server.url("ledger_missing_db", password="not-the-password")
    with pytest.raises(
        LedgerUnavailable, match="Cannot connect to the PostgreSQL ledger at sundstat@127.0.0.1"
    ) as info:
        PostgresLedgerStore(url)
    assert "not-the-password" not in info.value.message


# --- the factory ----------------------------------------------------------------------------------


def test_open_store_opens_postgres_for_a_postgres_url(pg_url: str) -> None:
    for url in (pg_url, pg_url.replace("postgresql://", "postgres://", 1)):
        opened = open_store(url)
        assert isinstance(opened, PostgresLedgerStore)
        opened.close()


def test_open_store_keeps_sqlite_the_default_and_refuses_other_urls(tmp_path: Path) -> None:
    for path in (tmp_path / "a.sqlite", str(tmp_path / "b.sqlite")):
        opened = open_store(path)
        assert isinstance(opened, SqliteStore)
        opened.close()
    with pytest.raises(InvalidRequest, match="Unknown ledger URL scheme 'mysql://'"):
        open_store("mysql://user@host/db")


def test_open_store_without_create_opens_only_an_existing_ledger(tmp_path: Path, pg_url: str) -> None:
    missing = tmp_path / "missing.sqlite"
    with pytest.raises(InvalidRequest, match="There is no ledger database"):
        open_store(missing, create=False)
    assert not missing.exists()
    with pytest.raises(InvalidRequest, match="There is no ledger in sundstat@127.0.0.1"):
        open_store(pg_url, create=False)
    open_store(pg_url).close()  # creates the schema
    opened = open_store(pg_url, create=False)
    assert isinstance(opened, PostgresLedgerStore)
    opened.close()
