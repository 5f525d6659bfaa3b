"""docs/sql.md: every worked example parses into the JSON shown under it, and every SQL error code is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from datasets.packaged_catalog import load_packaged_catalog
from query_engine.catalog import Catalog
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from query_engine.sql import errors as sql_errors
from query_engine.sql import sql_to_query
from query_engine.validate import validate

DOC = (Path(__file__).resolve().parents[2] / "docs" / "sql.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"```sql\n(.*?)```\s*```json\n(.*?)```", DOC, flags=re.S)


@pytest.fixture(scope="module")
def packaged() -> Catalog:
    return load_packaged_catalog()


def test_at_least_eight_worked_examples() -> None:
    assert len(EXAMPLES) >= 8
    assert any("A10BA02" in sql and "E11%" in sql and "'F'" in sql for sql, _ in EXAMPLES)


@pytest.mark.parametrize(
    ("sql", "expected"), [pytest.param(s, j, id=f"example_{i + 1}") for i, (s, j) in enumerate(EXAMPLES)]
)
def test_worked_example(sql: str, expected: str, packaged: Catalog) -> None:
    query = sql_to_query(sql, project="p", catalog=packaged, epsilon=1.0)
    body: dict[str, Any] = {"project": "p", "epsilon": 1.0, **json.loads(expected)}
    assert query.canonical() == parse_query(body).canonical()
    if not isinstance(query.cohort, str):  # a named cohort is resolved (and then checked) by the service
        validate(query, packaged, ProjectContext("pure"), EngineSettings())


def test_every_sql_error_code_is_documented() -> None:
    codes = {
        cls.code
        for cls in vars(sql_errors).values()
        if isinstance(cls, type) and issubclass(cls, sql_errors.SqlError)
    }
    assert len(codes) == 10
    for code in codes:
        assert f"`{code}`" in DOC, code
