"""Quantile selection: OpenDP's noisy max behaves as stated, and the stated rank error covers.

1. Selection probabilities between two candidates match the stated noise (exponential noise for
   pure DP: P(worse wins) = exp(-gap/s)/2; Gumbel noise for zCDP: 1/(1 + exp(gap/s))), and the same
   check rejects selections made at 0.7x and 1.3x the scale.
2. The rank error covers in the worst case for the union bound (every other candidate just worse
   than the bound), and a bound claimed at 0.7x the scale under-covers on its own worst case.
3. On data, through a reference scorer identical to the planner's SQL, the rank error covers.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from query_engine.accuracy import alpha_for, quantile_score_error
from query_engine.mechanisms import (
    NoiseCalibration,
    calibrate_quantile,
    quantile_d_in,
    quantile_fraction,
    select_quantile,
)
from tests.statistical.stat_checks import P_REJECT, binomial_two_sided_p, miss_rate_p

pytestmark = pytest.mark.slow


def _calibration(measure: str, candidates: int, factor: float = 1.0, d_in: int = 1) -> NoiseCalibration:
    """A real calibration with scale 2 * factor * d_in (epsilon 1 or rho 1/8 at factor 1)."""
    if measure == "pure":
        return calibrate_quantile(d_in, 1.0 / factor, candidates, 1)
    return calibrate_quantile(d_in, None, candidates, 1, rho=0.125 / factor**2)


def _selections(calibration: NoiseCalibration, scores: list[int], cells: int) -> np.ndarray:
    matrix = np.tile(np.asarray(scores, dtype=np.uint64), (cells, 1))
    return np.asarray(select_quantile(calibration, matrix))


def _worse_wins(measure: str, gap: float, scale: float) -> float:
    if measure == "pure":
        return math.exp(-gap / scale) / 2
    return 1 / (1 + math.exp(gap / scale))


@pytest.mark.parametrize("measure", ["pure", "zcdp"])
def test_selection_probabilities_match_the_stated_noise(measure: str) -> None:
    cells, wrong_cells = 10_000, 5_000
    calibration = _calibration(measure, 2)
    assert calibration.scale == pytest.approx(2.0, rel=1e-9)
    gap = 5  # gap / scale = 2.5 maximises the power against 0.7x and 1.3x (z > 9 at 5,000 cells)
    expected = _worse_wins(measure, gap, calibration.scale)
    wins = int(_selections(calibration, [0, gap], cells).sum())
    p = binomial_two_sided_p(wins, cells, expected)
    assert p > P_REJECT, (
        f"{measure}: worse candidate won {wins}/{cells}, expected rate {expected:.4f} (p={p:.2e})"
    )
    for factor in (0.7, 1.3):
        wrong = _calibration(measure, 2, factor)
        assert wrong.scale == pytest.approx(2.0 * factor, rel=1e-9)
        wrong_wins = int(_selections(wrong, [0, gap], wrong_cells).sum())
        p_wrong = binomial_two_sided_p(wrong_wins, wrong_cells, expected)
        assert p_wrong < P_REJECT, f"{measure}: a {factor}x scale was not rejected (p={p_wrong:.2e})"


@pytest.mark.parametrize("measure", ["pure", "zcdp"])
def test_rank_error_covers_in_the_worst_case(measure: str) -> None:
    candidates, alpha = 21, alpha_for(0.95)
    calibration = _calibration(measure, candidates, d_in=3)
    bound = quantile_score_error(calibration, alpha)
    # Every other candidate just beyond the bound: the union bound is nearly tight here.
    worst = [0] + [math.floor(bound) + 1] * (candidates - 1)
    cells = 10_000
    misses = int((_selections(calibration, worst, cells) != 0).sum())
    p = miss_rate_p(misses, cells, alpha)
    assert p > P_REJECT, f"{measure}: {misses}/{cells} selections beyond the rank error (p={p:.2e})"

    claimed = quantile_score_error(dataclasses.replace(calibration, scale=calibration.scale * 0.7), alpha)
    assert claimed == pytest.approx(0.7 * bound)
    worst_for_claim = [0] + [math.floor(claimed) + 1] * (candidates - 1)
    selected = _selections(calibration, worst_for_claim, 5_000)
    power_misses = int((selected != 0).sum())
    p_power = miss_rate_p(power_misses, 5_000, alpha)
    assert p_power < P_REJECT, f"{measure}: a 0.7x rank error covered ({power_misses}/5000, p={p_power:.2e})"
    assert math.floor(claimed) + 1 <= bound  # the true bound covers these selections by construction


def reference_scores(data: np.ndarray, candidates: np.ndarray, num: int, den: int) -> np.ndarray:
    """The planner's SQL score: |(den - num) #(x < c) - num #(x > c)| per candidate."""
    ordered = np.sort(data)
    below = np.searchsorted(ordered, candidates, side="left")
    above = len(ordered) - np.searchsorted(ordered, candidates, side="right")
    return np.abs((den - num) * below - num * above).astype(np.uint64)


@pytest.mark.parametrize("measure", ["pure", "zcdp"])
@pytest.mark.parametrize("q", [0.5, 0.9])
def test_rank_error_covers_on_data(measure: str, q: float) -> None:
    index = np.arange(3_001)
    data = np.floor(1000 * (index / 3_000) ** 2)  # skewed, with ties
    grid = np.arange(0, 1001, 50)
    num, den = quantile_fraction(q)
    scores = reference_scores(data, grid, num, den)
    d_in = quantile_d_in(num, den, 1)
    epsilon, rho = 0.005, 0.000005  # noisy enough that the selection often misses the best candidate
    calibration = (
        calibrate_quantile(d_in, epsilon, len(grid), 1)
        if measure == "pure"
        else calibrate_quantile(d_in, None, len(grid), 1, rho=rho)
    )
    alpha = alpha_for(0.95)
    bound = quantile_score_error(calibration, alpha)
    cells = 3_000
    selected = _selections(calibration, scores.tolist(), cells)
    gaps = scores[selected].astype(np.int64) - int(scores.min())
    assert (selected != int(np.argmin(scores))).mean() > 0.02  # the test is not trivial
    misses = int((gaps > bound).sum())
    p = miss_rate_p(misses, cells, alpha)
    assert p > P_REJECT, f"{measure} q={q}: {misses}/{cells} beyond the rank error (p={p:.2e})"
