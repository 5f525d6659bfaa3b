"""Confidence intervals for a ratio of two noisy counts by inverting a simulated pivot.

For a ratio θ = a/b of two exact counts released as A = a + Na and B = b + Nb, the quantity
A − θ·B equals (a − θ·b) + Na − θ·Nb. At the true θ the first term is the sampling error (zero when
only the exact value is targeted) and the rest is pure noise of a known distribution, whatever the
data. A candidate θ is kept when the observed A − θ·B lies inside the central ``confidence`` part of
the simulated distribution of ``sqrt(v(θ))·Z + Na − θ·Nb`` (Z standard normal: the sampling error
with its variance v(θ); Na, Nb fresh noise draws). This is Fieller's construction with the noise
simulated instead of assumed normal: exact for the noise alone, and a score interval (normal
sampling term) when the sampling error is included. The set is found on a grid, then its ends are
refined by bisection; the same random draws are used for every θ so the ends are well defined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_GRID_POINTS = 25
_BISECTION_STEPS = 16
_GRID_HALF_WIDTH_SD = 8.0

SamplingVariance = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PivotDraws:
    """Simulated parts of the pivot for each row: noise of A and of B and the normal sampling term."""

    noise_a: np.ndarray  # [rows, draws]
    noise_b: np.ndarray  # [rows, draws]
    normal: np.ndarray  # [rows, draws]; zeros when the sampling error is left out


def ratio_interval(
    a_obs: np.ndarray,
    b_obs: np.ndarray,
    estimate: np.ndarray,
    spread: np.ndarray,
    draws: PivotDraws,
    sampling_variance: SamplingVariance,
    *,
    lower_bound: float,
    upper_bound: float,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The interval {θ : A − θ·B is inside the simulated central range} for every row.

    ``estimate`` must lie in [lower_bound, upper_bound]; ``spread`` is a rough standard deviation
    of the estimate that sets the search grid (estimate ± 8 spreads, cut to the bounds). An end that
    reaches an infinite bound is reported as infinite.
    """
    alpha = 1.0 - confidence

    def accepted(theta: np.ndarray) -> np.ndarray:
        safe = np.where(np.isfinite(theta), theta, 0.0)
        sd = np.sqrt(np.maximum(sampling_variance(safe), 0.0))
        simulated = sd[:, None] * draws.normal + draws.noise_a - safe[:, None] * draws.noise_b
        observed = (a_obs - safe * b_obs)[:, None]
        p = (simulated < observed).mean(axis=1) + 0.5 * (simulated == observed).mean(axis=1)
        return (p > alpha / 2) & (p < 1 - alpha / 2) & np.isfinite(theta)

    low_edge = np.maximum(lower_bound, estimate - _GRID_HALF_WIDTH_SD * spread)
    high_edge = np.minimum(upper_bound, estimate + _GRID_HALF_WIDTH_SD * spread)
    fractions = np.linspace(0.0, 1.0, _GRID_POINTS)
    grid = low_edge[:, None] + (high_edge - low_edge)[:, None] * fractions[None, :]
    keep = np.stack([accepted(grid[:, j]) for j in range(_GRID_POINTS)], axis=1)
    rows = np.arange(len(estimate))
    none = ~keep.any(axis=1)
    first = np.argmax(keep, axis=1)
    last = _GRID_POINTS - 1 - np.argmax(keep[:, ::-1], axis=1)

    # Below the first kept grid point: the previous grid point, or the outer bound past the grid.
    inner_low = grid[rows, first]
    outer_low = np.where(first > 0, grid[rows, np.maximum(first - 1, 0)], lower_bound)
    inner_high = grid[rows, last]
    far = np.where(np.isfinite(upper_bound), upper_bound, 1e3 * np.abs(inner_high) + 1e3 * spread + 1.0)
    outer_high = np.where(last < _GRID_POINTS - 1, grid[rows, np.minimum(last + 1, _GRID_POINTS - 1)], far)
    low = _bisect(accepted, inner_low, outer_low)
    high = _bisect(accepted, inner_high, outer_high)
    low = np.where(accepted(np.full_like(low, lower_bound)) & (first == 0), lower_bound, low)
    open_top = (last == _GRID_POINTS - 1) & accepted(outer_high)
    high = np.where(open_top, upper_bound, high)
    # No candidate kept (the noise made the observation implausible for every θ): the point itself.
    low = np.where(none, estimate, low)
    high = np.where(none, estimate, high)
    return np.minimum(low, estimate), np.maximum(high, estimate)


def _bisect(
    accepted: Callable[[np.ndarray], np.ndarray], inside: np.ndarray, outside: np.ndarray
) -> np.ndarray:
    """The boundary between a kept ``inside`` and a rejected ``outside`` point, row by row."""
    inside = inside.copy()
    outside = outside.copy()
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (inside + outside)
        keep = accepted(middle)
        inside = np.where(keep, middle, inside)
        outside = np.where(keep, outside, middle)
    return 0.5 * (inside + outside)
