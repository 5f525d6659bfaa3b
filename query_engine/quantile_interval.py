"""Quantile value intervals: the two interval-end selections, their scores, and the public accuracy.

A quantile release is three OpenDP noisy-max selections over the same candidate grid
``c_j = lo + j * step`` (per cell), with the query's loss split 1/2, 1/4, 1/4 (``QUANTILE_SPLIT``):
the point (the usual score ``|(den-num) #(x<c) - num #(x>c)|``) and the two interval ends below.
All three are charged through OpenDP's map; the interval is a function of their outputs only.

Interval ends (score units: rows times ``den``; ``n`` rows in the cell, ``q = num/den``)
    With ``B_j = #(x < c_j)`` and ``A_j = #(x < c_(j+1))`` (``A`` of the last bin is ``n``), bin
    ``j`` covers the ranks ``[B_j, A_j]``; write ``D_j = den B_j - num n`` and ``E_j = den A_j - num n``.
    For a public shift ``h > 0`` the lower end's score is the distance of the target ``-h`` (rank
    ``q n - h/den``) from ``[D_j, E_j]``, ``u_L(j) = max(0, D_j + h, -h - E_j)``, and the upper end's
    the distance of ``+h``: ``u_U(j) = max(0, D_j - h, h - E_j)``; the first bin reaches down and the
    last up without end (``D_0 = -inf``, ``E_(m-1) = +inf``). ``D_j = (den-num) B_j - num (n - B_j)``
    moves by at most ``max(num, den-num)`` per row, as ``E_j`` does, and so do their maximum: the
    sensitivity is the point's (``quantile_d_in``).

Why it covers (at level ``alpha``, split ``alpha/2`` per end)
    The bins tile the ranks ``[0, n]``, so some bin contains the target and scores 0. Let
    ``Q+ = sup{v : #(x < v) <= q n}``. A bin with ``c_j > Q+`` has ``B_j > q n``, so ``D_j >= 1``
    and ``u_L(j) >= h + 1``. OpenDP's noisy max selects such a bin over the zero-score one with
    probability at most ``p(h)`` each (``p`` as in ``query_engine.accuracy``: exponential noise
    ``exp(-h/s)/2``, Gumbel ``1/(1 + exp(h/s))``), so with ``h = quantile_score_error(alpha/2)``,
    ``P(c_L > Q+) <= (m-1) p(h) = alpha/2``. Symmetrically, with ``Q- = inf{v : #(x <= v) >= q n}``
    and the bin's last value ``c_(U+1) - resolution`` (the last bin: ``c_(m-1)``, where values are
    clamped), ``P(end of bin U < Q-) <= alpha/2``. Together: with probability ``>= 1 - alpha`` the
    interval meets every q-quantile range ``[Q-, Q+]`` (a point when the quantile is unique), ties and
    empty bins included. The released interval is widened to contain the point estimate (which
    only raises coverage). Everything is about the bounded, clamped rows, like every release.

Expected width (previews, public facts only)
    The lower end targets rank ``q n - h/den`` and misses it by at most ``h/den`` (w.p. 1 - alpha/2),
    so each end lies within ``2 h / den`` rows (``rank_half_width``) of the quantile's rank, plus one
    grid step. Turning rows into the column's units needs the density of the data, which is private:
    the preview states it for values spread evenly over the bounds, ``half_width = rank_half_width / n
    * (hi - lo) + step``, at a few public reference sizes ``n`` of a cell (skewed data concentrate
    near the quantile, so their intervals are usually narrower).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from query_engine.accuracy import quantile_score_error
from query_engine.errors import EngineInternalError
from query_engine.mechanisms import DPArray, NoiseCalibration

if TYPE_CHECKING:
    from query_engine.plan import QuantileSpec

__all__ = [
    "QUANTILE_SPLIT",
    "REFERENCE_ROWS",
    "end_scores",
    "expected_half_widths",
    "interval_shift",
    "rank_half_width",
    "value_interval",
]

QUANTILE_SPLIT = (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4))
"""Shares of a quantile query's loss: the point, the lower end and the upper end."""

REFERENCE_ROWS = (1_000, 10_000, 100_000)
"""Public cell sizes at which a preview states the expected value half-width."""


def interval_shift(end_calibration: NoiseCalibration, alpha: float) -> int:
    """The shift ``h`` (score units) of the interval ends: the noisy-max error bound at ``alpha/2``."""
    return max(1, math.ceil(quantile_score_error(end_calibration, alpha / 2)))


def end_scores(
    below: np.ndarray, rows: np.ndarray, numerator: int, denominator: int, shift: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores ``(u_L, u_U)`` of the interval ends, ``(cells, candidates)`` each (module docstring).

    ``below[i, j] = #(x < c_j)`` in cell ``i`` and ``rows[i]`` its number of rows.
    """
    b = np.asarray(below, dtype=np.int64)
    n = np.asarray(rows, dtype=np.int64).reshape(-1, 1)
    if b.ndim != 2 or b.shape[0] != n.shape[0] or shift < 1:
        raise EngineInternalError(
            "Internal error: quantile end scores need (cells, candidates) counts and a positive shift. "
            "This is a bug in sundstat; nothing was released."
        )
    a = np.concatenate([b[:, 1:], n], axis=1)  # rows below the end of each bin
    d = denominator * b - numerator * n
    e = denominator * a - numerator * n
    zero = np.zeros_like(d)
    lower = np.maximum(zero, np.maximum(d + shift, -shift - e))
    lower[:, 0] = np.maximum(0, -shift - e[:, 0])
    upper = np.maximum(zero, np.maximum(d - shift, shift - e))
    upper[:, -1] = np.maximum(0, d[:, -1] - shift)
    return lower, upper


def rank_half_width(end_calibration: NoiseCalibration, alpha: float, denominator: int) -> float:
    """How far (rows) each interval end may lie from the quantile's rank: ``2 h / den``."""
    return 2 * interval_shift(end_calibration, alpha) / denominator


def value_interval(
    quantile: QuantileSpec,
    resolution: float,
    point: DPArray,
    lower: DPArray,
    upper: DPArray,
) -> tuple[list[float], list[float]]:
    """Per cell ``(ci_low, ci_high)`` in value units from the three selected indices (DP outputs only).

    ``ci_low`` is the lower end's candidate, ``ci_high`` the last value of the upper end's bin, each
    widened to contain the point.
    """
    for name, values in (("point", point), ("lower end", lower), ("upper end", upper)):
        if not isinstance(values, DPArray):
            raise EngineInternalError(
                f"Internal error: the quantile's {name} is not an OpenDP output. This is a bug in sundstat; "
                "nothing was released."
            )
    res = Fraction(repr(float(resolution)))
    last = quantile.candidates - 1

    def units(j: int) -> int:
        return quantile.lo_units + j * quantile.step_units

    lows, highs = [], []
    for p, lo, hi in zip(
        np.asarray(point).tolist(), np.asarray(lower).tolist(), np.asarray(upper).tolist(), strict=True
    ):
        bin_end = units(last) if hi == last else units(hi + 1) - 1
        lows.append(float(min(units(lo), units(p)) * res))
        highs.append(float(max(bin_end, units(p)) * res))
    return lows, highs


def expected_half_widths(
    quantile: QuantileSpec,
    end_calibration: NoiseCalibration,
    alpha: float,
    bounds: tuple[float, float],
    resolution: float,
) -> dict[int, float]:
    """Expected value half-width per public reference cell size, for values spread over the bounds."""
    ranks = rank_half_width(end_calibration, alpha, quantile.denominator)
    span = float(bounds[1]) - float(bounds[0])
    step = quantile.step_units * float(resolution)
    return {n: min(span, ranks / n * span + step) for n in REFERENCE_ROWS}
