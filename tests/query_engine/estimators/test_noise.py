"""The numpy noise samplers follow the discrete Laplace and discrete Gaussian laws (with power)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from query_engine.estimators import NoiseModel

DRAWS = 200_000


def _pmf(kind: str, scale: float, support: np.ndarray) -> np.ndarray:
    log_mass = -np.abs(support) / scale if kind == "laplace" else -(support**2) / (2 * scale * scale)
    mass = np.exp(log_mass)
    return mass / mass.sum()


def _goodness_of_fit(sample: np.ndarray, kind: str, scale: float) -> float:
    """Chi-square p-value of the sample against the law's probability mass (tails pooled)."""
    support = np.arange(-int(60 * scale) - 5, int(60 * scale) + 6)
    expected = _pmf(kind, scale, support) * sample.size
    keep = expected >= 20
    inner = support[keep]
    observed = np.array([(sample == k).sum() for k in inner], dtype=float)
    observed = np.append(observed, sample.size - observed.sum())
    expected = np.append(expected[keep], sample.size - expected[keep].sum())
    return float(stats.chisquare(observed, expected).pvalue)


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
@pytest.mark.parametrize("scale", [0.7, 3.0])
def test_samples_follow_the_law_and_a_wrong_scale_is_detected(kind: str, scale: float) -> None:
    sample = NoiseModel(kind, scale).sample(np.random.default_rng(501), DRAWS)  # type: ignore[arg-type]
    assert sample.dtype == np.int64
    assert _goodness_of_fit(sample, kind, scale) > 1e-3
    assert _goodness_of_fit(sample, kind, scale * 1.1) < 1e-6
    assert sample.var() == pytest.approx(NoiseModel(kind, scale).variance, rel=0.03)  # type: ignore[arg-type]


def test_large_scales_have_the_stated_variance() -> None:
    rng = np.random.default_rng(502)
    for model in (NoiseModel("laplace", 3652.0), NoiseModel("gaussian", 20_000.0)):
        assert model.sample(rng, DRAWS).var() == pytest.approx(model.variance, rel=0.03)


def test_scale_zero_is_no_noise_and_bad_models_are_refused() -> None:
    assert (NoiseModel("gaussian", 0.0).sample(np.random.default_rng(1), (3, 4)) == 0).all()
    with pytest.raises(ValueError, match="Unknown noise kind"):
        NoiseModel("cauchy", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite number >= 0"):
        NoiseModel("laplace", -1.0)
