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

from query_engine.estimators.noise import NoiseModel
from query_engine.estimators.pivot import PivotDraws, QuadraticVariance, ratio_interval
from query_engine.estimators.rates import PIVOT_DRAWS, _as_pair, _check_confidence, _positive_draws


@dataclass(frozen=True)
class ProportionEstimates:
    """Proportions with their three intervals, one row per cell."""

    persons: np.ndarray
    proportion: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    noise_ci_low: np.ndarray
    noise_ci_high: np.ndarray
    sampling_ci_low: np.ndarray
    sampling_ci_high: np.ndarray


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
    _check_confidence(confidence)
    cases_obs, non_cases_obs = _as_pair(cases, non_cases)
    rng = rng if rng is not None else np.random.default_rng()
    shape = (cases_obs.size, _positive_draws(draws))
    noise_cases = noise.sample(rng, shape)
    noise_persons = noise_cases + noise.sample(rng, shape)
    c = np.maximum(cases_obs, 0.0)
    persons = c + np.maximum(non_cases_obs, 0.0)
    n = np.maximum(persons, 1.0)
    p = np.where(persons > 0, c / n, 0.0)
    binomial_variance = QuadraticVariance(np.zeros_like(n), n, -n)  # n·θ(1 − θ)

    def interval(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ratio_interval(
            cases_obs,
            cases_obs + non_cases_obs,
            p,
            PivotDraws(noise_cases, noise_persons, normal),
            binomial_variance,
            lower_bound=0.0,
            upper_bound=1.0,
            confidence=confidence,
        )

    noise_low, noise_high = interval(np.zeros(shape))
    low, high = interval(rng.standard_normal(shape))
    wilson_low, wilson_high = wilson_interval(c, persons, confidence)
    return ProportionEstimates(persons, p, low, high, noise_low, noise_high, wilson_low, wilson_high)


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
