"""Against a real server: the minimum loss per query and strict numbers on the query routes.

Bodies are sent as raw JSON text, so that NaN, 1e400 and quoted numbers reach the server as a
client could send them. Every such value is a 422 in the one error body, never a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.service.svc_helpers import ERROR_KEYS, ProjectAccess

COUNT = '"measure": "count_persons", "group_by": ["cpr.region"]'
SUM = '"measure": "sum", "register": "lpr", "column": "los_days", "group_by": ["cpr.region"]'

# (id, JSON fields after the project, expected code)
CASES = [
    ("epsilon_string", f'{COUNT}, "epsilon": "0.1"', "invalid_query"),
    ("epsilon_true", f'{COUNT}, "epsilon": true', "invalid_query"),
    ("epsilon_nan", f'{COUNT}, "epsilon": NaN', "invalid_query"),
    ("epsilon_infinity", f'{COUNT}, "epsilon": Infinity', "invalid_query"),
    ("epsilon_1e400", f'{COUNT}, "epsilon": 1e400', "invalid_query"),
    ("epsilon_big_integer", f'{COUNT}, "epsilon": {10**400}', "invalid_query"),
    ("epsilon_1e-300", f'{COUNT}, "epsilon": 1e-300', "loss_too_small"),
    ("epsilon_1e-310", f'{COUNT}, "epsilon": 1e-310', "loss_too_small"),
    ("epsilon_5e-324", f'{COUNT}, "epsilon": 5e-324', "loss_too_small"),
    ("epsilon_0.009", f'{COUNT}, "epsilon": 0.009', "loss_too_small"),
    ("epsilon_zero", f'{COUNT}, "epsilon": 0', "loss_out_of_range"),
    ("epsilon_1e300", f'{COUNT}, "epsilon": 1e300', "loss_out_of_range"),
    ("target_ci_string", f'{COUNT}, "target_ci": "5"', "invalid_query"),
    ("target_ci_negative", f'{COUNT}, "target_ci": -1', "loss_out_of_range"),
    ("confidence_false", f'{COUNT}, "epsilon": 1, "confidence": false', "invalid_query"),
    ("confidence_one", f'{COUNT}, "epsilon": 1, "confidence": 1', "invalid_query"),
    ("confidence_string", f'{COUNT}, "epsilon": 1, "confidence": "0.9"', "invalid_query"),
    ("bounds_strings", f'{SUM}, "epsilon": 1, "bounds": ["0", "10"]', "invalid_query"),
    ("bounds_nan", f'{SUM}, "epsilon": 1, "bounds": [0, NaN]', "invalid_query"),
    ("bounds_huge", f'{SUM}, "epsilon": 1, "bounds": [-1e308, 1e308]', "invalid_bounds"),
    ("max_rows_true", f'{SUM}, "epsilon": 1, "max_rows": true', "invalid_query"),
]


@pytest.fixture(scope="module")
def project(make_project: Callable[..., ProjectAccess]) -> ProjectAccess:
    return make_project(5.0, prefix="limits")


def _post(http: httpx.Client, path: str, project: ProjectAccess, fields: str) -> httpx.Response:
    text = f'{{"project": "{project.id}", {fields}}}'
    headers = {**project.headers, "Content-Type": "application/json"}
    return http.post(path, content=text.encode(), headers=headers)


def _spent(http: httpx.Client, project: ProjectAccess) -> Any:
    response = http.get(f"/v1/projects/{project.id}/budget", headers=project.headers)
    assert response.status_code == 200, response.text
    return response.json()["epsilon_spent"]


@pytest.mark.parametrize(("fields", "code"), [pytest.param(f, c, id=i) for i, f, c in CASES])
def test_bad_numbers_are_a_422_naming_the_problem(
    http: httpx.Client, project: ProjectAccess, fields: str, code: str
) -> None:
    before = _spent(http, project)
    for path in ("/v1/queries/preview", "/v1/queries"):
        response = _post(http, path, project, fields)
        assert response.status_code == 422, (path, response.text)
        body = response.json()
        assert set(body) == ERROR_KEYS and body["code"] == code, body
        if code == "loss_too_small":
            assert "minimum per query, 0.01" in body["error"]
    assert _spent(http, project) == before


@pytest.mark.parametrize(
    ("loss", "code"),
    [
        ('"epsilon": "0.1"', "invalid_query"),
        ('"epsilon": 1e-310', "loss_too_small"),
        ('"epsilon": NaN', "invalid_query"),
        ('"epsilon": 1, "confidence": true', "invalid_query"),
    ],
)
def test_the_sql_routes_are_as_strict(
    http: httpx.Client, project: ProjectAccess, loss: str, code: str
) -> None:
    fields = f'"sql": "SELECT region, COUNT(DISTINCT person_id) FROM cpr GROUP BY region", {loss}'
    response = _post(http, "/v1/sql/preview", project, fields)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


def test_a_wide_target_ci_is_charged_the_minimum(http: httpx.Client, project: ProjectAccess) -> None:
    response = _post(http, "/v1/queries/preview", project, f'{COUNT}, "target_ci": 1e300')
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["loss"]["epsilon"] == pytest.approx(0.01, rel=1e-6)
    assert preview["expected_half_width"] <= 1e300
