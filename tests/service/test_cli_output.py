"""``sundstat admin`` prints readable tables by default and the API's JSON, unchanged, with ``--json``."""

from __future__ import annotations

import json

import pytest

from service.cli import build_parser
from service.cli_output import as_json, as_text

PROJECTS = [
    {
        "id": "diabetes-2026",
        "title": "Diabetes",
        "budget": {"epsilon_total": 1.0, "epsilon_spent": 0.30000000000000004, "delta_total": 1e-06},
        "expires": None,
        "registers": ["cpr", "lpr"],
    },
    {
        "id": "p2",
        "title": "Second",
        "budget": {"epsilon_total": 2.5, "epsilon_spent": 0.0, "delta_total": 0.0},
    },
]


def test_a_list_is_a_table_with_flattened_headers_and_readable_cells() -> None:
    lines = as_text(PROJECTS).splitlines()
    assert lines[0].split() == [
        "id",
        "title",
        "budget.epsilon_total",
        "budget.epsilon_spent",
        "budget.delta_total",
        "expires",
        "registers",
    ]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["diabetes-2026", "Diabetes", "1", "0.3", "1e-6", "-", "cpr,", "lpr"]
    assert lines[3].split() == ["p2", "Second", "2.5", "0", "0", "-", "-"]
    assert "None" not in as_text(PROJECTS) and "{" not in as_text(PROJECTS)


def test_one_object_is_key_value_lines_and_a_token_is_never_shortened() -> None:
    token = "sst_" + "x" * 80
    text = as_text({"id": "tok_1", "token": token, "active": True})
    assert text.splitlines() == ["id      tok_1", f"token   {token}", "active  yes"]


def test_json_is_the_api_answer_unchanged() -> None:
    assert json.loads(as_json(PROJECTS)) == PROJECTS
    assert as_json(PROJECTS) == json.dumps(PROJECTS, indent=2, ensure_ascii=False, default=str)


@pytest.mark.parametrize(
    "flag, expected", [pytest.param([], False, id="table"), pytest.param(["--json"], True, id="json")]
)
def test_every_admin_command_takes_json(flag: list[str], expected: bool) -> None:
    args = build_parser().parse_args(["admin", "list-projects", *flag])
    assert args.json is expected
