"""Kaplan-Meier from noisy exit-bin histograms: coverage at two horizons, power, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_engine.estimators import NoiseModel, kaplan_meier, median_survival, survival_horizons
from query_engine.estimators.survival import SURVIVAL_DRAWS
from tests.query_engine.estimators.simulate import coverage, survival_table, understated

HAZARD = 0.1
BINS_PER_YEAR = 12
FOLLOW_UP = 5
TIME_END = np.arange(1, BINS_PER_YEAR * FOLLOW_UP + 1) / BINS_PER_YEAR
ONE_YEAR, FIVE_YEARS = BINS_PER_YEAR - 1, BINS_PER_YEAR * FOLLOW_UP - 1
REPETITIONS = 300
DRAWS = SURVIVAL_DRAWS  # what a release uses


def _repeat(seed: int, noise: NoiseModel, model: NoiseModel) -> dict[str, float]:
    """Coverage at 1 and 5 years of each interval (noise → exact KM; the others → true survival)."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[tuple[float, float, float]]] = {"noise": [], "ci": [], "sampling": []}
    for _ in range(REPETITIONS):
        table = survival_table(
            rng,
            persons=1500,
            hazard_per_year=HAZARD,
            bins_per_year=BINS_PER_YEAR,
            follow_up_years=FOLLOW_UP,
            noise=noise,
        )
        curve = kaplan_meier(
            table.noisy_events, table.noisy_censored, TIME_END, noise=model, draws=DRAWS, rng=rng
        )
        exact = table.exact_survival
        for j in (ONE_YEAR, FIVE_YEARS):
            truth = math.exp(-HAZARD * TIME_END[j])
            rows["noise"].append((curve.noise_ci_low[j], curve.noise_ci_high[j], exact[j]))
            rows["ci"].append((curve.ci_low[j], curve.ci_high[j], truth))
            rows["sampling"].append((curve.sampling_ci_low[j], curve.sampling_ci_high[j], truth))
    return {name: coverage(*np.array(values).T) for name, values in rows.items()}


def test_intervals_cover_at_one_and_five_years() -> None:
    noise = NoiseModel("laplace", 2.0)
    measured = _repeat(401, noise, noise)
    assert measured["noise"] >= 0.93
    assert measured["ci"] >= 0.93


@pytest.mark.slow
def test_where_noise_matters_greenwood_alone_and_understated_noise_undercover() -> None:
    noise = NoiseModel("gaussian", 5.0)
    right = _repeat(402, noise, noise)
    wrong = _repeat(402, noise, understated(noise, 1.3))
    assert right["ci"] >= 0.93
    assert right["sampling"] < 0.85  # Greenwood's interval ignores the noise
    assert wrong["noise"] < 0.93  # the coverage check of the right model fails


def test_no_events_keeps_survival_at_one_and_the_median_unreached() -> None:
    noise = NoiseModel("laplace", 1.0)
    curve = kaplan_meier(
        np.zeros(4), np.array([5, 5, 5, 100]), np.arange(1, 5), noise=noise, rng=np.random.default_rng(4)
    )
    assert curve.survival.tolist() == [1.0, 1.0, 1.0, 1.0]
    assert (curve.ci_high == 1.0).all() and (curve.ci_low < 1.0).all() and (curve.ci_low > 0.8).all()
    median = median_survival(curve)
    assert math.isnan(median.median_years) and math.isnan(median.ci_high)


def test_no_one_at_risk_leaves_the_curve_flat() -> None:
    curve = kaplan_meier(
        np.array([10, 0, -3]),
        np.array([0, -2, 1]),
        np.array([1.0, 2.0, 3.0]),
        noise=NoiseModel("laplace", 1.0),
        rng=np.random.default_rng(5),
    )
    assert curve.at_risk.tolist()[1:] == [0.0, 0.0]
    assert curve.survival[1] == curve.survival[2] == curve.survival[0]


def test_median_horizons_and_cumulative_incidence() -> None:
    events = np.array([40, 30, 20, 10])
    censored = np.array([0, 0, 0, 0])
    curve = kaplan_meier(
        events,
        censored,
        np.array([1.0, 2.0, 3.0, 4.0]),
        noise=NoiseModel("laplace", 0.5),
        rng=np.random.default_rng(6),
    )
    # Exact table: 100 at risk, S = 0.6, 0.3, 0.1, 0 (the noise of scale 0.5 may move a cell by one).
    np.testing.assert_allclose(curve.survival, [0.6, 0.3, 0.1, 0.0], atol=0.03)
    median = median_survival(curve)
    assert median.median_years == 2.0
    assert median.ci_low <= 2.0 <= median.ci_high
    horizons = survival_horizons(curve, [0.5, 1, 3, 9])
    assert horizons.survival[0] == 1.0 and horizons.cumulative_incidence[0] == 0.0
    np.testing.assert_allclose(horizons.survival[1:3], curve.survival[[0, 2]])
    np.testing.assert_allclose(horizons.cumulative_incidence[1:3], 1 - curve.survival[[0, 2]])
    np.testing.assert_allclose(horizons.ci_ci_low[1:3], 1 - curve.ci_high[[0, 2]])
    assert math.isnan(horizons.survival[3])  # past the last bin


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-20, 60), st.integers(-20, 60)), min_size=1, max_size=30),
    st.sampled_from([NoiseModel("laplace", 3.0), NoiseModel("gaussian", 3.0)]),
)
def test_any_noisy_table_gives_a_monotone_curve_inside_its_interval(
    cells: list[tuple[int, int]], noise: NoiseModel
) -> None:
    events, censored = np.array(cells, dtype=float).T
    curve = kaplan_meier(
        events,
        censored,
        np.arange(1, len(cells) + 1, dtype=float),
        noise=noise,
        draws=200,
        rng=np.random.default_rng(7),
    )
    assert ((curve.survival >= 0) & (curve.survival <= 1)).all()
    assert (np.diff(curve.survival) <= 1e-12).all()
    assert (curve.events <= curve.at_risk).all() and (curve.events >= 0).all()
    for low, high in [(curve.ci_low, curve.ci_high), (curve.noise_ci_low, curve.noise_ci_high)]:
        assert ((low <= curve.survival + 1e-12) & (curve.survival <= high + 1e-12)).all()
        assert ((low >= 0) & (high <= 1)).all()


def test_bad_tables_are_refused_with_a_sentence() -> None:
    noise = NoiseModel("laplace", 1.0)
    with pytest.raises(ValueError, match="one value per bin"):
        kaplan_meier(np.ones(3), np.ones(2), np.arange(1.0, 4.0), noise=noise)
    with pytest.raises(ValueError, match="must increase"):
        kaplan_meier(np.ones(2), np.ones(2), np.array([2.0, 1.0]), noise=noise)
    with pytest.raises(ValueError, match="finite"):
        kaplan_meier(np.array([1.0, np.nan]), np.ones(2), np.array([1.0, 2.0]), noise=noise)
