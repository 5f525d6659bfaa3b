"""The orchestrator's fixed moments, with the real engine on the small dataset and a real SQLite ledger.

A fast success and an instant failure both answer at the rung; the release becomes visible to a
repeated query only at its fixed commit moment, never when execution happened to finish.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from budget_ledger import Ledger, ProjectSpec, SqliteStore
from query_engine.engine import Cost, Engine
from query_engine.errors import ExecutionFailed
from query_engine.release_models import Preview
from query_engine.spec import ProjectContext, Query
from service.auth import Principal
from service.errors import QueryFailed
from service.orchestration import EXECUTION_FAILED_MESSAGE, Orchestrator
from service.response_time import STORE_SECONDS, ResponseTimeModel

RUNG = 0.5
ADMIN = Principal("admin", "tok_test", None, "test")
SLACK = 0.25  # a loaded 2-core machine may answer this much after the moment, never before


class _Failing:
    """The real engine, except that ``run`` fails at once when ``fail`` is set."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.fail = False

    @property
    def catalog(self) -> Any:
        return self._engine.catalog

    def cost(self, query: Query, context: ProjectContext) -> Cost:
        return self._engine.cost(query, context)

    def preview(self, query: Query, context: ProjectContext) -> Preview:
        return self._engine.preview(query, context)

    def preview_and_cost(self, query: Query, context: ProjectContext) -> tuple[Preview, Cost]:
        return self._engine.preview_and_cost(query, context)

    def run(self, query: Query, context: ProjectContext | None = None, **options: Any) -> Any:
        if self.fail:
            raise ExecutionFailed("The query failed in the database (OutOfMemoryException).")
        return self._engine.run(query, context, **options)

    def close(self) -> None:
        self._engine.close()


@pytest.fixture
def setup(dataset: Path, tmp_path: Path) -> Iterator[tuple[Orchestrator, _Failing, Ledger]]:
    engine = _Failing(Engine.open(dataset))
    ledger = Ledger(SqliteStore(tmp_path / "ledger.sqlite"), secrets.token_bytes(32))
    ledger.create_project(ProjectSpec("p", "t", "research", ("cpr",), "pure", Fraction(10)), actor="test")
    # One rung: every fresh query answers at RUNG seconds.
    timing = ResponseTimeModel((RUNG,), 5000, 1e7)
    yield Orchestrator(engine, ledger, timing=timing), engine, ledger
    ledger.close()
    engine.close()


def _query(epsilon: float) -> Query:
    return Query(project="p", measure="count_persons", group_by=["cpr.region"], epsilon=epsilon)


def test_a_success_and_an_instant_failure_answer_at_the_same_moment(
    setup: tuple[Orchestrator, _Failing, Ledger],
) -> None:
    orchestrator, engine, _ = setup
    started = time.monotonic()
    assert orchestrator.run(_query(0.1), ADMIN)["cached"] is False
    success = time.monotonic() - started

    engine.fail = True
    started = time.monotonic()
    with pytest.raises(QueryFailed) as failed:
        orchestrator.run(_query(0.2), ADMIN)
    failure = time.monotonic() - started
    assert failed.value.message == EXECUTION_FAILED_MESSAGE
    assert RUNG <= success < RUNG + SLACK and RUNG <= failure < RUNG + SLACK, (success, failure)

    # Served from the store: at once, and free.
    engine.fail = False
    started = time.monotonic()
    assert orchestrator.run(_query(0.1), ADMIN)["cached"] is True
    assert time.monotonic() - started < RUNG


def test_a_repeated_query_sees_the_release_only_at_its_commit_moment(
    setup: tuple[Orchestrator, _Failing, Ledger],
) -> None:
    orchestrator, engine, ledger = setup
    query = _query(0.3)
    query_hash = engine.cost(query, ProjectContext("pure")).query_hash
    started = time.monotonic()
    runner = threading.Thread(target=orchestrator.run, args=(query, ADMIN))
    runner.start()
    # Execution on 5,000 persons takes milliseconds; the release must stay invisible until then.
    while ledger.cached_release("p", query_hash) is None and runner.is_alive():
        time.sleep(0.005)
    visible = time.monotonic() - started
    runner.join()
    assert ledger.cached_release("p", query_hash) is not None
    assert visible >= RUNG - STORE_SECONDS - 0.01, visible
