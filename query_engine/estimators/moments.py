"""Linear regression from noisy sufficient statistics X'X, X'y, y'y and n (issue 16).

Each person's row of X and y is clamped to declared bounds, so every entry of the moments has a
declared sensitivity and is released with noise of a known scale (the upper triangle of X'X; the
lower one mirrors it). Post-processing here:

- X'X is symmetrised and made positive definite by raising its eigenvalues to at least 1e-9 times
  the largest (a rule that depends only on the released matrix); β̂ = (X'X)⁻¹X'y;
- ``naive_ci``: the ordinary least squares Wald interval, σ̂²(X'X)⁻¹ with σ̂² = RSS/(n − p) from the
  noisy moments (RSS floored at 1e-9·y'y so that the variance stays positive);
- ``ci``: the naive covariance plus the covariance of β over refits with fresh noise added to X'X and
  X'y (a parametric bootstrap of the noise), as a Wald interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from query_engine.estimators.intervals import simulation
from query_engine.estimators.noise import NoiseKind, NoiseModel
from query_engine.estimators.regression import RegressionResult

_EIGEN_FLOOR = 1e-9


@dataclass(frozen=True)
class NoisyMoments:
    """Released moments of (X, y) with the noise kind and the scale of each entry."""

    terms: tuple[str, ...]  # the columns of X, e.g. ("intercept", "age", "sex=F")
    xtx: np.ndarray  # [p, p]
    xty: np.ndarray  # [p]
    yty: float
    count: float
    kind: NoiseKind
    xtx_scale: np.ndarray  # [p, p], scale of each entry's noise
    xty_scale: np.ndarray  # [p]
    yty_scale: float
    count_scale: float

    def __post_init__(self) -> None:
        p = len(self.terms)
        shapes = (np.shape(self.xtx), np.shape(self.xty), np.shape(self.xtx_scale), np.shape(self.xty_scale))
        if shapes != ((p, p), (p,), (p, p), (p,)):
            raise ValueError(
                f"The moments of {p} terms need X'X and its scales of shape ({p}, {p}) and X'y and its scales of "
                f"length {p}; got {shapes}."
            )


def linear_regression(
    moments: NoisyMoments,
    *,
    confidence: float = 0.95,
    draws: int = 500,
    rng: np.random.Generator | None = None,
) -> RegressionResult:
    """Coefficients of y on X with noise-aware and naive Wald intervals."""
    sim = simulation(confidence, draws, rng)
    p = len(moments.terms)
    xtx = _positive_definite(np.asarray(moments.xtx, dtype=float))
    xty = np.asarray(moments.xty, dtype=float)
    beta = np.linalg.solve(xtx, xty)
    yty = float(moments.yty)
    rss = max(yty - 2 * beta @ xty + beta @ xtx @ beta, _EIGEN_FLOOR * abs(yty), 1e-12)
    residual_df = max(float(moments.count) - p, 1.0)
    naive_cov = rss / residual_df * np.linalg.inv(xtx)

    upper = np.triu(np.ones((p, p), dtype=bool))
    xtx_noise = np.zeros((sim.draws, p, p))
    for i, j in zip(*np.nonzero(upper), strict=True):
        draw = NoiseModel(moments.kind, float(moments.xtx_scale[i, j])).sample(sim.rng, sim.draws)
        xtx_noise[:, i, j] = draw
        xtx_noise[:, j, i] = draw
    xty_noise = np.column_stack(
        [NoiseModel(moments.kind, float(scale)).sample(sim.rng, sim.draws) for scale in moments.xty_scale]
    )
    beta_star = np.linalg.solve(_positive_definite(xtx + xtx_noise), (xty + xty_noise)[..., None])[..., 0]
    noise_cov = np.atleast_2d(np.cov(beta_star, rowvar=False))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    naive_sd = np.sqrt(np.diag(naive_cov))
    total_sd = np.sqrt(np.diag(naive_cov) + np.diag(noise_cov))
    return RegressionResult(
        terms=tuple(moments.terms),
        estimate=beta,
        ci_low=beta - z * total_sd,
        ci_high=beta + z * total_sd,
        naive_ci_low=beta - z * naive_sd,
        naive_ci_high=beta + z * naive_sd,
    )


def _positive_definite(matrix: np.ndarray) -> np.ndarray:
    """The symmetric part of each [..., p, p] matrix with eigenvalues raised to the floor."""
    symmetric = 0.5 * (matrix + np.swapaxes(matrix, -1, -2))
    values, vectors = np.linalg.eigh(symmetric)
    floor = _EIGEN_FLOOR * np.maximum(np.abs(values).max(axis=-1, keepdims=True), 1e-300)
    return (vectors * np.maximum(values, floor)[..., None, :]) @ np.swapaxes(vectors, -1, -2)
