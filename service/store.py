"""The service's own SQLite database: tokens, applications, institutions, applicants and metadata.

Budgets, spends, releases and the audit chain live in the budget ledger's database; this one holds
only what the HTTP service needs around it. WAL with ``synchronous=FULL`` and ``BEGIN IMMEDIATE`` for
writes, so several worker processes can share it safely. Each thread keeps its own connection.

State directories written by an older release are migrated when the store opens (:func:`_migrate`):
the ``tokens`` table is rebuilt to admit the ``applicant`` role, and ``applications`` gains the columns
that tie an application to its signed-in applicant.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ServiceStore"]

_TOKEN_COLUMNS = """
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'applicant')),
    project     TEXT,
    applicant   TEXT,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT,
    CHECK ((role = 'analyst') = (project IS NOT NULL)),
    CHECK ((role = 'applicant') = (applicant IS NOT NULL))
"""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
    + f"CREATE TABLE IF NOT EXISTS tokens ({_TOKEN_COLUMNS});"
    + """
CREATE INDEX IF NOT EXISTS tokens_project ON tokens (project);
CREATE TABLE IF NOT EXISTS applications (
    id               TEXT PRIMARY KEY,
    status_key_hash  TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    submitted_at     TEXT NOT NULL,
    decided_at       TEXT,
    decided_by       TEXT,
    route            TEXT,
    reason           TEXT,
    project          TEXT,
    granted_epsilon  REAL,
    granted_delta    REAL,
    expires          TEXT,
    token_collected  INTEGER NOT NULL DEFAULT 0,
    applicant        TEXT,
    institution_id   TEXT,
    waiting_reasons  TEXT
);
CREATE TABLE IF NOT EXISTS institutions (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    oidc_issuer    TEXT,
    email_domains  TEXT NOT NULL,
    org_values     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS applicants (
    id           TEXT PRIMARY KEY,
    institution  TEXT NOT NULL REFERENCES institutions (id),
    name         TEXT NOT NULL,
    email        TEXT NOT NULL,
    issuer       TEXT,
    subject      TEXT,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    UNIQUE (issuer, subject)
);
CREATE TABLE IF NOT EXISTS oidc_logins (
    state          TEXT PRIMARY KEY,
    nonce          TEXT NOT NULL,
    code_verifier  TEXT NOT NULL,
    institution    TEXT,
    created_at     TEXT NOT NULL
);
"""
)

# Created after the migration: on an old state directory these columns exist only once it has run.
_INDEXES = """
CREATE INDEX IF NOT EXISTS tokens_applicant ON tokens (applicant);
CREATE INDEX IF NOT EXISTS applications_applicant ON applications (applicant, route, submitted_at);
CREATE INDEX IF NOT EXISTS applications_institution ON applications (institution_id, route, submitted_at);
"""

_TOKENS_TABLE = f"CREATE TABLE tokens_v2 ({_TOKEN_COLUMNS})"
_NEW_APPLICATION_COLUMNS = ("applicant", "institution_id", "waiting_reasons")


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a service database written by an older release up to this schema (idempotent)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        tokens_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'tokens'").fetchone()[0]
        if "'applicant'" not in tokens_sql:
            # SQLite cannot change a CHECK constraint in place: rebuild the table with the same rows.
            conn.execute(_TOKENS_TABLE)
            conn.execute(
                "INSERT INTO tokens_v2 (id, hash, prefix, role, project, applicant, name, created_at, "
                "created_by, expires_at, revoked_at) SELECT id, hash, prefix, role, project, NULL, name, "
                "created_at, created_by, expires_at, revoked_at FROM tokens"
            )
            conn.execute("DROP TABLE tokens")
            conn.execute("ALTER TABLE tokens_v2 RENAME TO tokens")
            conn.execute("CREATE INDEX IF NOT EXISTS tokens_project ON tokens (project)")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(applications)")}
        for column in _NEW_APPLICATION_COLUMNS:
            if column not in columns:
                conn.execute(f"ALTER TABLE applications ADD COLUMN {column} TEXT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class ServiceStore:
    """A SQLite file shared by every worker; one connection per thread."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        if not path.exists():
            # Token hashes and status-key hashes live here: readable by the service user only.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = self._connection()
        conn.executescript(_SCHEMA)
        _migrate(conn)
        conn.executescript(_INDEXES)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed on success, rolled back on error."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def read(self) -> sqlite3.Connection:
        """This thread's connection, for single-statement reads."""
        return self._connection()

    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table."""
        row = self.read().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def close(self) -> None:
        """Close this thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
