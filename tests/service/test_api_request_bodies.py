"""How the API reads a request body: JSON with or without a Content-Type, 415 for a form (what
``curl -d`` sends without ``-H``), 400 naming line and column for malformed JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.service.svc_helpers import ProjectAccess


@pytest.fixture(scope="module")
def access(make_project: Callable[..., ProjectAccess]) -> ProjectAccess:
    return make_project(5.0)


def _body(project: str) -> bytes:
    query = {"project": project, "measure": "count_persons", "group_by": ["cpr.region"], "epsilon": 0.5}
    return json.dumps(query).encode()


def test_json_without_content_type_is_read_as_json(http: httpx.Client, access: ProjectAccess) -> None:
    answer = http.post("/v1/queries/preview", content=_body(access.id), headers=access.headers)
    assert "content-type" not in answer.request.headers
    assert answer.status_code == 200, answer.text


def test_a_form_body_gets_415_telling_to_add_the_header(http: httpx.Client, access: ProjectAccess) -> None:
    headers = {**access.headers, "Content-Type": "application/x-www-form-urlencoded"}
    answer = http.post("/v1/queries/preview", content=_body(access.id), headers=headers)
    assert answer.status_code == 415, answer.text
    body = answer.json()
    assert body["code"] == "unsupported_media_type" and body["ok"] is False and body["status"] == 415
    assert "-H 'Content-Type: application/json'" in body["error"]
    assert "application/x-www-form-urlencoded" in body["error"]


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        pytest.param('{"project": "x",\n  "measure": }', 2, 14, id="missing_value_on_line_2"),
        pytest.param('{"project": "x" "measure": 1}', 1, 17, id="missing_comma"),
    ],
)
def test_malformed_json_gets_400_naming_line_and_column(
    http: httpx.Client, access: ProjectAccess, text: str, line: int, column: int
) -> None:
    headers = {**access.headers, "Content-Type": "application/json"}
    answer = http.post("/v1/queries/preview", content=text.encode(), headers=headers)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["code"] == "bad_request"
    assert f"at line {line}, column {column}" in body["error"], body["error"]


def test_valid_json_with_a_bad_field_is_still_422(http: httpx.Client, access: ProjectAccess) -> None:
    answer = http.post(
        "/v1/queries/preview",
        json={"project": access.id, "measure": "count_persons", "epsilon": "much"},
        headers=access.headers,
    )
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_query"
