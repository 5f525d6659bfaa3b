"""Named cohorts through the real server: stored by a release, reused by name, refused when redefined,
listed for the project's members only (issue 15 item 1)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx

from tests.helpers.cohorts import lpr_cohort
from tests.service.svc_helpers import ProjectAccess, assert_error

FIRST_MI = lpr_cohort("I21", name="first-mi")


def _rate(project: str, cohort: Any, epsilon: float = 0.5) -> dict[str, Any]:
    return {
        "project": project,
        "measure": "rate",
        "cohort": cohort,
        "group_by": ["cpr.sex"],
        "epsilon": epsilon,
    }


def _listed(http: httpx.Client, access: ProjectAccess) -> list[dict[str, Any]]:
    response = http.get(f"/v1/projects/{access.id}/cohorts", headers=access.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["project"] == access.id and body["count"] == len(body["cohorts"])
    return list(body["cohorts"])


def test_a_named_cohort_is_stored_by_its_release_and_reused_by_name(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    access = make_project(10.0)
    preview = http.post("/v1/queries/preview", json=_rate(access.id, FIRST_MI), headers=access.headers)
    assert preview.status_code == 200, preview.text
    assert _listed(http, access) == []  # a preview stores nothing

    first = http.post("/v1/queries", json=_rate(access.id, FIRST_MI), headers=access.headers)
    assert first.status_code == 200, first.text
    (stored,) = _listed(http, access)
    assert stored["name"] == "first-mi" and stored["created_by"].startswith("analyst:")
    assert stored["definition"]["index"]["where"] == FIRST_MI["index"]["where"]
    assert stored["definition"]["follow_up_years"] == 5

    # The same question by name is the same query: served from the stored release, free.
    spent = http.get(f"/v1/projects/{access.id}/budget", headers=access.headers).json()["epsilon_spent"]
    again = http.post("/v1/queries", json=_rate(access.id, "first-mi"), headers=access.headers)
    assert again.status_code == 200, again.text
    assert again.json()["cached"] is True and again.json()["release_id"] == first.json()["release_id"]
    assert (
        http.get(f"/v1/projects/{access.id}/budget", headers=access.headers).json()["epsilon_spent"] == spent
    )

    # A new question on the named cohort: the release's query shows the resolved definition.
    survival = {
        "project": access.id,
        "measure": "survival",
        "cohort": "first-mi",
        "time_bins": {"unit": "years", "width": 1},
        "epsilon": 0.5,
    }
    previewed = http.post("/v1/queries/preview", json=survival, headers=access.headers)
    assert previewed.status_code == 200, previewed.text
    released = http.post("/v1/queries", json=survival, headers=access.headers)
    assert released.status_code == 200, released.text
    shown = released.json()["query"]["cohort"]
    assert isinstance(shown, dict) and shown["name"] == "first-mi"
    assert shown["index"]["register"] == "lpr" and shown["follow_up_years"] == 5


def test_redefining_a_name_is_a_conflict_and_spends_nothing(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    access = make_project(10.0)
    assert (
        http.post("/v1/queries", json=_rate(access.id, FIRST_MI), headers=access.headers).status_code == 200
    )
    before = http.get(f"/v1/projects/{access.id}/budget", headers=access.headers).json()["epsilon_spent"]
    changed = copy.deepcopy(FIRST_MI)
    changed["follow_up_years"] = 10
    for route in ("/v1/queries/preview", "/v1/queries"):
        body = assert_error(
            http.post(route, json=_rate(access.id, changed, 0.7), headers=access.headers),
            409,
            "cohort_conflict",
        )
        assert "first-mi" in body["error"] and "new name" in body["error"]
    after = http.get(f"/v1/projects/{access.id}/budget", headers=access.headers).json()["epsilon_spent"]
    assert after == before
    (stored,) = _listed(http, access)
    assert stored["definition"]["follow_up_years"] == 5
    # The same definition under the same name again is no conflict (a new question on it).
    same = http.post("/v1/queries", json=_rate(access.id, FIRST_MI, 0.6), headers=access.headers)
    assert same.status_code == 200, same.text


def test_an_unknown_name_says_which_names_exist(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    access = make_project(10.0)
    empty = assert_error(
        http.post("/v1/queries/preview", json=_rate(access.id, "first-mi"), headers=access.headers),
        422,
        "unknown_cohort",
    )
    assert "no named cohorts" in empty["error"]
    assert (
        http.post("/v1/queries", json=_rate(access.id, FIRST_MI), headers=access.headers).status_code == 200
    )
    typo = assert_error(
        http.post("/v1/queries", json=_rate(access.id, "first-m"), headers=access.headers),
        422,
        "unknown_cohort",
    )
    assert "Did you mean 'first-mi'?" in typo["error"]


def test_a_refused_query_stores_no_name(
    http: httpx.Client, make_project: Callable[..., ProjectAccess]
) -> None:
    access = make_project(1.0)
    refused = http.post("/v1/queries", json=_rate(access.id, FIRST_MI, 2.0), headers=access.headers)
    assert_error(refused, 403, "budget_exceeded")
    assert _listed(http, access) == []
    invalid = copy.deepcopy(FIRST_MI)
    invalid["index"]["where"] = [{"column": "lpr.icd1O", "op": "prefix", "value": "I21"}]
    response = http.post("/v1/queries", json=_rate(access.id, invalid), headers=access.headers)
    assert response.status_code == 422, response.text
    assert _listed(http, access) == []


def test_cohorts_belong_to_their_project(
    http: httpx.Client, make_project: Callable[..., ProjectAccess], admin_headers: dict[str, str]
) -> None:
    mine, theirs = make_project(10.0), make_project(10.0)
    assert http.post("/v1/queries", json=_rate(mine.id, FIRST_MI), headers=mine.headers).status_code == 200
    assert_error(
        http.get(f"/v1/projects/{mine.id}/cohorts", headers=theirs.headers), 404, "project_not_found"
    )
    assert_error(http.get(f"/v1/projects/{mine.id}/cohorts"), 401, "unauthorized")
    # Another project neither sees the name nor conflicts with it.
    assert_error(
        http.post("/v1/queries", json=_rate(theirs.id, "first-mi"), headers=theirs.headers),
        422,
        "unknown_cohort",
    )
    other = copy.deepcopy(FIRST_MI)
    other["follow_up_years"] = 2
    assert http.post("/v1/queries", json=_rate(theirs.id, other), headers=theirs.headers).status_code == 200
    # A query of one project cannot reach another project's names (404 before any name is looked up).
    assert_error(
        http.post("/v1/queries", json=_rate(mine.id, "first-mi"), headers=theirs.headers),
        404,
        "project_not_found",
    )
    admin_view = http.get(f"/v1/projects/{mine.id}/cohorts", headers=admin_headers).json()["cohorts"]
    assert [c["definition"]["follow_up_years"] for c in admin_view] == [5]
    assert [c["definition"]["follow_up_years"] for c in _listed(http, theirs)] == [2]
    assert_error(http.get("/v1/projects/no-such-project/cohorts", headers=admin_headers), 404)
