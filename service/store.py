"""The service's own SQLite database: tokens, applications and service metadata.

Budgets, spends, releases and the audit chain live in the budget ledger's database; this one holds
only what the HTTP service needs around it. WAL with ``synchronous=FULL`` and ``BEGIN IMMEDIATE`` for
writes, so several worker processes can share it safely. Each thread keeps its own connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ServiceStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'analyst')),
    project     TEXT,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT,
    CHECK ((role = 'admin') = (project IS NULL))
);
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
    token_collected  INTEGER NOT NULL DEFAULT 0
);
"""


class ServiceStore:
    """A SQLite file shared by every worker; one connection per thread."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        if not path.exists():
            # Token hashes and status-key hashes live here: readable by the service user only.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._connection().executescript(_SCHEMA)

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
