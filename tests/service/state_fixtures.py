"""The ``open_store`` fixture of the service state tests, on SQLite and on PostgreSQL.

A module imports ``open_store_fixture`` (and ``pg_url_fixture`` of ``tests.helpers.pg_server``) to run
its tests once per database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.state import StateStore, open_state_store

OpenStore = Callable[[], StateStore]


@pytest.fixture(name="open_store", params=["sqlite", "postgresql"])
def open_store_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens another store object on one fresh database (SQLite file or PostgreSQL schema)."""
    opened: list[StateStore] = []
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None

    def open_one() -> StateStore:
        store = open_state_store(url, tmp_path / "service.sqlite")
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()
