"""Rates over a named cohort in SQL through the real server: ``FROM cohort('name')`` is the JSON query
with ``"cohort": "name"`` (same stored release), and refusals are the one error body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.service.svc_helpers import ProjectAccess, assert_error

E11 = [{"column": "lpr.icd10", "op": "prefix", "value": "E11"}]
ADULTS: dict[str, Any] = {
    "name": "adults-2010",
    "index": {"register": "cpr", "entry": ["2010-01-01", "2024-12-31"], "min_age": 18},
    "exclude": [{"register": "lpr", "date": "admission_date", "where": E11}],
    "outcome": {"register": "lpr", "date": "admission_date", "where": E11},
    "follow_up_years": 15,
}
SQL = (
    "SELECT cpr.sex, cohort.attained_age_band, RATE(1000) FROM cohort('adults-2010') "
    "GROUP BY cpr.sex, cohort.attained_age_band"
)


def _json(project: str, cohort: Any) -> dict[str, Any]:
    return {
        "project": project,
        "measure": "rate",
        "cohort": cohort,
        "group_by": ["cpr.sex", "cohort.attained_age_band"],
        "per_person_years": 1000,
        "epsilon": 0.5,
    }


def test_a_rate_over_a_named_cohort_in_sql_is_the_json_query(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    access = make_project(10.0)
    unknown = http.post(
        "/v1/sql", json={"project": access.id, "sql": SQL, "epsilon": 0.5}, headers=access.headers
    )
    assert_error(unknown, 422, "unknown_cohort")

    named = http.post("/v1/queries", json=_json(access.id, ADULTS), headers=access.headers)
    assert named.status_code == 200, named.text

    preview = http.post(
        "/v1/sql/preview", json={"project": access.id, "sql": SQL, "epsilon": 0.5}, headers=access.headers
    )
    assert preview.status_code == 200, preview.text
    released = http.post(
        "/v1/sql", json={"project": access.id, "sql": SQL, "epsilon": 0.5}, headers=access.headers
    )
    assert released.status_code == 200, released.text
    body = released.json()
    assert body["measure"] == "rate" and body["columns"][:3] == [
        "cpr.sex",
        "cohort.attained_age_band",
        "events",
    ]
    assert "ci_unbounded" in body["columns"]
    # The same question as the JSON query by name: one stored release, served free.
    assert body["release_id"] == named.json()["release_id"] and body["cached"] is True


def test_survival_in_sql_is_refused_with_the_json_route_named(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    access = make_project(1.0)
    sql = "SELECT cpr.sex, SURVIVAL(12) FROM cohort('adults-2010') GROUP BY cpr.sex"
    response = http.post(
        "/v1/sql", json={"project": access.id, "sql": sql, "epsilon": 0.5}, headers=access.headers
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["ok"] is False and body["code"] == "unsupported_sql"
    assert body["position"] == {"line": 1, "column": 17} and "JSON-only" in body["error"]
