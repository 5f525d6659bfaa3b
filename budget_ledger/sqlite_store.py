"""SQLite implementation of :class:`~budget_ledger.store.LedgerStore`.

One database file in WAL mode with ``synchronous=FULL`` (every commit is fsynced before it returns)
and ``BEGIN IMMEDIATE`` write transactions (the write lock is taken before anything is read, so a
check-then-insert cannot interleave with another writer in any thread or process). The store checks
the pragmas after opening and refuses to start if they are weaker. Each thread gets its own
connection; a process that forked re-opens instead of reusing its parent's connection.

Amounts are stored as exact fraction text (``"1/8"``). Append-only tables are guarded by triggers.
The tables are declared once, for both SQL stores, in :mod:`budget_ledger.schema`.
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

from .errors import LedgerUnavailable, UnsafeStore
from .records import RegisterState
from .schema import TABLES, sqlite_index, sqlite_table, sqlite_triggers
from .sql_transaction import REGISTER_COLUMNS, Dialect, SqlTxn, check_one_row, column_list, register_values

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

SCHEMA_VERSION = "2"
"""Version 2 is :mod:`budget_ledger.schema` as declared (the checks and uniqueness PostgreSQL has)."""
_VERSION_1 = "1"
"""The first release's tables, without those checks; opened by rebuilding them (see ``_upgrade``)."""
_SYNCHRONOUS_FULL = 2
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


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

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0, create: bool = True
    ) -> None:
        """Open (or create) the ledger file; ``create=False`` (read-only tools) never upgrades a version-1 file."""
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._turn: tuple[int, threading.Lock, int] | None = None
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = self._connection()
        self._create_schema(con, upgrade=create)

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

    def _create_schema(self, con: sqlite3.Connection, *, upgrade: bool) -> None:
        """Create the tables in a new file, or upgrade a version-1 file; refuse any other version.

        Without ``upgrade`` a version-1 file is read as it is: its tables have the same columns.
        """
        with self._begin(con, "IMMEDIATE"):
            con.execute(_META)
            version = _schema_version(con)
            if version is None:
                if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit'").fetchone() is not None:
                    raise UnsafeStore(
                        f"The ledger database {self.path} has ledger tables but no schema version; it was "
                        "not written by sundstat. Open the right file or move this one aside."
                    )
                _create_tables(con)
                con.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            elif version == SCHEMA_VERSION:
                _create_indexes_and_triggers(con)  # IF NOT EXISTS: puts back a dropped trigger
        if version == _VERSION_1:
            if upgrade:
                self._upgrade(con)
        elif version not in (None, SCHEMA_VERSION):
            raise UnsafeStore(
                f"The ledger database {self.path} has schema version {version}; this sundstat "
                f"expects {SCHEMA_VERSION}. Migrate it or use a matching sundstat version."
            )

    def _upgrade(self, con: sqlite3.Connection) -> None:
        """Rebuild a version-1 file's tables with the version-2 checks, in one transaction.

        SQLite cannot add a CHECK or UNIQUE constraint to a table, so each table is created anew,
        filled from the old one, and put in its place (SQLite's documented procedure, with foreign
        keys off during the swap and checked before the commit). A row that breaks a check rolls
        everything back: the file stays at version 1, unchanged, and the store refuses to start.
        """
        con.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: set before BEGIN
        try:
            with self._begin(con, "IMMEDIATE"):
                if _schema_version(con) != _VERSION_1:  # another process upgraded it meanwhile
                    return
                for table in TABLES:
                    columns = column_list(table.column_names)
                    con.execute(sqlite_table(table, f"{table.name}_v2"))
                    con.execute(f"INSERT INTO {table.name}_v2 ({columns}) SELECT {columns} FROM {table.name}")
                    con.execute(f"DROP TABLE {table.name}")
                    con.execute(f"ALTER TABLE {table.name}_v2 RENAME TO {table.name}")
                _create_indexes_and_triggers(con)
                broken = con.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise UnsafeStore(
                        f"The ledger database {self.path} (schema version 1) has {len(broken)} rows whose "
                        f"references are broken (first in table {broken[0][0]}); it was not upgraded and "
                        "is unchanged. Check it with `sundstat ledger verify` (which reads it without upgrading) and "
                        "restore it from a backup."
                    )
                con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))
        except sqlite3.IntegrityError as exc:
            raise UnsafeStore(
                f"The ledger database {self.path} (schema version 1) has a row that breaks the version-"
                f"{SCHEMA_VERSION} checks ({exc}); it was not upgraded and is unchanged. Check it with "
                "`sundstat ledger verify` (which reads it without upgrading) and restore it from a backup."
            ) from None
        finally:
            con.execute("PRAGMA foreign_keys = ON")

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


def _schema_version(con: sqlite3.Connection) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else str(row[0])


def _create_tables(con: sqlite3.Connection) -> None:
    for table in TABLES:
        con.execute(sqlite_table(table))
    _create_indexes_and_triggers(con)


def _create_indexes_and_triggers(con: sqlite3.Connection) -> None:
    """Indexes and triggers belong to their table: created with it, and again after a rebuild."""
    for table in TABLES:
        for index in table.indexes:
            con.execute(sqlite_index(index, table))
    for trigger in sqlite_triggers():
        con.execute(trigger)
