"""The ledger's behavioural tests, run again on PostgreSQL.

Every test of ``test_ledger_api``, ``test_ledger_audit`` and ``test_ledger_caps`` that needs only a ``Ledger`` (not the
SQLite file itself) is collected here a second time; this module overrides the conftest's ``store``
fixture, so the conftest's ``ledger`` is built on a fresh PostgreSQL schema. New tests the ledger's
owner adds to those modules are picked up automatically. The Hypothesis property that random spend
sequences never exceed the budget runs here on PostgreSQL as well.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from budget_ledger import Ledger
from budget_ledger.postgres_store import PostgresLedgerStore
from tests.budget_ledger import test_ledger_algebra, test_ledger_api, test_ledger_audit, test_ledger_caps
from tests.budget_ledger.ledger_helpers import Clock
from tests.budget_ledger.pg_ledger import postgres_store_fixture  # noqa: F401
from tests.helpers.pg_server import TemporaryPostgres, pg_url_fixture, postgres_server_fixture  # noqa: F401

_SQLITE_ONLY = {"db_path", "tmp_path"}


def _ledger_tests(module: types.ModuleType) -> dict[str, Callable[..., object]]:
    """The module's tests that take the ``ledger`` fixture and nothing tied to the SQLite file."""
    found: dict[str, Callable[..., object]] = {}
    for name, function in vars(module).items():
        if not name.startswith("test_") or not inspect.isfunction(function):
            continue
        parameters = set(inspect.signature(function).parameters)
        if "ledger" in parameters and not parameters & _SQLITE_ONLY:
            found[name] = function
    return found


_SHARED = {
    **_ledger_tests(test_ledger_api),
    **_ledger_tests(test_ledger_audit),
    **_ledger_tests(test_ledger_caps),
}
globals().update(_SHARED)


def test_the_shared_tests_were_found() -> None:
    assert len(_SHARED) >= 25, sorted(_SHARED)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.sampled_from(["pure", "zcdp"]), test_ledger_algebra.spend_sequences)
def test_random_spends_never_exceed_the_budget_in_postgres(
    postgres_server: TemporaryPostgres, mode: str, sequence: list
) -> None:
    store = PostgresLedgerStore(postgres_server.schema_url())
    try:
        test_ledger_algebra._run_sequence(
            Ledger(store, test_ledger_algebra.KEY, clock=Clock()), mode, sequence
        )
    finally:
        store.close()
