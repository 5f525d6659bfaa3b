"""Standard populations and direct standardisation: weights, coverage and power."""

from __future__ import annotations

import numpy as np
import pytest

from query_engine.estimators import NoiseModel, direct_standardise, known_populations, standard_weights
from query_engine.estimators.rates import PIVOT_DRAWS
from tests.query_engine.estimators.simulate import DAYS_PER_YEAR, coverage, understated

TEN_YEAR = ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90+"]
FIVE_YEAR = [f"{a}-{a + 4}" for a in range(0, 95, 5)] + ["95+"]
# Eurostat 2013, Annex F, per 100,000 persons: 0-4, 5-9, ..., 90-94, 95+.
ESP2013 = [5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000]
ESP2013 += [7000, 6500, 6000, 5500, 5000, 4000, 2500, 1500, 800, 200]

BANDS = ["40-49", "50-59", "60-69", "70-79", "80-89"]
RATES_PER_1000 = np.array([1.0, 3.0, 8.0, 20.0, 50.0])
PERSON_YEARS = np.array([8000.0, 7000.0, 5500.0, 3300.0, 1100.0])
REPETITIONS = 1000
DRAWS = PIVOT_DRAWS  # what a release uses


def test_esp2013_is_shipped_in_five_and_ten_year_bands() -> None:
    assert "esp2013" in known_populations()
    np.testing.assert_allclose(standard_weights("esp2013", FIVE_YEAR), np.array(ESP2013) / 100_000)
    ten = standard_weights("esp2013", TEN_YEAR)
    np.testing.assert_allclose(
        ten * 100_000, [a + b for a, b in zip(ESP2013[::2], ESP2013[1::2], strict=True)]
    )
    part = standard_weights("esp2013", ["60-69", "70-79"])
    assert part.sum() == pytest.approx(1.0)
    assert part[0] / part[1] == pytest.approx(11_500 / 9_000)


def test_an_unknown_population_or_band_is_refused_with_a_sentence() -> None:
    with pytest.raises(
        ValueError, match="Unknown standard population 'who2000'; the known populations are: esp2013"
    ):
        standard_weights("who2000", TEN_YEAR)
    with pytest.raises(ValueError, match="does not line up"):
        standard_weights("esp2013", ["0-3"])
    with pytest.raises(ValueError, match="Cannot read the age band"):
        standard_weights("esp2013", ["young"])


def _tables(
    rng: np.random.Generator, events_noise: NoiseModel, time_noise: NoiseModel
) -> tuple[np.ndarray, ...]:
    days = PERSON_YEARS * DAYS_PER_YEAR
    events = rng.poisson(RATES_PER_1000 / 1000 / DAYS_PER_YEAR * days, (REPETITIONS, len(BANDS)))
    noisy_events = events + events_noise.sample(rng, events.shape)
    noisy_days = days + time_noise.sample(rng, events.shape)
    return events, days, noisy_events, noisy_days


def test_standardised_and_crude_intervals_cover_and_understated_noise_fails() -> None:
    rng = np.random.default_rng(301)
    weights = standard_weights("esp2013", BANDS)
    events_noise, time_noise = NoiseModel("laplace", 8.0), NoiseModel("laplace", 3652.0)
    events, days, noisy_events, noisy_days = _tables(rng, events_noise, time_noise)
    right = direct_standardise(
        noisy_events,
        noisy_days,
        weights,
        events_noise=events_noise,
        time_noise=time_noise,
        draws=DRAWS,
        rng=rng,
    )
    wrong = direct_standardise(
        noisy_events,
        noisy_days,
        weights,
        events_noise=understated(events_noise, 1.3),
        time_noise=understated(time_noise, 1.3),
        draws=DRAWS,
        rng=rng,
    )
    unit = 1000 * DAYS_PER_YEAR
    exact = (weights * events / days).sum(axis=1) * unit
    population = float((weights * RATES_PER_1000).sum())
    crude_population = float((RATES_PER_1000 * PERSON_YEARS).sum() / PERSON_YEARS.sum())
    assert coverage(right.noise_ci_low, right.noise_ci_high, exact) >= 0.93
    assert coverage(right.ci_low, right.ci_high, population) >= 0.93
    assert coverage(right.crude_ci_low, right.crude_ci_high, crude_population) >= 0.93
    assert coverage(right.sampling_ci_low, right.sampling_ci_high, population) < 0.85
    assert coverage(wrong.noise_ci_low, wrong.noise_ci_high, exact) < 0.91


def test_shapes_and_weights_are_checked() -> None:
    noise = NoiseModel("laplace", 1.0)
    with pytest.raises(ValueError, match="one weight per age band"):
        direct_standardise(
            np.ones((2, 3)), np.ones((2, 3)), np.array([0.5, 0.5]), events_noise=noise, time_noise=noise
        )
    with pytest.raises(ValueError, match="sum to 1"):
        direct_standardise(
            np.ones((1, 2)), np.ones((1, 2)), np.array([0.5, 0.6]), events_noise=noise, time_noise=noise
        )


# A small cohort: the oldest bands hold a few person-years, less than the time noise (sd 14 years).
SMALL_PERSON_YEARS = np.array([400.0, 300.0, 200.0, 60.0, 8.0])


def test_small_cohorts_leave_out_swamped_bands_and_the_intervals_still_cover() -> None:
    rng = np.random.default_rng(303)
    weights = standard_weights("esp2013", BANDS)
    events_noise, time_noise = NoiseModel("laplace", 2.0), NoiseModel("laplace", 3652.0)
    days = SMALL_PERSON_YEARS * DAYS_PER_YEAR
    events = rng.poisson(RATES_PER_1000 / 1000 / DAYS_PER_YEAR * days, (REPETITIONS, len(BANDS)))
    noisy_events = events + events_noise.sample(rng, events.shape)
    noisy_days = days + time_noise.sample(rng, events.shape)
    result = direct_standardise(
        noisy_events, noisy_days, weights, events_noise=events_noise, time_noise=time_noise, rng=rng
    )
    unit = 1000 * DAYS_PER_YEAR
    kept = np.where(result.bands_used, weights, 0.0)
    kept /= kept.sum(axis=1, keepdims=True)
    population = (kept * RATES_PER_1000).sum(axis=1)  # the estimand: the kept bands' standard population
    exact = (kept * events / days).sum(axis=1) * unit
    assert result.bands_used[:, -1].mean() < 0.05 and result.bands_used[:, :3].all()
    assert coverage(result.ci_low, result.ci_high, population) >= 0.93
    assert coverage(result.noise_ci_low, result.noise_ci_high, exact) >= 0.93
    # Without the rule the swamped bands explode the estimate; with it, it stays near the truth.
    truth = float((weights * RATES_PER_1000).sum())
    unruled = (weights * np.maximum(noisy_events, 0) / np.maximum(noisy_days, 1.0)).sum(axis=1) * unit
    assert np.percentile(unruled, 99) > 100 * truth
    assert np.percentile(result.rate, 99) < 5 * truth


def test_the_band_rule_uses_only_the_noisy_person_time_and_the_noise_scale() -> None:
    noise = NoiseModel("laplace", 100.0)  # sd 141 days: the threshold is 3 sd, about 424 days
    events = np.array([[10.0, 20.0, 5.0], [1.0, 1.0, 1.0]])
    days = np.array([[10_000.0, 20_000.0, 300.0], [300.0, -50.0, 420.0]])
    weights = np.array([0.5, 0.3, 0.2])
    result = direct_standardise(events, days, weights, events_noise=noise, time_noise=noise, rng=None)
    assert result.bands_used.tolist() == [[True, True, False], [False, False, False]]
    assert result.rate[0] == pytest.approx(
        (0.5 * 10 / 10_000 + 0.3 * 20 / 20_000) / 0.8 * 1000 * DAYS_PER_YEAR
    )
    assert np.isnan(result.rate[1]) and np.isnan(result.ci_low[1]) and np.isnan(result.ci_high[1])
    assert np.isfinite(result.crude_rate).all()
