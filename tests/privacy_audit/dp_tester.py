"""A stochastic differential-privacy tester: certify a lower bound on epsilon from samples.

The approach of Google's DP stochastic tester (google/differential-privacy, ``stochastic_tester``):
for a pair of neighbouring databases D and D', draw many releases from each, map every release to a
number (a *projection*), histogram the numbers into a few buckets, and check for every set S of
buckets that

    P[M(D) in S] <= e^eps * P[M(D') in S] + delta      (and the same with D and D' swapped).

Ours replaces the tester's fixed tolerance by confidence bounds, so that its false-failure rate is
proven rather than tuned:

1. Bucket edges come from a separate *pilot* sample (pooled from D and D'), never from the samples
   that are tested, so the sets are fixed before the tested samples are drawn.
2. The sets are every single bucket, every prefix (lower tail) and every suffix (upper tail) of
   the buckets, for every projection: ``m`` sets, each tested in both directions.
3. For each set the frequencies ``k1/n`` (from D) and ``k2/n`` (from D') get a lower bound ``L1`` and
   an upper bound ``U2``, each wrong with probability at most ``a = alpha / (4 m)`` (Chernoff-KL
   bounds: ``P(p_hat >= q) <= exp(-n KL(q || p))`` for ``q >= p``, and symmetrically below).
4. A set *certifies* ``eps_S = ln((L1 - delta) / U2)``. The tester's result is the largest ``eps_S``:
   with probability at least ``1 - alpha`` all 4m bounds hold at once, and then the mechanism is not
   (eps', delta)-DP for any eps' < eps_S. The verdict is FAIL when it exceeds the claimed epsilon.

False failure: if the mechanism is (eps, delta)-DP, every set has ``p1 <= e^eps p2 + delta``; a
certified violation needs ``L1 > p1`` or ``U2 < p2`` for that set, so by the union bound over the
2 * 2m bounds, ``P(FAIL) <= alpha``. The suite uses ``alpha = 1e-7`` per audit, whatever the
mechanism, the projections or the number of samples: a correct build fails a test at most once in
ten million runs. Power is what the number of samples buys; the tests that run deliberately broken
builds show it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 1e-7
"""False-failure probability of one audit (the union bound of all its confidence bounds)."""


def kl_bernoulli(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """KL(Bernoulli(q) || Bernoulli(p)), elementwise, with 0 log 0 = 0."""
    q = np.asarray(q, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-300, 1 - 1e-16)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(q > 0, q * np.log(q / p), 0.0)
        b = np.where(q < 1, (1 - q) * np.log((1 - q) / (1 - p)), 0.0)
    return a + b


def _bound(k: np.ndarray, n: int, a: float, upper: bool) -> np.ndarray:
    """The Chernoff-KL confidence bound on p from ``k`` successes in ``n`` trials (bisection)."""
    q = np.asarray(k, dtype=float) / n
    budget = math.log(1 / a) / n
    inside, outside = q.copy(), np.ones_like(q) if upper else np.zeros_like(q)
    for _ in range(60):
        middle = (inside + outside) / 2
        fits = kl_bernoulli(q, middle) <= budget
        inside = np.where(fits, middle, inside)
        outside = np.where(fits, outside, middle)
    return outside  # the conservative end: just beyond the last p that fits


def upper_bound(k: np.ndarray, n: int, a: float) -> np.ndarray:
    """``U`` with ``P(U < p) <= a``: the largest p the frequency k/n does not rule out at level a."""
    return _bound(k, n, a, upper=True)


def lower_bound(k: np.ndarray, n: int, a: float) -> np.ndarray:
    """``L`` with ``P(L > p) <= a``."""
    return _bound(k, n, a, upper=False)


@dataclass(frozen=True)
class AuditResult:
    """What one audit of one neighbour pair certified."""

    epsilon_claimed: float
    delta_claimed: float
    epsilon_lower_bound: float
    """Certified at confidence 1 - alpha: the mechanism is not (eps, delta)-DP for smaller eps."""
    worst_set: str
    samples: int
    sets: int
    alpha: float

    @property
    def passed(self) -> bool:
        """True unless the samples certify a loss above the claimed epsilon."""
        return self.epsilon_lower_bound <= self.epsilon_claimed

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"


def bucket_edges(pilot: np.ndarray, buckets: int) -> np.ndarray:
    """Cut points from a pilot sample: each distinct value if there are few, else quantiles."""
    values = np.unique(pilot)
    if len(values) <= buckets:
        return values[1:].astype(float)  # bucket j holds [values[j], values[j+1])
    cuts = np.quantile(pilot, np.arange(1, buckets) / buckets, method="inverted_cdf")
    return np.unique(cuts).astype(float)


def _matrix(samples: np.ndarray) -> np.ndarray:
    array = np.asarray(samples, dtype=float)
    return array[:, None] if array.ndim == 1 else array


def _set_counts(samples: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Counts of samples in every bucket, prefix and suffix (the tested sets), with their names."""
    index = np.searchsorted(edges, samples, side="right")
    per_bucket = np.bincount(index, minlength=len(edges) + 1)
    cumulative = np.cumsum(per_bucket)
    total = cumulative[-1]
    counts = [*per_bucket, *cumulative[:-1], *(total - cumulative[:-1])]
    bounds = [-math.inf, *edges, math.inf]
    names = [f"{bounds[j]:g} <= x < {bounds[j + 1]:g}" for j in range(len(per_bucket))]
    names += [f"x < {e:g}" for e in edges] + [f"x >= {e:g}" for e in edges]
    return np.asarray(counts), names


def audit(
    samples_d: np.ndarray,
    samples_d2: np.ndarray,
    pilot: np.ndarray,
    epsilon: float,
    delta: float = 0.0,
    *,
    buckets: int = 10,
    alpha: float = ALPHA,
) -> AuditResult:
    """Audit a claimed (epsilon, delta) on one neighbour pair.

    ``samples_d`` and ``samples_d2`` are ``(n, projections)`` arrays of projected releases of D and
    D' (the same ``n``); ``pilot`` is a ``(n0, projections)`` array of further releases (of both),
    used only to place the bucket edges.
    """
    samples_d, samples_d2, pilot = _matrix(samples_d), _matrix(samples_d2), _matrix(pilot)
    n = len(samples_d)
    if len(samples_d2) != n or n == 0:
        raise ValueError("Both databases need the same, positive number of samples.")
    all_counts1, all_counts2, all_names = [], [], []
    for column in range(samples_d.shape[1]):
        edges = bucket_edges(pilot[:, column], buckets)
        c1, names = _set_counts(samples_d[:, column], edges)
        c2, _ = _set_counts(samples_d2[:, column], edges)
        all_counts1.append(c1)
        all_counts2.append(c2)
        all_names += [f"projection {column}: {name}" for name in names]
    k1, k2 = np.concatenate(all_counts1), np.concatenate(all_counts2)
    sets = len(k1)
    a = alpha / (4 * sets)  # 2 directions x (one lower + one upper bound) per set
    best, where = -math.inf, "none"
    for hi_k, lo_k, direction in ((k1, k2, "D over D'"), (k2, k1, "D' over D")):
        low = lower_bound(hi_k, n, a) - delta
        high = upper_bound(lo_k, n, a)
        with np.errstate(divide="ignore"):
            certified = np.where(low > 0, np.log(np.maximum(low, 1e-300) / high), -math.inf)
        j = int(np.argmax(certified))
        if certified[j] > best:
            best, where = float(certified[j]), f"{all_names[j]} ({direction}: {hi_k[j]} vs {lo_k[j]} of {n})"
    return AuditResult(
        epsilon_claimed=epsilon,
        delta_claimed=delta,
        epsilon_lower_bound=best,
        worst_set=where,
        samples=n,
        sets=sets,
        alpha=alpha,
    )
