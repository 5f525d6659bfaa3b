"""Simulated exact tables with a known truth, and their noisy releases, for the estimator tests.

Each helper draws the exact table from a stated model, adds discrete noise of a known scale with
numpy (as the engine adds OpenDP noise of that scale), and returns both, so a test knows the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from query_engine.estimators import NoiseModel

DAYS_PER_YEAR = 365.25


def coverage(low: np.ndarray, high: np.ndarray, truth: np.ndarray | float) -> float:
    """The share of rows whose interval [low, high] holds the truth."""
    return float(np.mean((low <= truth) & (truth <= high)))


def understated(noise: NoiseModel, factor: float) -> NoiseModel:
    """The same noise with its scale divided by ``factor`` (a model that understates the noise)."""
    return NoiseModel(noise.kind, noise.scale / factor)


@dataclass(frozen=True)
class RateTables:
    """Independent tables (one per row) of events and person-days with a known population rate."""

    rate_per_1000: float
    exact_events: np.ndarray
    exact_days: np.ndarray
    noisy_events: np.ndarray
    noisy_days: np.ndarray

    @property
    def exact_rate_per_1000(self) -> np.ndarray:
        return self.exact_events / self.exact_days * DAYS_PER_YEAR * 1000


def rate_tables(
    rng: np.random.Generator,
    repetitions: int,
    *,
    rate_per_1000: float,
    person_years: float,
    events_noise: NoiseModel,
    time_noise: NoiseModel,
) -> RateTables:
    """Poisson events over a fixed person-time, each row released with fresh noise."""
    days = np.full(repetitions, person_years * DAYS_PER_YEAR)
    events = rng.poisson(rate_per_1000 / 1000 / DAYS_PER_YEAR * days)
    return RateTables(
        rate_per_1000,
        events.astype(float),
        days,
        events + events_noise.sample(rng, repetitions),
        days + time_noise.sample(rng, repetitions),
    )


@dataclass(frozen=True)
class SurvivalTable:
    """One group's exact and noisy (events, censored) counts per exit bin."""

    exact_events: np.ndarray
    exact_censored: np.ndarray
    noisy_events: np.ndarray
    noisy_censored: np.ndarray

    @property
    def exact_survival(self) -> np.ndarray:
        """The Kaplan-Meier curve of the exact table (the non-private estimate)."""
        at_risk = np.cumsum((self.exact_events + self.exact_censored)[::-1])[::-1]
        hazard = np.divide(self.exact_events, at_risk, out=np.zeros(at_risk.shape), where=at_risk > 0)
        return np.cumprod(1.0 - hazard)


def survival_table(
    rng: np.random.Generator,
    *,
    persons: int,
    hazard_per_year: float,
    bins_per_year: int,
    follow_up_years: int,
    noise: NoiseModel,
) -> SurvivalTable:
    """Exponential survival with uniform censoring over 0-10 years and administrative end of follow-up."""
    bins = bins_per_year * follow_up_years
    event_time = rng.exponential(1 / hazard_per_year, persons)
    censor_time = np.minimum(rng.uniform(0, 10, persons), follow_up_years)
    exit_time = np.minimum(event_time, censor_time)
    is_event = event_time <= censor_time
    exit_bin = np.clip(np.ceil(exit_time * bins_per_year).astype(int), 1, bins) - 1
    events = np.bincount(exit_bin[is_event], minlength=bins)
    censored = np.bincount(exit_bin[~is_event], minlength=bins)
    return SurvivalTable(
        events, censored, events + noise.sample(rng, bins), censored + noise.sample(rng, bins)
    )
