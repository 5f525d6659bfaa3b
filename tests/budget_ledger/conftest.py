"""Fixtures for the budget ledger tests: a real SQLite file in tmp_path, a key, a settable clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from budget_ledger import Ledger, SqliteStore, load_or_create_audit_key
from tests.budget_ledger.ledger_helpers import Clock

# The drivers shared by the SQLite and PostgreSQL tests hold their assertions: rewrite them as pytest
# rewrites a test module's, so that a failure shows the values compared.
pytest.register_assert_rewrite("ledger_crash_driver", "ledger_concurrency_driver")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def audit_key(tmp_path: Path) -> bytes:
    return load_or_create_audit_key(tmp_path / "audit.key")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(db_path)
    yield opened
    opened.close()


@pytest.fixture
def ledger(store: SqliteStore, audit_key: bytes, clock: Clock) -> Ledger:
    return Ledger(store, audit_key, clock=clock)
