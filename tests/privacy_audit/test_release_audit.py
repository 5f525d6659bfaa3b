"""The privacy audit of releases: every measure meets the loss it is charged, and broken builds do not.

Each case runs its query through the real engine on two neighbouring DuckDB files (one heavy person
with 60 hospital contacts, 60 prescriptions and 10 income years added), then draws many releases
from the OpenDP measurements the engine built (see ``audit_world`` for exactly which steps run per
sample) and asks ``dp_tester.audit`` for a certified lower bound on epsilon.

False failure (a correct build failing): at most ``dp_tester.ALPHA = 1e-7`` per audit, by the union
bound over the audit's confidence bounds (proof in ``dp_tester``); it does not depend on the
samples drawn or the mechanism.

False pass (a broken build passing): in five repeated runs at this suite's sample sizes the broken
builds certified 1.39-1.55 times the charged epsilon (quantile with halved sensitivity;
1.44 and 1.50 of the point's part in two runs after the loss split, correct builds 0.56),
1.43-1.48 times the (epsilon, delta = 0.01) that the charged rho promises (discrete Gaussian with
halved sensitivity), 1.66-1.84 (halved sensitivity) and 3.8-5.2 (bounding removed, a lowered
threshold); correct builds at most 0.92 times. The mean (its sum centred on the midpoint of the
bounds, the loss split 59/41 between sum and count) in three runs: 1.42-1.45 charged for its sum
only, 2.02-2.09 for its count only, 1.32-1.36 with the SQL summing raw values under the centred sum's
sensitivity (the weakest: in ten runs its bound was 2.72 on average against the charged 2.0, standard
deviation 0.045, so its margin of 0.65 is 14 standard deviations); the correct mean 0.85-0.87. The certified bound is
the log of a ratio of two binomial frequencies; in the weakest case (about 260 and 2,000 of 5,000)
its standard deviation is about sqrt(1/260 + 1/2000) = 0.066, so its margin of 0.39 is 6 standard
deviations (normal tail 1e-9); for the Gaussian (about 80 and 9,200 of 50,000: 0.11) the margin of
1.16 is 10, and every other broken build's margin is more than 10: a broken build passes with
probability below 1e-6.

Non-vacuity of the correct builds: with additive noise the pairs reach the declared sensitivity,
so the certified bound is 0.83-0.92 of the claim; the test asserts more than 0.5 of it, over 15
standard deviations (about 0.02) below what is measured.
"""

from __future__ import annotations

import pytest

from tests.privacy_audit.audit_world import audit_case, cases
from tests.privacy_audit.broken_builds import BROKEN_BUILDS
from tests.privacy_audit.neighbours import World

pytestmark = pytest.mark.slow

ADDITIVE_SAMPLES, ADDITIVE_PILOT = 20_000, 2_000
# Selections and thresholds cost one OpenDP call per release (~0.4 ms); fewer samples keep the suite fast.
SLOW_CASE_SAMPLES = {
    "quantile": 5_000,
    "partition_selection_new_key": 1_500,
    "partition_selection_shared_key": 2_000,
}
SLOW_CASE_PILOT = 400

CASE_NAMES = [
    "count_persons",
    "count_rows",
    "count_rows_zcdp",
    "sum",
    "mean",
    "quantile",
    "partition_selection_new_key",
    "partition_selection_shared_key",
]


ZCDP_SAMPLES = 50_000  # Gaussian noise is drawn in one call; the (epsilon, delta) claim needs tails


def _sizes(name: str) -> tuple[int, int]:
    if name.endswith("_zcdp"):
        return ZCDP_SAMPLES, ADDITIVE_PILOT
    if name in SLOW_CASE_SAMPLES:
        return SLOW_CASE_SAMPLES[name], SLOW_CASE_PILOT
    return ADDITIVE_SAMPLES, ADDITIVE_PILOT


@pytest.mark.parametrize("name", CASE_NAMES)
def test_every_measure_meets_its_charged_loss(world: World, name: str) -> None:
    case = cases(world)[name]
    samples, pilot = _sizes(name)
    result = audit_case(world, case, samples=samples, pilot=pilot)
    assert result.passed, (
        f"{name}: the releases certify epsilon >= {result.epsilon_lower_bound:.3f} (confidence 1 - "
        f"{result.alpha:g}) but the engine charges {result.epsilon_claimed} (delta {result.delta_claimed:g}); "
        f"worst set {result.worst_set}"
    )
    if name in ("count_persons", "count_rows", "sum", "mean"):
        assert result.epsilon_lower_bound > 0.5 * result.epsilon_claimed, (
            f"{name}: the neighbour pair does not reach the declared sensitivity (certified only "
            f"{result.epsilon_lower_bound:.3f} of {result.epsilon_claimed}): the audit would be too weak"
        )


def test_the_audit_cases_cover_every_measure(world: World) -> None:
    measures = {cases(world)[name].query["measure"] for name in CASE_NAMES}
    assert measures == {"count_persons", "count_rows", "sum", "mean", "quantile"}
    assert any(cases(world)[name].context.delta_available for name in CASE_NAMES)


@pytest.mark.parametrize(("build", "name"), [pytest.param(b, n, id=b) for b, (_, n) in BROKEN_BUILDS.items()])
def test_the_audit_fails_a_broken_build(
    world: World, monkeypatch: pytest.MonkeyPatch, build: str, name: str
) -> None:
    patch, _ = BROKEN_BUILDS[build]
    patch(monkeypatch)
    samples, pilot = _sizes(name)
    result = audit_case(world, cases(world)[name], samples=samples, pilot=pilot)
    assert not result.passed, (
        f"the audit did not catch '{build}': certified only epsilon >= {result.epsilon_lower_bound:.3f} "
        f"against the charged {result.epsilon_claimed}"
    )
