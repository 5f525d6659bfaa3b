"""PostgreSQL implementation of :class:`~budget_ledger.store.LedgerStore`, for several API hosts.

Isolation: every write transaction is ``READ COMMITTED`` and starts by taking one transaction-level
lock for the ledger (``pg_advisory_xact_lock``, keyed by the schema). The audit chain is one total
order (each entry holds the previous entry's seq and hash), so any two writers, even for different
projects and registers, touch the same chain head; per-project or per-register row locks would not
be enough, and one lock taken first is both necessary and sufficient: there is no lock order to get
wrong and no deadlock. PostgreSQL releases the lock only after the holder's commit is flushed and
visible, and in READ COMMITTED every later statement takes a fresh snapshot, so the next holder
reads everything the previous one wrote: the ledger's check-then-write cannot interleave with another
writer on any host. The lock is in shared memory, not a row: a transaction that ends up writing
nothing (a cached or replayed release, a refusal) writes no WAL and waits for no fsync. Reads
(``snapshot``) are ``REPEATABLE READ READ ONLY``: one consistent view that never blocks.

Durability: at start-up and on every new connection the store reads ``fsync`` and
``synchronous_commit`` and refuses to run (``UnsafeStore``) unless both are ``on``; COMMIT then
returns only once the WAL is flushed. A wait for the lock longer than ``lock_timeout`` raises
``LedgerUnavailable``; a client that dies or hangs holding the lock is cut off by the server after
``idle_in_transaction_session_timeout``, which rolls its transaction back.

Amounts are exact fraction text (``"1/8"``) as in the SQLite store, checked by a domain. Append-only
tables are guarded by triggers. The tables are declared once, for both stores, in
:mod:`budget_ledger.schema`. The schema is created on first start; applied migrations are
recorded in ``ledger_schema_migrations``. Each process keeps a small pool of connections; a process
that forked opens its own instead of touching its parent's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from .errors import InvalidRequest, LedgerInvariantError, LedgerUnavailable, UnsafeStore

try:
    import psycopg
    import psycopg.errors
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.pq import TransactionStatus
    from psycopg.rows import DictRow, dict_row
except ImportError:  # an optional extra: installations with the SQLite ledger do without it
    raise InvalidRequest(
        "A postgresql:// ledger needs the PostgreSQL driver psycopg, which is not installed: "
        "pip install 'sundstat[postgres]'."
    ) from None

from .audit_chain import AuditEntry
from .records import RegisterState
from .schema import postgres_script
from .sql_transaction import REGISTER_COLUMNS, Dialect, SqlTxn, check_one_row, column_list, register_values
from .store import is_postgres_url

__all__ = [
    "LOCK_CLASS",
    "REQUIRED_SETTINGS",
    "SCHEMA_VERSION",
    "WRITE_LOCK_SQL",
    "PostgresLedgerStore",
    "describe_url",
    "is_postgres_url",
]

_Connection = psycopg.Connection[DictRow]

REQUIRED_SETTINGS: dict[str, frozenset[str]] = {
    "fsync": frozenset({"on"}),
    "synchronous_commit": frozenset({"on"}),
}
"""Server settings the ledger needs, and the values it accepts (strict: a commit is on local disk)."""

_BATCH = 1000
LOCK_CLASS = 0x5D57A7
"""First key of the ledger's advisory lock; the second is a hash of the ledger's schema name."""
WRITE_LOCK_SQL = (
    f"SELECT 1 AS locked FROM pg_advisory_xact_lock({LOCK_CLASS}, hashtext(coalesce(current_schema(), '')))"
)
"""Takes the ledger's write lock until the end of the transaction (waits up to ``lock_timeout``)."""
_MIGRATION_LOCK = "sundstat budget_ledger schema migrations"

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "ledger tables, append-only triggers", postgres_script()),
)
"""(version, description, SQL), applied in order, each once. Version 1 is :mod:`budget_ledger.schema`
as declared; a later change to the declaration needs a migration here (and one in the SQLite store)."""

SCHEMA_VERSION = MIGRATIONS[-1][0]


_DIALECT = Dialect(
    marker="%s",
    registers_to_db=list,
    registers_from_db=tuple,
    date_to_db=lambda value: value,
    date_from_db=lambda value: value,
)
"""Registers are ``TEXT[]`` and dates ``DATE``: psycopg adapts both as they are."""

_UPSERT_REGISTER = (
    f"INSERT INTO registers ({column_list(REGISTER_COLUMNS)}) VALUES ({_DIALECT.markers(REGISTER_COLUMNS)}) "
    "ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(f"{column} = EXCLUDED.{column}" for column in REGISTER_COLUMNS if column != "name")
)


class _PostgresTxn(SqlTxn):
    """:class:`~budget_ledger.store.LedgerTxn` over one PostgreSQL connection in a transaction.

    Writes are queued and sent together in one pipeline before the next read or the commit (one
    round trip instead of one per statement); the transaction's outcome is the same. The audit head
    is cached: it can only move through this transaction while the ledger lock is held.
    """

    dialect = _DIALECT

    def __init__(self, connection: _Connection, *, read_only: bool = False) -> None:
        self._con = connection
        self._read_only = read_only
        self._queued: list[tuple[str, tuple[Any, ...], str | None]] = []
        self._head: AuditEntry | None = None
        self._head_known = False

    def flush(self) -> None:
        """Send the queued writes; each one that must change exactly one row is checked."""
        if not self._queued:
            return
        queued, self._queued = self._queued, []
        with self._con.pipeline():
            cursors = [(self._con.execute(sql, params), what) for sql, params, what in queued]
        for cursor, what in cursors:
            check_one_row(what, cursor.rowcount)

    def _write(self, sql: str, params: tuple[Any, ...], one: str | None = None) -> None:
        if self._read_only:
            raise LedgerInvariantError("A ledger snapshot is read-only; writes need store.transaction().")
        self._queued.append((sql, params, one))

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> DictRow | None:
        self.flush()
        return self._con.execute(sql, params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[DictRow]:
        self.flush()
        return self._con.execute(sql, params).fetchall()

    def _scan(self, columns: str, table: str, key: str) -> Iterator[DictRow]:
        """In pages of ``_BATCH`` rows (keyset on ``key``): O(batch) memory for long tables."""
        sql = f"SELECT {columns} FROM {table} WHERE {key} > %s ORDER BY {key} LIMIT %s"
        last = 0
        while True:
            rows = self._all(sql, (last, _BATCH))
            yield from rows
            if len(rows) < _BATCH:
                return
            last = rows[-1][key]

    def put_register(self, register: RegisterState) -> None:
        self._write(_UPSERT_REGISTER, register_values(register), "register")

    def audit_head(self) -> AuditEntry | None:
        if not self._head_known:
            self._head, self._head_known = super().audit_head(), True
        return self._head

    def append_audit(self, entry: AuditEntry) -> None:
        self._head, self._head_known = entry, True
        super().append_audit(entry)


def _is_lost(con: _Connection, exc: psycopg.Error) -> bool:
    """Whether ``exc`` means the connection itself is gone, not that the server refused a statement.

    An error the server sent carries a SQLSTATE; a hung-up socket ("connection socket closed") does
    not, and psycopg may raise it while the connection still looks open.
    """
    return con.closed or (isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None)


class _Pool:
    """One process's connections: at most ``size``, reused, each lent to one transaction at a time."""

    def __init__(self, connect: Callable[[], _Connection], size: int, timeout: float) -> None:
        self.pid = os.getpid()
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self._idle: list[_Connection] = []
        self._open = 0
        self._closed = False
        self._cond = threading.Condition()

    def acquire(self) -> _Connection:
        """An idle connection, a new one if below ``size``, else wait up to the timeout."""
        deadline = time.monotonic() + self._timeout
        with self._cond:
            while not self._idle and self._open >= self._size:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise LedgerUnavailable(
                        f"All {self._size} ledger connections of this process stayed busy for more than "
                        f"{self._timeout:g} s; retry shortly."
                    )
                self._cond.wait(left)
            if self._closed:
                raise LedgerUnavailable("The ledger store was closed.")
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return self._connect()
        except BaseException:
            self._forget()
            raise

    def release(self, con: _Connection) -> None:
        """Return a connection; one that is broken or still inside a transaction is closed instead."""
        reusable = not con.closed and con.info.transaction_status == TransactionStatus.IDLE
        with self._cond:
            if reusable and not self._closed:
                self._idle.append(con)
                self._cond.notify()
                return
        con.close()
        self._forget()

    def discard(self, con: _Connection) -> None:
        """Close a connection that must not be reused."""
        con.close()
        self._forget()

    def drop_idle(self) -> None:
        """Close every idle connection (after one was found lost: the others were opened before it)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for con in idle:
            con.close()

    def _forget(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()

    def close(self) -> None:
        """Close the idle connections now; busy ones are closed when they come back."""
        with self._cond:
            self._closed = True
        self.drop_idle()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_url(url: str) -> str:
    """``user@host:port/dbname`` of a ledger URL, without the password: safe to print."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise UnsafeStore(f"The PostgreSQL ledger URL is not valid: {_first_line(exc)}") from None
    host = parts.get("host") or "localhost"
    user, port, dbname = parts.get("user") or "(default user)", parts.get("port") or 5432, parts.get("dbname")
    return f"{user}@{host}:{port}/{dbname or ''}"


class PostgresLedgerStore:
    """The ledger in a PostgreSQL database: safe across processes and hosts sharing that database.

    ``url`` is a libpq URL (``postgresql://user:password@host:5432/dbname``). ``lock_timeout`` (s)
    bounds the wait for the ledger lock and for a free pooled connection; ``pool_size`` caps the
    connections this process opens. Use a database (or a schema on the search path) of its own.
    ``create=False`` (read-only tools) refuses a database without the current ledger schema instead
    of creating or upgrading it.
    """

    def __init__(
        self,
        url: str,
        *,
        lock_timeout: float = 30.0,
        pool_size: int = 8,
        connect_timeout: float = 10.0,
        idle_in_transaction_timeout: float = 60.0,
        create: bool = True,
    ) -> None:
        if not is_postgres_url(url):
            raise UnsafeStore("A PostgreSQL ledger URL starts with postgresql:// (or postgres://).")
        if pool_size < 1:
            raise LedgerInvariantError("The PostgreSQL ledger needs a pool of at least one connection.")
        self._url = url
        self.lock_timeout = lock_timeout
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.idle_in_transaction_timeout = idle_in_transaction_timeout
        self.where = describe_url(url)
        # The URL's application_name (e.g. one per API host) wins over ours.
        self._names: dict[str, Any] = (
            {} if "application_name" in conninfo_to_dict(url) else {"application_name": "sundstat-ledger"}
        )
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self._inherited: list[_Pool] = []
        self._migrate(create)

    # --- connections ----------------------------------------------------------------------------

    def _new_pool(self) -> _Pool:
        return _Pool(self._connect, self.pool_size, self.lock_timeout)

    def _connect(self) -> _Connection:
        """Open a connection, set its timeouts, and refuse it unless the server is durable."""
        try:
            con = psycopg.connect(
                self._url,
                autocommit=True,  # transactions are explicit: BEGIN ... COMMIT
                row_factory=dict_row,
                connect_timeout=max(1, round(self.connect_timeout)),
                **self._names,
            )
        except psycopg.Error as exc:
            raise LedgerUnavailable(
                f"Cannot connect to the PostgreSQL ledger at {self.where}: {_first_line(exc)}. Check that "
                "the server is running and the URL (--ledger-url / SUNDSTAT_LEDGER_URL) is right."
            ) from None
        try:
            row = con.execute(
                "SELECT set_config('lock_timeout', %s, false) AS lock_timeout, "
                "set_config('idle_in_transaction_session_timeout', %s, false) AS idle_timeout, "
                "current_setting('fsync') AS fsync, "
                "current_setting('synchronous_commit') AS synchronous_commit",
                (
                    f"{round(self.lock_timeout * 1000)}ms",
                    f"{round(self.idle_in_transaction_timeout * 1000)}ms",
                ),
            ).fetchone()
            assert row is not None
            self._check_durability(row)
        except psycopg.Error as exc:
            con.close()
            raise LedgerUnavailable(
                f"The PostgreSQL ledger at {self.where} dropped a new connection while it was being set "
                f"up ({_first_line(exc)}); nothing was written, retry."
            ) from None
        except BaseException:
            con.close()
            raise
        return con

    def _check_durability(self, settings: DictRow) -> None:
        """Refuse to run unless every setting in ``REQUIRED_SETTINGS`` has an accepted value."""
        weak = {name: settings[name] for name, ok in REQUIRED_SETTINGS.items() if settings[name] not in ok}
        if weak:
            shown = ", ".join(f"{name}={value}" for name, value in weak.items())
            raise UnsafeStore(
                f"The PostgreSQL ledger at {self.where} runs with {shown}; the ledger needs fsync=on and "
                "synchronous_commit=on so that a committed spend survives a crash of the database server. "
                "Set them in postgresql.conf (or reset them with ALTER SYSTEM / ALTER DATABASE / ALTER ROLE "
                "... RESET, and remove any 'options' in the ledger URL that lower them), then restart."
            )

    def _current_pool(self) -> _Pool:
        pid = os.getpid()
        with self._lock:
            if self._pool.pid != pid:
                # A forked child must not use, or even close, its parent's connections: closing
                # would end the parent's sessions. Keep them referenced and open new ones.
                self._inherited.append(self._pool)
                self._pool = self._new_pool()
            return self._pool

    def _migrate(self, create: bool = True) -> None:
        """Create or upgrade the schema; several processes starting at once apply it once.

        Without ``create`` nothing is written: a missing or older schema is refused.
        """
        pool = self._current_pool()
        con = pool.acquire()
        try:
            con.execute("BEGIN")
            con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_MIGRATION_LOCK,))
            exists = con.execute("SELECT to_regclass('ledger_schema_migrations') AS t").fetchone()
            absent = exists is None or exists["t"] is None
            if absent and not create:
                raise InvalidRequest(
                    f"There is no ledger in {self.where} (no ledger tables on the search path). Check the "
                    "URL's database and search_path."
                )
            if absent:
                con.execute(
                    "CREATE TABLE ledger_schema_migrations (version INTEGER PRIMARY KEY, "
                    "description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
            rows = con.execute("SELECT version FROM ledger_schema_migrations").fetchall()
            applied = {int(row["version"]) for row in rows}
            newest = max(applied, default=0)
            if newest > SCHEMA_VERSION:
                raise UnsafeStore(
                    f"The PostgreSQL ledger at {self.where} has schema version {newest}; this sundstat "
                    f"knows versions up to {SCHEMA_VERSION}. Upgrade sundstat on this host."
                )
            missing = [version for version, _, _ in MIGRATIONS if version not in applied]
            if missing and not create:
                raise InvalidRequest(
                    f"The ledger in {self.where} has schema version {newest}; this sundstat expects "
                    f"{SCHEMA_VERSION}. Start the service once to upgrade it."
                )
            for version, description, sql in MIGRATIONS:
                if version not in applied:
                    con.execute(sql.encode())
                    con.execute(
                        "INSERT INTO ledger_schema_migrations (version, description) VALUES (%s, %s)",
                        (version, description),
                    )
            self._commit(con)
        except psycopg.Error as exc:
            self._rollback(con)
            pool.discard(con)
            raise LedgerUnavailable(
                f"Cannot set up the ledger schema in {self.where}: {_first_line(exc)}"
            ) from None
        except BaseException:
            self._rollback(con)
            pool.discard(con)
            raise
        pool.release(con)

    # --- transactions ---------------------------------------------------------------------------

    @staticmethod
    def _rollback(con: _Connection) -> None:
        if con.closed or con.info.transaction_status == TransactionStatus.IDLE:
            return
        try:
            con.execute("ROLLBACK")
        except psycopg.Error:
            con.close()  # a connection we cannot roll back is not reused

    def _commit(self, con: _Connection) -> None:
        """COMMIT; with synchronous_commit=on it returns once the WAL is flushed to disk."""
        if con.info.transaction_status != TransactionStatus.INTRANS:
            # PostgreSQL answers COMMIT of a failed transaction with ROLLBACK and no error.
            raise LedgerInvariantError(
                f"The ledger transaction is {con.info.transaction_status.name} at commit; "
                "nothing was written."
            )
        try:
            cursor = con.execute("COMMIT")
        except psycopg.Error as exc:
            raise LedgerUnavailable(
                f"The PostgreSQL ledger at {self.where} failed at commit ({_first_line(exc)}); the change "
                "may or may not have been written. Retry with the same idempotency key."
            ) from None
        if cursor.statusmessage != "COMMIT":
            raise LedgerInvariantError(f"COMMIT answered {cursor.statusmessage!r}; nothing was written.")

    def _raise_if_unavailable(self, exc: psycopg.Error, con: _Connection, *, at: str) -> None:
        """Raise the ``LedgerUnavailable`` a lock timeout or a lost connection means (else return)."""
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            raise LedgerUnavailable(
                f"The ledger stayed locked for more than {self.lock_timeout:g} s; retry shortly."
            ) from None
        if isinstance(exc, psycopg.OperationalError) or con.closed:
            raise LedgerUnavailable(
                f"The PostgreSQL ledger at {self.where} failed {at} ({_first_line(exc)}); nothing was "
                "written, retry."
            ) from None

    def _give_back(self, pool: _Pool, con: _Connection) -> None:
        """Roll back whatever is open on ``con`` and return it to ``pool`` (closed if unusable)."""
        self._rollback(con)
        pool.release(con)

    def _begin(self, pool: _Pool, begin_sql: str) -> _Connection:
        """A pooled connection inside a new transaction; a lost pooled connection is replaced once.

        Lost is decided by ``_is_lost``: psycopg may report a socket the server hung up on before it
        marks the connection broken, so ``con.broken`` alone misses it.
        """
        for attempt in (1, 2):
            con = pool.acquire()
            try:
                cursor = con.execute(begin_sql.encode())
                cursor.nextset()  # past BEGIN's result to the lock (or probe) row
                row = cursor.fetchone()
            except psycopg.Error as exc:
                lost = _is_lost(con, exc)
                if lost:
                    pool.discard(con)
                else:
                    self._give_back(pool, con)
                if lost and attempt == 1:
                    # e.g. the server restarted: every idle connection opened before is lost too
                    pool.drop_idle()
                    continue
                self._raise_if_unavailable(exc, con, at="to begin")
                raise
            except BaseException:
                self._give_back(pool, con)
                raise
            if row is None:
                self._give_back(pool, con)
                raise LedgerInvariantError("The ledger lock statement returned no row.")
            return con
        raise LedgerInvariantError("unreachable")  # pragma: no cover

    @contextmanager
    def _transaction(self, begin_sql: str, *, commit: bool) -> Iterator[_PostgresTxn]:
        pool = self._current_pool()
        con = self._begin(pool, begin_sql)
        try:
            txn = _PostgresTxn(con, read_only=not commit)
            yield txn
            if commit:
                txn.flush()
                self._commit(con)
            else:
                self._rollback(con)
        except psycopg.Error as exc:
            self._give_back(pool, con)
            self._raise_if_unavailable(exc, con, at="inside a transaction")
            raise
        except BaseException:
            self._give_back(pool, con)
            raise
        pool.release(con)

    def transaction(self) -> AbstractContextManager[_PostgresTxn]:
        """READ COMMITTED after taking the ledger lock: exclusive across processes and hosts."""
        return self._transaction(
            f"BEGIN ISOLATION LEVEL READ COMMITTED; {WRITE_LOCK_SQL}",
            commit=True,
        )

    def snapshot(self) -> AbstractContextManager[_PostgresTxn]:
        """REPEATABLE READ READ ONLY: one consistent view, never blocks writers."""
        return self._transaction(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1 AS ok", commit=False
        )

    def integrity_problems(self) -> list[str]:
        """Nothing to add: the server checks its pages (data checksums); the start-up check relies
        on the audit chain for PostgreSQL."""
        return []

    def close(self) -> None:
        """Close this process's connections (a forked child leaves its parent's alone)."""
        with self._lock:
            pool = self._pool
        if pool.pid == os.getpid():
            pool.close()
