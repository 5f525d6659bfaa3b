"""What the noise-aware interval estimators share: their checked set-up and the intervals they return.

Every estimator that simulates the known noise of a release starts from a confidence level, a
number of draws and a generator (``simulation``), and most return three intervals per row
(``NoiseAwareIntervals``): ``ci`` (noise and sampling error together), ``noise_ci`` (the noise
alone) and ``sampling_ci`` (the sampling error alone, as if the noisy counts were exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MIN_DRAWS = 100


@dataclass(frozen=True)
class NoiseAwareIntervals:
    """The three intervals of a noise-aware estimate, one row per cell."""

    ci_low: np.ndarray
    ci_high: np.ndarray
    noise_ci_low: np.ndarray
    noise_ci_high: np.ndarray
    sampling_ci_low: np.ndarray
    sampling_ci_high: np.ndarray


@dataclass(frozen=True)
class Simulation:
    """The checked number of draws of an interval simulation and the generator they come from."""

    draws: int
    rng: np.random.Generator


def simulation(confidence: float, draws: int, rng: np.random.Generator | None) -> Simulation:
    """Check ``confidence`` and ``draws``; a fresh generator when none is given."""
    check_confidence(confidence)
    return Simulation(positive_draws(draws), rng if rng is not None else np.random.default_rng())


def as_pair(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy count arrays as flat float arrays of the same length, all finite."""
    a = np.asarray(first, dtype=float).reshape(-1)
    b = np.asarray(second, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(
            f"The two count arrays differ in length ({a.size} and {b.size}); pass one value per cell."
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("The noisy counts must be finite numbers; remove missing cells before estimating.")
    return a, b


def positive_draws(draws: int) -> int:
    """``draws`` if there are enough of them for an interval's ends."""
    if draws < _MIN_DRAWS:
        raise ValueError(f"Use at least {_MIN_DRAWS} simulation draws, not {draws}.")
    return int(draws)


def check_confidence(confidence: float) -> None:
    """Refuse a confidence level outside [0.5, 1)."""
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"The confidence must be in [0.5, 1), not {confidence}.")
