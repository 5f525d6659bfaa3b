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
    """
    batch, cells = response.shape
    columns = design.shape[1]
    beta = np.zeros((batch, columns))
    if family == "poisson":
        total_rate = (response * include).sum(1) / np.maximum((exposure * include).sum(1), 1e-300)
        beta[:, 0] = np.log(np.maximum(total_rate, 1e-300))
    else:
        share = (response * include).sum(1) / np.maximum((exposure * include).sum(1), 1e-300)
        share = np.clip(share, 1e-6, 1 - 1e-6)
        beta[:, 0] = np.log(share / (1 - share))
    ridge = _RIDGE * np.eye(columns)
    for _ in range(_ITERATIONS):
        eta = np.clip(beta @ design.T, -_ETA_LIMIT, _ETA_LIMIT)
        if family == "poisson":
            mean = exposure * np.exp(eta)
            weight = mean
        else:
            p = 1.0 / (1.0 + np.exp(-eta))
            mean = exposure * p
            weight = exposure * p * (1 - p)
        weight = np.where(include, weight, 0.0)
        safe = np.maximum(weight, 1e-300)
        working = eta + np.where(include, (response - mean) / safe, 0.0)
        xtwx = np.einsum("ci,bc,cj->bij", design, weight, design) + ridge
        xtwz = np.einsum("ci,bc->bi", design, weight * working)
        beta = np.linalg.solve(xtwx, xtwz[..., None])[..., 0]
    return beta
