"""The ledger schema declared once: SQLite and PostgreSQL enforce the same checks; version-1 SQLite files upgrade."""

from __future__ import annotations

import json
import re
import sqlite3
from fractions import Fraction
from pathlib import Path

import pytest

from budget_ledger import Charge, Ledger, SqliteStore, UnsafeStore, open_store
from budget_ledger.schema import TABLES, Column, Table, sqlite_table
from tests.budget_ledger.ledger_helpers import pure_spec

# The SQLite tables of the first release (schema version 1), as they were shipped: fixed history.
_V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    purpose TEXT NOT NULL,
    institution TEXT NOT NULL,
    summary TEXT NOT NULL,
    registers TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('pure', 'zcdp')),
    epsilon TEXT NOT NULL,
    delta TEXT NOT NULL,
    rho TEXT,
    expires TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    epsilon_spent TEXT NOT NULL,
    rho_spent TEXT NOT NULL,
    delta_spent TEXT NOT NULL,
    spends INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS registers (
    name TEXT PRIMARY KEY,
    cap_rho TEXT,
    cap_delta TEXT,
    cap_epsilon_requested TEXT,
    cap_delta_requested TEXT,
    epsilon_spent TEXT NOT NULL,
    rho_spent TEXT NOT NULL,
    delta_spent TEXT NOT NULL,
    spends INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spends (
    spend_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    registers TEXT NOT NULL,
    epsilon TEXT NOT NULL,
    rho TEXT NOT NULL,
    delta TEXT NOT NULL,
    query_hash TEXT NOT NULL,
    canonical_query TEXT NOT NULL,
    idempotency_key TEXT,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_unix REAL NOT NULL,
    audit_seq INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'released', 'failed')),
    release_id TEXT,
    failure_code TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS spends_idempotency
    ON spends (project_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS spends_pending ON spends (project_id, query_hash) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS releases (
    release_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    spend_id TEXT NOT NULL UNIQUE REFERENCES spends (spend_id),
    query_hash TEXT NOT NULL,
    release_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    audit_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS releases_query ON releases (project_id, query_hash, audit_seq);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    actor TEXT NOT NULL,
    ts TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit chain is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit chain is append-only'); END;
CREATE TRIGGER IF NOT EXISTS spends_no_delete BEFORE DELETE ON spends
    BEGIN SELECT RAISE(ABORT, 'spends are append-only'); END;
CREATE TRIGGER IF NOT EXISTS spends_amounts_fixed
    BEFORE UPDATE OF spend_id, project_id, registers, epsilon, rho, delta, query_hash, canonical_query,
        idempotency_key, actor, created_at, created_unix, audit_seq ON spends
    BEGIN SELECT RAISE(ABORT, 'a spend''s amounts never change'); END;
CREATE TRIGGER IF NOT EXISTS releases_no_update BEFORE UPDATE ON releases
    BEGIN SELECT RAISE(ABORT, 'releases are append-only'); END;
CREATE TRIGGER IF NOT EXISTS releases_no_delete BEFORE DELETE ON releases
    BEGIN SELECT RAISE(ABORT, 'releases are append-only'); END;
"""
_PG_FRACTION = re.compile(r"^[0-9]+(/[0-9]+)?$")  # the ledger_fraction domain
_PG_HASH = re.compile(r"^[0-9a-f]{64}$")  # the ledger_hash domain


def _fill(ledger: Ledger) -> None:
    ledger.create_project(pure_spec(), "admin")
    for i in range(3):
        result = ledger.reserve_and_commit(
            "diabetes-2026", ["cpr"], Charge(epsilon=Fraction(1, 10)), f"h{i}", f"q{i}", actor="a"
        )
        ledger.store_release(result.spend_id, f"r_{i}", json.dumps({"value": i}))


def _rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    con = sqlite3.connect(path)
    try:
        return {t.name: con.execute(f"SELECT * FROM {t.name} ORDER BY 1").fetchall() for t in TABLES}
    finally:
        con.close()


def _version(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        return str(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        con.close()


@pytest.fixture
def v1_path(tmp_path: Path, audit_key: bytes) -> Path:
    """A version-1 ledger file holding a real ledger's rows (a project, three spends and releases)."""
    source = tmp_path / "source.sqlite"
    store = SqliteStore(source)
    _fill(Ledger(store, audit_key))
    store.close()
    path = tmp_path / "v1.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript(_V1_SCHEMA)
    con.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    con.execute("ATTACH DATABASE ? AS source", (str(source),))
    for table in TABLES:
        con.execute(f"INSERT INTO main.{table.name} SELECT * FROM source.{table.name}")
    con.execute("DETACH DATABASE source")
    con.close()
    return path


def test_a_version_1_file_is_upgraded_with_its_rows_unchanged(v1_path: Path, audit_key: bytes) -> None:
    before = _rows(v1_path)
    store = SqliteStore(v1_path)
    ledger = Ledger(store, audit_key)
    assert ledger.verify().ok
    assert _version(v1_path) == "2"
    assert _rows(v1_path) == before and len(before["spends"]) == 3
    ledger.reserve_and_commit(
        "diabetes-2026", ["cpr"], Charge(epsilon=Fraction(1, 10)), "h9", "q9", actor="a"
    )
    assert ledger.verify().ok
    store.close()


def test_the_upgraded_file_has_the_tables_of_a_new_one(v1_path: Path, tmp_path: Path) -> None:
    SqliteStore(v1_path).close()
    SqliteStore(tmp_path / "new.sqlite").close()

    def shape(path: Path) -> set[tuple[object, ...]]:
        con = sqlite3.connect(path)
        try:
            found: set[tuple[object, ...]] = set()
            for kind, name, table in con.execute("SELECT type, name, tbl_name FROM sqlite_master"):
                found.add((kind, name, table))
                if kind == "table":
                    found.update((name, *c) for c in con.execute(f"PRAGMA table_xinfo({name})"))
                    found.update((name, *f) for f in con.execute(f"PRAGMA foreign_key_list({name})"))
            return found
        finally:
            con.close()

    assert shape(v1_path) == shape(tmp_path / "new.sqlite")


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE projects SET epsilon = '0.5'", id="fraction_as_decimal"),
        pytest.param("UPDATE projects SET spends = -1", id="negative_count"),
        pytest.param("UPDATE registers SET rho_spent = '1/'", id="unfinished_fraction"),
        pytest.param(
            "DROP TRIGGER spends_amounts_fixed; UPDATE spends SET audit_seq = 2", id="shared_audit_seq"
        ),
    ],
)
def test_a_version_1_file_with_a_row_that_breaks_a_check_is_left_unchanged(
    v1_path: Path, statement: str
) -> None:
    con = sqlite3.connect(v1_path, isolation_level=None)
    con.executescript(statement)  # version 1 had no check that stops it
    con.close()
    before = _rows(v1_path)
    with pytest.raises(UnsafeStore, match="not upgraded and is unchanged"):
        SqliteStore(v1_path)
    assert _version(v1_path) == "1"
    assert _rows(v1_path) == before
    con = sqlite3.connect(v1_path)
    (projects_sql,) = con.execute("SELECT sql FROM sqlite_master WHERE name = 'projects'").fetchone()
    con.close()
    assert "GLOB" not in projects_sql  # still the version-1 table


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE projects SET epsilon = '0.5'", id="fraction_as_decimal"),
        pytest.param("UPDATE projects SET mode = 'approx'", id="unknown_mode"),
        pytest.param("UPDATE registers SET spends = -1", id="negative_count"),
        pytest.param("UPDATE spends SET state = 'pending'", id="reopen_released_spend"),
        pytest.param("UPDATE spends SET failure_code = 'x'", id="edit_a_final_spend"),
        pytest.param(
            "INSERT INTO audit (seq, kind, payload, actor, ts, prev_hash, hash) "
            "SELECT seq + 100, kind, payload, actor, ts, prev_hash, 'not a hash' FROM audit WHERE seq = 1",
            id="malformed_hash",
        ),
        pytest.param(
            "INSERT INTO audit (seq, kind, payload, actor, ts, prev_hash, hash) "
            "SELECT 0, kind, payload, actor, ts, prev_hash, hash FROM audit WHERE seq = 1",
            id="audit_seq_zero",
        ),
    ],
)
def test_sqlite_refuses_what_postgresql_refuses(ledger: Ledger, db_path: Path, statement: str) -> None:
    _fill(ledger)
    con = sqlite3.connect(db_path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError):
        con.execute(statement)
    con.close()


_SAMPLES = ["0", "3", "1/8", "10/3", "", "/8", "1/", "1//8", "1/8/2", "0.5", "-1/8", "1e3", " 1", "a", "1/a"]


@pytest.mark.parametrize("kind", ["fraction", "hash"])
def test_sqlite_checks_accept_exactly_what_the_postgresql_domains_accept(kind: str) -> None:
    pattern = _PG_FRACTION if kind == "fraction" else _PG_HASH
    samples = (
        _SAMPLES if kind == "fraction" else ["ab" * 32, "AB" * 32, "ab" * 31, "ab" * 33, "g" + "a" * 63, ""]
    )
    con = sqlite3.connect(":memory:")
    column = Column("value", kind)
    con.execute(sqlite_table(Table("values_", (column,))))
    accepted = []
    for sample in samples:
        try:
            con.execute("INSERT INTO values_ (value) VALUES (?)", (sample,))
            accepted.append(sample)
        except sqlite3.IntegrityError:
            pass
    con.close()
    assert accepted == [s for s in samples if pattern.fullmatch(s)]
    assert accepted and len(accepted) < len(samples)  # the samples test both sides


def test_read_only_tools_read_a_version_1_file_without_upgrading_it(v1_path: Path, audit_key: bytes) -> None:
    con = sqlite3.connect(v1_path, isolation_level=None)
    con.execute("UPDATE projects SET epsilon = '100'")  # breaks no check, but the chain knows better
    con.close()
    before = _rows(v1_path)
    store = open_store(v1_path, create=False)
    report = Ledger(store, audit_key).verify()
    store.close()
    assert not report.ok and report.first_bad_index == 1
    assert _version(v1_path) == "1" and _rows(v1_path) == before
