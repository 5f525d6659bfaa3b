"""Estimators of the analyses: pure post-processing of a noisy released table (DESIGN.md §8).

Functions take numpy arrays of noisy counts and the known ``NoiseModel`` of the release, and return
frozen dataclasses of numpy arrays in the order of the input. They import only numpy, scipy,
statsmodels and the standard library (an import-linter contract checks this), so a client can rerun
them on a downloaded release. The random draws of the interval simulations come from the
``numpy.random.Generator`` passed in; they are never privacy noise.
"""

from query_engine.estimators.moments import NoisyMoments, linear_regression
from query_engine.estimators.noise import NoiseModel
from query_engine.estimators.proportions import ProportionEstimates, proportions
from query_engine.estimators.rates import RateEstimates, incidence_rates
from query_engine.estimators.regression import RegressionResult, logistic_regression, poisson_regression
from query_engine.estimators.standard_populations import known_populations, standard_weights
from query_engine.estimators.standardise import StandardisedRates, direct_standardise
from query_engine.estimators.survival import (
    Horizons,
    MedianSurvival,
    SurvivalCurve,
    kaplan_meier,
    median_survival,
    survival_horizons,
)

__all__ = [
    "Horizons",
    "MedianSurvival",
    "SurvivalCurve",
    "kaplan_meier",
    "median_survival",
    "survival_horizons",
    "NoiseModel",
    "NoisyMoments",
    "RegressionResult",
    "linear_regression",
    "logistic_regression",
    "poisson_regression",
    "ProportionEstimates",
    "RateEstimates",
    "StandardisedRates",
    "direct_standardise",
    "incidence_rates",
    "known_populations",
    "proportions",
    "standard_weights",
]
