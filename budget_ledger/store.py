"""The storage boundary of the ledger: a ``LedgerStore`` hands out transactions.

The ledger's logic (admission, idempotency, audit chaining) lives in :mod:`budget_ledger.ledger` and
runs inside ``store.transaction()``, which must be exclusive across threads and processes (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: one ledger-wide lock taken first, because every write appends to the
single audit chain, so a per-project lock would not do) and durable on commit. ``store.snapshot()``
gives a consistent read-only view. ``open_store`` picks the store from a setting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from .audit_chain import AuditEntry
from .errors import InvalidRequest
from .records import Project, RegisterState, Spend, StoredRelease

__all__ = ["LedgerStore", "LedgerTxn", "is_postgres_url", "open_store"]


class LedgerTxn(Protocol):
    """Reads and writes inside one transaction. Writes become visible together on commit."""

    def get_project(self, project_id: str) -> Project | None:
        """The project, or None."""
        ...

    def list_projects(self) -> list[Project]:
        """All projects, ordered by id."""
        ...

    def insert_project(self, project: Project) -> None:
        """Add a new project (the id is known to be free)."""
        ...

    def update_project(self, project: Project) -> None:
        """Replace a project's budget limits and running totals."""
        ...

    def get_register(self, name: str) -> RegisterState | None:
        """A register's cap and totals, or None if never capped nor charged."""
        ...

    def list_registers(self) -> list[RegisterState]:
        """All registers with a cap or a charge, ordered by name."""
        ...

    def put_register(self, register: RegisterState) -> None:
        """Insert or replace a register's cap and totals."""
        ...

    def get_spend(self, spend_id: str) -> Spend | None:
        """The spend, or None."""
        ...

    def find_spend_by_idempotency_key(self, project_id: str, key: str) -> Spend | None:
        """The spend made with this idempotency key in this project, or None."""
        ...

    def find_pending_spends(self, project_id: str, query_hash: str) -> list[Spend]:
        """Pending spends of this query in this project (normally zero or one)."""
        ...

    def list_pending_spends(self) -> list[Spend]:
        """Every spend still waiting for its release or failure, in commit order."""
        ...

    def insert_spend(self, spend: Spend) -> None:
        """Add a new spend."""
        ...

    def update_spend_state(self, spend: Spend) -> None:
        """Write a spend's ``state``, ``release_id`` and ``failure_code`` (amounts never change)."""
        ...

    def list_spends(self) -> Iterator[Spend]:
        """All spends in commit order."""
        ...

    def count_spends_since(self, project_id: str, since_unix: float) -> int:
        """How many spends the project committed at or after ``since_unix`` (any state)."""
        ...

    def get_release(self, release_id: str) -> StoredRelease | None:
        """The release, or None."""
        ...

    def find_latest_release(self, project_id: str, query_hash: str) -> StoredRelease | None:
        """The newest stored release of this query in this project, or None."""
        ...

    def list_releases(self, project_id: str | None = None) -> list[StoredRelease]:
        """Releases of one project (or all), oldest first."""
        ...

    def insert_release(self, release: StoredRelease) -> None:
        """Add a stored release."""
        ...

    def audit_head(self) -> AuditEntry | None:
        """The newest audit entry, or None for an empty chain."""
        ...

    def append_audit(self, entry: AuditEntry) -> None:
        """Append an audit entry (its seq is the head's plus one)."""
        ...

    def audit_entries(self) -> Iterator[AuditEntry]:
        """All audit entries ordered by seq."""
        ...

    def audit_entries_from(self, seq: int) -> list[AuditEntry]:
        """The audit entries with ``seq`` and after, ordered by seq (the tail verified at start-up)."""
        ...


class LedgerStore(Protocol):
    """Where the ledger keeps its state."""

    def transaction(self) -> AbstractContextManager[LedgerTxn]:
        """An exclusive read-write transaction: commits durably on exit, rolls back on error."""
        ...

    def snapshot(self) -> AbstractContextManager[LedgerTxn]:
        """A consistent read-only view (writing through it is a bug)."""
        ...

    def integrity_problems(self) -> list[str]:
        """What the database's own check finds damaged (empty when sound); run at start-up."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_postgres_url(text: str) -> bool:
    """True for ``postgresql://`` and ``postgres://`` URLs."""
    return text.startswith(("postgresql://", "postgres://"))


def open_store(url_or_path: str | os.PathLike[str], *, create: bool = True) -> LedgerStore:
    """Open the store a setting names: a ``postgresql://`` URL, else a SQLite file path (the default).

    Any other ``scheme://`` is refused rather than taken for a file name. With ``create=False``
    (read-only tools such as ``sundstat ledger verify``) a missing SQLite file, or a PostgreSQL
    database without a current ledger schema, is refused instead of being set up empty, and an older
    SQLite file is read as it is instead of being upgraded.
    """
    text = os.fspath(url_or_path)
    scheme = _URL_SCHEME.match(text)
    if scheme is not None:
        if not is_postgres_url(text):
            raise InvalidRequest(
                f"Unknown ledger URL scheme '{scheme.group(1)}://': use postgresql://user:password@host/db "
                "for PostgreSQL, or a file path for the default SQLite ledger."
            )
        from .postgres_store import PostgresLedgerStore  # imported only when asked for: needs psycopg

        return PostgresLedgerStore(text, create=create)
    if not create and not os.path.isfile(text):
        raise InvalidRequest(
            f"There is no ledger database at {text}; give the state directory's ledger file."
        )
    from .sqlite_store import SqliteStore

    return SqliteStore(text, create=create)
