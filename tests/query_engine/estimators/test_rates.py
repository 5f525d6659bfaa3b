"""Incidence rates: coverage of the exact and the population rate, and the tests' own power."""

from __future__ import annotations

import numpy as np
import pytest

from query_engine.estimators import NoiseModel, RateEstimates, incidence_rates
from query_engine.estimators.rates import PIVOT_DRAWS
from tests.query_engine.estimators.simulate import RateTables, coverage, rate_tables, understated

REPETITIONS = 1500
DRAWS = PIVOT_DRAWS  # what a release uses
# ε = 1 split evenly: events (sensitivity 1) and person-time (sensitivity T = 1826 days) at ε = 1/2.
EVENTS_NOISE = NoiseModel("laplace", 2.0)
TIME_NOISE = NoiseModel("laplace", 3652.0)
Noise = tuple[NoiseModel, NoiseModel]  # events, person-time


def _tables(rng: np.random.Generator, rate_per_1000: float, person_years: float, noise: Noise) -> RateTables:
    """``REPETITIONS`` cohorts at the population rate, with noisy events and person-time."""
    events_noise, time_noise = noise
    return rate_tables(
        rng,
        REPETITIONS,
        rate_per_1000=rate_per_1000,
        person_years=person_years,
        events_noise=events_noise,
        time_noise=time_noise,
    )


def _rates(tables: RateTables, noise: Noise, rng: np.random.Generator) -> RateEstimates:
    """The release's rates and intervals from the noisy tables, assuming ``noise`` (maybe understated)."""
    events_noise, time_noise = noise
    return incidence_rates(
        tables.noisy_events,
        tables.noisy_days,
        events_noise=events_noise,
        time_noise=time_noise,
        draws=DRAWS,
        rng=rng,
    )


def test_intervals_cover_the_exact_and_the_population_rate() -> None:
    rng = np.random.default_rng(101)
    tables = _tables(rng, 5.0, 10_000, (EVENTS_NOISE, TIME_NOISE))
    est = _rates(tables, (EVENTS_NOISE, TIME_NOISE), rng)
    assert coverage(est.noise_ci_low, est.noise_ci_high, tables.exact_rate_per_1000) >= 0.93
    assert coverage(est.ci_low, est.ci_high, tables.rate_per_1000) >= 0.93
    assert coverage(est.ci_low, est.ci_high, tables.exact_rate_per_1000) >= 0.93
    assert np.median(np.abs(est.rate / tables.exact_rate_per_1000 - 1)) < 0.05


def test_where_noise_matters_ignoring_it_or_understating_it_undercovers() -> None:
    """Noise sd about twice the Poisson sd: the naive and the 1.3-understated intervals fail."""
    rng = np.random.default_rng(102)
    events_noise = NoiseModel("gaussian", 12.0)
    time_noise = NoiseModel("gaussian", 20_000.0)
    tables = _tables(rng, 5.0, 10_000, (events_noise, time_noise))
    right = _rates(tables, (events_noise, time_noise), rng)
    wrong = _rates(tables, (understated(events_noise, 1.3), understated(time_noise, 1.3)), rng)
    exact, population = tables.exact_rate_per_1000, tables.rate_per_1000
    assert coverage(right.noise_ci_low, right.noise_ci_high, exact) >= 0.93
    assert coverage(right.ci_low, right.ci_high, population) >= 0.93
    assert coverage(right.sampling_ci_low, right.sampling_ci_high, population) < 0.85
    assert coverage(wrong.noise_ci_low, wrong.noise_ci_high, exact) < 0.91
    assert coverage(wrong.ci_low, wrong.ci_high, population) < 0.93


def test_zero_and_negative_noisy_events_give_rate_zero_with_a_positive_upper_end() -> None:
    est = incidence_rates(
        np.array([0, -4]),
        np.array([365_250.0, 365_250.0]),
        events_noise=EVENTS_NOISE,
        time_noise=TIME_NOISE,
        rng=np.random.default_rng(1),
    )
    assert est.rate.tolist() == [0.0, 0.0]
    assert (est.ci_low == 0).all() and (est.noise_ci_low == 0).all() and (est.sampling_ci_low == 0).all()
    assert (est.ci_high > 0).all() and (est.ci_high < 50).all()
    assert est.sampling_ci_high[0] == pytest.approx(
        3.689, abs=0.01
    )  # exact Poisson upper end for 0 of 1000 PY


def test_non_positive_noisy_person_time_is_floored_and_the_interval_is_unbounded() -> None:
    est = incidence_rates(
        np.array([12]),
        np.array([-500.0]),
        events_noise=EVENTS_NOISE,
        time_noise=TIME_NOISE,
        rng=np.random.default_rng(2),
    )
    assert est.person_years[0] == pytest.approx(1 / 365.25)
    assert np.isinf(est.ci_high[0]) and np.isinf(est.noise_ci_high[0])
    assert est.ci_low[0] > 0


def test_without_noise_the_noise_interval_is_the_exact_rate() -> None:
    zero = NoiseModel("laplace", 0.0)
    est = incidence_rates(
        np.array([30]), np.array([3_652_500.0]), events_noise=zero, time_noise=zero, rng=None
    )
    assert est.rate[0] == pytest.approx(3.0)
    assert est.noise_ci_low[0] == pytest.approx(3.0, rel=1e-4)
    assert est.noise_ci_high[0] == pytest.approx(3.0, rel=1e-4)


def test_bad_inputs_are_refused_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        incidence_rates(np.array([1, 2]), np.array([1.0]), events_noise=EVENTS_NOISE, time_noise=TIME_NOISE)
    with pytest.raises(ValueError, match="confidence"):
        incidence_rates(
            np.array([1]), np.array([1.0]), events_noise=EVENTS_NOISE, time_noise=TIME_NOISE, confidence=1.0
        )
    with pytest.raises(ValueError, match="finite"):
        incidence_rates(np.array([np.nan]), np.array([1.0]), events_noise=EVENTS_NOISE, time_noise=TIME_NOISE)


def test_small_cohorts_at_tiny_epsilon_cover_and_flag_their_unbounded_intervals() -> None:
    """ε = 0.1 on 500 person-years: the time noise (sd 141 years) can make the person-time 0."""
    rng = np.random.default_rng(104)
    events_noise, time_noise = NoiseModel("laplace", 20.0), NoiseModel("laplace", 36_520.0)
    tables = _tables(rng, 20.0, 500, (events_noise, time_noise))
    est = _rates(tables, (events_noise, time_noise), rng)
    unbounded = np.isinf(est.ci_high)
    assert 0.01 < unbounded.mean() < 0.5  # the regime where it matters
    assert np.isfinite(est.ci_low).all() and (est.ci_low >= 0).all()
    assert coverage(est.ci_low, est.ci_high, tables.rate_per_1000) >= 0.93
    assert coverage(est.noise_ci_low, est.noise_ci_high, tables.exact_rate_per_1000) >= 0.93
    wrong = _rates(tables, (understated(events_noise, 1.3), understated(time_noise, 1.3)), rng)
    assert coverage(wrong.noise_ci_low, wrong.noise_ci_high, tables.exact_rate_per_1000) < 0.93
