"""Poisson and logistic regression fitted to a noisy released cross-table (issue 16).

The model is fitted by statsmodels' GLM to the noisy table after a data-independent cleaning rule:

- Poisson (rates): events are clamped at 0, person-time floored at one day, and cells whose noisy
  person-time is not positive are left out (they hold no usable exposure);
- logistic: both outcome counts are clamped at 0 and cells with no persons left are left out.

``naive_ci`` is the GLM's own Wald interval on that table: what an analyst would report if the noisy
table were exact. ``ci`` adds the noise by a parametric bootstrap: each draw simulates a table from
the fitted model (Poisson events around the fitted means; binomial outcomes among the clamped
persons), adds fresh noise from the known noise distribution, applies the same cleaning rule and
refits. The interval is the basic bootstrap interval on the log scale, [2β̂ − q_hi, 2β̂ − q_lo] with
q the draws' quantiles, which also removes the small bias that clamping adds.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM

from query_engine.estimators.design import Design, categorical_design
from query_engine.estimators.intervals import Simulation, as_pair, simulation
from query_engine.estimators.irls import batch_glm
from query_engine.estimators.noise import NoiseModel
from query_engine.estimators.rates import MIN_PERSON_DAYS


@dataclass(frozen=True)
class RegressionResult:
    """One row per model term: the estimate (a ratio or a coefficient) and its two intervals."""

    terms: tuple[str, ...]
    estimate: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    naive_ci_low: np.ndarray
    naive_ci_high: np.ndarray


def poisson_regression(
    covariates: Mapping[str, Sequence[Any] | np.ndarray],
    events: np.ndarray,
    person_days: np.ndarray,
    *,
    events_noise: NoiseModel,
    time_noise: NoiseModel,
    reference: Mapping[str, Hashable] | None = None,
    confidence: float = 0.95,
    draws: int = 500,
    rng: np.random.Generator | None = None,
) -> RegressionResult:
    """Rate ratios of a log-linear Poisson model with a log person-time offset."""
    sim, events_obs, days_obs, design = _prepared(
        covariates, events, person_days, reference, confidence, draws, rng
    )
    include = days_obs > 0
    counts = np.maximum(events_obs, 0.0)
    days = np.maximum(days_obs, MIN_PERSON_DAYS)
    beta, naive = _fit(
        GLM(counts[include], design.matrix[include], family=families.Poisson(), offset=np.log(days[include])),
        confidence,
    )

    fitted_mean = np.where(include, days * np.exp(design.matrix @ beta), 0.0)
    shape = (sim.draws, events_obs.size)
    events_star = sim.rng.poisson(np.broadcast_to(fitted_mean, shape)) + events_noise.sample(sim.rng, shape)
    days_star = np.maximum(days_obs, 0.0) + time_noise.sample(sim.rng, shape)
    include_star = days_star > 0
    beta_star = batch_glm(
        design.matrix,
        np.maximum(events_star, 0.0),
        np.maximum(days_star, MIN_PERSON_DAYS),
        family="poisson",
        include=include_star,
    )
    return _ratio_result(design.terms, beta, beta_star, naive, confidence)


def logistic_regression(
    covariates: Mapping[str, Sequence[Any] | np.ndarray],
    outcome_yes: np.ndarray,
    outcome_no: np.ndarray,
    *,
    noise: NoiseModel,
    reference: Mapping[str, Hashable] | None = None,
    confidence: float = 0.95,
    draws: int = 500,
    rng: np.random.Generator | None = None,
) -> RegressionResult:
    """Odds ratios of a logistic model fitted to noisy (outcome yes, outcome no) counts per cell."""
    sim, yes_obs, no_obs, design = _prepared(
        covariates, outcome_yes, outcome_no, reference, confidence, draws, rng
    )
    yes = np.maximum(yes_obs, 0.0)
    persons = yes + np.maximum(no_obs, 0.0)
    include = persons > 0
    beta, naive = _fit(
        GLM(
            np.column_stack([yes, persons - yes])[include], design.matrix[include], family=families.Binomial()
        ),
        confidence,
    )

    probability = 1.0 / (1.0 + np.exp(-(design.matrix @ beta)))
    shape = (sim.draws, yes_obs.size)
    yes_true = sim.rng.binomial(
        np.broadcast_to(persons.astype(np.int64), shape), np.broadcast_to(probability, shape)
    )
    yes_star = np.maximum(yes_true + noise.sample(sim.rng, shape), 0.0)
    no_star = np.maximum(persons - yes_true + noise.sample(sim.rng, shape), 0.0)
    persons_star = yes_star + no_star
    beta_star = batch_glm(design.matrix, yes_star, persons_star, family="binomial", include=persons_star > 0)
    return _ratio_result(design.terms, beta, beta_star, naive, confidence)


def _prepared(
    covariates: Mapping[str, Sequence[Any] | np.ndarray],
    first: np.ndarray,
    second: np.ndarray,
    reference: Mapping[str, Hashable] | None,
    confidence: float,
    draws: int,
    rng: np.random.Generator | None,
) -> tuple[Simulation, np.ndarray, np.ndarray, Design]:
    """The checked simulation set-up, the two noisy count arrays and the design matrix of a model."""
    sim = simulation(confidence, draws, rng)
    first_obs, second_obs = as_pair(first, second)
    return sim, first_obs, second_obs, categorical_design(covariates, first_obs.size, reference)


def _fit(model: GLM, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The fitted coefficients of a GLM and their Wald intervals at ``confidence`` ([terms, 2])."""
    fit = model.fit()
    return np.asarray(fit.params, dtype=float), np.asarray(fit.conf_int(alpha=1 - confidence), dtype=float)


def _ratio_result(
    terms: tuple[str, ...], beta: np.ndarray, beta_star: np.ndarray, naive: np.ndarray, confidence: float
) -> RegressionResult:
    """Ratios exp(β) of the non-intercept terms with basic bootstrap and naive intervals."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    centre = 2 * beta - beta_star.mean(axis=0)
    spread = z * beta_star.std(axis=0, ddof=1)
    low, high = centre - spread, centre + spread
    return RegressionResult(
        terms=terms,
        estimate=np.exp(beta[1:]),
        ci_low=np.exp(low[1:]),
        ci_high=np.exp(high[1:]),
        naive_ci_low=np.exp(naive[1:, 0]),
        naive_ci_high=np.exp(naive[1:, 1]),
    )
