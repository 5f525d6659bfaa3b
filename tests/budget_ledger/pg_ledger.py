"""The PostgreSQL ledger store fixture of the ``test_postgres_*`` modules.

A module imports ``postgres_store_fixture`` (with the fixtures of ``tests.helpers.pg_server``) to
override the conftest's SQLite ``store``, so that the conftest's ``ledger`` runs on a fresh
PostgreSQL schema.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from budget_ledger.postgres_store import PostgresLedgerStore


@pytest.fixture(name="store")
def postgres_store_fixture(pg_url: str) -> Iterator[PostgresLedgerStore]:
    """Overrides the conftest's SQLite store, so the conftest's ``ledger`` runs on PostgreSQL."""
    opened = PostgresLedgerStore(pg_url)
    yield opened
    opened.close()
