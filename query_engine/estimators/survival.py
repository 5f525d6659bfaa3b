"""Kaplan-Meier curves from a noisy histogram of (exit bin, event/censored), one group at a time.

Rule for noisy cells (data-independent, monotone by construction): the number at risk at bin k is
the sum of all cells from bin k on, taken from the raw noisy cells (the noise has mean zero, so sums
are unbiased) and clamped at 0; the events of bin k are clamped into [0, at risk]. Persons censored
in a bin count as at risk for that bin's events (the usual Kaplan-Meier convention for ties).

Intervals on the complementary log-log scale L = log(−log S) (Kalbfleisch and Prentice):

- sampling: Greenwood's variance of log S, carried to L by the delta method;
- noise: the variance of log S over curves recomputed from the noisy cells plus fresh noise from the
  known distribution (a parametric bootstrap), carried to L the same way;
- ``ci``: the two variances added. Where the curve is still 1 (no events yet) the interval is
  [exp(−z·sd(log S)), 1]; where it reached 0 it is [0, the upper simulated quantile].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from query_engine.estimators.intervals import NoiseAwareIntervals, simulation
from query_engine.estimators.noise import NoiseModel

_LOG_FLOOR = 1e-10
# Draws of the noise simulation: they estimate a variance (relative error sqrt(2/draws), 6% at 500, so
# about 3% on the noise part of the half-width) and an upper quantile where the curve reaches 0.
SURVIVAL_DRAWS = 500


@dataclass(frozen=True)
class SurvivalCurve(NoiseAwareIntervals):
    """Kaplan-Meier survival at the end of each bin, with noise-aware intervals."""

    time: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    survival: np.ndarray


@dataclass(frozen=True)
class Horizons:
    """Survival and cumulative incidence (1 − survival) at named times."""

    years: np.ndarray
    survival: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    cumulative_incidence: np.ndarray
    ci_ci_low: np.ndarray
    ci_ci_high: np.ndarray


@dataclass(frozen=True)
class MedianSurvival:
    """The median survival time in years (nan where the curve never reaches 1/2)."""

    median_years: float
    ci_low: float
    ci_high: float


def kaplan_meier(
    events: np.ndarray,
    censored: np.ndarray,
    time_end: np.ndarray,
    *,
    noise: NoiseModel,
    confidence: float = 0.95,
    draws: int = SURVIVAL_DRAWS,
    rng: np.random.Generator | None = None,
) -> SurvivalCurve:
    """The Kaplan-Meier curve of one group's noisy (events, censored) counts per exit bin."""
    sim = simulation(confidence, draws, rng)
    d_obs = np.asarray(events, dtype=float).reshape(-1)
    c_obs = np.asarray(censored, dtype=float).reshape(-1)
    times = np.asarray(time_end, dtype=float).reshape(-1)
    if not d_obs.shape == c_obs.shape == times.shape:
        raise ValueError(
            f"Events ({d_obs.size}), censored ({c_obs.size}) and bin ends ({times.size}) must have one value per bin."
        )
    if not (np.isfinite(d_obs).all() and np.isfinite(c_obs).all() and np.isfinite(times).all()):
        raise ValueError("The noisy counts and bin ends must be finite numbers; remove missing cells first.")
    if times.size and (np.diff(times) <= 0).any():
        raise ValueError("The bin ends must increase; pass the bins in time order.")

    at_risk, deaths, survival = _curve(d_obs, c_obs)
    shape = (sim.draws, d_obs.size)
    simulated = _curve(d_obs + noise.sample(sim.rng, shape), c_obs + noise.sample(sim.rng, shape))[2]
    log_simulated = np.log(np.maximum(simulated, _LOG_FLOOR))
    noise_var = log_simulated.var(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(np.where(at_risk > deaths, deaths / (at_risk * (at_risk - deaths)), 0.0))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    upper_simulated = np.quantile(simulated, 0.5 + confidence / 2, axis=0)

    def interval(log_var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _cloglog_interval(survival, log_var, z, upper_simulated)

    low, high = interval(noise_var + greenwood)
    noise_low, noise_high = interval(noise_var)
    sampling_low, sampling_high = interval(greenwood)
    return SurvivalCurve(
        time=times,
        at_risk=at_risk,
        events=deaths,
        survival=survival,
        ci_low=low,
        ci_high=high,
        noise_ci_low=noise_low,
        noise_ci_high=noise_high,
        sampling_ci_low=sampling_low,
        sampling_ci_high=sampling_high,
    )


def survival_horizons(curve: SurvivalCurve, horizons_years: Sequence[float]) -> Horizons:
    """Survival at each horizon: the curve at the last bin ending by then (nan past the last bin)."""
    years = np.asarray(horizons_years, dtype=float).reshape(-1)
    index = np.searchsorted(curve.time, years + 1e-9, side="right") - 1
    past_end = years > (curve.time[-1] if curve.time.size else 0.0) + 1e-9

    def at(values: np.ndarray) -> np.ndarray:
        picked = np.where(index >= 0, values[np.maximum(index, 0)] if values.size else 1.0, 1.0)
        return np.where(past_end, np.nan, picked)

    survival, low, high = at(curve.survival), at(curve.ci_low), at(curve.ci_high)
    return Horizons(years, survival, low, high, 1.0 - survival, 1.0 - high, 1.0 - low)


def median_survival(curve: SurvivalCurve) -> MedianSurvival:
    """The first bin end where survival is at most 1/2; its interval from the interval curves."""

    def first_time(values: np.ndarray) -> float:
        reached = np.flatnonzero(values <= 0.5)
        return float(curve.time[reached[0]]) if reached.size else math.nan

    return MedianSurvival(first_time(curve.survival), first_time(curve.ci_low), first_time(curve.ci_high))


def _curve(events: np.ndarray, censored: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At risk, events and survival of (…, bins) noisy cells by the clamping rule of the module."""
    leaving = events + censored
    at_risk = np.maximum(np.flip(np.cumsum(np.flip(leaving, -1), -1), -1), 0.0)
    cumulative = np.cumsum(events, -1)
    upper = np.maximum.accumulate(cumulative, -1)
    lower = np.flip(np.minimum.accumulate(np.flip(cumulative, -1), -1), -1)
    monotone = np.maximum(0.5 * (upper + lower), 0.0)
    deaths = np.minimum(np.diff(monotone, axis=-1, prepend=0.0), at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, deaths / at_risk, 0.0)
    return at_risk, deaths, np.cumprod(1.0 - hazard, axis=-1)


def _cloglog_interval(
    survival: np.ndarray, log_var: np.ndarray, z: float, upper_simulated: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    inner = (survival > 0) & (survival < 1)
    log_s = np.log(np.where(inner, survival, 0.5))
    sd = np.sqrt(log_var) / np.abs(log_s)
    cloglog = np.log(-log_s)
    low = np.where(inner, np.exp(-np.exp(cloglog + z * sd)), 0.0)
    high = np.where(inner, np.exp(-np.exp(cloglog - z * sd)), 1.0)
    low = np.where(survival >= 1, np.exp(-z * np.sqrt(log_var)), low)
    high = np.where(survival <= 0, upper_simulated, high)
    return low, high
