"""Accuracy: half-widths cover integer noise exactly (checked against exact tails), accuracy-first picks
the smallest loss, and the mean and quantile intervals follow their stated algebra."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import opendp.prelude as dp
import pytest

from query_engine.accuracy import (
    alpha_for,
    calibrate_for_half_width,
    half_width,
    half_width_at_scale,
    mean_interval,
    quantile_rank_error,
    quantile_score_error,
)
from query_engine.calibrate import loss_for_half_width
from query_engine.errors import QueryError, UnsupportedQuery
from query_engine.mechanisms import DPArray, Sensitivity, calibrate, calibrate_quantile, calibrate_scale

SCALES = [0.2, 0.5, 0.9, 1.0, 1.7, 3.3, 10.0, 27.5, 100.0, 333.3, 1000.0]
ALPHAS = [0.2, 0.1, 0.05, 0.025, 0.01, 0.001]


def laplace_tail(k: int, scale: float) -> float:
    """Exact P(|X| >= k) for the discrete Laplace of the given scale."""
    if k <= 0:
        return 1.0
    q = math.exp(-1 / scale)
    return 2 * q**k / (1 + q)


def gaussian_tail(k: int, scale: float) -> float:
    """P(|X| >= k) for the discrete Gaussian, summed over the pmf (relative error ~1e-13)."""
    if k <= 0:
        return 1.0
    support = np.arange(0, int(60 * scale) + 60)
    weights = np.exp(-(support.astype(float) ** 2) / (2 * scale * scale))
    total = weights[0] + 2 * weights[1:].sum()
    return float(2 * weights[k:].sum() / total)


TAILS = {"laplace": laplace_tail, "gaussian": gaussian_tail}


def _clear(p: float, alpha: float) -> bool:
    """Whether p is far enough from alpha for float summation not to decide the comparison."""
    return abs(p - alpha) > 1e-9 * alpha


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
@pytest.mark.parametrize("scale", SCALES)
def test_half_width_covers_integer_noise_and_is_tightest(kind: str, scale: float) -> None:
    tail = TAILS[kind]
    for alpha in ALPHAS:
        a = half_width_at_scale(kind, scale, alpha)  # type: ignore[arg-type]
        miss = tail(a + 1, scale)  # P(|X| > a)
        if _clear(miss, alpha):
            assert miss <= alpha, (kind, scale, alpha, a, miss)
        if a >= 1:
            looser = tail(a, scale)  # P(|X| > a - 1)
            if _clear(looser, alpha):
                assert looser > alpha, (kind, scale, alpha, a, looser)


@pytest.mark.parametrize("scale", [1024.5, 1500.0, 3000.0, 7777.0])
def test_large_gaussian_scales_use_a_bound_at_most_one_unit_wide(scale: float) -> None:
    for alpha in (0.05, 0.01, 0.2):
        a = half_width_at_scale("gaussian", scale, alpha)
        exact = math.ceil(dp.discrete_gaussian_scale_to_accuracy(scale, alpha)) - 1
        assert exact <= a <= exact + 1
        assert gaussian_tail(a + 1, scale) <= alpha


def test_half_width_reads_the_calibration() -> None:
    calibration = calibrate("laplace", Sensitivity.for_contribution(1, 1), epsilon=0.5)
    assert half_width(calibration, 0.05) == half_width_at_scale("laplace", calibration.scale, 0.05)
    with pytest.raises(Exception, match="noisy-max"):
        half_width(calibrate_quantile(1, 1.0, 3, 1), 0.05)


@pytest.mark.parametrize(
    ("confidence", "alpha"), [(0.95, Fraction(1, 20)), (0.9, Fraction(1, 10)), (0.999, Fraction(1, 1000))]
)
def test_alpha_never_exceeds_the_exact_decimal(confidence: float, alpha: Fraction) -> None:
    value = alpha_for(confidence)
    assert Fraction(value) <= alpha
    assert value == pytest.approx(float(alpha), rel=1e-15)
    for bad in (0.0, 1.0, 1.5, math.nan):
        with pytest.raises(QueryError):
            alpha_for(bad)


# --- accuracy-first -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
@pytest.mark.parametrize("target", [0, 1, 2, 5, 17, 100, 2500, 10**6])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("contribution", [(1, 1), (4, 2)])
def test_accuracy_first_picks_the_smallest_loss(
    kind: str, target: int, confidence: float, contribution: tuple[int, int]
) -> None:
    sensitivity = Sensitivity.for_contribution(*contribution)
    calibration = calibrate_for_half_width(kind, sensitivity, target, confidence)  # type: ignore[arg-type]
    alpha = alpha_for(confidence)
    assert half_width(calibration, alpha) <= target
    assert calibration == calibrate_scale(kind, sensitivity, calibration.scale)  # type: ignore[arg-type]
    cheaper = calibration.loss.value * 0.99
    smaller = (
        calibrate("laplace", sensitivity, epsilon=cheaper)
        if kind == "laplace"
        else calibrate("gaussian", sensitivity, rho=cheaper)
    )
    assert half_width(smaller, alpha) > target


def test_accuracy_first_in_value_units_uses_the_resolution() -> None:
    sensitivity = Sensitivity.for_contribution(1, 1, 1000)
    in_units = calibrate_for_half_width("laplace", sensitivity, 25, 0.95)
    in_values = calibrate_for_half_width("laplace", sensitivity, 2.5, 0.95, resolution=0.1)
    assert in_units == in_values
    # 0.3 / 0.1 is 2.9999999999999996 in floats: the target must still be 3 units.
    assert calibrate_for_half_width(
        "laplace", sensitivity, 0.3, 0.95, resolution=0.1
    ) == calibrate_for_half_width("laplace", sensitivity, 3, 0.95)


def test_loss_for_half_width_refuses_mean_and_quantile() -> None:
    sensitivity = Sensitivity.for_contribution(1, 1)
    for measure in ("mean", "quantile"):
        with pytest.raises(UnsupportedQuery, match="private"):
            loss_for_half_width(measure, "laplace", sensitivity, 10.0, 0.95)
    count = loss_for_half_width("count_persons", "gaussian", sensitivity, 10.0, 0.95)
    assert count == calibrate_for_half_width("gaussian", sensitivity, 10.0, 0.95)
    with pytest.raises(QueryError):
        loss_for_half_width("count_rows", "laplace", sensitivity, -1.0, 0.95)


# --- mean interval --------------------------------------------------------------------------------


def _dp(values: list[int]) -> DPArray:
    return np.asarray(values, dtype=np.int64).view(DPArray)


@pytest.fixture(scope="module")
def mean_calibrations() -> tuple:
    sum_calibration = calibrate("laplace", Sensitivity.for_contribution(1, 1, 100), epsilon=0.5)
    count_calibration = calibrate("laplace", Sensitivity.for_contribution(1, 1), epsilon=0.5)
    return sum_calibration, count_calibration


def test_mean_interval_matches_the_ratio_formula(mean_calibrations: tuple) -> None:
    sum_cal, count_cal = mean_calibrations
    a = half_width(sum_cal, 0.025)
    b = half_width(count_cal, 0.025)
    low, high = mean_interval(_dp([400_000]), _dp([10_000]), sum_cal, count_cal, 0.05, (0.0, 100.0), 0.01)
    assert low[0] == pytest.approx((400_000 - a) * 0.01 / (10_000 + b), rel=1e-11)
    assert high[0] == pytest.approx((400_000 + a) * 0.01 / (10_000 - b), rel=1e-11)
    assert low[0] <= (400_000 - a) * 0.01 / (10_000 + b)
    assert high[0] >= (400_000 + a) * 0.01 / (10_000 - b)


def test_mean_interval_with_negative_values(mean_calibrations: tuple) -> None:
    sum_cal, count_cal = mean_calibrations
    a = half_width(sum_cal, 0.025)
    b = half_width(count_cal, 0.025)
    low, high = mean_interval(_dp([-30_000]), _dp([1_000]), sum_cal, count_cal, 0.05, (-100.0, 100.0))
    assert low[0] == pytest.approx((-30_000 - a) / (1_000 - b), rel=1e-11)
    assert high[0] == pytest.approx((-30_000 + a) / (1_000 + b), rel=1e-11)


def test_mean_interval_is_the_bounds_when_the_count_may_be_zero(mean_calibrations: tuple) -> None:
    sum_cal, count_cal = mean_calibrations
    low, high = mean_interval(_dp([50, 10**9]), _dp([1, 3]), sum_cal, count_cal, 0.05, (-5.0, 100.0))
    assert low.tolist() == [-5.0, -5.0] and high.tolist() == [100.0, 100.0]


def test_mean_interval_contains_every_ratio_of_the_box(mean_calibrations: tuple) -> None:
    """Brute force: for any sum and count inside their intervals, the ratio is inside the mean's."""
    sum_cal, count_cal = mean_calibrations
    a = half_width(sum_cal, 0.025)
    b = half_width(count_cal, 0.025)
    grid = np.linspace(-1, 1, 41)
    for s_noisy, c_noisy in [(-3_000, 60), (20, 60), (-10, 45), (5_000, 200), (0, 80)]:
        low, high = mean_interval(_dp([s_noisy]), _dp([c_noisy]), sum_cal, count_cal, 0.05, (-1e9, 1e9))
        for u in grid:
            for v in grid:
                ratio = (s_noisy + u * a) / (c_noisy + v * b)
                assert low[0] <= ratio <= high[0]


# --- quantile rank error --------------------------------------------------------------------------


def test_quantile_score_error_formulas() -> None:
    pure = calibrate_quantile(10, 1.0, 21, 1)
    zcdp = calibrate_quantile(10, None, 21, 1, rho=0.5)
    assert quantile_score_error(pure, 0.05) == pytest.approx(pure.scale * math.log(20 / (2 * 0.05)))
    assert quantile_score_error(zcdp, 0.05) == pytest.approx(zcdp.scale * math.log(20 / 0.05 - 1))
    assert quantile_rank_error(pure, 0.05, 20) == pytest.approx(quantile_score_error(pure, 0.05) / 20)
    assert quantile_score_error(calibrate_quantile(10, 1.0, 1, 1), 0.05) == 0.0
    assert quantile_score_error(pure, 0.01) > quantile_score_error(pure, 0.05)
