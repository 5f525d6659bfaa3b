"""Many processes x threads spending against one budget: exactly K succeed, nothing else happens.

The driver (16 processes x 8 threads), shared with ``test_postgres_concurrency``, is
``ledger_concurrency_driver``; here every process opens its own ``SqliteStore`` on one file.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from budget_ledger import Ledger, SqliteStore
from tests.budget_ledger.ledger_concurrency_driver import (
    check_exactly_k_fit_the_project_budget,
    check_exactly_k_fit_under_a_shared_register_cap,
)


@pytest.mark.slow
def test_exactly_k_of_many_concurrent_spends_fit_the_project_budget(
    ledger: Ledger, db_path: Path, audit_key: bytes
) -> None:
    check_exactly_k_fit_the_project_budget(ledger, partial(SqliteStore, str(db_path)), audit_key)


@pytest.mark.slow
def test_exactly_k_fit_under_a_register_cap_shared_with_another_project(
    ledger: Ledger, db_path: Path, audit_key: bytes
) -> None:
    check_exactly_k_fit_under_a_shared_register_cap(ledger, partial(SqliteStore, str(db_path)), audit_key)
