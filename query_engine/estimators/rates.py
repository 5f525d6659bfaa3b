"""Incidence rates (events per person-time) from noisy events and noisy person-time.

Rules for noisy cells (data-independent): events are clamped at 0 and person-time at
``MIN_PERSON_DAYS`` (one day) for the point estimate. Intervals (see ``pivot``):

- ``noise_ci``: the rates consistent with the noisy pair given the known noise alone; it covers the
  exact (noise-free) rate of the table with the stated confidence.
- ``sampling_ci``: the exact Poisson (Garwood) interval treating the clamped counts as exact, i.e. the
  interval an analyst would state without privacy.
- ``ci``: both at once (Poisson sampling as a normal score term, plus the simulated noise); it covers
  the underlying rate of the population.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from query_engine.estimators.intervals import NoiseAwareIntervals, as_pair, check_confidence, simulation
from query_engine.estimators.noise import NoiseModel
from query_engine.estimators.pivot import QuadraticVariance, noise_and_full_intervals

DAYS_PER_YEAR = 365.25
MIN_PERSON_DAYS = 1.0
# Draws of the interval simulations of rates, proportions and standardised rates: the ends of a
# 95% interval then carry a Monte Carlo error of about 0.085 noise sd (docs/analyses.md, "Speed").
PIVOT_DRAWS = 1000


@dataclass(frozen=True)
class RateEstimates(NoiseAwareIntervals):
    """Rates per ``per_person_years`` person-years with their three intervals, one row per cell."""

    person_years: np.ndarray
    rate: np.ndarray


@dataclass(frozen=True)
class DailyRateIntervals:
    """Rates per person-day and their intervals (the unit-free core of ``RateEstimates``)."""

    events: np.ndarray
    person_days: np.ndarray
    rate: np.ndarray
    ci: tuple[np.ndarray, np.ndarray]
    noise_ci: tuple[np.ndarray, np.ndarray]
    sampling_ci: tuple[np.ndarray, np.ndarray]


def incidence_rates(
    events: np.ndarray,
    person_days: np.ndarray,
    *,
    events_noise: NoiseModel,
    time_noise: NoiseModel,
    per_person_years: float = 1000.0,
    confidence: float = 0.95,
    draws: int = PIVOT_DRAWS,
    rng: np.random.Generator | None = None,
) -> RateEstimates:
    """Rates per ``per_person_years`` with intervals for noise, sampling and both."""
    sim = simulation(confidence, draws, rng)
    events_obs, days_obs = as_pair(events, person_days)
    shape = (events_obs.size, sim.draws)
    daily = daily_rate_intervals(
        events_obs,
        days_obs,
        events_noise.sample(sim.rng, shape),
        time_noise.sample(sim.rng, shape),
        rng=sim.rng,
        confidence=confidence,
    )
    unit = DAYS_PER_YEAR * per_person_years
    return RateEstimates(
        person_years=daily.person_days / DAYS_PER_YEAR,
        rate=daily.rate * unit,
        ci_low=daily.ci[0] * unit,
        ci_high=daily.ci[1] * unit,
        noise_ci_low=daily.noise_ci[0] * unit,
        noise_ci_high=daily.noise_ci[1] * unit,
        sampling_ci_low=daily.sampling_ci[0] * unit,
        sampling_ci_high=daily.sampling_ci[1] * unit,
    )


def daily_rate_intervals(
    events_obs: np.ndarray,
    days_obs: np.ndarray,
    events_noise_draws: np.ndarray,
    time_noise_draws: np.ndarray,
    *,
    rng: np.random.Generator,
    confidence: float,
) -> DailyRateIntervals:
    """Rates per person-day of noisy (events, days) rows, given draws of each row's noise."""
    check_confidence(confidence)
    events = np.maximum(events_obs, 0.0)
    days = np.maximum(days_obs, MIN_PERSON_DAYS)
    rate = events / days
    zero = np.zeros_like(days)
    noise_ci, full_ci = noise_and_full_intervals(
        events_obs,
        days_obs,
        rate,
        events_noise_draws,
        time_noise_draws,
        QuadraticVariance(zero, days, zero),  # Poisson: θ·days
        lower_bound=0.0,
        upper_bound=np.inf,
        confidence=confidence,
        rng=rng,
    )
    return DailyRateIntervals(
        events, days, rate, full_ci, noise_ci, garwood_interval(events, days, confidence)
    )


def garwood_interval(
    events: np.ndarray, days: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """The exact Poisson interval of events/days (events rounded to whole counts)."""
    alpha = 1.0 - confidence
    k = np.round(events)
    low = np.where(k > 0, stats.chi2.ppf(alpha / 2, 2 * np.maximum(k, 1)) / 2, 0.0)
    high = stats.chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2
    return low / days, high / days
