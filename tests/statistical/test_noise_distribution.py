"""Released values follow the stated mechanism and scale, and the same check rejects wrong scales.

Noise is read back as (released - exact) on a large vector and compared by chi-square with the exact
discrete Laplace / discrete Gaussian pmf at the calibration's stated scale. Each test then draws from
a calibration at 0.7x and 1.3x the scale (a real OpenDP measurement at that scale) and asserts that
the same check rejects it. No seed is set: OpenDP's samplers cannot be seeded.
"""

from __future__ import annotations

import numpy as np
import pytest

from query_engine.mechanisms import (
    NoiseCalibration,
    Sensitivity,
    add_noise,
    calibrate,
    calibrate_scale,
    calibrate_threshold,
    release_threshold,
)
from tests.statistical.stat_checks import P_REJECT, chi_square_p, exact_pmf

pytestmark = pytest.mark.slow

CELLS = 100_000
WRONG_CELLS = 10_000  # chi-square non-centrality ~1000 against a critical value ~150


def _noise(calibration: NoiseCalibration, cells: int) -> np.ndarray:
    exact = (np.arange(cells, dtype=np.int64) % 977) * 1_000_003 - 50_000_000
    return np.asarray(add_noise(calibration, exact)) - exact


CASES = [
    pytest.param("laplace", Sensitivity.for_contribution(1, 1), {"epsilon": 0.3}, id="laplace_count"),
    pytest.param("laplace", Sensitivity.for_contribution(3, 2, 500), {"epsilon": 2.0}, id="laplace_sum"),
    pytest.param("gaussian", Sensitivity.for_contribution(1, 1), {"rho": 0.05}, id="gaussian_count"),
    pytest.param("gaussian", Sensitivity.for_contribution(3, 2, 500), {"rho": 0.5}, id="gaussian_sum"),
]


@pytest.mark.parametrize(("kind", "sensitivity", "loss"), CASES)
def test_noise_matches_the_stated_distribution_and_rejects_wrong_scales(
    kind: str, sensitivity: Sensitivity, loss: dict[str, float]
) -> None:
    calibration = calibrate(kind, sensitivity, **loss)  # type: ignore[arg-type]
    support, probs = exact_pmf(kind, calibration.scale)
    p = chi_square_p(_noise(calibration, CELLS), support, probs)
    assert p > P_REJECT, f"{kind} noise at scale {calibration.scale} does not match its pmf (p={p:.2e})"
    for factor in (0.7, 1.3):
        wrong = calibrate_scale(kind, sensitivity, calibration.scale * factor)  # type: ignore[arg-type]
        p_wrong = chi_square_p(_noise(wrong, WRONG_CELLS), support, probs)
        assert p_wrong < P_REJECT, f"the check did not reject a {factor}x scale (p={p_wrong:.2e})"


@pytest.mark.parametrize(
    ("kind", "loss"), [pytest.param("laplace", {"epsilon": 0.5}), pytest.param("gaussian", {"rho": 0.1})]
)
def test_partition_selection_noise_matches_and_rejects_wrong_scales(
    kind: str, loss: dict[str, float]
) -> None:
    sensitivity = Sensitivity.for_contribution(1, 1)
    calibration = calibrate_threshold(kind, sensitivity, delta=1e-7, **loss)  # type: ignore[arg-type]
    support, probs = exact_pmf(kind, calibration.scale)

    def noise(cal: NoiseCalibration, keys: int) -> np.ndarray:
        names = [f"k{i:06d}" for i in range(keys)]
        exact = np.full(keys, 1_000_000, dtype=np.int64)  # far above the threshold: every key is kept
        kept, noisy = release_threshold(cal, names, exact)
        assert len(kept) == keys
        return np.asarray(noisy) - 1_000_000

    p = chi_square_p(noise(calibration, 30_000), support, probs)
    assert p > P_REJECT, f"thresholded {kind} noise does not match its pmf (p={p:.2e})"
    for factor in (0.7, 1.3):
        # A real calibration whose scale is factor x the stated one: the loss target scales by 1/factor.
        wrong_loss = {name: value / factor ** (1 if kind == "laplace" else 2) for name, value in loss.items()}
        wrong = calibrate_threshold(kind, sensitivity, delta=1e-7, **wrong_loss)  # type: ignore[arg-type]
        assert wrong.scale == pytest.approx(calibration.scale * factor, rel=1e-9)
        p_wrong = chi_square_p(noise(wrong, 8_000), support, probs)
        assert p_wrong < P_REJECT, f"the check did not reject a {factor}x scale (p={p_wrong:.2e})"
