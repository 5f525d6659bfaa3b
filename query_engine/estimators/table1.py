"""Table 1 estimates from noisy histograms: percentages per level and medians from public bins.

Rules for noisy cells (data-independent): counts are clamped at 0; a group's persons are the sum of
its clamped counts. Intervals are parametric bootstrap intervals (basic, [2θ̂ − q_hi, 2θ̂ − q_lo],
clipped to the range): each draw samples the group's persons multinomially from the estimated
shares (sampling error), adds fresh noise of the known distribution to every cell (privacy noise),
applies the same clamping and recomputes the statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from query_engine.estimators.intervals import Simulation, simulation
from query_engine.estimators.noise import NoiseModel

__all__ = ["GroupedQuantiles", "LevelShares", "grouped_quantiles", "level_shares"]


@dataclass(frozen=True)
class LevelShares:
    """Per group (rows) and level (columns): persons, share of the group, and its interval."""

    persons: np.ndarray  # [groups]
    count: np.ndarray  # [groups, levels], clamped at 0
    share: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


@dataclass(frozen=True)
class GroupedQuantiles:
    """Per group: the quantiles ``levels`` of a numeric variable from its binned histogram."""

    levels: tuple[float, ...]
    value: np.ndarray  # [groups, quantiles]
    ci_low: np.ndarray
    ci_high: np.ndarray


def _clamped(counts: np.ndarray) -> np.ndarray:
    table = np.maximum(np.asarray(counts, dtype=float), 0.0)
    if table.ndim != 2:
        raise ValueError("Give the counts as a 2-D array [groups, levels].")
    return table


def _simulate(table: np.ndarray, noise: NoiseModel, sim: Simulation) -> np.ndarray:
    """[draws, groups, levels] tables: multinomial persons around the shares plus fresh noise, clamped."""
    persons = table.sum(axis=1)
    shares = np.divide(
        table, persons[:, None], out=np.full_like(table, 1.0 / table.shape[1]), where=persons[:, None] > 0
    )
    sampled = np.stack(
        [sim.rng.multinomial(int(round(n)), p, size=sim.draws) for n, p in zip(persons, shares, strict=True)],
        axis=1,
    ).astype(float)
    return np.maximum(sampled + noise.sample(sim.rng, sampled.shape), 0.0)


def _basic(
    point: np.ndarray, draws: np.ndarray, confidence: float, low: float, high: float
) -> tuple[np.ndarray, np.ndarray]:
    tail = (1 - confidence) / 2
    q_low, q_high = np.nanquantile(draws, [tail, 1 - tail], axis=0)
    return np.clip(2 * point - q_high, low, high), np.clip(2 * point - q_low, low, high)


def _shares(table: np.ndarray) -> np.ndarray:
    persons = table.sum(axis=-1, keepdims=True)
    return np.divide(table, persons, out=np.full_like(table, np.nan), where=persons > 0)


def level_shares(
    counts: np.ndarray,
    *,
    noise: NoiseModel,
    confidence: float = 0.95,
    draws: int = 1000,
    rng: np.random.Generator | None = None,
) -> LevelShares:
    """The share of each level within each group, from a noisy [groups, levels] histogram."""
    sim = simulation(confidence, draws, rng)
    table = _clamped(counts)
    share = _shares(table)
    simulated = _shares(_simulate(table, noise, sim))
    low, high = _basic(share, simulated, confidence, 0.0, 1.0)
    return LevelShares(table.sum(axis=1), table, share, low, high)


def _quantiles_of(table: np.ndarray, edges: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles by linear interpolation inside the bins of [..., bins] histograms -> [..., quantiles]."""
    cumulative = np.cumsum(table, axis=-1)
    total = cumulative[..., -1:]
    fraction = np.divide(cumulative, total, out=np.full_like(cumulative, np.nan), where=total > 0)
    out = np.empty((*table.shape[:-1], len(levels)))
    for k, level in enumerate(levels):
        b = np.argmax(fraction >= level, axis=-1)
        below = np.where(
            b > 0, np.take_along_axis(fraction, np.maximum(b - 1, 0)[..., None], -1)[..., 0], 0.0
        )
        inside = np.take_along_axis(fraction, b[..., None], -1)[..., 0] - below
        position = np.divide(level - below, inside, out=np.full_like(below, 0.5), where=inside > 0)
        out[..., k] = edges[b] + np.clip(position, 0, 1) * (edges[b + 1] - edges[b])
        out[..., k] = np.where(np.isnan(total[..., 0]) | (total[..., 0] <= 0), np.nan, out[..., k])
    return out


def grouped_quantiles(
    counts: np.ndarray,
    edges: np.ndarray,
    *,
    noise: NoiseModel,
    levels: tuple[float, ...] = (0.25, 0.5, 0.75),
    confidence: float = 0.95,
    draws: int = 1000,
    rng: np.random.Generator | None = None,
) -> GroupedQuantiles:
    """Quantiles (default: quartiles) of a numeric variable from a noisy [groups, bins] histogram.

    ``edges`` are the bins' ``bins + 1`` public edges; inside a bin values are taken as uniform.
    """
    sim = simulation(confidence, draws, rng)
    table = _clamped(counts)
    edges = np.asarray(edges, dtype=float)
    if edges.shape != (table.shape[1] + 1,) or np.any(np.diff(edges) <= 0):
        raise ValueError(f"Give {table.shape[1] + 1} increasing bin edges for {table.shape[1]} bins.")
    wanted = np.asarray(levels, dtype=float)
    value = _quantiles_of(table, edges, wanted)
    simulated = _quantiles_of(_simulate(table, noise, sim), edges, wanted)
    low, high = _basic(value, simulated, confidence, float(edges[0]), float(edges[-1]))
    return GroupedQuantiles(tuple(levels), value, low, high)
