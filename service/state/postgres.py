"""The service state in PostgreSQL: tokens, applications, permits and rate limits shared by every host.

Statements are the portable SQL of the code above (``?`` parameters, translated here). Writes run in
``READ COMMITTED`` transactions; every state change the service makes is either a single-row insert
with a unique key or a conditional update (``... WHERE status = 'pending'``), which PostgreSQL
re-checks on the latest row version, so two hosts cannot both claim the same thing. Durable writes use
sessions with the server's ``synchronous_commit``; rate-limit counters use separate sessions with
``synchronous_commit = off`` (a counter lost in a server crash costs nothing, and a request then
waits for no WAL flush); durable sessions are refused (``UnsafeStore``) unless the server runs with
``fsync=on`` and ``synchronous_commit=on``, as the ledger's are. Schema changes take an advisory lock, so hosts starting together apply each
migration once. Each process keeps two small connection pools; a forked process opens its own.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from budget_ledger.errors import LedgerUnavailable, UnsafeStore
from budget_ledger.postgres_store import REQUIRED_SETTINGS, describe_url

from .base import RATE_TAKE_SQL, rate_take_params
from .migrations import apply_migrations
from .schema import Dialect

__all__ = ["PostgresStateStore", "Row"]

_MIGRATION_LOCK = "sundstat service state migrations"


class Row(tuple[Any, ...]):
    """A result row readable by position and by column name, like ``sqlite3.Row``."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._index[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        """The column names."""
        return list(self._index)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names = [column.name for column in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}
    return lambda values: Row(values, index)


def _portable(sql: str) -> str:
    """``?`` parameters to psycopg's ``%s`` (a literal ``%`` is escaped first)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Connection:
    """A psycopg connection that speaks the portable SQL."""

    def __init__(self, con: psycopg.Connection[Row]) -> None:
        self.con = con

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        return self.con.execute(_portable(sql).encode(), tuple(parameters))


def _first_line(exc: BaseException) -> str:
    """The first line of a driver error (its detail lines may quote SQL), or its type."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class _Pool:
    """At most ``size`` connections of one process, each lent to one caller at a time."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Row]], size: int, timeout: float) -> None:
        self.pid = os.getpid()
        self._connect = connect
        self._idle: queue.LifoQueue[psycopg.Connection[Row]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._timeout = timeout

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Row]]:
        if not self._slots.acquire(timeout=self._timeout):
            raise LedgerUnavailable(
                f"All connections to the service state stayed busy for {self._timeout:g} s; retry shortly."
            )
        try:
            try:
                con = self._idle.get_nowait()
            except queue.Empty:
                con = self._connect()
            try:
                yield con
            except psycopg.OperationalError as exc:
                raise LedgerUnavailable(
                    f"The connection to the service state was lost ({_first_line(exc)}); retry shortly."
                ) from None
            finally:
                # Reused only when it is back outside a transaction (after a commit or a rollback).
                if con.closed or con.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    con.close()
                else:
                    self._idle.put(con)
        finally:
            self._slots.release()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class _AutoRead:
    """``read()``: each statement borrows a pooled connection (results stay readable afterwards)."""

    def __init__(self, store: PostgresStateStore) -> None:
        self._store = store

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        with self._store._pools()[0].connection() as con:
            return _Connection(con).execute(sql, parameters)


class PostgresStateStore:
    """The service state in the PostgreSQL database of ``url`` (a schema on its search path)."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 8, timeout: float = 30.0) -> None:
        self._url = url
        self.where = describe_url(url)
        self._size = pool_size
        self._timeout = timeout
        self._names: dict[str, Any] = (
            {} if "application_name" in conninfo_to_dict(url) else {"application_name": "sundstat-state"}
        )
        self._lock = threading.Lock()
        self._durable: _Pool | None = None
        self._counters: _Pool | None = None
        self.upgraded_from = self._migrate()

    def _connect(self, *, counters: bool) -> psycopg.Connection[Row]:
        try:
            con = psycopg.connect(
                self._url, autocommit=True, row_factory=_row_factory, connect_timeout=10, **self._names
            )
        except psycopg.Error as exc:
            raise LedgerUnavailable(
                f"Cannot connect to the PostgreSQL service state at {self.where}: {_first_line(exc)}. "
                "Check the URL (SUNDSTAT_STATE_URL, else SUNDSTAT_LEDGER_URL) and that the server is running."
            ) from None
        try:
            if counters:
                con.execute("SET synchronous_commit = off")
                return con
            row = con.execute(
                "SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc"
            ).fetchone()
        except psycopg.Error as exc:
            con.close()
            raise LedgerUnavailable(
                f"The PostgreSQL service state at {self.where} dropped a new connection while it was being "
                f"set up ({_first_line(exc)}); retry shortly."
            ) from None
        assert row is not None
        weak = [
            f"{name}={value}"
            for name, value in (("fsync", row["fsync"]), ("synchronous_commit", row["sc"]))
            if value not in REQUIRED_SETTINGS[name]
        ]
        if weak:
            con.close()
            raise UnsafeStore(
                f"The PostgreSQL service state at {self.where} runs with {', '.join(weak)}; a revoked token "
                "must stay revoked after a crash of the database server. Set fsync=on and "
                "synchronous_commit=on (see docs/ledger-postgres.md), then restart."
            )
        return con

    def _pools(self) -> tuple[_Pool, _Pool]:
        pid = os.getpid()
        with self._lock:
            if self._durable is None or self._durable.pid != pid:
                # A forked child must not use its parent's sessions: new pools, the old ones untouched.
                self._durable = _Pool(lambda: self._connect(counters=False), self._size, self._timeout)
                self._counters = _Pool(lambda: self._connect(counters=True), self._size, self._timeout)
            assert self._counters is not None
            return self._durable, self._counters

    def _migrate(self) -> int:
        def table_exists(name: str) -> bool:
            found = conn.execute("SELECT to_regclass(?) AS t", (name,)).fetchone()
            return found is not None and found[0] is not None

        def column_exists(table: str, column: str) -> bool:
            found = conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = ? AND column_name = ?",
                (table, column),
            ).fetchone()
            return found is not None

        with self.write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (_MIGRATION_LOCK,))
            return apply_migrations(
                conn.execute, self.dialect, table_exists=table_exists, column_exists=column_exists
            )

    @contextmanager
    def write(self) -> Iterator[_Connection]:
        """A ``READ COMMITTED`` transaction, committed on success, rolled back on error."""
        with self._pools()[0].connection() as con:
            con.execute("BEGIN")
            try:
                yield _Connection(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def read(self) -> _AutoRead:
        """Single-statement reads, each on a pooled connection."""
        return _AutoRead(self)

    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table."""
        row = self.read().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def rate_take(self, key: str, now: float, interval: float, tolerance: float) -> float | None:
        """One atomic upsert (see :func:`service.state.base.rate_take_sql`), without a WAL flush."""
        with self._pools()[1].connection() as con:
            params = rate_take_params(key, now, interval, tolerance)
            if _Connection(con).execute(RATE_TAKE_SQL["postgresql"], params).fetchone() is not None:
                return None
        return self.rate_peek(key) or now

    def rate_peek(self, key: str) -> float | None:
        """The stored arrival time of ``key``."""
        with self._pools()[1].connection() as con:
            row = _Connection(con).execute("SELECT tat FROM rate_limits WHERE key = ?", (key,)).fetchone()
        return None if row is None else float(row[0])

    def rate_forget(self, now: float) -> int:
        """Delete full (refilled) counters."""
        with self._pools()[1].connection() as con:
            return int(_Connection(con).execute("DELETE FROM rate_limits WHERE tat < ?", (now,)).rowcount)

    def close(self) -> None:
        """Close this process's idle connections."""
        with self._lock:
            pools = [p for p in (self._durable, self._counters) if p is not None and p.pid == os.getpid()]
        for pool in pools:
            pool.close()
