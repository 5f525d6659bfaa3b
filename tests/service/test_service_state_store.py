"""The service state store: one schema for SQLite and PostgreSQL, migrations, and shared behaviour.

Two store objects on one database stand for two hosts (or two worker processes): what one writes, the
other sees at once; a rate limit counted through both is one limit. Every test runs on a real SQLite
file and on a real PostgreSQL schema (``tests/budget_ledger/pg_server.py``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from pg_server import TemporaryPostgres, pg_url_fixture  # noqa: F401

from budget_ledger.errors import LedgerUnavailable, UnsafeStore
from service.errors import RateLimited
from service.state import SCHEMA_VERSION, StateSchemaError, StateStore, open_state_store
from service.state.migrations import MIGRATIONS, Migration, apply_migrations
from service.state.postgres import PostgresStateStore
from service.state.rate_limits import StoreRateLimiter
from service.state.schema import TOKENS, create_table
from service.state.sqlite import SqliteStateStore
from service.tokens import TokenStore, hash_token

UNVERSIONED = Path(__file__).parent / "legacy_schemas" / "service_state_unversioned.sql"
"""The exact schema of service.sqlite as written before the state had versions (frozen copy)."""

OpenStore = Callable[[], StateStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens another store object on one fresh database (SQLite file or PostgreSQL schema)."""
    opened: list[StateStore] = []
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None

    def open_one() -> StateStore:
        store = open_state_store(url, tmp_path / "service.sqlite")
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def test_one_declaration_renders_both_dialects() -> None:
    for migration in MIGRATIONS:
        for table in migration.tables:
            lite, pg = create_table(table, "sqlite"), create_table(table, "postgresql")
            assert len(lite) == len(pg) == 1 + len(table.indexes)
            for column in table.columns:
                assert f"    {column.name} " in lite[0] and f"    {column.name} " in pg[0]
    rendered = create_table(MIGRATIONS[0].tables[2], "postgresql")[0]
    assert "granted_epsilon DOUBLE PRECISION" in rendered  # never PostgreSQL's 4-byte real


def _columns_sqlite(path: Path) -> dict[str, list[str]]:
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")] for t in sorted(tables)}
    finally:
        con.close()


def test_both_dialects_create_the_same_tables(tmp_path: Path, pg_url: str) -> None:
    SqliteStateStore(tmp_path / "s.sqlite").close()
    lite = _columns_sqlite(tmp_path / "s.sqlite")
    store = PostgresStateStore(pg_url)
    try:
        rows = (
            store.read()
            .execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
            )
            .fetchall()
        )
    finally:
        store.close()
    pg: dict[str, list[str]] = {}
    for row in rows:
        pg.setdefault(row["table_name"], []).append(row["column_name"])
    assert pg == lite
    assert set(lite) == {"meta", "tokens", "applications", "rate_limits", "project_permits"}


def test_an_unversioned_state_dir_is_upgraded_in_place(tmp_path: Path) -> None:
    """A service.sqlite written before versions existed keeps its tokens and applications."""
    path = tmp_path / "service.sqlite"
    old = sqlite3.connect(path)
    old.executescript(UNVERSIONED.read_text())
    old.execute(
        "INSERT INTO tokens VALUES ('tok_old', ?, 'sst_analyst_abcd', 'analyst', 'demo', 'old analyst', "
        "'2026-01-01T00:00:00+00:00', 'system', NULL, NULL)",
        (hash_token("sst_analyst_the-old-secret"),),
    )
    old.execute("INSERT INTO meta VALUES ('bootstrapped_at', '2026-01-01T00:00:00+00:00')")
    old.commit()
    old.close()

    store = SqliteStateStore(path)
    try:
        assert store.upgraded_from == 1
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert store.get_meta("bootstrapped_at") == "2026-01-01T00:00:00+00:00"
        record = TokenStore(store).authenticate("sst_analyst_the-old-secret")
        assert record is not None and record.id == "tok_old" and record.project == "demo"
        StoreRateLimiter(store, 1.0, 1).check("token:tok_old")  # the new table is there
    finally:
        store.close()
    again = SqliteStateStore(path)
    assert again.upgraded_from == SCHEMA_VERSION  # nothing left to apply
    again.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "service.sqlite"
    SqliteStateStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StateSchemaError, match="Upgrade sundstat"):
        SqliteStateStore(path)


def test_a_token_issued_through_one_store_works_and_is_revoked_through_the_other(
    open_store: OpenStore,
) -> None:
    host_a, host_b = TokenStore(open_store()), TokenStore(open_store())
    issued = host_a.issue("analyst", name="ana", project="p1", ttl=dt.timedelta(days=1))
    seen = host_b.authenticate(issued.token)
    assert seen is not None and seen.id == issued.record.id and seen.name == "ana"
    host_b.revoke(issued.record.id)
    assert host_a.authenticate(issued.token) is None
    assert host_b.authenticate(issued.token) is None


def test_a_rate_limit_counted_through_two_stores_is_one_limit(open_store: OpenStore) -> None:
    a = StoreRateLimiter(open_store(), rate=0.001, burst=10)
    b = StoreRateLimiter(open_store(), rate=0.001, burst=10)
    outcomes: list[bool] = []
    for limiter in [a, b] * 6:
        try:
            limiter.check("token:shared")
            outcomes.append(True)
        except RateLimited as exc:
            assert exc.retry_after > 100  # one request per 1000 s refills
            outcomes.append(False)
    assert outcomes == [True] * 10 + [False] * 2
    StoreRateLimiter(open_store(), rate=0.001, burst=10).check("token:other")  # its own bucket


def test_concurrent_requests_are_counted_exactly_once(open_store: OpenStore) -> None:
    """Four threads on two stores take from one bucket of 25 at once: exactly 25 are allowed."""
    limiters = [StoreRateLimiter(open_store(), rate=0.001, burst=25) for _ in range(2)]
    allowed = [0] * 4
    start = threading.Barrier(4)

    def hammer(i: int) -> None:
        start.wait()
        for _ in range(10):
            try:
                limiters[i % 2].check("token:busy")
                allowed[i] += 1
            except RateLimited:
                pass

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 25


def test_the_bucket_refills_at_the_rate(open_store: OpenStore) -> None:
    now = [1_000_000.0]
    limiter = StoreRateLimiter(open_store(), rate=2.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("k")
    with pytest.raises(RateLimited) as refused:
        limiter.check("k")
    assert refused.value.retry_after == pytest.approx(0.5)
    now[0] += 0.5
    limiter.check("k")
    with pytest.raises(RateLimited):
        limiter.check("k")


def test_postgres_hosts_starting_together_apply_each_migration_once(
    postgres_server: TemporaryPostgres,
) -> None:
    url = postgres_server.schema_url()
    stores: list[PostgresStateStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            stores.append(PostgresStateStore(url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(s.upgraded_from for s in stores) == [0, SCHEMA_VERSION, SCHEMA_VERSION]
    for store in stores:
        store.close()


def test_a_postgres_server_that_may_lose_commits_is_refused(postgres_server: TemporaryPostgres) -> None:
    name = postgres_server.create_database("state_weak")
    postgres_server.sql(f"ALTER DATABASE {name} SET synchronous_commit = off")
    with pytest.raises(UnsafeStore, match="synchronous_commit=off"):
        PostgresStateStore(postgres_server.url(name))


def test_a_lost_postgres_session_is_a_retryable_error_and_the_next_call_reconnects(
    postgres_server: TemporaryPostgres,
) -> None:
    url = postgres_server.schema_url()
    store = PostgresStateStore(url)
    try:
        tokens = TokenStore(store)
        issued = tokens.issue("admin", name="a", ttl=dt.timedelta(days=1))
        assert postgres_server.terminate_sessions(url) >= 1  # e.g. a database failover
        with pytest.raises(LedgerUnavailable, match="retry shortly"):
            tokens.authenticate(issued.token)
        assert tokens.authenticate(issued.token) is not None
    finally:
        store.close()


_INSERT_TOKEN = (
    "INSERT INTO tokens (id, hash, prefix, role, project, name, created_at, created_by) "
    "VALUES (?, ?, 'sst_', ?, NULL, 'n', '2026-01-01T00:00:00+00:00', 'test')"
)


def test_a_migration_can_extend_the_token_roles_keeping_every_token(open_store: OpenStore) -> None:
    """How a new token role arrives: the declaration changes and a migration rebuilds the table."""
    store = open_store()
    tokens = TokenStore(store)
    issued = tokens.issue("analyst", name="ana", project="p1", ttl=dt.timedelta(days=1))
    refused = (sqlite3.IntegrityError, psycopg.errors.CheckViolation)
    with pytest.raises(refused), store.write() as conn:
        conn.execute(_INSERT_TOKEN, ("tok_new", "h1", "applicant"))

    role = "NOT NULL CHECK (role IN ('admin', 'analyst', 'applicant'))"
    extended = replace(
        TOKENS,
        columns=tuple(replace(c, constraints=role) if c.name == "role" else c for c in TOKENS.columns),
        checks=("(role = 'analyst') = (project IS NOT NULL)",),
    )
    upgrade = (*MIGRATIONS, Migration(SCHEMA_VERSION + 1, "applicant tokens", rebuilt=(extended,)))
    with store.write() as conn:
        found = apply_migrations(conn.execute, store.dialect, table_exists=lambda _: True, migrations=upgrade)
    assert found == SCHEMA_VERSION and store.get_meta("schema_version") == str(SCHEMA_VERSION + 1)

    kept = tokens.authenticate(issued.token)
    assert kept is not None and kept.id == issued.record.id and kept.project == "p1"
    with store.write() as conn:
        conn.execute(_INSERT_TOKEN, ("tok_new", "h1", "applicant"))
    with pytest.raises(refused), store.write() as conn:
        conn.execute(_INSERT_TOKEN, ("tok_bad", "h2", "visitor"))
    index = (
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?"
        if store.dialect == "sqlite"
        else "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ?"
    )
    assert store.read().execute(index, ("tokens_project",)).fetchone() is not None
    with pytest.raises(StateSchemaError, match="Upgrade sundstat"):
        open_store()  # a host still on the older sundstat refuses the newer schema
