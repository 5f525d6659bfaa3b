"""Poisson, logistic and linear regression on noisy tables: fits, cleaning rule, coverage, power."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM

from query_engine.estimators import (
    NoiseModel,
    NoisyMoments,
    RegressionResult,
    linear_regression,
    logistic_regression,
    poisson_regression,
)
from query_engine.estimators.design import categorical_design
from query_engine.estimators.irls import batch_glm
from tests.query_engine.estimators.simulate import DAYS_PER_YEAR, understated

SEX = np.repeat(["F", "M"], 8)
AGE = np.tile(np.repeat(["50-59", "60-69", "70-79", "80-89"], 2), 2)
EXPOSURE = np.tile(["0", "1"], 8)
COVARIATES = {"sex": SEX, "age": AGE, "exposure": EXPOSURE}
DESIGN = categorical_design(COVARIATES, 16)
PERSON_DAYS = np.tile(np.repeat([4e6, 3e6, 2e6, 8e5], 2), 2) * np.tile([0.7, 0.3], 8)
RATE_BETA = np.array([np.log(5 / 1000 / DAYS_PER_YEAR), 0.4, 0.7, 1.4, 2.1, 0.3])
ODDS_BETA = np.array([-2.0, 0.4, 0.5, 1.0, 1.5, 0.3])
PERSONS = np.tile(np.repeat([800, 600, 400, 200], 2), 2)
REPETITIONS = 250
DRAWS = 300


def _pooled(results: list[RegressionResult], truth: np.ndarray) -> dict[str, float]:
    """Coverage of the truth by each interval, pooled over the terms and the repetitions."""
    ci = np.mean([(r.ci_low <= truth) & (truth <= r.ci_high) for r in results])
    naive = np.mean([(r.naive_ci_low <= truth) & (truth <= r.naive_ci_high) for r in results])
    return {"ci": float(ci), "naive": float(naive)}


def test_the_design_is_treatment_coded_with_named_terms() -> None:
    assert DESIGN.terms == ("sex=M", "age=60-69", "age=70-79", "age=80-89", "exposure=1")
    assert DESIGN.matrix.shape == (16, 6)
    recoded = categorical_design(COVARIATES, 16, {"age": "80-89"})
    assert recoded.terms[1:4] == ("age=50-59", "age=60-69", "age=70-79")
    with pytest.raises(ValueError, match="not among its labels"):
        categorical_design(COVARIATES, 16, {"sex": "X"})
    with pytest.raises(ValueError, match="one label per cell"):
        categorical_design({"sex": ["F", "M"]}, 3)
    with pytest.raises(ValueError, match="at most four covariates"):
        categorical_design({name: ["a"] for name in "abcde"}, 1)


def test_the_batched_fits_equal_statsmodels() -> None:
    rng = np.random.default_rng(601)
    events = rng.poisson(PERSON_DAYS * np.exp(DESIGN.matrix @ RATE_BETA), (3, 16)).astype(float)
    batch = batch_glm(
        DESIGN.matrix,
        events,
        np.broadcast_to(PERSON_DAYS, (3, 16)),
        family="poisson",
        include=np.ones((3, 16), bool),
    )
    for row in range(3):
        fit = GLM(events[row], DESIGN.matrix, family=families.Poisson(), offset=np.log(PERSON_DAYS)).fit()
        np.testing.assert_allclose(batch[row], fit.params, atol=1e-6)
    yes = rng.binomial(PERSONS, 1 / (1 + np.exp(-(DESIGN.matrix @ ODDS_BETA))), (3, 16)).astype(float)
    batch = batch_glm(
        DESIGN.matrix,
        yes,
        np.broadcast_to(PERSONS, (3, 16)).astype(float),
        family="binomial",
        include=np.ones((3, 16), bool),
    )
    for row in range(3):
        fit = GLM(
            np.column_stack([yes[row], PERSONS - yes[row]]), DESIGN.matrix, family=families.Binomial()
        ).fit()
        np.testing.assert_allclose(batch[row], fit.params, atol=1e-6)


def test_a_cell_far_above_its_share_does_not_derail_the_batched_fit() -> None:
    """A bootstrap draw that once made X'WX singular: one cell left out and one with 50 times its share
    of the events. From a common starting rate the first step overshot to e^50; the fit must equal
    statsmodels'."""
    design = categorical_design({"sex": ["F", "F", "M", "M"], "period": ["a", "b", "a", "b"]}, 4).matrix
    events = np.array([[25.0, 49.0, 24.0, 81.0]])
    days = np.array([[431_481.0, 1.0, 367_921.0, 9_435.0]])
    include = np.array([[True, False, True, True]])
    batch = batch_glm(design, events, days, family="poisson", include=include)
    kept = include[0]
    fit = GLM(events[0, kept], design[kept], family=families.Poisson(), offset=np.log(days[0, kept])).fit()
    np.testing.assert_allclose(batch[0], fit.params, atol=1e-6)


def test_a_release_whose_noise_once_broke_the_bootstrap_is_fitted() -> None:
    """The noisy table and bootstrap seed on which a model release raised LinAlgError (found by the
    model coverage test): the release now has finite intervals around its estimate."""
    result = poisson_regression(
        {"sex": ["F", "F", "M", "M"], "period": ["a", "b", "a", "b"]},
        np.array([-12, 60, 73, 25]),
        np.array([504_276, 84_455, 380_096, 235_719]),
        events_noise=NoiseModel("laplace", 20.0),
        time_noise=NoiseModel("laplace", 36_520.0),
        draws=400,
        rng=np.random.default_rng(155),
    )
    assert np.all(np.isfinite(result.ci_low)) and np.all(np.isfinite(result.ci_high))
    assert np.all(result.ci_low <= result.estimate) and np.all(result.estimate <= result.ci_high)


def test_cells_with_non_positive_person_time_are_left_out() -> None:
    rng = np.random.default_rng(602)
    events = rng.poisson(PERSON_DAYS * np.exp(DESIGN.matrix @ RATE_BETA)).astype(float)
    days = PERSON_DAYS.copy()
    days[3] = -10.0  # a noisy cell with no usable exposure
    events[3] = 7.0
    noise = NoiseModel("laplace", 0.0)
    result = poisson_regression(
        COVARIATES, events, days, events_noise=noise, time_noise=noise, draws=100, rng=rng
    )
    keep = np.arange(16) != 3
    fit = GLM(events[keep], DESIGN.matrix[keep], family=families.Poisson(), offset=np.log(days[keep])).fit()
    np.testing.assert_allclose(result.estimate, np.exp(fit.params[1:]), rtol=1e-8)
    assert result.terms == DESIGN.terms


@pytest.mark.slow
def test_rate_ratio_intervals_cover_and_ignoring_or_halving_the_noise_fails() -> None:
    rng = np.random.default_rng(603)
    events_noise, time_noise = NoiseModel("gaussian", 8.0), NoiseModel("gaussian", 20_000.0)
    right: list[RegressionResult] = []
    halved: list[RegressionResult] = []
    for _ in range(REPETITIONS):
        events = rng.poisson(PERSON_DAYS * np.exp(DESIGN.matrix @ RATE_BETA))
        noisy_events = events + events_noise.sample(rng, 16)
        noisy_days = PERSON_DAYS + time_noise.sample(rng, 16)
        for models, out in (
            ((events_noise, time_noise), right),
            ((understated(events_noise, 2), understated(time_noise, 2)), halved),
        ):
            out.append(
                poisson_regression(
                    COVARIATES,
                    noisy_events,
                    noisy_days,
                    events_noise=models[0],
                    time_noise=models[1],
                    draws=DRAWS,
                    rng=rng,
                )
            )
    truth = np.exp(RATE_BETA[1:])
    measured, wrong = _pooled(right, truth), _pooled(halved, truth)
    assert measured["ci"] >= 0.93
    assert measured["naive"] < 0.88
    assert wrong["ci"] < 0.91


@pytest.mark.slow
def test_odds_ratio_intervals_cover_and_ignoring_or_halving_the_noise_fails() -> None:
    rng = np.random.default_rng(604)
    noise = NoiseModel("gaussian", 12.0)
    right: list[RegressionResult] = []
    halved: list[RegressionResult] = []
    for _ in range(REPETITIONS):
        yes = rng.binomial(PERSONS, 1 / (1 + np.exp(-(DESIGN.matrix @ ODDS_BETA))))
        noisy_yes, noisy_no = yes + noise.sample(rng, 16), PERSONS - yes + noise.sample(rng, 16)
        for model, out in ((noise, right), (understated(noise, 2), halved)):
            out.append(
                logistic_regression(COVARIATES, noisy_yes, noisy_no, noise=model, draws=DRAWS, rng=rng)
            )
    truth = np.exp(ODDS_BETA[1:])
    measured, wrong = _pooled(right, truth), _pooled(halved, truth)
    assert measured["ci"] >= 0.93
    assert measured["naive"] < 0.88
    assert wrong["ci"] < 0.91


def _moments(
    rng: np.random.Generator, persons: int, scales: tuple[float, float, float]
) -> tuple[NoisyMoments, np.ndarray]:
    """Moments of y = 1 + 2·x1 − 0.5·x2 + N(0, 1) (y clamped to [−5, 8]) with Gaussian noise."""
    x1 = rng.uniform(0, 1, persons)
    x2 = rng.binomial(1, 0.4, persons)
    y = np.clip(1 + 2 * x1 - 0.5 * x2 + rng.normal(0, 1, persons), -5, 8)
    x = np.column_stack([np.ones(persons), x1, x2])
    xtx_scale, xty_scale, yty_scale = scales
    gaussian = NoiseModel("gaussian", xtx_scale)
    upper = np.triu(gaussian.sample(rng, (3, 3)))
    noisy_xtx = x.T @ x + upper + np.triu(upper, 1).T
    moments = NoisyMoments(
        terms=("intercept", "x1", "x2"),
        xtx=noisy_xtx,
        xty=x.T @ y + NoiseModel("gaussian", xty_scale).sample(rng, 3),
        yty=float(y @ y + NoiseModel("gaussian", yty_scale).sample(rng, 1)[0]),
        count=float(persons + gaussian.sample(rng, 1)[0]),
        kind="gaussian",
        xtx_scale=np.full((3, 3), xtx_scale),
        xty_scale=np.full(3, xty_scale),
        yty_scale=yty_scale,
        count_scale=xtx_scale,
    )
    return moments, np.linalg.solve(x.T @ x, x.T @ y)


def test_linear_coefficients_cover_and_ignoring_or_halving_the_noise_fails() -> None:
    rng = np.random.default_rng(605)
    truth = np.array([1.0, 2.0, -0.5])
    right: list[RegressionResult] = []
    halved: list[RegressionResult] = []
    exact_hits: list[np.ndarray] = []
    for _ in range(400):
        moments, exact = _moments(rng, 5000, (5.0, 40.0, 300.0))
        result = linear_regression(moments, rng=rng)
        right.append(result)
        exact_hits.append((result.ci_low <= exact) & (exact <= result.ci_high))
        understated_moments = NoisyMoments(
            **{**moments.__dict__, "xtx_scale": moments.xtx_scale / 2, "xty_scale": moments.xty_scale / 2}
        )
        halved.append(linear_regression(understated_moments, rng=rng))
    measured, wrong = _pooled(right, truth), _pooled(halved, truth)
    assert measured["ci"] >= 0.93
    assert float(np.mean(exact_hits)) >= 0.93
    assert measured["naive"] < 0.85
    assert wrong["ci"] < 0.91


def test_linear_moments_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="need X'X and its scales"):
        NoisyMoments(
            ("intercept", "x"), np.eye(3), np.ones(2), 1.0, 1.0, "gaussian", np.eye(2), np.ones(2), 1.0, 1.0
        )
