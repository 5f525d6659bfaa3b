"""A mean's preview half-width at an assumed count bounds the half-width of the interval a release with
that count would carry, whatever the mean inside the declared bounds, and is nearly reached."""

from __future__ import annotations

import numpy as np
import pytest

from query_engine.accuracy import expected_mean_half_width, mean_interval
from query_engine.mechanisms import DPArray, NoiseCalibration, Sensitivity, calibrate

RESOLUTION = 0.01
BOUNDS = (0.0, 100.0)


def _dp(value: float) -> DPArray:
    return np.asarray([round(value)], dtype=np.int64).view(DPArray)


@pytest.fixture(scope="module", params=["laplace", "gaussian"])
def calibrations(request: pytest.FixtureRequest) -> tuple[NoiseCalibration, NoiseCalibration]:
    units = round(BOUNDS[1] / RESOLUTION)
    loss = {"epsilon": 0.5} if request.param == "laplace" else {"rho": 0.125}
    return (
        calibrate(request.param, Sensitivity.for_contribution(1, 1, units), **loss),
        calibrate(request.param, Sensitivity.for_contribution(1, 1), **loss),
    )


def _preview(calibrations: tuple[NoiseCalibration, NoiseCalibration], count: float) -> float:
    sum_cal, count_cal = calibrations
    assert sum_cal.noise is not None and count_cal.noise is not None
    return expected_mean_half_width(
        (sum_cal.noise, sum_cal.scale), (count_cal.noise, count_cal.scale), 0.05, count, BOUNDS, RESOLUTION
    )


@pytest.mark.parametrize("count", [50, 300, 2_000, 40_000])
def test_the_preview_bounds_every_release_at_that_count(
    calibrations: tuple[NoiseCalibration, NoiseCalibration], count: int
) -> None:
    sum_cal, count_cal = calibrations
    promised = _preview(calibrations, count)
    widest = 0.0
    for mean in np.linspace(BOUNDS[0], BOUNDS[1], 21):
        low, high = mean_interval(
            _dp(mean * count / RESOLUTION), _dp(count), sum_cal, count_cal, 0.05, BOUNDS, RESOLUTION
        )
        half = float(high[0] - low[0]) / 2
        assert half <= promised * (1 + 1e-9), (mean, half, promised)
        widest = max(widest, half)
    # Nearly reached near the upper bound (clipping at the bound trims the very top): not a loose bound.
    assert widest >= 0.8 * promised, (widest, promised)


def test_the_preview_narrows_with_the_count_and_is_capped_by_the_bounds(
    calibrations: tuple[NoiseCalibration, NoiseCalibration],
) -> None:
    widths = [_preview(calibrations, n) for n in (1, 10, 100, 1_000, 10_000, 100_000)]
    assert widths == sorted(widths, reverse=True) and widths[-1] < widths[2]
    assert widths[0] == (BOUNDS[1] - BOUNDS[0]) / 2  # the count's interval reaches zero: the bounds
