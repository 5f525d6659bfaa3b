"""The service's own state (tokens, applications, permits, rate limits) behind one store seam.

``open_state_store`` picks the store: PostgreSQL at ``SUNDSTAT_STATE_URL``, else at
``SUNDSTAT_LEDGER_URL`` when that is a PostgreSQL URL (several hosts then share tokens, applications
and rate limits as they share the budget), else ``service.sqlite`` in the state directory.
"""

from __future__ import annotations

from pathlib import Path

from budget_ledger.store import is_postgres_url

from .base import StateConnection, StateStore
from .migrations import SCHEMA_VERSION, StateSchemaError
from .schema import Dialect

__all__ = [
    "SCHEMA_VERSION",
    "Dialect",
    "StateConnection",
    "StateSchemaError",
    "StateStore",
    "open_state_store",
    "state_url",
]


def state_url(explicit: str | None, ledger_url: str | None) -> str | None:
    """The PostgreSQL URL of the state: ``explicit`` if given, else a PostgreSQL ledger URL, else None."""
    if explicit:
        return explicit
    if ledger_url and is_postgres_url(ledger_url):
        return ledger_url
    return None


def open_state_store(url: str | None, sqlite_path: Path) -> StateStore:
    """PostgreSQL at ``url`` when given, else the SQLite file; the schema is created or upgraded."""
    if url is not None:
        from .postgres import PostgresStateStore  # needs psycopg only when asked for

        return PostgresStateStore(url)
    from .sqlite import SqliteStateStore

    return SqliteStateStore(sqlite_path)
