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
from fractions import Fraction
from pathlib import Path
from typing import Any

from .accounting import BudgetLimits, CapLimits, Mode, Totals
from .audit_chain import AuditEntry, canonical_json
from .errors import LedgerInvariantError, LedgerUnavailable, UnsafeStore
from .loss import Charge, fraction_from_text, fraction_to_text
from .records import Project, RegisterState, Spend, StoredRelease

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


def _fr(text: str) -> Fraction:
    return fraction_from_text(text)


def _opt_fr(text: str | None) -> Fraction | None:
    return None if text is None else fraction_from_text(text)


def _txt(value: Fraction) -> str:
    return fraction_to_text(value)


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


def _project_from_row(row: sqlite3.Row) -> Project:
    mode: Mode = row["mode"]
    return Project(
        id=row["id"],
        title=row["title"],
        purpose=row["purpose"],
        institution=row["institution"],
        summary=row["summary"],
        registers=tuple(json.loads(row["registers"])),
        limits=BudgetLimits(mode, _fr(row["epsilon"]), _fr(row["delta"]), _opt_fr(row["rho"])),
        expires=None if row["expires"] is None else date.fromisoformat(row["expires"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        totals=Totals(
            _fr(row["epsilon_spent"]), _fr(row["rho_spent"]), _fr(row["delta_spent"]), row["spends"]
        ),
    )


def _project_to_row(project: Project) -> tuple[Any, ...]:
    limits, totals = project.limits, project.totals
    return (
        project.id,
        project.title,
        project.purpose,
        project.institution,
        project.summary,
        json.dumps(list(project.registers)),
        limits.mode,
        _txt(limits.epsilon),
        _txt(limits.delta),
        _opt_txt(limits.rho),
        None if project.expires is None else project.expires.isoformat(),
        project.created_at,
        project.created_by,
        _txt(totals.epsilon),
        _txt(totals.rho),
        _txt(totals.delta),
        totals.spends,
    )


def _register_from_row(row: sqlite3.Row) -> RegisterState:
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


def _spend_from_row(row: sqlite3.Row) -> Spend:
    return Spend(
        spend_id=row["spend_id"],
        project_id=row["project_id"],
        registers=tuple(json.loads(row["registers"])),
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


def _release_from_row(row: sqlite3.Row) -> StoredRelease:
    return StoredRelease(
        release_id=row["release_id"],
        project_id=row["project_id"],
        spend_id=row["spend_id"],
        query_hash=row["query_hash"],
        release_json=row["release_json"],
        created_at=row["created_at"],
        audit_seq=row["audit_seq"],
    )


def _audit_from_row(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        actor=row["actor"],
        ts=row["ts"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class _SqliteTxn:
    """:class:`~budget_ledger.store.LedgerTxn` over one SQLite connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._con = connection

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._con.execute(sql, params).fetchone()
        return row

    def _changed_one(self, cursor: sqlite3.Cursor, what: str) -> None:
        if cursor.rowcount != 1:
            raise LedgerInvariantError(f"Expected to write one {what} row, wrote {cursor.rowcount}.")

    def get_project(self, project_id: str) -> Project | None:
        row = self._one(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = ?", (project_id,))
        return None if row is None else _project_from_row(row)

    def list_projects(self) -> list[Project]:
        rows = self._con.execute(f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY id").fetchall()
        return [_project_from_row(row) for row in rows]

    def insert_project(self, project: Project) -> None:
        self._con.execute(
            f"INSERT INTO projects ({_PROJECT_COLUMNS}) VALUES ({', '.join('?' * 17)})",
            _project_to_row(project),
        )

    def update_project(self, project: Project) -> None:
        limits, totals = project.limits, project.totals
        cursor = self._con.execute(
            "UPDATE projects SET epsilon = ?, delta = ?, rho = ?, epsilon_spent = ?, rho_spent = ?, "
            "delta_spent = ?, spends = ? WHERE id = ?",
            (
                _txt(limits.epsilon),
                _txt(limits.delta),
                _opt_txt(limits.rho),
                _txt(totals.epsilon),
                _txt(totals.rho),
                _txt(totals.delta),
                totals.spends,
                project.id,
            ),
        )
        self._changed_one(cursor, "project")

    def get_register(self, name: str) -> RegisterState | None:
        row = self._one(f"SELECT {_REGISTER_COLUMNS} FROM registers WHERE name = ?", (name,))
        return None if row is None else _register_from_row(row)

    def list_registers(self) -> list[RegisterState]:
        rows = self._con.execute(f"SELECT {_REGISTER_COLUMNS} FROM registers ORDER BY name").fetchall()
        return [_register_from_row(row) for row in rows]

    def put_register(self, register: RegisterState) -> None:
        cap, totals = register.cap, register.totals
        self._con.execute(
            f"INSERT OR REPLACE INTO registers ({_REGISTER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                register.name,
                None if cap is None else _txt(cap.rho),
                None if cap is None else _txt(cap.delta),
                None if cap is None else _opt_txt(cap.epsilon_requested),
                None if cap is None else _txt(cap.delta_requested),
                _txt(totals.epsilon),
                _txt(totals.rho),
                _txt(totals.delta),
                totals.spends,
            ),
        )

    def get_spend(self, spend_id: str) -> Spend | None:
        row = self._one(f"SELECT {_SPEND_COLUMNS} FROM spends WHERE spend_id = ?", (spend_id,))
        return None if row is None else _spend_from_row(row)

    def find_spend_by_idempotency_key(self, project_id: str, key: str) -> Spend | None:
        row = self._one(
            f"SELECT {_SPEND_COLUMNS} FROM spends WHERE project_id = ? AND idempotency_key = ?",
            (project_id, key),
        )
        return None if row is None else _spend_from_row(row)

    def find_pending_spends(self, project_id: str, query_hash: str) -> list[Spend]:
        rows = self._con.execute(
            f"SELECT {_SPEND_COLUMNS} FROM spends WHERE project_id = ? AND query_hash = ? "
            "AND state = 'pending' ORDER BY audit_seq",
            (project_id, query_hash),
        ).fetchall()
        return [_spend_from_row(row) for row in rows]

    def insert_spend(self, spend: Spend) -> None:
        charge = spend.charge
        self._con.execute(
            f"INSERT INTO spends ({_SPEND_COLUMNS}) VALUES ({', '.join('?' * 16)})",
            (
                spend.spend_id,
                spend.project_id,
                json.dumps(list(spend.registers)),
                _txt(charge.epsilon),
                _txt(charge.rho),
                _txt(charge.delta),
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
        cursor = self._con.execute(
            "UPDATE spends SET state = ?, release_id = ?, failure_code = ? WHERE spend_id = ?",
            (spend.state, spend.release_id, spend.failure_code, spend.spend_id),
        )
        self._changed_one(cursor, "spend")

    def list_spends(self) -> Iterator[Spend]:
        cursor = self._con.execute(f"SELECT {_SPEND_COLUMNS} FROM spends ORDER BY audit_seq")
        for row in cursor:
            yield _spend_from_row(row)

    def get_release(self, release_id: str) -> StoredRelease | None:
        row = self._one(f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE release_id = ?", (release_id,))
        return None if row is None else _release_from_row(row)

    def find_latest_release(self, project_id: str, query_hash: str) -> StoredRelease | None:
        row = self._one(
            f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE project_id = ? AND query_hash = ? "
            "ORDER BY audit_seq DESC LIMIT 1",
            (project_id, query_hash),
        )
        return None if row is None else _release_from_row(row)

    def list_releases(self, project_id: str | None = None) -> list[StoredRelease]:
        if project_id is None:
            rows = self._con.execute(f"SELECT {_RELEASE_COLUMNS} FROM releases ORDER BY audit_seq")
        else:
            rows = self._con.execute(
                f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE project_id = ? ORDER BY audit_seq",
                (project_id,),
            )
        return [_release_from_row(row) for row in rows.fetchall()]

    def insert_release(self, release: StoredRelease) -> None:
        self._con.execute(
            f"INSERT INTO releases ({_RELEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        row = self._one(
            "SELECT seq, kind, payload, actor, ts, prev_hash, hash FROM audit ORDER BY seq DESC LIMIT 1"
        )
        return None if row is None else _audit_from_row(row)

    def append_audit(self, entry: AuditEntry) -> None:
        self._con.execute(
            "INSERT INTO audit (seq, kind, payload, actor, ts, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        cursor = self._con.execute(
            "SELECT seq, kind, payload, actor, ts, prev_hash, hash FROM audit ORDER BY seq"
        )
        for row in cursor:
            yield _audit_from_row(row)


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
