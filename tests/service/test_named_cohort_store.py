"""Named cohorts in the service state store: one name, one cohort, per project, on SQLite and PostgreSQL.

Two registry objects on one database stand for two workers (or hosts) storing names at once.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from query_engine.spec import Query, parse_query
from service.errors import CohortConflict, UnknownCohort
from service.named_cohorts import CohortRegistry, NamedCohort, Resolved
from tests.helpers.cohorts import lpr_cohort
from tests.helpers.pg_server import pg_url_fixture  # noqa: F401
from tests.service.state_fixtures import OpenStore, open_store_fixture  # noqa: F401


def _cohort(project: str, name: str, follow_up: int, when: str = "2026-12-06T10:00:00+00:00") -> NamedCohort:
    definition = {
        "name": name,
        "index": {"register": "lpr", "date": "admission_date"},
        "follow_up_years": follow_up,
    }
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return NamedCohort(project, name, definition, canonical, when, "analyst:tok_1")


def test_a_name_is_stored_once_and_listed_per_project(open_store: OpenStore) -> None:
    first, second = CohortRegistry(open_store()), CohortRegistry(open_store())
    assert first.claim(_cohort("p1", "first-mi", 5)) is True
    assert second.claim(_cohort("p1", "first-mi", 5)) is False  # the same cohort again: nothing new
    assert first.claim(_cohort("p1", "diabetes", 10, when="2026-12-06T11:00:00+00:00")) is True
    assert second.claim(_cohort("p2", "first-mi", 1)) is True  # names are per project
    listed = second.list("p1")
    assert [c.name for c in listed] == ["first-mi", "diabetes"]  # oldest first
    assert listed[0].definition["follow_up_years"] == 5 and listed[0].created_by == "analyst:tok_1"
    assert [c.definition["follow_up_years"] for c in first.list("p2")] == [1]
    assert first.get("p1", "nothing") is None


def test_another_definition_under_a_stored_name_is_a_conflict(open_store: OpenStore) -> None:
    registry = CohortRegistry(open_store())
    registry.claim(_cohort("p1", "first-mi", 5))
    with pytest.raises(CohortConflict, match="first-mi"):
        CohortRegistry(open_store()).claim(_cohort("p1", "first-mi", 10))
    stored = registry.get("p1", "first-mi")
    assert stored is not None and stored.definition["follow_up_years"] == 5


def test_forget_removes_only_its_own_definition(open_store: OpenStore) -> None:
    registry = CohortRegistry(open_store())
    registry.claim(_cohort("p1", "first-mi", 5))
    registry.forget(_cohort("p1", "first-mi", 10))  # another definition: the stored one stays
    assert registry.get("p1", "first-mi") is not None
    registry.forget(_cohort("p1", "first-mi", 5))
    assert registry.list("p1") == []


def test_racing_definitions_leave_exactly_one(open_store: OpenStore) -> None:
    registries = [CohortRegistry(open_store()) for _ in range(2)]

    def claim(i: int) -> str:
        try:
            registries[i % 2].claim(_cohort("p1", "race", 1 + i % 2))
            return "stored"
        except CohortConflict:
            return "conflict"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(claim, range(8)))
    stored = registries[0].get("p1", "race")
    assert stored is not None
    winner = stored.definition["follow_up_years"]
    # Every claim of the winning definition succeeds, every claim of the other one conflicts.
    assert outcomes == ["stored" if 1 + i % 2 == winner else "conflict" for i in range(8)]


def _query(cohort: Any, **extra: Any) -> Query:
    return parse_query(
        {"project": "p1", "measure": "count_persons", "cohort": cohort, "epsilon": 0.5, **extra}
    )


FIRST_MI = lpr_cohort([{"column": "lpr.icd10", "op": "in", "value": ["I21", "I22"]}], name="first-mi")


def test_resolve_replaces_a_name_by_the_stored_definition(open_store: OpenStore) -> None:
    registry = CohortRegistry(open_store())
    with pytest.raises(UnknownCohort, match="no named cohorts yet"):
        registry.resolve(_query("first-mi"), "analyst:t")
    defined = registry.resolve(_query(FIRST_MI), "analyst:t")
    assert defined.query == _query(FIRST_MI) and defined.new_name is not None
    assert registry.list("p1") == []  # resolving stores nothing; claiming does
    registry.claim(defined.new_name)
    by_name = registry.resolve(_query("first-mi", group_by=["cpr.sex"]), "analyst:t")
    assert by_name.new_name is None
    assert by_name.query == _query(FIRST_MI, group_by=["cpr.sex"])
    assert by_name.query.query_hash() == _query(FIRST_MI, group_by=["cpr.sex"]).query_hash()
    # The same cohort spelled differently (an unordered list in another order) is no conflict.
    reordered = json.loads(json.dumps(FIRST_MI))
    reordered["index"]["where"][0]["value"] = ["I22", "I21"]
    assert registry.resolve(_query(reordered), "analyst:t").new_name is None
    changed = {**FIRST_MI, "follow_up_years": 10}
    with pytest.raises(CohortConflict, match="another definition"):
        registry.resolve(_query(changed), "analyst:t")
    with pytest.raises(UnknownCohort, match="Did you mean 'first-mi'"):
        registry.resolve(_query("first-mj"), "analyst:t")
    unnamed = {k: v for k, v in FIRST_MI.items() if k != "name"}
    assert registry.resolve(_query(unnamed), "analyst:t") == Resolved(_query(unnamed))
