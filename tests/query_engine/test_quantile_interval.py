"""The quantile value interval: the ends' scores, the lemma the coverage proof rests on, the mapping
of selected bins to values, and what previews and releases state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_engine import Engine, ProjectContext, parse_query
from query_engine import plan as plan_module
from query_engine.errors import EngineInternalError
from query_engine.mechanisms import DPArray, calibrate_quantile, quantile_fraction
from query_engine.plan import Plan, QuantileSpec
from query_engine.quantile_interval import (
    end_scores,
    expected_half_widths,
    interval_shift,
    rank_half_width,
    value_interval,
)

CONTEXT = ProjectContext("pure")


def _below_and_rows(values: list[int], grid: list[int]) -> tuple[np.ndarray, np.ndarray]:
    below = np.array([[sum(x < c for x in values) for c in grid]], dtype=np.int64)
    return below, np.array([len(values)], dtype=np.int64)


def _distance(target: float, low: float, high: float) -> float:
    return max(0.0, low - target, target - high)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.integers(0, 30), min_size=1, max_size=60),
    step=st.integers(1, 4),
    q=st.sampled_from([0.5, 0.25, 0.9, 0.1]),
    shift=st.integers(1, 40),
)
def test_end_scores_are_the_distance_of_the_shifted_rank_and_bad_bins_score_above_the_shift(
    values: list[int], step: int, q: float, shift: int
) -> None:
    grid = list(range(0, 31, step))
    values = [min(v, grid[-1]) for v in values]  # clamped to the last grid point, as in SQL
    num, den = quantile_fraction(q)
    below, rows = _below_and_rows(values, grid)
    lower, upper = end_scores(below, rows, num, den, shift)
    n, m = len(values), len(grid)
    for j in range(m):
        b = int(below[0, j])
        a = int(below[0, j + 1]) if j + 1 < m else n
        low = -np.inf if j == 0 else den * b - num * n
        high = np.inf if j == m - 1 else den * a - num * n
        assert lower[0, j] == _distance(-shift, den * b - num * n if j else -np.inf, den * a - num * n)
        assert upper[0, j] == _distance(shift, low if j else den * b - num * n, high)
    # The lemma of the coverage proof: some bin scores 0, and every bin that would put an end on
    # the wrong side of the quantile range scores at least shift + 1.
    assert lower.min() == 0 and upper.min() == 0
    ordered = sorted(values)
    q_minus = ordered[max(0, -(-num * n // den) - 1)]  # inf{v : #(x <= v) >= qn}
    q_plus = max(
        v for v in range(0, 31) if sum(x < v for x in values) * den <= num * n
    )  # sup{v: #(x<v) <= qn}
    for j, c in enumerate(grid):
        bin_end = grid[j + 1] - 1 if j + 1 < m else grid[-1]
        if c > q_plus:
            assert lower[0, j] >= shift + 1
        if bin_end < q_minus:
            assert upper[0, j] >= shift + 1


def test_end_scores_have_the_point_scores_sensitivity() -> None:
    rng = np.random.default_rng(7)
    grid = list(range(0, 50, 3))
    num, den = quantile_fraction(0.3)
    for _ in range(200):
        values = rng.integers(0, 49, size=int(rng.integers(1, 40))).tolist()
        neighbour = [*values, int(rng.integers(0, 49))]
        scores = [end_scores(*_below_and_rows(v, grid), num, den, 11) for v in (values, neighbour)]
        for before, after in zip(scores[0], scores[1], strict=True):
            assert np.abs(after - before).max() <= max(num, den - num)


def test_end_scores_refuse_a_bad_shape() -> None:
    with pytest.raises(EngineInternalError):
        end_scores(np.zeros(3, dtype=np.int64), np.zeros(1, dtype=np.int64), 1, 2, 5)
    with pytest.raises(EngineInternalError):
        end_scores(np.zeros((1, 3), dtype=np.int64), np.zeros(1, dtype=np.int64), 1, 2, 0)


def _dp(values: list[int]) -> DPArray:
    return np.asarray(values, dtype=np.int64).view(DPArray)


def test_value_interval_maps_bins_to_values_and_contains_the_point() -> None:
    spec = QuantileSpec(level=0.5, numerator=1, denominator=2, lo_units=-10, step_units=5, candidates=5)
    lows, highs = value_interval(spec, 0.5, _dp([2, 1, 4]), _dp([1, 2, 3]), _dp([3, 2, 4]))
    # Bin j of the grid -10 + 5j (units of 0.5) ends one unit before the next candidate; the last at c_4.
    assert lows == [-2.5, -2.5, 2.5]
    assert highs == [4.5, 2.0, 5.0]
    with pytest.raises(EngineInternalError):
        value_interval(spec, 0.5, np.array([1]), _dp([1]), _dp([1]))  # type: ignore[arg-type]


def test_shift_and_expected_widths_follow_the_calibration() -> None:
    end = calibrate_quantile(1, 0.25, 2000, 1)
    shift = interval_shift(end, 0.05)
    assert shift == pytest.approx(end.scale * np.log(1999 / 0.05), abs=1)
    assert rank_half_width(end, 0.05, 2) == shift
    spec = QuantileSpec(level=0.5, numerator=1, denominator=2, lo_units=0, step_units=10, candidates=1001)
    widths = expected_half_widths(spec, end, 0.05, (0.0, 10_000.0), 1.0)
    assert list(widths) == sorted(widths) and widths[10_000] == pytest.approx(shift / 10_000 * 10_000 + 10)
    assert widths[1_000] > widths[10_000] > widths[100_000] > 10


def test_release_and_preview_state_the_value_interval(small_db: Path) -> None:
    query = parse_query(
        {
            "project": "p",
            "measure": "quantile",
            "register": "lpr",
            "column": "los_days",
            "bounds": [0, 60],
            "quantile": 0.5,
            "group_by": ["cpr.region"],
            "epsilon": 2,
        }
    )
    with Engine.open(small_db) as engine:
        preview = engine.preview(query, CONTEXT)
        release = engine.run(query, CONTEXT, cost=engine.cost(query, CONTEXT))
    accuracy = preview.accuracy
    assert accuracy is not None and accuracy.grid_step == 1 and accuracy.expected_half_widths
    assert [p.part for p in preview.loss.loss_split or []] == ["scores", "lower_scores", "upper_scores"]
    assert any("value interval" in note for note in preview.notes)
    assert "grid_step" in release.columns
    for row in release.rows:
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
        assert row["ci_low"] >= 0 and row["ci_high"] <= 60 and row["grid_step"] == 1


def test_the_grid_follows_the_resolution_and_coarsens_for_many_cells(
    small_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def plan_for(group_by: list[str]) -> Plan:
        query = parse_query(
            {
                "project": "p",
                "measure": "quantile",
                "register": "lpr",
                "column": "los_days",
                "group_by": group_by,
                "epsilon": 1,
            }
        )
        with Engine.open(small_db) as engine:
            return engine._prepare(query, CONTEXT).plan

    few = plan_for(["cpr.sex"])
    assert few.quantile is not None and few.quantile.step_units == 1  # [0, 365] days at resolution 1
    # The small catalog has few cells: lower the score cap so that 60 cells must share it.
    monkeypatch.setattr(plan_module, "_MAX_QUANTILE_SCORES", 6_000)
    many = plan_for(["cpr.region", "cpr.age_band"])
    assert many.quantile is not None and many.cells * 366 > 6_000
    assert many.cells * many.quantile.candidates <= 6_000 and many.quantile.step_units > 1
