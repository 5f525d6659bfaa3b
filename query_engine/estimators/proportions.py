"""Proportions (cases among persons) from a noisy histogram of cases and non-cases.

Rule for noisy cells (data-independent): both counts are clamped at 0 for the point estimate; the
proportion of an empty cell (no persons after clamping) is 0. Intervals (see ``pivot``): with
C = cases + N1 and M = non-cases + N2 released, C − p·(C + M) = (c − p·n) + (1 − p)·N1 − p·N2.

- ``noise_ci`` covers the exact proportion c/n of the table (noise alone);
- ``sampling_ci`` is the Wilson score interval treating the clamped counts as exact;
- ``ci`` adds the binomial sampling error (variance n·p(1 − p), n the clamped total) to the noise and
  covers the population's proportion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from query_engine.estimators.intervals import NoiseAwareIntervals, as_pair, simulation
from query_engine.estimators.noise import NoiseModel
from query_engine.estimators.pivot import QuadraticVariance, noise_and_full_intervals
from query_engine.estimators.rates import PIVOT_DRAWS


@dataclass(frozen=True)
class ProportionEstimates(NoiseAwareIntervals):
    """Proportions with their three intervals, one row per cell."""

    persons: np.ndarray
    proportion: np.ndarray


def proportions(
    cases: np.ndarray,
    non_cases: np.ndarray,
    *,
    noise: NoiseModel,
    confidence: float = 0.95,
    draws: int = PIVOT_DRAWS,
    rng: np.random.Generator | None = None,
) -> ProportionEstimates:
    """Proportions cases / (cases + non-cases) with intervals for noise, sampling and both."""
    sim = simulation(confidence, draws, rng)
    cases_obs, non_cases_obs = as_pair(cases, non_cases)
    shape = (cases_obs.size, sim.draws)
    noise_cases = noise.sample(sim.rng, shape)
    noise_persons = noise_cases + noise.sample(sim.rng, shape)
    c = np.maximum(cases_obs, 0.0)
    persons = c + np.maximum(non_cases_obs, 0.0)
    n = np.maximum(persons, 1.0)
    p = np.where(persons > 0, c / n, 0.0)
    (noise_low, noise_high), (low, high) = noise_and_full_intervals(
        cases_obs,
        cases_obs + non_cases_obs,
        p,
        noise_cases,
        noise_persons,
        QuadraticVariance(np.zeros_like(n), n, -n),  # binomial: n·θ(1 − θ)
        lower_bound=0.0,
        upper_bound=1.0,
        confidence=confidence,
        rng=sim.rng,
    )
    wilson_low, wilson_high = wilson_interval(c, persons, confidence)
    return ProportionEstimates(
        persons=persons,
        proportion=p,
        ci_low=low,
        ci_high=high,
        noise_ci_low=noise_low,
        noise_ci_high=noise_high,
        sampling_ci_low=wilson_low,
        sampling_ci_high=wilson_high,
    )


def wilson_interval(
    cases: np.ndarray, persons: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of cases/persons ([0, 1] for an empty cell)."""
    z = stats.norm.ppf(0.5 + confidence / 2)
    n = np.maximum(persons, 1e-12)
    p = cases / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    empty = persons <= 0
    return np.where(empty | (cases <= 0), 0.0, np.maximum(centre - half, 0.0)), np.where(
        empty, 1.0, np.minimum(centre + half, 1.0)
    )
