"""SQLite implementation of :class:`~budget_ledger.store.LedgerStore`.

One database file in WAL mode with ``synchronous=FULL`` (every commit is fsynced before it returns)
and ``BEGIN IMMEDIATE`` write transactions (the write lock is taken before anything is read, so a
check-then-insert cannot interleave with another writer in any thread or process). The store checks
the pragmas after opening and refuses to start if they are weaker. Each thread gets its own
connection; a process that forked re-opens instead of reusing its parent's connection.

Amounts are stored as exact fraction text (``"1/8"``). Append-only tables are guarded by triggers.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from ._store_rows import REGISTER_COLUMNS, Dialect, SqlTxn, check_one_row, column_list, register_values
from .errors import LedgerInvariantError, LedgerUnavailable, UnsafeStore
from .records import RegisterState

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

SCHEMA_VERSION = "1"
_SYNCHRONOUS_FULL = 2

_SCHEMA = """
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


_DIALECT = Dialect(
    marker="?",
    registers_to_db=lambda registers: json.dumps(list(registers)),
    registers_from_db=lambda text: tuple(json.loads(text)),
    date_to_db=date.isoformat,
    date_from_db=date.fromisoformat,
)
"""Registers are JSON text, dates ISO text."""


class _SqliteTxn(SqlTxn):
    """:class:`~budget_ledger.store.LedgerTxn` over one SQLite connection (writes run at once)."""

    dialect = _DIALECT

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._con = connection

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._con.execute(sql, params).fetchone()
        return row

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        rows: list[sqlite3.Row] = self._con.execute(sql, params).fetchall()
        return rows

    def _write(self, sql: str, params: tuple[Any, ...], one: str | None = None) -> None:
        check_one_row(one, self._con.execute(sql, params).rowcount)

    def _scan(self, columns: str, table: str, key: str) -> Iterator[sqlite3.Row]:
        yield from self._con.execute(f"SELECT {columns} FROM {table} ORDER BY {key}")

    def put_register(self, register: RegisterState) -> None:
        self._write(
            f"INSERT OR REPLACE INTO registers ({column_list(REGISTER_COLUMNS)}) "
            f"VALUES ({_DIALECT.markers(REGISTER_COLUMNS)})",
            register_values(register),
        )


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SqliteStore:
    """The default ledger store: one SQLite file, safe across threads and processes on one host."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._turn: tuple[int, threading.Lock, int] | None = None
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = self._connection()
        self._create_schema(con)

    # --- connections ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Open a raw connection (autocommit mode: transactions are explicit)."""
        return sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )

    def _configure(self, con: sqlite3.Connection) -> None:
        """Ask for the durable settings; :meth:`_check_durability` verifies they took effect."""
        con.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = FULL")
        con.execute("PRAGMA foreign_keys = ON")

    def _check_durability(self, con: sqlite3.Connection) -> None:
        """Refuse to run unless the connection really is in WAL mode with synchronous=FULL."""
        journal = str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        synchronous = int(con.execute("PRAGMA synchronous").fetchone()[0])
        if journal != "wal" or synchronous != _SYNCHRONOUS_FULL:
            raise UnsafeStore(
                f"The ledger database {self.path} runs with journal_mode={journal} and "
                f"synchronous={synchronous}; the ledger needs journal_mode=wal and synchronous=2 (FULL) "
                "so that a committed spend survives a crash. Put the state directory on a local "
                "filesystem that supports WAL (not a network share or an in-memory database)."
            )

    def _connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        con: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if con is not None and getattr(self._local, "pid", None) == pid:
            return con
        # After fork a parent's connection must not be used (or closed) by the child.
        con = self._connect()
        con.row_factory = sqlite3.Row
        try:
            self._configure(con)
            self._check_durability(con)
        except BaseException:
            con.close()
            raise
        self._local.connection, self._local.pid = con, pid
        with self._lock:
            self._connections.append((pid, con))
        return con

    def _create_schema(self, con: sqlite3.Connection) -> None:
        with self._begin(con, "IMMEDIATE"):
            for statement in _split_statements(_SCHEMA):
                con.execute(statement)
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                con.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise UnsafeStore(
                    f"The ledger database {self.path} has schema version {row[0]}; this sundstat "
                    f"expects {SCHEMA_VERSION}. Migrate it or use a matching sundstat version."
                )

    # --- transactions ---------------------------------------------------------------------------

    @contextmanager
    def _begin(self, con: sqlite3.Connection, mode: str) -> Iterator[None]:
        try:
            con.execute(f"BEGIN {mode}")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise LedgerUnavailable(
                    f"The ledger stayed locked for more than {self.busy_timeout:g} s; retry shortly."
                ) from exc
            raise
        try:
            yield
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        self._commit(con)

    def _commit(self, con: sqlite3.Connection) -> None:
        """Commit durably (synchronous=FULL fsyncs the WAL before COMMIT returns)."""
        try:
            con.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            if _is_busy(exc):
                raise LedgerUnavailable("The ledger was busy at commit; nothing was written, retry.") from exc
            raise

    def _turn_state(self) -> tuple[threading.Lock, int]:
        """This process's writer lock and lock-file descriptor (re-created after a fork)."""
        pid = os.getpid()
        with self._lock:
            if self._turn is None or self._turn[0] != pid:
                # A forked child must not share the parent's open file description: flock would
                # then treat parent and child as one holder.
                fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._turn = (pid, threading.Lock(), fd)
            return self._turn[1], self._turn[2]

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """Queue this host's ledger writers on a lock file before ``BEGIN IMMEDIATE``.

        Correctness comes from SQLite's own lock; this only makes waiters wake within a millisecond
        instead of sleeping in SQLite's busy handler (1, 2, 5, ... 100 ms), which under contention
        leaves the database idle most of the time.
        """
        thread_lock, fd = self._turn_state()
        deadline = time.monotonic() + self.busy_timeout
        busy = LedgerUnavailable(
            f"The ledger stayed locked for more than {self.busy_timeout:g} s; retry shortly."
        )
        if not thread_lock.acquire(timeout=self.busy_timeout):
            raise busy
        try:
            delay = 0.00005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise busy from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.001)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            thread_lock.release()

    @contextmanager
    def transaction(self) -> Iterator[_SqliteTxn]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: exclusive across threads and processes."""
        con = self._connection()
        with self._writer_turn(), self._begin(con, "IMMEDIATE"):
            yield _SqliteTxn(con)

    @contextmanager
    def snapshot(self) -> Iterator[_SqliteTxn]:
        """A deferred read transaction: one consistent WAL snapshot, never blocks writers."""
        con = self._connection()
        with self._begin(con, "DEFERRED"):
            yield _SqliteTxn(con)

    def integrity_problems(self, limit: int = 5) -> list[str]:
        """What ``PRAGMA quick_check`` finds wrong with the file (empty when the file is sound).

        quick_check reads every page of the file (O(size), about 20 ms for 10,000 spends), so a
        damaged page anywhere is found, not just in the rows a start-up happens to read.
        """
        try:
            rows = self._connection().execute(f"PRAGMA quick_check({int(limit)})").fetchall()
        except sqlite3.DatabaseError as exc:  # damaged badly enough that the check itself cannot run
            return [str(exc)]
        found = [str(row[0]) for row in rows]
        return [] if found == ["ok"] else found

    def close(self) -> None:
        """Close every connection this process opened."""
        pid = os.getpid()
        with self._lock:
            mine = [con for owner, con in self._connections if owner == pid]
            self._connections = [(owner, con) for owner, con in self._connections if owner != pid]
            turn, self._turn = self._turn, None
        for con in mine:
            con.close()
        if turn is not None and turn[0] == pid:
            os.close(turn[2])
        self._local = threading.local()


def _split_statements(script: str) -> list[str]:
    """Split the schema into statements (triggers contain ';' inside BEGIN ... END)."""
    statements: list[str] = []
    buffer: list[str] = []
    for line in script.strip().splitlines():
        buffer.append(line)
        text = "\n".join(buffer).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            statements.append(text)
            buffer = []
    if buffer and "\n".join(buffer).strip():
        raise LedgerInvariantError("The ledger schema has an unterminated statement.")
    return statements
