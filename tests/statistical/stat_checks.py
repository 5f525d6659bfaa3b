"""Exact distributions and hypothesis tests for the statistical tests (no scipy needed).

Every check rejects at p < ``P_REJECT`` (1e-6): a correct mechanism fails a check with probability
below 1e-6, so the whole statistical suite (a few dozen checks) fails falsely with probability
below 1e-4. The power checks are sized so that a wrong mechanism passes with negligible probability.
"""

from __future__ import annotations

import math

import numpy as np

P_REJECT = 1e-6


# --- exact pmfs -----------------------------------------------------------------------------------


def exact_pmf(kind: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Support and probabilities of the discrete Laplace / discrete Gaussian of ``scale`` (to 1e-15)."""
    if kind == "laplace":
        half = int(40 * scale) + 40  # q^half < e^-40
        support = np.arange(-half, half + 1)
        log_weight = -np.abs(support) / scale
    elif kind == "gaussian":
        half = int(9 * scale) + 40  # exp(-81/2) < e^-40
        support = np.arange(-half, half + 1)
        log_weight = -(support.astype(float) ** 2) / (2 * scale * scale)
    else:
        raise ValueError(kind)
    weight = np.exp(log_weight - log_weight.max())
    return support, weight / weight.sum()


# --- chi-square goodness of fit -------------------------------------------------------------------


def _regularized_upper_gamma(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a), by series (x < a + 1) or continued fraction (Numerical Recipes)."""
    if x <= 0:
        return 1.0
    log_prefactor = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(100_000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return math.exp(log_prefactor) * h


def chi2_sf(statistic: float, df: int) -> float:
    """P(chi-square with ``df`` degrees of freedom >= statistic)."""
    return _regularized_upper_gamma(df / 2, statistic / 2)


def chi_square_p(samples: np.ndarray, support: np.ndarray, probs: np.ndarray, bins: int = 80) -> float:
    """Chi-square goodness-of-fit p-value of integer ``samples`` against an exact pmf.

    Bins are cut at quantiles of the exact distribution (each expects about ``len(samples)/bins``
    samples, and at least 20); the outer bins extend to infinity.
    """
    n = len(samples)
    bins = max(2, min(bins, n // 20))
    cdf = np.cumsum(probs)
    cuts = np.unique(np.searchsorted(cdf, np.arange(1, bins) / bins))
    cuts = cuts[(cuts > 0) & (cuts < len(support))]
    edges = support[cuts]  # bin j holds values in [edges[j-1], edges[j])
    expected_p = np.diff(np.concatenate([[0.0], cdf[cuts - 1], [1.0]]))
    observed = np.bincount(np.searchsorted(edges, samples, side="right"), minlength=len(edges) + 1)
    # Merge bins that expect fewer than 20 samples into their right neighbour.
    merged_obs: list[float] = []
    merged_exp: list[float] = []
    obs_acc = exp_acc = 0.0
    for o, e in zip(observed, expected_p * n, strict=True):
        obs_acc += o
        exp_acc += e
        if exp_acc >= 20:
            merged_obs.append(obs_acc)
            merged_exp.append(exp_acc)
            obs_acc = exp_acc = 0.0
    if exp_acc > 0 or obs_acc > 0:
        merged_obs[-1] += obs_acc
        merged_exp[-1] += exp_acc
    obs = np.asarray(merged_obs)
    exp = np.asarray(merged_exp)
    statistic = float(((obs - exp) ** 2 / exp).sum())
    return chi2_sf(statistic, len(obs) - 1)


# --- binomial tails -------------------------------------------------------------------------------


def binomial_upper_p(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)

    def log_term(i: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q

    peak = -math.inf
    total = 0.0  # sum of exp(log_term(i) - peak), rescaled when the peak moves
    for i in range(k, n + 1):
        value = log_term(i)
        if value > peak:
            total = total * math.exp(peak - value) + 1.0
            peak = value
        else:
            total += math.exp(value - peak)
        if i > n * p and value - peak < -40:
            break
    return min(1.0, math.exp(peak) * total)


def binomial_two_sided_p(k: int, n: int, p: float) -> float:
    """Two-sided p-value (twice the smaller tail) of ``k`` successes in ``n`` trials at rate ``p``."""
    upper = binomial_upper_p(k, n, p)
    lower = 1.0 - binomial_upper_p(k + 1, n, p)
    return min(1.0, 2 * min(upper, lower))


def miss_rate_p(misses: int, n: int, alpha: float) -> float:
    """p-value of H0 "the miss rate is at most alpha" given ``misses`` out of ``n``."""
    return binomial_upper_p(misses, n, alpha)
