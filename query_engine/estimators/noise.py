"""The known noise of a release, and a numpy sampler of it for interval simulation.

This is post-processing: the privacy noise of a release is drawn by OpenDP in the engine. Here the
same distributions are sampled with numpy only to simulate what the noise does to an estimator.

- discrete Laplace with scale ``s``: P(k) ∝ exp(-|k|/s), drawn exactly as the difference of two
  independent geometric variables with success probability 1 - exp(-1/s), each the floor of an
  exponential variable with mean s;
- discrete Gaussian with scale ``σ``: P(k) ∝ exp(-k²/(2σ²)), drawn exactly by the rejection sampler
  of Canonne, Kamath and Steinke (2020, algorithm 3) from a discrete Laplace with scale ⌊σ⌋ + 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

NoiseKind = Literal["laplace", "gaussian"]
_KINDS = ("laplace", "gaussian")
# Above this scale the discrete Gaussian's variance equals σ² to within 1e-12 relative error.
_GAUSSIAN_VARIANCE_EXACT_BELOW = 8.0


@dataclass(frozen=True)
class NoiseModel:
    """Discrete noise of a known kind and scale added to integer cells of a release."""

    kind: NoiseKind
    scale: float

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Unknown noise kind {self.kind!r}; use 'laplace' or 'gaussian'.")
        if not math.isfinite(self.scale) or self.scale < 0:
            raise ValueError(f"The noise scale must be a finite number >= 0, not {self.scale!r}.")

    @property
    def variance(self) -> float:
        """The variance of one noise draw."""
        s = self.scale
        if s == 0:
            return 0.0
        if self.kind == "laplace":
            q = math.exp(-1.0 / s)
            return 2.0 * q / (1.0 - q) ** 2
        if s >= _GAUSSIAN_VARIANCE_EXACT_BELOW:
            return s * s
        k = np.arange(-int(40 * s) - 2, int(40 * s) + 3, dtype=float)
        mass = np.exp(-(k**2) / (2 * s * s))
        return float((mass * k**2).sum() / mass.sum())

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        """Independent integer draws of this noise (an int64 array of ``size``)."""
        if self.scale == 0:
            return np.zeros(size, dtype=np.int64)
        if self.kind == "laplace":
            return _discrete_laplace(rng, self.scale, size)
        return _discrete_gaussian(rng, self.scale, size)


def _discrete_laplace(rng: np.random.Generator, scale: float, size: int | tuple[int, ...]) -> np.ndarray:
    # floor(scale · E) with E standard exponential is geometric on {0, 1, ...} with P(>= j) = e^(-j/scale):
    # the same law as numpy's geometric minus one, at half the cost.
    shape = (size,) if isinstance(size, int) else tuple(size)
    both = np.floor(scale * rng.standard_exponential((2, *shape))).astype(np.int64)
    return both[0] - both[1]


def _discrete_gaussian(rng: np.random.Generator, sigma: float, size: int | tuple[int, ...]) -> np.ndarray:
    shape = (size,) if isinstance(size, int) else tuple(size)
    total = int(np.prod(shape))
    t = math.floor(sigma) + 1
    out = np.empty(total, dtype=np.int64)
    filled = 0
    while filled < total:
        want = max(2 * (total - filled), 64)  # acceptance is above 1/2 for every σ
        y = _discrete_laplace(rng, t, want)
        accept = rng.random(want) < np.exp(-((np.abs(y) - sigma * sigma / t) ** 2) / (2 * sigma * sigma))
        kept = y[accept][: total - filled]
        out[filled : filled + kept.size] = kept
        filled += kept.size
    return out.reshape(shape)
