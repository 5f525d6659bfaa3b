"""The service state in a SQLite file in the state directory (the default, one host).

WAL with ``synchronous=FULL`` and ``BEGIN IMMEDIATE`` for writes, so several worker processes share it
safely; each thread keeps its own connection. Rate-limit counters are written through a second
connection per thread with ``synchronous=NORMAL``: a counter lost in a power cut costs nothing, and
the hot path then needs no fsync (in WAL mode this never risks corrupting the file).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .base import RATE_TAKE_SQL, rate_take_params
from .migrations import apply_migrations
from .schema import Dialect

__all__ = ["SqliteStateStore"]


class SqliteStateStore:
    """A SQLite file shared by every worker; one connection per thread."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.where = str(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        if not path.exists():
            # Token hashes and status-key hashes live here: readable by the service user only.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.upgraded_from = self._migrate()

    def _open(self, synchronous: str) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open("FULL")
        return conn

    def _counter_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "counters", None)
        if conn is None:
            conn = self._local.counters = self._open("NORMAL")
        return conn

    def _migrate(self) -> int:
        def table_exists(name: str) -> bool:
            row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
            return row.fetchone() is not None

        def column_exists(table: str, column: str) -> bool:
            return any(row["name"] == column for row in conn.execute(f"PRAGMA table_info({table})"))

        with self.write() as conn:
            return apply_migrations(
                conn.execute, self.dialect, table_exists=table_exists, column_exists=column_exists
            )

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

    def rate_take(self, key: str, now: float, interval: float, tolerance: float) -> float | None:
        """One atomic upsert (see :func:`service.state.base.rate_take_sql`)."""
        conn = self._counter_connection()
        allowed = conn.execute(RATE_TAKE_SQL["sqlite"], rate_take_params(key, now, interval, tolerance))
        if allowed.fetchall():  # fetchall: the statement finishes and its implicit transaction commits
            return None
        return self.rate_peek(key) or now

    def rate_peek(self, key: str) -> float | None:
        """The stored arrival time of ``key``."""
        row = self._counter_connection().execute("SELECT tat FROM rate_limits WHERE key = ?", (key,))
        found = row.fetchone()
        return None if found is None else float(found[0])

    def rate_forget(self, now: float) -> int:
        """Delete full (refilled) counters."""
        return self._counter_connection().execute("DELETE FROM rate_limits WHERE tat < ?", (now,)).rowcount

    def close(self) -> None:
        """Close this thread's connections."""
        for name in ("conn", "counters"):
            conn: sqlite3.Connection | None = getattr(self._local, name, None)
            if conn is not None:
                conn.close()
                setattr(self._local, name, None)
