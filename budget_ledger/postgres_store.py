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
tables are guarded by triggers. The schema is created on first start; applied migrations are
recorded in ``ledger_schema_migrations``. Each process keeps a small pool of connections; a process
that forked opens its own instead of touching its parent's.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from fractions import Fraction
from typing import Any

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from .accounting import BudgetLimits, CapLimits, Mode, Totals
from .audit_chain import AuditEntry, canonical_json
from .errors import InvalidRequest, LedgerInvariantError, LedgerUnavailable, UnsafeStore
from .loss import Charge, fraction_from_text, fraction_to_text
from .records import Project, RegisterState, Spend, StoredRelease
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

_V1_SCHEMA = r"""
CREATE DOMAIN ledger_fraction AS TEXT CHECK (VALUE ~ '^[0-9]+(/[0-9]+)?$');
CREATE DOMAIN ledger_hash AS TEXT CHECK (VALUE ~ '^[0-9a-f]{64}$');

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    purpose TEXT NOT NULL,
    institution TEXT NOT NULL,
    summary TEXT NOT NULL,
    registers TEXT[] NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('pure', 'zcdp')),
    epsilon ledger_fraction NOT NULL,
    delta ledger_fraction NOT NULL,
    rho ledger_fraction,
    expires DATE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    epsilon_spent ledger_fraction NOT NULL,
    rho_spent ledger_fraction NOT NULL,
    delta_spent ledger_fraction NOT NULL,
    spends BIGINT NOT NULL CHECK (spends >= 0)
);
CREATE TABLE registers (
    name TEXT PRIMARY KEY,
    cap_rho ledger_fraction,
    cap_delta ledger_fraction,
    cap_epsilon_requested ledger_fraction,
    cap_delta_requested ledger_fraction,
    epsilon_spent ledger_fraction NOT NULL,
    rho_spent ledger_fraction NOT NULL,
    delta_spent ledger_fraction NOT NULL,
    spends BIGINT NOT NULL CHECK (spends >= 0)
);
CREATE TABLE spends (
    spend_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    registers TEXT[] NOT NULL,
    epsilon ledger_fraction NOT NULL,
    rho ledger_fraction NOT NULL,
    delta ledger_fraction NOT NULL,
    query_hash TEXT NOT NULL,
    canonical_query TEXT NOT NULL,
    idempotency_key TEXT,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_unix DOUBLE PRECISION NOT NULL,
    audit_seq BIGINT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'released', 'failed')),
    release_id TEXT,
    failure_code TEXT
);
CREATE UNIQUE INDEX spends_idempotency
    ON spends (project_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX spends_pending ON spends (project_id, query_hash) WHERE state = 'pending';
CREATE TABLE releases (
    release_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    spend_id TEXT NOT NULL UNIQUE REFERENCES spends (spend_id),
    query_hash TEXT NOT NULL,
    release_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    audit_seq BIGINT NOT NULL UNIQUE
);
CREATE INDEX releases_query ON releases (project_id, query_hash, audit_seq);
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY CHECK (seq >= 1),
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    actor TEXT NOT NULL,
    ts TEXT NOT NULL,
    prev_hash ledger_hash NOT NULL,
    hash ledger_hash NOT NULL
);

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger table % is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE FUNCTION ledger_spend_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.spend_id, NEW.project_id, NEW.registers, NEW.epsilon, NEW.rho, NEW.delta, NEW.query_hash,
        NEW.canonical_query, NEW.idempotency_key, NEW.actor, NEW.created_at, NEW.created_unix,
        NEW.audit_seq)
       IS DISTINCT FROM
       (OLD.spend_id, OLD.project_id, OLD.registers, OLD.epsilon, OLD.rho, OLD.delta, OLD.query_hash,
        OLD.canonical_query, OLD.idempotency_key, OLD.actor, OLD.created_at, OLD.created_unix,
        OLD.audit_seq) THEN
        RAISE EXCEPTION 'a spend''s amounts never change' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.state <> 'pending' THEN
        RAISE EXCEPTION 'spend % is already %; its state never changes again', OLD.spend_id, OLD.state
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER releases_append_only BEFORE UPDATE OR DELETE ON releases
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER releases_no_truncate BEFORE TRUNCATE ON releases
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER spends_no_delete BEFORE DELETE ON spends
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER spends_no_truncate BEFORE TRUNCATE ON spends
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER spends_amounts_fixed BEFORE UPDATE ON spends
    FOR EACH ROW EXECUTE FUNCTION ledger_spend_update();
"""

MIGRATIONS: tuple[tuple[int, str, str], ...] = ((1, "ledger tables, append-only triggers", _V1_SCHEMA),)
"""(version, description, SQL), applied in order, each once."""

SCHEMA_VERSION = MIGRATIONS[-1][0]


def _fr(text: str) -> Fraction:
    return fraction_from_text(text)


def _opt_fr(text: str | None) -> Fraction | None:
    return None if text is None else fraction_from_text(text)


def _opt_txt(value: Fraction | None) -> str | None:
    return None if value is None else fraction_to_text(value)


_PROJECT_COLUMNS = (
    "id, title, purpose, institution, summary, registers, mode, epsilon, delta, rho, expires, "
    "created_at, created_by, epsilon_spent, rho_spent, delta_spent, spends"
)
_SPEND_COLUMNS = (
    "spend_id, project_id, registers, epsilon, rho, delta, query_hash, canonical_query, idempotency_key, "
    "actor, created_at, created_unix, audit_seq, state, release_id, failure_code"
)
_RELEASE_COLUMNS = "release_id, project_id, spend_id, query_hash, release_json, created_at, audit_seq"
_REGISTER_COLUMNS = (
    "name, cap_rho, cap_delta, cap_epsilon_requested, cap_delta_requested, "
    "epsilon_spent, rho_spent, delta_spent, spends"
)
_AUDIT_COLUMNS = "seq, kind, payload, actor, ts, prev_hash, hash"


def _placeholders(columns: str) -> str:
    return ", ".join("%s" for _ in columns.split(","))


def _project_from_row(row: DictRow) -> Project:
    mode: Mode = row["mode"]
    return Project(
        id=row["id"],
        title=row["title"],
        purpose=row["purpose"],
        institution=row["institution"],
        summary=row["summary"],
        registers=tuple(row["registers"]),
        limits=BudgetLimits(mode, _fr(row["epsilon"]), _fr(row["delta"]), _opt_fr(row["rho"])),
        expires=row["expires"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        totals=Totals(
            _fr(row["epsilon_spent"]), _fr(row["rho_spent"]), _fr(row["delta_spent"]), row["spends"]
        ),
    )


def _register_from_row(row: DictRow) -> RegisterState:
    cap = None
    if row["cap_rho"] is not None:
        cap = CapLimits(
            _fr(row["cap_rho"]),
            _fr(row["cap_delta"]),
            _opt_fr(row["cap_epsilon_requested"]),
            _fr(row["cap_delta_requested"]),
        )
    totals = Totals(_fr(row["epsilon_spent"]), _fr(row["rho_spent"]), _fr(row["delta_spent"]), row["spends"])
    return RegisterState(row["name"], cap, totals)


def _spend_from_row(row: DictRow) -> Spend:
    return Spend(
        spend_id=row["spend_id"],
        project_id=row["project_id"],
        registers=tuple(row["registers"]),
        charge=Charge(_fr(row["epsilon"]), _fr(row["rho"]), _fr(row["delta"])),
        query_hash=row["query_hash"],
        canonical_query=row["canonical_query"],
        idempotency_key=row["idempotency_key"],
        actor=row["actor"],
        created_at=row["created_at"],
        created_unix=row["created_unix"],
        audit_seq=row["audit_seq"],
        state=row["state"],
        release_id=row["release_id"],
        failure_code=row["failure_code"],
    )


def _release_from_row(row: DictRow) -> StoredRelease:
    return StoredRelease(
        release_id=row["release_id"],
        project_id=row["project_id"],
        spend_id=row["spend_id"],
        query_hash=row["query_hash"],
        release_json=row["release_json"],
        created_at=row["created_at"],
        audit_seq=row["audit_seq"],
    )


def _audit_from_row(row: DictRow) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        actor=row["actor"],
        ts=row["ts"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class _PostgresTxn:
    """:class:`~budget_ledger.store.LedgerTxn` over one PostgreSQL connection in a transaction.

    Writes are queued and sent together in one pipeline before the next read or the commit (one
    round trip instead of one per statement); the transaction's outcome is the same. The audit head
    is cached: it can only move through this transaction while the ledger lock is held.
    """

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
            if what is not None and cursor.rowcount != 1:
                raise LedgerInvariantError(f"Expected to write one {what} row, wrote {cursor.rowcount}.")

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

    def _pages(self, sql: str, key: str) -> Iterator[DictRow]:
        """Rows of ``sql`` (which filters ``key > %s`` and orders by it) in batches: O(batch) memory."""
        last = 0
        while True:
            rows = self._all(sql, (last, _BATCH))
            yield from rows
            if len(rows) < _BATCH:
                return
            last = rows[-1][key]

    def get_project(self, project_id: str) -> Project | None:
        row = self._one(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = %s", (project_id,))
        return None if row is None else _project_from_row(row)

    def list_projects(self) -> list[Project]:
        return [
            _project_from_row(row)
            for row in self._all(f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY id")
        ]

    def insert_project(self, project: Project) -> None:
        limits, totals = project.limits, project.totals
        self._write(
            f"INSERT INTO projects ({_PROJECT_COLUMNS}) VALUES ({_placeholders(_PROJECT_COLUMNS)})",
            (
                project.id,
                project.title,
                project.purpose,
                project.institution,
                project.summary,
                list(project.registers),
                limits.mode,
                fraction_to_text(limits.epsilon),
                fraction_to_text(limits.delta),
                _opt_txt(limits.rho),
                project.expires,
                project.created_at,
                project.created_by,
                fraction_to_text(totals.epsilon),
                fraction_to_text(totals.rho),
                fraction_to_text(totals.delta),
                totals.spends,
            ),
        )

    def update_project(self, project: Project) -> None:
        limits, totals = project.limits, project.totals
        self._write(
            "UPDATE projects SET epsilon = %s, delta = %s, rho = %s, epsilon_spent = %s, rho_spent = %s, "
            "delta_spent = %s, spends = %s WHERE id = %s",
            (
                fraction_to_text(limits.epsilon),
                fraction_to_text(limits.delta),
                _opt_txt(limits.rho),
                fraction_to_text(totals.epsilon),
                fraction_to_text(totals.rho),
                fraction_to_text(totals.delta),
                totals.spends,
                project.id,
            ),
            "project",
        )

    def get_register(self, name: str) -> RegisterState | None:
        row = self._one(f"SELECT {_REGISTER_COLUMNS} FROM registers WHERE name = %s", (name,))
        return None if row is None else _register_from_row(row)

    def list_registers(self) -> list[RegisterState]:
        rows = self._all(f"SELECT {_REGISTER_COLUMNS} FROM registers ORDER BY name")
        return [_register_from_row(row) for row in rows]

    def put_register(self, register: RegisterState) -> None:
        cap, totals = register.cap, register.totals
        self._write(
            f"INSERT INTO registers ({_REGISTER_COLUMNS}) VALUES ({_placeholders(_REGISTER_COLUMNS)}) "
            "ON CONFLICT (name) DO UPDATE SET cap_rho = EXCLUDED.cap_rho, cap_delta = EXCLUDED.cap_delta, "
            "cap_epsilon_requested = EXCLUDED.cap_epsilon_requested, "
            "cap_delta_requested = EXCLUDED.cap_delta_requested, epsilon_spent = EXCLUDED.epsilon_spent, "
            "rho_spent = EXCLUDED.rho_spent, delta_spent = EXCLUDED.delta_spent, spends = EXCLUDED.spends",
            (
                register.name,
                None if cap is None else fraction_to_text(cap.rho),
                None if cap is None else fraction_to_text(cap.delta),
                None if cap is None else _opt_txt(cap.epsilon_requested),
                None if cap is None else fraction_to_text(cap.delta_requested),
                fraction_to_text(totals.epsilon),
                fraction_to_text(totals.rho),
                fraction_to_text(totals.delta),
                totals.spends,
            ),
            "register",
        )

    def get_spend(self, spend_id: str) -> Spend | None:
        row = self._one(f"SELECT {_SPEND_COLUMNS} FROM spends WHERE spend_id = %s", (spend_id,))
        return None if row is None else _spend_from_row(row)

    def find_spend_by_idempotency_key(self, project_id: str, key: str) -> Spend | None:
        row = self._one(
            f"SELECT {_SPEND_COLUMNS} FROM spends WHERE project_id = %s AND idempotency_key = %s",
            (project_id, key),
        )
        return None if row is None else _spend_from_row(row)

    def find_pending_spends(self, project_id: str, query_hash: str) -> list[Spend]:
        rows = self._all(
            f"SELECT {_SPEND_COLUMNS} FROM spends WHERE project_id = %s AND query_hash = %s "
            "AND state = 'pending' ORDER BY audit_seq",
            (project_id, query_hash),
        )
        return [_spend_from_row(row) for row in rows]

    def insert_spend(self, spend: Spend) -> None:
        charge = spend.charge
        self._write(
            f"INSERT INTO spends ({_SPEND_COLUMNS}) VALUES ({_placeholders(_SPEND_COLUMNS)})",
            (
                spend.spend_id,
                spend.project_id,
                list(spend.registers),
                fraction_to_text(charge.epsilon),
                fraction_to_text(charge.rho),
                fraction_to_text(charge.delta),
                spend.query_hash,
                spend.canonical_query,
                spend.idempotency_key,
                spend.actor,
                spend.created_at,
                spend.created_unix,
                spend.audit_seq,
                spend.state,
                spend.release_id,
                spend.failure_code,
            ),
        )

    def update_spend_state(self, spend: Spend) -> None:
        self._write(
            "UPDATE spends SET state = %s, release_id = %s, failure_code = %s WHERE spend_id = %s",
            (spend.state, spend.release_id, spend.failure_code, spend.spend_id),
            "spend",
        )

    def list_spends(self) -> Iterator[Spend]:
        sql = f"SELECT {_SPEND_COLUMNS} FROM spends WHERE audit_seq > %s ORDER BY audit_seq LIMIT %s"
        for row in self._pages(sql, "audit_seq"):
            yield _spend_from_row(row)

    def get_release(self, release_id: str) -> StoredRelease | None:
        row = self._one(f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE release_id = %s", (release_id,))
        return None if row is None else _release_from_row(row)

    def find_latest_release(self, project_id: str, query_hash: str) -> StoredRelease | None:
        row = self._one(
            f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE project_id = %s AND query_hash = %s "
            "ORDER BY audit_seq DESC LIMIT 1",
            (project_id, query_hash),
        )
        return None if row is None else _release_from_row(row)

    def list_releases(self, project_id: str | None = None) -> list[StoredRelease]:
        if project_id is None:
            rows = self._all(f"SELECT {_RELEASE_COLUMNS} FROM releases ORDER BY audit_seq")
        else:
            rows = self._all(
                f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE project_id = %s ORDER BY audit_seq",
                (project_id,),
            )
        return [_release_from_row(row) for row in rows]

    def insert_release(self, release: StoredRelease) -> None:
        self._write(
            f"INSERT INTO releases ({_RELEASE_COLUMNS}) VALUES ({_placeholders(_RELEASE_COLUMNS)})",
            (
                release.release_id,
                release.project_id,
                release.spend_id,
                release.query_hash,
                release.release_json,
                release.created_at,
                release.audit_seq,
            ),
        )

    def audit_head(self) -> AuditEntry | None:
        if not self._head_known:
            row = self._one(f"SELECT {_AUDIT_COLUMNS} FROM audit ORDER BY seq DESC LIMIT 1")
            self._head = None if row is None else _audit_from_row(row)
            self._head_known = True
        return self._head

    def append_audit(self, entry: AuditEntry) -> None:
        self._head, self._head_known = entry, True
        self._write(
            f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES ({_placeholders(_AUDIT_COLUMNS)})",
            (
                entry.seq,
                entry.kind,
                canonical_json(entry.payload).decode("utf-8"),
                entry.actor,
                entry.ts,
                entry.prev_hash,
                entry.hash,
            ),
        )

    def audit_entries(self) -> Iterator[AuditEntry]:
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE seq > %s ORDER BY seq LIMIT %s"
        for row in self._pages(sql, "seq"):
            yield _audit_from_row(row)


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

    def _forget(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()

    def close(self) -> None:
        """Close the idle connections now; busy ones are closed when they come back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for con in idle:
            con.close()


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

    def _unavailable(self, exc: psycopg.Error, con: _Connection, *, at: str) -> LedgerUnavailable | None:
        """The ``LedgerUnavailable`` a lock timeout or a lost connection means (None for other errors)."""
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return LedgerUnavailable(
                f"The ledger stayed locked for more than {self.lock_timeout:g} s; retry shortly."
            )
        if isinstance(exc, psycopg.OperationalError) or con.closed:
            return LedgerUnavailable(
                f"The PostgreSQL ledger at {self.where} failed {at} ({_first_line(exc)}); nothing was "
                "written, retry."
            )
        return None

    def _begin(self, pool: _Pool, begin_sql: str) -> _Connection:
        """A pooled connection inside a new transaction; one stale connection is replaced once."""
        for attempt in (1, 2):
            con = pool.acquire()
            try:
                cursor = con.execute(begin_sql.encode())
                cursor.nextset()  # past BEGIN's result to the lock (or probe) row
                row = cursor.fetchone()
            except psycopg.Error as exc:
                self._rollback(con)
                pool.release(con)
                if con.broken and attempt == 1:
                    continue  # e.g. the server restarted since this pooled connection was opened
                error = self._unavailable(exc, con, at="to begin")
                if error is None:
                    raise
                raise error from None
            except BaseException:
                self._rollback(con)
                pool.release(con)
                raise
            if row is None:
                self._rollback(con)
                pool.release(con)
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
            self._rollback(con)
            pool.release(con)
            error = self._unavailable(exc, con, at="inside a transaction")
            if error is None:
                raise
            raise error from None
        except BaseException:
            self._rollback(con)
            pool.release(con)
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

    def close(self) -> None:
        """Close this process's connections (a forked child leaves its parent's alone)."""
        with self._lock:
            pool = self._pool
        if pool.pid == os.getpid():
            pool.close()
