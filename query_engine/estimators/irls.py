"""Maximum likelihood fits of Poisson and binomial GLMs (log and logit links) for many tables at once.

Iteratively reweighted least squares vectorised over the rows of a batch, with a shared design
matrix. Used for the refits of the parametric bootstrap (hundreds per analysis), where a loop of
statsmodels fits would dominate the run time; the single fit on the released table is statsmodels'
and a test checks that both agree.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

_ITERATIONS = 30
_RIDGE = 1e-8  # keeps X'WX invertible when a level has no weight in a draw
_ETA_LIMIT = 30.0


def batch_glm(
    design: np.ndarray,
    response: np.ndarray,
    exposure: np.ndarray,
    *,
    family: Literal["poisson", "binomial"],
    include: np.ndarray,
) -> np.ndarray:
    """Coefficients [batch, columns] of the GLM of ``response`` on ``design`` for each batch row.

    Poisson: counts with mean exposure·exp(Xβ) (exposure = person-time). Binomial: successes out of
    ``exposure`` trials with probability expit(Xβ). Cells with ``include`` False get no weight.

    The iterations start from each cell's own observed mean, pulled towards the row's (as statsmodels
    starts), not from one common rate: from there a cell whose count is 50 times its share would make
    the first step overshoot by e^50, and the weights of the next could no longer be told apart in
    floating point (a singular X'WX).
    """
    columns = design.shape[1]
    ridge = _RIDGE * np.eye(columns)
    eta, mean = _start(family, response, exposure, include)
    beta = np.zeros((response.shape[0], columns))
    for _ in range(_ITERATIONS):
        # d mean / d eta: the mean itself for the log link, n·p·(1-p) for the logit link.
        slope = mean if family == "poisson" else mean * (1.0 - mean / np.maximum(exposure, 1e-300))
        weight = np.where(include, slope, 0.0)
        # X'W z with the working response z = eta + (y - mean) / weight, written without the division.
        weighted_working = np.where(include, weight * eta + (response - mean), 0.0)
        xtwx = np.einsum("ci,bc,cj->bij", design, weight, design) + ridge
        xtwz = np.einsum("ci,bc->bi", design, weighted_working)
        beta = np.linalg.solve(xtwx, xtwz[..., None])[..., 0]
        eta = np.clip(beta @ design.T, -_ETA_LIMIT, _ETA_LIMIT)
        mean = _mean(family, exposure, eta)
    return beta


def _mean(family: Literal["poisson", "binomial"], exposure: np.ndarray, eta: np.ndarray) -> np.ndarray:
    if family == "poisson":
        return exposure * np.exp(eta)
    return exposure / (1.0 + np.exp(-eta))


def _start(
    family: Literal["poisson", "binomial"], response: np.ndarray, exposure: np.ndarray, include: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The first linear predictor and mean: Poisson, halfway between each cell's count and the row's
    mean count; binomial, (y + 1/2) / (n + 1), as statsmodels starts its fits."""
    if family == "poisson":
        included = np.maximum(include.sum(1, keepdims=True), 1)
        row_mean = (response * include).sum(1, keepdims=True) / included
        mean = np.maximum((response + row_mean) / 2.0, 0.5)  # never log(0), even for an empty row
        eta = np.clip(np.log(mean / np.maximum(exposure, 1e-300)), -_ETA_LIMIT, _ETA_LIMIT)
        return eta, _mean(family, exposure, eta)
    share = np.clip((response + 0.5) / (exposure + 1.0), 1e-6, 1 - 1e-6)
    eta = np.clip(np.log(share / (1.0 - share)), -_ETA_LIMIT, _ETA_LIMIT)
    return eta, _mean(family, exposure, eta)
