"""Prevalence proportions: coverage of the exact and the population proportion, and power."""

from __future__ import annotations

import numpy as np
import pytest

from query_engine.estimators import NoiseModel, proportions
from query_engine.estimators.rates import PIVOT_DRAWS
from tests.query_engine.estimators.simulate import coverage, understated

REPETITIONS = 1200
DRAWS = PIVOT_DRAWS  # what a release uses


def _tables(
    rng: np.random.Generator, persons: int, share: float, noise: NoiseModel
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cases = rng.binomial(persons, share, REPETITIONS)
    noisy_cases = cases + noise.sample(rng, REPETITIONS)
    noisy_non_cases = persons - cases + noise.sample(rng, REPETITIONS)
    return cases / persons, noisy_cases, noisy_non_cases


def test_intervals_cover_the_exact_and_the_population_proportion() -> None:
    rng = np.random.default_rng(201)
    noise = NoiseModel("laplace", 1.0)
    exact, cases, non_cases = _tables(rng, 800, 0.12, noise)
    est = proportions(cases, non_cases, noise=noise, draws=DRAWS, rng=rng)
    assert coverage(est.noise_ci_low, est.noise_ci_high, exact) >= 0.93
    assert coverage(est.ci_low, est.ci_high, 0.12) >= 0.93
    assert coverage(est.ci_low, est.ci_high, exact) >= 0.93


def test_where_noise_matters_ignoring_it_or_understating_it_undercovers() -> None:
    rng = np.random.default_rng(202)
    noise = NoiseModel("gaussian", 10.0)
    exact, cases, non_cases = _tables(rng, 300, 0.2, noise)
    right = proportions(cases, non_cases, noise=noise, draws=DRAWS, rng=rng)
    wrong = proportions(cases, non_cases, noise=understated(noise, 1.3), draws=DRAWS, rng=rng)
    assert coverage(right.noise_ci_low, right.noise_ci_high, exact) >= 0.93
    assert coverage(right.ci_low, right.ci_high, 0.2) >= 0.93
    assert coverage(right.sampling_ci_low, right.sampling_ci_high, 0.2) < 0.85
    assert coverage(wrong.noise_ci_low, wrong.noise_ci_high, exact) < 0.91


def test_empty_and_negative_cells_follow_the_clamping_rule() -> None:
    est = proportions(
        np.array([-3, 0, 40]),
        np.array([-2, 50, -1]),
        noise=NoiseModel("laplace", 2.0),
        rng=np.random.default_rng(3),
    )
    assert est.persons.tolist() == [0.0, 50.0, 40.0]
    assert est.proportion.tolist() == [0.0, 0.0, 1.0]
    assert est.ci_low[0] == 0.0 and est.ci_high[0] == 1.0  # nothing known about an empty cell
    assert est.ci_low[1] == 0.0 and 0 < est.ci_high[1] < 0.3
    assert est.ci_high[2] == 1.0 and 0.7 < est.ci_low[2] < 1.0
    assert ((est.ci_low <= est.proportion) & (est.proportion <= est.ci_high)).all()


def test_mismatched_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per cell"):
        proportions(np.array([1, 2]), np.array([3]), noise=NoiseModel("laplace", 1.0))
