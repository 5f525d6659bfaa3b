"""``did_you_mean``: the one suggestion helper behind validate, the SQL dialect and applications."""

from __future__ import annotations

import pytest

from query_engine.suggest import did_you_mean


@pytest.mark.parametrize(
    ("word", "choices", "limit", "expected"),
    [
        pytest.param("regoin", ["region", "sex"], 3, " Did you mean 'region'?", id="near"),
        pytest.param("LPR", ["lpr", "cpr"], 1, " Did you mean 'lpr'?", id="case_folded"),
        pytest.param("lpx", ["lpr", "lpq"], 1, " Did you mean 'lpr'?", id="limit_one"),
        pytest.param("lpx", ["lpr", "lpq"], 3, " Did you mean 'lpr' or 'lpq'?", id="two"),
        pytest.param("zzz", ["lpr", "cpr"], 3, "", id="none"),
        pytest.param(2091, [2019, 2020], 3, " Did you mean '2019'?", id="numbers_as_text"),
    ],
)
def test_suggestions(word: object, choices: list[object], limit: int, expected: str) -> None:
    assert did_you_mean(word, choices, limit=limit) == expected
