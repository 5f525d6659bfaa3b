"""The public response-time model: ladder parsing, rungs from the plan and declared sizes only."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from datasets.packaged_catalog import load_packaged_catalog
from query_engine.backends import DuckDBBackend
from query_engine.catalog import Catalog, CatalogError
from query_engine.compile import CompiledQuery
from query_engine.errors import QueryTimeout
from query_engine.plan import Plan, plan_query
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, Query
from query_engine.validate import validate
from service.response_time import ResponseTimeModel, parse_ladder
from service.settings import Settings

LADDER = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
PURE = ProjectContext("pure")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_packaged_catalog()


def _plan(catalog: Catalog, **fields: Any) -> Plan:
    query = Query(project="p", epsilon=0.5, **fields)
    validate(query, catalog, PURE, EngineSettings())
    return plan_query(query, catalog, PURE, EngineSettings())


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        pytest.param("0.5,1,2,4,8,16,30", LADDER, id="default"),
        pytest.param(" 1, 3 ", (1.0, 3.0), id="spaces"),
        pytest.param("off", None, id="off"),
        pytest.param("", None, id="empty"),
    ],
)
def test_parse_ladder(text: str, steps: tuple[float, ...] | None) -> None:
    assert parse_ladder(text) == steps


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("1,0.5", "ascending", id="descending"),
        pytest.param("1,1", "ascending", id="repeated"),
        pytest.param("-1,2", "positive", id="negative"),
        pytest.param("1,fast", "separated by commas", id="word"),
        pytest.param("0.1,1", "start at 0.5", id="no-time-to-execute"),
        pytest.param("1,inf", "finite", id="infinite"),
    ],
)
def test_a_bad_ladder_is_refused_with_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_ladder(text)
    with pytest.raises(ValidationError, match=says):
        Settings(response_ladder=text)


def test_filters_do_not_move_the_rung(catalog: Catalog) -> None:
    model = ResponseTimeModel(LADDER, 100_000, 10e6)
    shape: dict[str, Any] = {"measure": "count_rows", "register": "lpr", "group_by": ["cpr.region"]}
    narrow = [
        {"column": "lpr.icd10", "op": "prefix", "value": "E11"},
        {"column": "cpr.sex", "op": "in", "value": ["F"]},
    ]
    assert model.rung(_plan(catalog, **shape), catalog) == model.rung(
        _plan(catalog, **shape, where=narrow), catalog
    )


def test_more_work_never_gets_a_shorter_rung(catalog: Catalog) -> None:
    model = ResponseTimeModel(LADDER, 100_000, 10e6)
    persons = _plan(catalog, measure="count_persons")
    contacts = _plan(catalog, measure="count_rows", register="lpr")
    by_diagnosis = _plan(catalog, measure="count_rows", register="lpr", group_by=["lpr.icd10"])
    rungs = [model.rung(plan, catalog) for plan in (persons, contacts, by_diagnosis)]
    assert rungs == sorted(rungs) and rungs[0] < rungs[-1], rungs
    # A larger declared population, or a slower installation, never shortens a rung.
    for bigger in (ResponseTimeModel(LADDER, 1_000_000, 10e6), ResponseTimeModel(LADDER, 100_000, 1e6)):
        assert all(
            bigger.rung(p, catalog) >= r
            for p, r in zip((persons, contacts, by_diagnosis), rungs, strict=True)
        )
    # Far more work than the ladder covers: the top rung (the query will likely fail at it).
    assert ResponseTimeModel(LADDER, 6_000_000, 1e5).rung(by_diagnosis, catalog) == 30.0
    assert model.rung(None, catalog) == 30.0


def test_the_model_reads_declared_sizes_and_falls_back_to_the_bounding_default(catalog: Catalog) -> None:
    model = ResponseTimeModel(LADDER, 1000, 1e6)
    plan = _plan(catalog, measure="count_rows", register="lmdb")
    declared = model.work_units(plan, catalog)
    lmdb = catalog.register("lmdb")
    assert lmdb.declared_rows_per_person == 25.0
    older = dataclasses.replace(
        catalog,
        registers=tuple(dataclasses.replace(r, declared_rows_per_person=None) for r in catalog.registers),
    )
    # Without a declaration the register's default rows_per_person (12) sizes it.
    fallback = model.work_units(plan, older)
    assert fallback == pytest.approx(declared * lmdb.rows_per_person[0] / 25.0, rel=0.01)


def test_declared_rows_round_trip_and_bad_values_are_refused(catalog: Catalog) -> None:
    assert Catalog.loads(catalog.dumps()) == catalog
    data = catalog.to_json()
    data["registers"][1]["declared_rows_per_person"] = -3
    with pytest.raises(CatalogError, match="declared_rows_per_person"):
        Catalog.from_json(data)


def test_the_schedule_keeps_its_moments_in_order() -> None:
    model = ResponseTimeModel(LADDER, 100_000, 10e6)
    schedule = model.schedule(2.0, None, start=100.0)
    assert schedule.execute_by < schedule.commit_at < schedule.deadline == 102.0
    now = [101.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    timed = dataclasses.replace(schedule, clock=lambda: now[0], sleep=sleep)
    timed.wait_until(timed.deadline)
    assert slept == [1.0] and timed.late() == 0.0
    timed.wait_until(timed.commit_at)  # already past: no sleep
    assert slept == [1.0]


@pytest.mark.parametrize(
    ("backend_limit", "query_limit"),
    [pytest.param(30.0, 0.3, id="query-shortens"), pytest.param(0.3, 30.0, id="never-lengthens")],
)
def test_the_per_query_deadline_reaches_the_backend(
    dataset: Path, backend_limit: float, query_limit: float
) -> None:
    """What the orchestrator passes as ``timeout_s`` stops DuckDB (a shorter backend limit still wins)."""
    endless = CompiledQuery("SELECT count(*) FROM range(100000000000) a WHERE a % 7 = 3", (), "duckdb")
    backend = DuckDBBackend(dataset, memory_limit="1GB", threads=1, timeout_s=backend_limit)
    try:
        started = time.monotonic()
        with pytest.raises(QueryTimeout):
            backend.execute(endless, timeout_s=query_limit)
        assert time.monotonic() - started < 10
    finally:
        backend.close()
