"""Direct age standardisation of noisy age-specific rates, with the crude rate beside it.

The standardised rate of a stratum is Σ_j w_j·e_j/d_j over its age bands j (weights from
``standard_weights``), with events clamped at 0 and person-time at one day per band (the rule of
``rates``).

**Rule for bands the noise swamps** (post-processing of the noisy table only): a band whose noisy
person-time is below ``MIN_TIME_NOISE_SDS`` (3) standard deviations of the time noise is left out of
that stratum, and the weights of the bands kept are rescaled to sum to 1 (``bands_used`` says which).
Without the rule a band with, say, 2 noisy person-days and 1 noisy event has a rate of 500 per
person-day and its weight turns the standardised rate into noise (62 became 4,741,000 per 1,000). The
price is bias: the estimate then standardises to the standard population of the kept bands only,
which differs from the full standardised rate by how much the left-out bands' rates differ from the
kept ones (usually the youngest or oldest bands, with few persons and often the lowest or highest
rates). A stratum with no band kept has no standardised rate (nan). Intervals:

- ``sampling_ci``: the gamma interval of Fay and Feuer (1997) treating the clamped counts as exact;
- ``noise_ci`` and ``ci``: a parametric bootstrap. Each draw recomputes the standardised rate from
  ``max(e_j* + N1, 0) / max(d_j + N2, 1 day)`` with fresh noise N1, N2 from the known noise
  distributions; for ``noise_ci`` e_j* = e_j, for ``ci`` e_j* is a Poisson draw with mean
  ``max(e_j, 0.5)`` (the floor keeps sampling error in bands whose noisy count is 0). The interval is
  the central percentile range of the draws.
- the crude rate of a stratum (all its bands summed) has the intervals of ``incidence_rates``, with
  the noise of a sum simulated as the sum of the bands' noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from query_engine.estimators.intervals import NoiseAwareIntervals, simulation
from query_engine.estimators.noise import NoiseModel
from query_engine.estimators.rates import DAYS_PER_YEAR, MIN_PERSON_DAYS, PIVOT_DRAWS, daily_rate_intervals

_POISSON_MEAN_FLOOR = 0.5
MIN_TIME_NOISE_SDS = 3.0


@dataclass(frozen=True)
class StandardisedRates(NoiseAwareIntervals):
    """Standardised rates per ``per_person_years`` with their three intervals, and the crude rates
    with their ``ci``; one row per stratum."""

    rate: np.ndarray
    crude_rate: np.ndarray
    crude_ci_low: np.ndarray
    crude_ci_high: np.ndarray
    bands_used: np.ndarray  # [stratum, age band] booleans: the bands the rule kept


def direct_standardise(
    events: np.ndarray,
    person_days: np.ndarray,
    weights: np.ndarray,
    *,
    events_noise: NoiseModel,
    time_noise: NoiseModel,
    per_person_years: float = 1000.0,
    confidence: float = 0.95,
    draws: int = PIVOT_DRAWS,
    rng: np.random.Generator | None = None,
) -> StandardisedRates:
    """Directly standardised rates of 2-D [stratum, age band] noisy tables with intervals."""
    sim = simulation(confidence, draws, rng)
    events_obs = np.atleast_2d(np.asarray(events, dtype=float))
    days_obs = np.atleast_2d(np.asarray(person_days, dtype=float))
    w = np.asarray(weights, dtype=float).reshape(-1)
    if events_obs.shape != days_obs.shape or events_obs.shape[1] != w.size:
        raise ValueError(
            f"Events {events_obs.shape}, person-time {days_obs.shape} and weights ({w.size}) must agree: "
            "one row per stratum, one column per age band, one weight per age band."
        )
    if (w < 0).any() or not np.isclose(w.sum(), 1.0):
        raise ValueError("The standard weights must be non-negative and sum to 1; use standard_weights().")
    unit = DAYS_PER_YEAR * per_person_years
    e = np.maximum(events_obs, 0.0)
    d = np.maximum(days_obs, MIN_PERSON_DAYS)
    used = days_obs >= MIN_TIME_NOISE_SDS * np.sqrt(time_noise.variance)
    kept_weight = (w * used).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights_used = np.where(kept_weight > 0, w * used / kept_weight, np.nan)  # [stratum, band]
    rate = (weights_used * e / d).sum(axis=1)

    shape = (*events_obs.shape, sim.draws)
    noise_e = events_noise.sample(sim.rng, shape)
    noise_d = time_noise.sample(sim.rng, shape)
    alpha = 1.0 - confidence

    # The unclamped statistic: noisy events enter as released, so the noise averages out.
    unclamped = np.nansum(weights_used * events_obs / d, axis=1)

    def basic_interval(events_star: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """U − (quantiles of U* − Û): the simulated error of the unclamped statistic, turned around."""
        simulated = (events_star + noise_e) / np.maximum(d[..., None] + noise_d, MIN_PERSON_DAYS)
        error = np.einsum("sj,sjd->sd", weights_used, simulated) - (weights_used * e / d).sum(axis=1)[:, None]
        low_q, high_q = np.quantile(error, [alpha / 2, 1 - alpha / 2], axis=1)
        low, high = np.maximum(unclamped - high_q, 0.0), np.maximum(unclamped - low_q, 0.0)
        return np.minimum(low, rate), np.maximum(high, rate)

    noise_low, noise_high = basic_interval(np.broadcast_to(e[..., None], shape))
    low, high = basic_interval(sim.rng.poisson(np.maximum(e, _POISSON_MEAN_FLOOR)[..., None], shape))
    sampling_low, sampling_high = fay_feuer_interval(e, d, weights_used, confidence)

    crude = daily_rate_intervals(
        events_obs.sum(axis=1),
        days_obs.sum(axis=1),
        noise_e.sum(axis=1),
        noise_d.sum(axis=1),
        rng=sim.rng,
        confidence=confidence,
    )
    return StandardisedRates(
        rate=rate * unit,
        ci_low=low * unit,
        ci_high=high * unit,
        crude_rate=crude.rate * unit,
        crude_ci_low=crude.ci[0] * unit,
        crude_ci_high=crude.ci[1] * unit,
        noise_ci_low=noise_low * unit,
        noise_ci_high=noise_high * unit,
        sampling_ci_low=sampling_low * unit,
        sampling_ci_high=sampling_high * unit,
        bands_used=used,
    )


def fay_feuer_interval(
    events: np.ndarray, days: np.ndarray, weights: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fay and Feuer's gamma interval of Σ w·e/d per row, treating the counts as exact Poisson.

    ``weights`` is one weight per column, or one row of weights per row of ``events``."""
    alpha = 1.0 - confidence
    unit_weights = weights / days
    y = (unit_weights * events).sum(axis=1)
    v = (unit_weights**2 * events).sum(axis=1)
    w_max = unit_weights.max(axis=1)
    positive = v > 0
    safe_v = np.where(positive, v, 1.0)
    safe_y = np.where(positive, y, 1.0)
    low = np.where(positive, safe_v / (2 * safe_y) * stats.chi2.ppf(alpha / 2, 2 * safe_y**2 / safe_v), 0.0)
    high = (
        (v + w_max**2)
        / (2 * (y + w_max))
        * stats.chi2.ppf(1 - alpha / 2, 2 * (y + w_max) ** 2 / (v + w_max**2))
    )
    return low, high
