"""Accuracy of releases: confidence intervals from DP outputs and public facts only, and accuracy-first
calibration (the smallest loss that meets a target interval half-width).

Counts and sums (additive integer noise)
    OpenDP's ``discrete_laplacian_scale_to_accuracy(scale, alpha)`` and
    ``discrete_gaussian_scale_to_accuracy(scale, alpha)`` return ``A`` with
    ``P(|noise| >= A) <= alpha``. The noise is an integer, so ``P(|noise| >= ceil(A)) <= alpha`` as well,
    and the *closed* interval ``[value - a, value + a]`` with ``a = ceil(A) - 1`` misses exactly when
    ``|noise| >= a + 1 = ceil(A)``: its coverage is at least ``1 - alpha``. This is also the tightest
    such ``a`` (checked against the exact tails in the tests): taking ``a = A`` when OpenDP returns an
    integer (the Gaussian always does) would waste one unit, and ``a = ceil(A) - 2`` under-covers.
    OpenDP's discrete Gaussian function sums the pmf term by term, which costs O(scale) (0.5 s at
    scale 1e6); above scale 1024 we use instead a rigorous bound that costs O(1): with
    ``f(x) = exp(-x^2 / (2 s^2))``, the normaliser ``sum_x f(x) >= sqrt(2 pi) s`` (Poisson summation)
    and ``sum_{x >= k} f(x) <= f(k) + integral_k^inf f``, so
    ``P(|X| >= k) <= erfc(k / (s sqrt 2)) + 2 phi(k/s) / s``; the smallest such ``k`` is at most one
    unit above OpenDP's exact answer (tested). The Gaussian first guess of accuracy-first uses the
    continuous ``accuracy_to_gaussian_scale`` for the same reason.
    The interval is per cell; for simultaneous coverage of ``k`` cells use ``alpha / k``. For
    partition selection the statement is unconditional: with probability ``>= 1 - alpha`` a key is
    either dropped or its interval covers.

Accuracy-first
    ``half_width_at_scale`` is non-decreasing in the scale and the loss decreases with the scale, so
    the smallest loss meeting a target ``h`` is at the largest scale whose half-width is ``<= h``.
    ``accuracy_to_discrete_laplacian_scale(h + 1, alpha)`` (Gaussian: the continuous inverse, as
    OpenDP's discrete one is neither exact nor fast) gives a first guess, refined by bisection on the
    scale with the forward function to 1e-11 relative; the loss at that scale is read by
    ``calibrate_scale`` (OpenDP's map). Alpha is ``1 - confidence`` computed exactly and rounded down.

Mean = midpoint + noisy centred sum / noisy count
    The sum is of values centred on the midpoint ``M`` of their bounds (``plan.ValueSpec``), so one
    row moves it by at most the half-width ``h`` of the bounds instead of ``max(|lo|, |hi|)``; the
    estimate is ``M + S/C`` (the same as ``(S + M C) / C``: the midpoint times the noisy count is
    added back to the sum).
    With ``a`` and ``b`` the half-widths of the sum and count at ``alpha/2`` each, both intervals
    hold together with probability ``>= 1 - alpha`` (union bound). On that event, if the count's
    interval is positive (``C - b > 0``), the true centred mean ``S/C`` lies in the range of ``s/c``
    over the box ``s in [S-a, S+a], c in [C-b, C+b]``: ``[(S-a)/(C+b), (S+a)/(C-b)]`` for
    non-negative sums, and the general corner formula otherwise. Shifted by ``M``, it is intersected
    with the declared bounds, which always contain the mean. When ``C - b <= 0`` the interval is the
    declared bounds. Accuracy-first is refused for means: the width of this interval depends on the
    (private) number of rows, so no loss can promise a half-width without assuming a count;
    ``mean_half_width`` gives it for a count the caller assumes (previews).

Mean: how the loss is split between the sum and the count (``mean_loss_weights``)
    Write ``X`` and ``Y`` for the noise of the centred sum and of the count, ``m = mean - M`` for
    the centred mean (``|m| <= h``) and ``n`` for the count. To first order
    ``M + (S + X)/(n + Y) - mean = (X - m Y)/n``, so ``Var = (Var X + m^2 Var Y) / n^2``.
    Laplace (pure DP): ``Var X = 2 (Ds/eps_s)^2`` and ``Var Y = 2 (Dc/eps_c)^2`` with L1
    sensitivities ``Ds``, ``Dc``. Minimising ``Ds^2/eps_s^2 + m^2 Dc^2/eps_c^2`` subject to
    ``eps_s + eps_c = eps`` (Lagrange: ``Ds^2/eps_s^3 = m^2 Dc^2/eps_c^3``) gives
    ``eps_s : eps_c = (Ds / (|m| Dc))^(2/3) : 1``. Gaussian (zCDP): ``Var X = Ds2^2/(2 rho_s)`` with
    L2 sensitivities; minimising ``Ds2^2/rho_s + m^2 Dc2^2/rho_c`` subject to ``rho_s + rho_c = rho``
    gives ``rho_s : rho_c = Ds2 / (|m| Dc2) : 1``. The centred mean ``m`` is private, so the split
    uses only the bounds: ``m^2`` is replaced by its average ``h^2/3`` over means spread uniformly on
    ``[-h, h]``. A person's rows move the centred sum by ``h`` per unit of count, so ``Ds = h Dc`` and
    ``Ds2 = h Dc2``: the split is ``3^(1/3) : 1`` (the sum gets 59% of epsilon) and ``sqrt(3) : 1``
    (63% of rho) whatever the bounds, ``G`` or ``c``. The worst case ``|m| = h`` would give halves,
    which is also what an uncentred sum needs. The weights are exact rationals (denominator at most
    1000) near the optimum; any weights are private, since the parts' losses add up to the charge.

    A preview therefore states the expected half-width *as a function of the count* ``n``
    (``expected_mean_half_width``): with the true mean ``m`` and ``S = m n``, the box above has width
    ``(m n + a)/(n - b) - (m n - a)/(n + b) = 2 n (|m| b + a) / (n^2 - b^2)``, largest at
    ``|m| = max(|lo|, |hi|)``; half of it, capped at half the declared range, is the preview's
    figure (conservative in ``m``; the noisy ``n`` varies around the true one). The count ``n`` is a
    public assumption stated by the caller, never read from data.

Quantile: a rank statement (for the point; its value interval is ``query_engine.quantile_interval``)
    Turning this bound into values would need the data's ranks near the selected candidate, which
    only the data knows; the value interval comes instead from two further DP selections. Here we
    state the noisy-max utility guarantee of the point, which the interval ends also rely on. Write
    ``D(c) = |(1-q) #(x<c) - q #(x>c)|`` (the score divided by ``den``; in rows). When no row equals
    ``c`` this is ``|#(x<c) - q n|``: by how many rows the rank of ``c`` misses the target rank
    ``q n``. With ``m`` candidates and selected candidate ``c^``::

        P( D(c^) > min_c D(c) + t ) <= sum over candidates i worse than the best by > t of
                                       P(noisy score of i beats the best's) <= (m - 1) p(t)

    where, for noise of scale ``s`` in score units, ``p(t) = exp(-t/s) / 2`` for OpenDP's pure-DP
    noisy max (exponential noise: the difference of two is Laplace(s)) and ``p(t) = 1/(1 + exp(t/s))``
    for the zCDP one (Gumbel noise: the difference is logistic(s)). Solving ``(m-1) p(t) = alpha``
    gives ``t = s ln((m-1)/(2 alpha))`` and ``t = s ln((m-1)/alpha - 1)``; the release reports
    ``rank_error = t / den`` rows. Coverage is proven by a statistical test on the worst case
    (every other candidate just above ``t``), with power shown at 0.7 times the scale.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from statistics import NormalDist

import numpy as np
import opendp.prelude as dp

from query_engine.errors import EngineInternalError, QueryError
from query_engine.mechanisms import (
    DPArray,
    NoiseCalibration,
    NoiseKind,
    Sensitivity,
    calibrate_scale,
)

__all__ = [
    "alpha_for",
    "calibrate_for_half_width",
    "expected_mean_half_width",
    "half_width",
    "half_width_at_scale",
    "mean_half_width",
    "mean_interval",
    "mean_loss_weights",
    "quantile_rank_error",
    "quantile_score_error",
]

_BISECTION_STEPS = 200
_RELATIVE_PRECISION = 1e-11
_BRACKET = 1.05
_ROUNDING_SLACK = 1e-12
# OpenDP's discrete Gaussian accuracy sums the pmf term by term (O(scale): 2.4 ms at 1e4, 0.5 s at 1e6);
# above this scale a rigorous tail bound is used, at most one unit wider (see _gaussian_tail_bound).
_EXACT_GAUSSIAN_MAX_SCALE = 1024.0


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not math.isfinite(alpha) or not 0 < alpha < 1:
        raise EngineInternalError(
            f"Internal error: alpha must be strictly between 0 and 1, got {alpha!r}. "
            "This is a bug in sundstat."
        )
    return float(alpha)


@lru_cache(maxsize=64)  # a handful of confidence levels; the exact arithmetic is the per-query cost
def alpha_for(confidence: float) -> float:
    """``alpha = 1 - confidence``, computed exactly from the decimal and rounded down (never over-claims)."""
    if isinstance(confidence, bool) or not math.isfinite(confidence) or not 0 < confidence < 1:
        raise QueryError(
            f"The confidence level must be strictly between 0 and 1, e.g. 0.95; got {confidence!r}."
        )
    exact = 1 - Fraction(repr(float(confidence)))
    alpha = float(exact)
    if Fraction(alpha) > exact:
        alpha = math.nextafter(alpha, 0.0)
    return _check_alpha(alpha)


def _gaussian_tail_bound(k: int, scale: float) -> float:
    """Upper bound on P(|X| >= k), k >= 1, for the discrete Gaussian of the given scale."""
    z = k / scale
    bound = math.erfc(z / math.sqrt(2)) + 2 * math.exp(-z * z / 2) / (math.sqrt(2 * math.pi) * scale)
    return bound * (1 + _ROUNDING_SLACK)


def _gaussian_accuracy_bound(scale: float, alpha: float) -> int:
    """Smallest integer ``k >= 1`` with ``_gaussian_tail_bound(k, scale) <= alpha`` (O(1) in the scale)."""
    k = max(1, math.floor(scale * NormalDist().inv_cdf(1 - alpha / 2)) - 2)
    while _gaussian_tail_bound(k, scale) > alpha:
        k += 1
    return k


@lru_cache(maxsize=4096)
def half_width_at_scale(kind: NoiseKind, scale: float, alpha: float) -> int:
    """Half-width ``a`` of the closed interval ``[v - a, v + a]`` covering integer noise w.p. >= 1 - alpha."""
    alpha = _check_alpha(alpha)
    scale = float(scale)
    if kind == "laplace":
        accuracy = dp.discrete_laplacian_scale_to_accuracy(scale, alpha)
    elif kind == "gaussian" and scale <= _EXACT_GAUSSIAN_MAX_SCALE:
        accuracy = dp.discrete_gaussian_scale_to_accuracy(scale, alpha)
    elif kind == "gaussian":
        accuracy = _gaussian_accuracy_bound(scale, alpha)
    else:
        raise EngineInternalError(f"Unknown noise kind {kind!r}.")
    return max(0, math.ceil(accuracy) - 1)


def half_width(calibration: NoiseCalibration, alpha: float) -> float:
    """Per-cell CI half-width, in the integer units of the noisy vector, at level ``alpha``."""
    kind = calibration.noise
    if kind is None:
        raise EngineInternalError(
            "A noisy-max selection has no additive half-width; use quantile_rank_error."
        )
    return float(half_width_at_scale(kind, calibration.scale, alpha))


def _units(half_width: float, resolution: float) -> int:
    """Target half-width in integer units: the largest integer ``a`` with ``a * resolution <= half_width``."""
    if isinstance(half_width, bool) or not math.isfinite(half_width) or half_width < 0:
        raise QueryError(
            f"The target interval half-width must be a non-negative number, got {half_width!r}; "
            "give a number above 0."
        )
    if not math.isfinite(resolution) or resolution <= 0:
        raise EngineInternalError(f"A resolution must be positive; got {resolution!r}.")
    return math.floor(Fraction(repr(float(half_width))) / Fraction(repr(float(resolution))))


def _largest_scale(kind: NoiseKind, alpha: float, target: int) -> float:
    """The largest scale whose half-width at ``alpha`` is at most ``target`` (to 1e-11 relative)."""

    def meets(scale: float) -> bool:
        return half_width_at_scale(kind, scale, alpha) <= target

    if kind == "laplace":
        guess = dp.accuracy_to_discrete_laplacian_scale(float(target + 1), alpha)
    else:  # OpenDP's discrete inverse costs O(accuracy); the continuous one is a good first guess
        guess = dp.accuracy_to_gaussian_scale(float(target + 1), alpha)
    low, high = guess, guess
    while not meets(low):
        low /= _BRACKET
        if low < 1e-300:
            raise EngineInternalError(f"No noise scale reaches a half-width of {target}.")
    while meets(high):
        high *= _BRACKET
    for _ in range(_BISECTION_STEPS):
        if high - low <= low * _RELATIVE_PRECISION:
            break
        middle = (low + high) / 2
        if meets(middle):
            low = middle
        else:
            high = middle
    return low


def calibrate_for_half_width(
    kind: NoiseKind,
    sensitivity: Sensitivity,
    half_width: float,
    confidence: float,
    *,
    resolution: float = 1.0,
) -> NoiseCalibration:
    """The smallest-loss calibration whose per-cell CI half-width at ``confidence`` is <= ``half_width``.

    ``half_width`` is in value units; ``resolution`` is the value of one integer unit (1 for counts,
    the fixed-point resolution for sums).
    """
    alpha = alpha_for(confidence)
    scale = _largest_scale(kind, alpha, _units(half_width, resolution))
    return calibrate_scale(kind, sensitivity, scale)


_MEAN_SHARE_DENOMINATOR = 1000
_UNIFORM_RMS = 1 / math.sqrt(3)  # root mean square of a uniform on [-1, 1]


def mean_loss_weights(
    kind: NoiseKind, sum_sensitivity: Sensitivity, count_sensitivity: Sensitivity, centred_magnitude: int
) -> tuple[Fraction, Fraction]:
    """The mean's split of its loss, ``(sum's share, count's share)``, exact and adding up to 1.

    Minimises the variance of the mean's error for a centred mean of root mean square
    ``centred_magnitude / sqrt(3)`` (uniform over the bounds); see the module docstring. Public
    inputs only: sensitivities and the half-width of the bounds in units.
    """
    rms = centred_magnitude * _UNIFORM_RMS
    if kind == "laplace":
        ratio = (sum_sensitivity.l1 / (rms * count_sensitivity.l1)) ** (2 / 3)
    elif kind == "gaussian":
        ratio = sum_sensitivity.l2 / (rms * count_sensitivity.l2)
    else:
        raise EngineInternalError(f"Unknown noise kind {kind!r}.")
    share = Fraction(ratio / (1 + ratio)).limit_denominator(_MEAN_SHARE_DENOMINATOR)
    share = min(max(share, Fraction(1, _MEAN_SHARE_DENOMINATOR)), 1 - Fraction(1, _MEAN_SHARE_DENOMINATOR))
    return share, 1 - share


def mean_half_width(
    sum_calibration: NoiseCalibration,
    count_calibration: NoiseCalibration,
    confidence: float,
    *,
    count: int,
    bounds: tuple[float, float],
    resolution: float = 1.0,
    centre_units: int = 0,
) -> float:
    """Expected half-width (value units) of a mean's interval for a cell of ``count`` rows.

    The interval of ``mean_interval`` at noiseless sum and count, the widest over means at the
    bounds and the midpoint (the width grows with the distance from the midpoint until the bounds
    clip it). ``count`` is an assumption of the caller (a preview knows no count); ``bounds`` is the
    full width when the count's interval is not positive.
    """
    if isinstance(count, bool) or count < 1:
        raise EngineInternalError(f"A mean's expected half-width needs a count of at least 1; got {count!r}.")
    lower, upper = float(bounds[0]), float(bounds[1])
    centre = centre_units * resolution
    means = np.array([lower, centre, upper], dtype=np.float64)
    sums = np.round((means - centre) / resolution * count).astype(np.int64).view(DPArray)
    counts = np.full(len(means), count, dtype=np.int64).view(DPArray)
    low, high = mean_interval(
        sums,
        counts,
        sum_calibration,
        count_calibration,
        alpha_for(confidence),
        bounds,
        resolution,
        centre_units=centre_units,
    )
    return float(np.max(high - low) / 2)


def mean_interval(
    noisy_sum: DPArray,
    noisy_count: DPArray,
    sum_calibration: NoiseCalibration,
    count_calibration: NoiseCalibration,
    alpha: float,
    bounds: tuple[float, float],
    resolution: float = 1.0,
    *,
    centre_units: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Honest per-cell interval for mean = centre + (noisy_sum * resolution) / noisy_count, at ``alpha``.

    ``noisy_sum`` is the sum of values minus ``centre_units`` (in units of ``resolution``). Uses the
    sum's and the count's intervals at ``alpha/2`` each; see the module docstring.
    """
    lower, upper = float(bounds[0]), float(bounds[1])
    if not lower <= upper:
        raise EngineInternalError(f"Declared bounds must satisfy lower <= upper; got {bounds!r}.")
    alpha = _check_alpha(alpha)
    a = half_width(sum_calibration, alpha / 2)
    b = half_width(count_calibration, alpha / 2)
    s = np.asarray(noisy_sum, dtype=np.float64)
    c = np.asarray(noisy_count, dtype=np.float64)
    centre = float(Fraction(centre_units) * Fraction(repr(float(resolution))))
    s_low, s_high = (s - a) * resolution, (s + a) * resolution
    c_low, c_high = c - b, c + b
    positive = c_low > 0
    safe_low = np.where(positive, c_low, 1.0)
    safe_high = np.where(positive, c_high, 1.0)
    low = centre + np.where(s_low >= 0, s_low / safe_high, s_low / safe_low)
    high = centre + np.where(s_high >= 0, s_high / safe_low, s_high / safe_high)
    # Widen by a relative 1e-12 (of the larger of the endpoint and the centre it was shifted by) so
    # float rounding never cuts the true mean off an endpoint.
    low = low - np.maximum(np.abs(low), abs(centre)) * _ROUNDING_SLACK
    high = high + np.maximum(np.abs(high), abs(centre)) * _ROUNDING_SLACK
    low = np.where(positive, np.clip(low, lower, upper), lower)
    high = np.where(positive, np.clip(high, lower, upper), upper)
    return low, high


def expected_mean_half_width(
    sum_noise: tuple[NoiseKind, float],
    count_noise: tuple[NoiseKind, float],
    alpha: float,
    count: float,
    bounds: tuple[float, float],
    resolution: float = 1.0,
) -> float:
    """Half-width a mean's interval would have if its cell held ``count`` rows (public assumption).

    ``sum_noise`` and ``count_noise`` are (noise kind, scale) of the two measurements, public (a
    preview's ``loss_split``). The worst case over every mean inside the declared bounds (see the
    module docstring); half the declared range when the count's interval would reach zero.
    """
    lower, upper = float(bounds[0]), float(bounds[1])
    if not lower <= upper:
        raise EngineInternalError(f"Declared bounds must satisfy lower <= upper; got {bounds!r}.")
    alpha = _check_alpha(alpha)
    a = half_width_at_scale(sum_noise[0], sum_noise[1], alpha / 2) * resolution
    b = half_width_at_scale(count_noise[0], count_noise[1], alpha / 2)
    widest = (upper - lower) / 2
    if count <= b:
        return widest
    largest = max(abs(lower), abs(upper))
    half = count * (largest * b + a) / (count * count - b * b)
    return min(half * (1 + _ROUNDING_SLACK), widest)


def quantile_score_error(calibration: NoiseCalibration, alpha: float) -> float:
    """Bound ``t`` (score units) with P(score of the selected > best score + t) <= alpha, per cell."""
    if calibration.mechanism != "noisy_max" or calibration.candidates is None:
        raise EngineInternalError(
            "Internal error: quantile_score_error takes a noisy-max calibration. This is a bug in sundstat."
        )
    alpha = _check_alpha(alpha)
    others = calibration.candidates - 1
    if others == 0:
        return 0.0
    # Exponential noise (pure): P(win by > t) = exp(-t/s)/2; Gumbel (zCDP): 1/(1 + exp(t/s)).
    ratio = others / (2 * alpha) if calibration.measure == "pure" else others / alpha - 1
    return calibration.scale * math.log(ratio) if ratio > 1 else 0.0


def quantile_rank_error(calibration: NoiseCalibration, alpha: float, den: int) -> float:
    """Rank error in rows (``quantile_score_error / den``) of a selected quantile, at level ``alpha``."""
    if den < 1:
        raise EngineInternalError(f"A quantile denominator must be positive; got {den}.")
    return quantile_score_error(calibration, alpha) / den
