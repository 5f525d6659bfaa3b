"""``Ledger.spends_since``, which the daily release limit counts with, on every ledger store."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pytest

from budget_ledger import Charge, Ledger, MemoryStore, ProjectSpec, SqliteStore
from budget_ledger.store import open_store

DAY_ONE = datetime(2026, 12, 6, tzinfo=UTC)
DAY_TWO = datetime(2026, 12, 7, tzinfo=UTC)


class _Clock:
    """The ledger's clock, set by the test."""

    def __init__(self) -> None:
        self.now = DAY_ONE.replace(hour=9)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def ledger_and_clock(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Ledger, _Clock]]:
    clock = _Clock()
    if request.param == "memory":
        store = MemoryStore()
    elif request.param == "sqlite":
        store = SqliteStore(tmp_path / "ledger.sqlite")
    else:
        store = open_store(request.getfixturevalue("postgres_server").schema_url())
    ledger = Ledger(store, secrets.token_bytes(32), clock=clock)
    for project in ("counted", "other"):
        spec = ProjectSpec(project, "t", "research", ("cpr",), "pure", Fraction(10))
        ledger.create_project(spec, actor="admin")
    yield ledger, clock
    ledger.close()


def _spend(ledger: Ledger, project: str, query: str) -> str:
    result = ledger.reserve_and_commit(
        project, ("cpr",), Charge(epsilon=Fraction(1, 10)), f"h-{query}", f'{{"q": "{query}"}}', actor="a"
    )
    return result.spend_id


def test_spends_since_counts_the_projects_fresh_spends_of_the_day(
    ledger_and_clock: tuple[Ledger, _Clock],
) -> None:
    ledger, clock = ledger_and_clock
    released = _spend(ledger, "counted", "a")
    ledger.store_release(released, "r_a", "{}")
    clock.now = DAY_ONE.replace(hour=23, minute=59)
    failed = _spend(ledger, "counted", "b")
    ledger.mark_failed(failed, "execution_failed")
    _spend(ledger, "other", "a")
    clock.now = DAY_TWO.replace(minute=1)
    _spend(ledger, "counted", "c")  # still pending
    # A repeated query is served from its stored release: no spend, so it does not count.
    assert (
        ledger.reserve_and_commit(
            "counted", ("cpr",), Charge(epsilon=Fraction(1, 10)), "h-a", '{"q": "a"}', actor="a"
        ).status
        == "cached"
    )

    assert ledger.spends_since("counted", DAY_ONE) == 3
    assert ledger.spends_since("counted", DAY_TWO) == 1
    assert ledger.spends_since("other", DAY_ONE) == 1
    assert ledger.spends_since("other", DAY_TWO) == 0
    assert ledger.spends_since("nobody", DAY_ONE) == 0
