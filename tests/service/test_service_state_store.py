"""The service state store: one schema for SQLite and PostgreSQL, migrations, and shared behaviour.

Two store objects on one database stand for two hosts (or two worker processes): what one writes, the
other sees at once; a rate limit counted through both is one limit. Every test runs on a real SQLite
file and on a real PostgreSQL schema (``tests/budget_ledger/pg_server.py``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from budget_ledger.errors import LedgerUnavailable, UnsafeStore
from service.applications import ApplicationDesk, ApprovalPolicy, ApprovalQuota, Submission
from service.errors import RateLimited
from service.identity import IdentityRegistry
from service.permits import PermitRegistry
from service.settings import Settings
from service.state import SCHEMA_VERSION, StateSchemaError
from service.state.migrations import MIGRATIONS, Migration, apply_migrations
from service.state.postgres import PostgresStateStore
from service.state.rate_limits import StoreRateLimiter, StoreWindowLimiter
from service.state.schema import TOKENS, create_table
from service.state.sqlite import SqliteStateStore
from service.tokens import TokenStore, hash_token
from service.worker_services import open_ledger
from tests.helpers.pg_server import TemporaryPostgres, hang_up, hang_up_new_connections, pg_url_fixture  # noqa: F401
from tests.helpers.threads import in_threads
from tests.service.state_fixtures import OpenStore, open_store_fixture  # noqa: F401

UNVERSIONED = Path(__file__).parent / "legacy_schemas" / "service_state_unversioned.sql"
"""The exact schema of service.sqlite as written before the state had versions (frozen copy)."""


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
    assert set(lite) == {
        "meta",
        "tokens",
        "applications",
        "rate_limits",
        "project_permits",
        "institutions",
        "applicants",
        "oidc_logins",
        "rate_events",
        "cohorts",
    }


@contextlib.contextmanager
def _upgraded(path: Path, schema: Path, *rows: tuple[str, tuple[object, ...]]) -> Iterator[SqliteStateStore]:
    """A service.sqlite of an older release (``schema`` plus ``rows``) opened by this one: upgraded from
    version 1 to the current version, and at the next start nothing is left to apply."""
    old = sqlite3.connect(path)
    old.executescript(schema.read_text())
    for statement, parameters in rows:
        old.execute(statement, parameters)
    old.execute("INSERT INTO meta VALUES ('bootstrapped_at', '2026-01-01T00:00:00+00:00')")
    old.commit()
    old.close()
    store = SqliteStateStore(path)
    try:
        assert store.upgraded_from == 1
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        yield store
    finally:
        store.close()
    again = SqliteStateStore(path)
    assert again.upgraded_from == SCHEMA_VERSION  # nothing left to apply
    again.close()


def test_an_unversioned_state_dir_is_upgraded_in_place(tmp_path: Path) -> None:
    """A service.sqlite written before versions existed keeps its tokens and applications."""
    token = (
        "INSERT INTO tokens VALUES ('tok_old', ?, 'sst_analyst_abcd', 'analyst', 'demo', 'old analyst', "
        "'2026-01-01T00:00:00+00:00', 'system', NULL, NULL)",
        (hash_token("sst_analyst_the-old-secret"),),
    )
    with _upgraded(tmp_path / "service.sqlite", UNVERSIONED, token) as store:
        assert store.get_meta("bootstrapped_at") == "2026-01-01T00:00:00+00:00"
        record = TokenStore(store).authenticate("sst_analyst_the-old-secret")
        assert record is not None and record.id == "tok_old" and record.project == "demo"
        StoreRateLimiter(store, 1.0, 1).check("token:tok_old")  # the new table is there


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

    assert in_threads(hammer, 4) == []
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
    assert in_threads(lambda _: stores.append(PostgresStateStore(url)), 3) == []
    assert sorted(s.upgraded_from for s in stores) == [0, SCHEMA_VERSION, SCHEMA_VERSION]
    for store in stores:
        store.close()


def test_a_postgres_server_that_may_lose_commits_is_refused(postgres_server: TemporaryPostgres) -> None:
    name = postgres_server.create_database("state_weak")
    postgres_server.sql(f"ALTER DATABASE {name} SET synchronous_commit = off")
    with pytest.raises(UnsafeStore, match="synchronous_commit=off"):
        PostgresStateStore(postgres_server.url(name))


def test_a_postgres_connection_dropped_while_it_is_set_up_is_a_retryable_error(
    postgres_server: TemporaryPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server goes away between accepting a connection and the durability check (a crash)."""
    url = postgres_server.schema_url()
    hang_up_new_connections(monkeypatch)
    with pytest.raises(LedgerUnavailable, match="dropped a new connection.*retry shortly"):
        PostgresStateStore(url)
    monkeypatch.undo()
    PostgresStateStore(url).close()


@pytest.mark.parametrize("how", ["terminated", "hung up"])
def test_a_lost_postgres_session_is_a_retryable_error_and_the_next_call_reconnects(
    postgres_server: TemporaryPostgres, how: str
) -> None:
    url = postgres_server.schema_url()
    store = PostgresStateStore(url)
    try:
        tokens = TokenStore(store)
        issued = tokens.issue("admin", name="a", ttl=dt.timedelta(days=1))
        if how == "terminated":
            assert postgres_server.terminate_sessions(url) >= 1  # e.g. a database failover
        else:  # the socket is gone before psycopg has marked the connection broken
            idle = store._pools()[0]._idle
            assert idle.qsize() == 1
            hang_up(idle.queue[0])
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
    """How a new token role arrives (as ``applicant`` did in migration 3): the declaration changes and
    a migration rebuilds the table."""
    store = open_store()
    tokens = TokenStore(store)
    issued = tokens.issue("analyst", name="ana", project="p1", ttl=dt.timedelta(days=1))
    refused = (sqlite3.IntegrityError, psycopg.errors.CheckViolation)
    with pytest.raises(refused), store.write() as conn:
        conn.execute(_INSERT_TOKEN, ("tok_new", "h1", "auditor"))

    role = "NOT NULL CHECK (role IN ('admin', 'analyst', 'applicant', 'auditor'))"
    extended = replace(
        TOKENS,
        columns=tuple(replace(c, constraints=role) if c.name == "role" else c for c in TOKENS.columns),
    )
    upgrade = (*MIGRATIONS, Migration(SCHEMA_VERSION + 1, "applicant tokens", rebuilt=(extended,)))
    with store.write() as conn:
        found = apply_migrations(conn.execute, store.dialect, table_exists=lambda _: True, migrations=upgrade)
    assert found == SCHEMA_VERSION and store.get_meta("schema_version") == str(SCHEMA_VERSION + 1)

    kept = tokens.authenticate(issued.token)
    assert kept is not None and kept.id == issued.record.id and kept.project == "p1"
    with store.write() as conn:
        conn.execute(_INSERT_TOKEN, ("tok_new", "h1", "auditor"))
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


IDENTITY_UNVERSIONED = Path(__file__).parent / "legacy_schemas" / "service_state_identity_unversioned.sql"
"""service.sqlite as the release with institutions and applicants wrote it: changed in place by that
release's own migration (applicant tokens, three more application columns), still without a version."""


def test_a_state_dir_of_the_identity_release_is_upgraded_in_place(tmp_path: Path) -> None:
    rows = [
        (
            "INSERT INTO institutions VALUES ('ku', 'KU', NULL, '[\"ku.dk\"]', '[]', "
            "'2026-01-01T00:00:00+00:00', 'admin')",
            (),
        ),
        (
            "INSERT INTO applicants VALUES ('apl_old', 'ku', 'Ane', 'ane@ku.dk', 'https://idp', 'sub-1', "
            "'2026-01-01T00:00:00+00:00', 'oidc')",
            (),
        ),
        (
            "INSERT INTO tokens VALUES ('tok_apl', ?, 'sst_applicant_abcd', 'applicant', NULL, 'apl_old', "
            "'Ane', '2026-01-01T00:00:00+00:00', 'oidc', NULL, NULL)",
            (hash_token("sst_applicant_the-old-secret"),),
        ),
        (
            "INSERT INTO applications VALUES ('app_old', 'k', '{}', 'approved', '2026-01-01T00:00:00+00:00', "
            "NULL, NULL, 'auto', NULL, 'demo', 0.5, 0.0, NULL, 1, 'apl_old', 'ku', '[]')",
            (),
        ),
    ]
    with _upgraded(tmp_path / "service.sqlite", IDENTITY_UNVERSIONED, *rows) as store:
        record = TokenStore(store).authenticate("sst_applicant_the-old-secret")
        assert record is not None and record.role == "applicant" and record.applicant == "apl_old"
        identity = IdentityRegistry(store)
        assert identity.applicant("apl_old").institution == identity.institution("ku").id
        row = store.read().execute("SELECT applicant, institution_id, granted_epsilon FROM applications")
        assert tuple(row.fetchone()) == ("apl_old", "ku", 0.5)
        StoreWindowLimiter(store, 1, 60).check("addr:127.0.0.1")  # the new table is there
        with pytest.raises(sqlite3.IntegrityError):  # the role checks came along
            store.read().execute(_INSERT_TOKEN, ("tok_bad", "h9", "applicant"))


def test_the_application_window_holds_across_stores(open_store: OpenStore) -> None:
    """At most ``limit`` in any window per key, counted through two hosts' stores."""
    clock = [1000.0]
    host_a, host_b = (
        StoreWindowLimiter(store, 3, 60.0, prefix="applications:", clock=lambda: clock[0])
        for store in (open_store(), open_store())
    )
    for limiter in (host_a, host_b, host_a):
        limiter.check("addr:10.0.0.1")
        clock[0] += 10
    with pytest.raises(RateLimited) as refused:
        host_b.check("addr:10.0.0.1")
    assert refused.value.retry_after == pytest.approx(30.0)
    host_b.check("addr:10.0.0.2")  # another address has its own window
    clock[0] = 1060.0  # the first event left the window: one more, not more
    host_a.check("addr:10.0.0.1")
    with pytest.raises(RateLimited):
        host_b.check("addr:10.0.0.1")


def test_concurrent_applications_on_two_hosts_cannot_overdraw_the_quota(
    open_store: OpenStore, tmp_path: Path
) -> None:
    """The quota check and the approval are one transaction on either store (on PostgreSQL under an
    advisory lock): 12 signed-in applications at once through two hosts get the applicant's 3."""
    settings = Settings(db=tmp_path / "unused.duckdb", state_dir=tmp_path / "ledger")
    settings.state_dir.mkdir()
    ledger = open_ledger(settings)
    stores = [open_store(), open_store()]
    desks = [
        ApplicationDesk(
            store,
            ledger,
            TokenStore(store),
            ApprovalPolicy.from_settings(settings),
            ("cpr",),
            token_ttl=dt.timedelta(days=1),
            quota=ApprovalQuota.from_settings(settings),
        )
        for store in stores
    ]
    identity = IdentityRegistry(stores[0])
    identity.create_institution("ku", "KU", email_domains=["ku.dk"], actor="admin")
    applicant = identity.create_applicant("ku", name="Ane", email="ane@ku.dk", actor="admin")
    submission = Submission(
        "Study", "research", "KU", "A study.", ("cpr",), 0.25, 0.0, 30, "Ane", "ane@ku.dk"
    )
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(
                pool.map(
                    lambda i: desks[i % 2].submit(submission, actor="applicant", applicant=applicant),
                    range(12),
                )
            )
    finally:
        ledger.close()
    approved = [r for r in results if r.application.status == "approved"]
    assert len(approved) == settings.quota_applicant_projects == 3
    assert all(r.token for r in approved)
    # Each approved application is its project's permit.
    permits = PermitRegistry(stores[1]).for_projects({r.application.project: None for r in approved})
    assert sorted(permits.values()) == sorted(r.application.id for r in approved)
