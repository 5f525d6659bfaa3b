"""Warnings about groupings that are valid but nest the same variable twice (issue 13 item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from query_engine.catalog import Catalog
from query_engine.engine import Engine
from query_engine.spec import ProjectContext, parse_query
from query_engine.validate import group_warnings

PURE = ProjectContext("pure")


def _query(*groups: str) -> dict[str, object]:
    return {"project": "p", "measure": "count_persons", "group_by": list(groups), "epsilon": 0.5}


@pytest.mark.parametrize(
    "groups, expected",
    [
        pytest.param(("cpr.region", "cpr.sex"), 0, id="different_variables"),
        pytest.param(("cpr.age_band", "cpr.age_band_5"), 1, id="two_age_bands"),
        pytest.param(("cpr.age_band_5", "cpr.sex", "cpr.birth_year"), 1, id="age_band_and_birth_year"),
    ],
)
def test_nested_groupings_of_one_variable_are_named(
    catalog: Catalog, groups: tuple[str, ...], expected: int
) -> None:
    warnings = group_warnings(parse_query(_query(*groups)), catalog)
    assert len(warnings) == expected
    if expected:
        assert warnings[0].startswith(f"{groups[0]} and {groups[-1]} group by the same variable twice")
        assert "cpr.birth_date" in warnings[0]


def test_preview_and_release_carry_the_warning(small_db: Path) -> None:
    engine = Engine.open(small_db)
    try:
        query = parse_query(_query("cpr.age_band", "cpr.age_band_5"))
        preview = engine.preview(query, PURE)
        release = engine.run(query, PURE)
        plain = engine.preview(parse_query(_query("cpr.region")), PURE)
    finally:
        engine.close()
    assert preview.warnings == release.warnings
    assert "cpr.age_band and cpr.age_band_5 group by the same variable twice" in preview.warnings[0]
    assert plain.warnings == []
    assert "warnings" in preview.model_dump() and "warnings" in release.model_dump()
