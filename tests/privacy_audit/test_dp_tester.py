"""The tester itself: its confidence bounds are valid, it passes a true claim and fails a false one.

The bounds are checked against the exact binomial tails of ``stat_checks`` (the statistical suite's
helpers): a Chernoff-KL bound at level ``a`` must never be tighter than the exact one. Then a real
OpenDP discrete Laplace of scale 1 on the neighbouring values 0 and 1 (epsilon exactly 1) must pass
a claim of 1 and fail a claim of 0.5 on the same samples: from 20,000 samples each it certifies
about 0.9 (a log ratio of frequencies near 11,000 and 4,000, standard deviation about 0.02), so the
claim of 0.5 is failed with a margin of some 20 standard deviations.
"""

from __future__ import annotations

import numpy as np
import pytest

from query_engine.mechanisms import Sensitivity, add_noise, calibrate_scale
from tests.privacy_audit.dp_tester import ALPHA, audit, bucket_edges, lower_bound, upper_bound
from tests.statistical.stat_checks import binomial_upper_p

CASES = [(0, 50), (1, 50), (7, 200), (100, 200), (199, 200), (200, 200), (3, 5000), (2500, 5000)]


@pytest.mark.parametrize(("k", "n"), CASES)
@pytest.mark.parametrize("a", [1e-3, 1e-9])
def test_bounds_are_never_tighter_than_the_exact_binomial_ones(k: int, n: int, a: float) -> None:
    upper = float(upper_bound(np.array([k]), n, a)[0])
    lower = float(lower_bound(np.array([k]), n, a)[0])
    assert lower <= k / n <= upper
    # At p = upper, seeing k or fewer successes has probability at most a (and likewise below).
    assert upper >= 1.0 or 1.0 - binomial_upper_p(k + 1, n, upper) <= a
    assert lower <= 0.0 or binomial_upper_p(k, n, lower) <= a


def test_bucket_edges_keep_every_value_when_there_are_few() -> None:
    assert bucket_edges(np.array([-1, -1, 3, 5, 5]), 10).tolist() == [3.0, 5.0]
    assert len(bucket_edges(np.arange(1000), 10)) == 9


def _laplace(exact: int, n: int) -> np.ndarray:
    """n releases of a real OpenDP discrete Laplace of scale 1 (epsilon 1 for neighbours 0 and 1)."""
    calibration = calibrate_scale("laplace", Sensitivity.for_contribution(1, 1), 1.0)
    return np.asarray(add_noise(calibration, np.full(n, exact, dtype=np.int64)))


def test_passes_the_true_epsilon_and_fails_a_false_one() -> None:
    pilot = np.concatenate([_laplace(0, 1000), _laplace(1, 1000)])
    d, d2 = _laplace(0, 20_000), _laplace(1, 20_000)
    true_claim = audit(d, d2, pilot, 1.0)
    false_claim = audit(d, d2, pilot, 0.5)
    assert true_claim.passed, true_claim
    assert not false_claim.passed, false_claim
    assert (
        true_claim.epsilon_lower_bound == false_claim.epsilon_lower_bound
    )  # the claim only sets the verdict
    assert true_claim.alpha == ALPHA
