"""Mechanisms: the charged loss is OpenDP's map, never above the target, and re-checked before noise."""

from __future__ import annotations

import dataclasses
import math
import time
from fractions import Fraction

import numpy as np
import opendp.prelude as dp
import pytest

from query_engine.errors import EngineInternalError, LossOutOfRange, PrivacyInvariantError, UnsupportedQuery
from query_engine.mechanisms import (
    DPArray,
    NoiseCalibration,
    NoiseKind,
    PrivacyLoss,
    Sensitivity,
    add_noise,
    calibrate,
    calibrate_quantile,
    calibrate_scale,
    calibrate_threshold,
    quantile_d_in,
    quantile_fraction,
    release_threshold,
    select_quantile,
    split_loss,
    total_loss,
)

dp.enable_features("contrib")

SENSITIVITIES = [
    pytest.param(Sensitivity.for_contribution(1, 1), id="count_G1_c1"),
    pytest.param(Sensitivity.for_contribution(3, 2), id="count_G3_c2"),
    pytest.param(Sensitivity.for_contribution(7, 5, 12_345), id="sum_G7_c5"),
    pytest.param(Sensitivity.for_contribution(20, 1, 10**6), id="sum_G20_big"),
]
EPSILONS = [1e-4, 0.01, 0.1, 0.3, 1 / 3, 0.5, 1.0, 2.0, 7.3]
RHOS = [1e-6, 0.001, 0.05, 0.1, 0.125, 0.5, 2.0]


LOSS_OF: dict[NoiseKind, str] = {"laplace": "epsilon", "gaussian": "rho"}
"""The loss each noise kind is calibrated in (the other one stays None)."""
TARGETS = [pytest.param("laplace", e, id=f"epsilon_{e:g}") for e in EPSILONS] + [
    pytest.param("gaussian", r, id=f"rho_{r:g}") for r in RHOS
]


def fresh_laplace(scale: float) -> dp.Measurement:
    return dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l1_distance(T=dp.i64), scale=scale
    )


def fresh_gaussian(scale: float) -> dp.Measurement:
    return dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l2_distance(T=float), scale=scale
    )


def opendp_loss(kind: NoiseKind, scale: float, sensitivity: Sensitivity) -> float:
    """What a fresh OpenDP measurement of ``kind`` at ``scale`` charges: the map of the L1 (Laplace)
    or L2 (Gaussian) sensitivity."""
    if kind == "laplace":
        return float(fresh_laplace(scale).map(sensitivity.l1))
    return float(fresh_gaussian(scale).map(sensitivity.l2))


def calibrated(kind: NoiseKind, sensitivity: Sensitivity, target: float) -> NoiseCalibration:
    """``calibrate`` with ``target`` as the epsilon (Laplace) or the rho (Gaussian)."""
    return calibrate(kind, sensitivity, **{LOSS_OF[kind]: target})


# --- calibration ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sensitivity", SENSITIVITIES)
@pytest.mark.parametrize(("kind", "target"), TARGETS)
def test_loss_is_opendp_map_and_meets_target(
    sensitivity: Sensitivity, kind: NoiseKind, target: float
) -> None:
    calibration = calibrated(kind, sensitivity, target)
    charged = getattr(calibration.loss, LOSS_OF[kind])
    assert charged is not None
    assert charged == opendp_loss(kind, calibration.scale, sensitivity)
    assert charged <= target
    assert charged >= target * (1 - 1e-9)
    other = "rho" if kind == "laplace" else "epsilon"
    assert getattr(calibration.loss, other) is None and calibration.loss.delta == 0.0
    assert calibration.mechanism == f"discrete_{kind}"


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_calibrate_scale_reads_loss_by_map(kind: NoiseKind) -> None:
    sensitivity = Sensitivity.for_contribution(4, 3)
    calibration = calibrate_scale(kind, sensitivity, 12.5)
    assert getattr(calibration.loss, LOSS_OF[kind]) == opendp_loss(kind, 12.5, sensitivity)


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        pytest.param("laplace", {"epsilon": 0.0}, id="zero_epsilon"),
        pytest.param("laplace", {"epsilon": -1.0}, id="negative_epsilon"),
        pytest.param("laplace", {"epsilon": math.inf}, id="infinite_epsilon"),
        pytest.param("laplace", {"epsilon": math.nan}, id="nan_epsilon"),
        pytest.param("gaussian", {"rho": 0.0}, id="zero_rho"),
        pytest.param("laplace", {}, id="missing_epsilon"),
    ],
)
def test_invalid_loss_targets_are_refused(kind: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(LossOutOfRange):
        calibrate(kind, Sensitivity.for_contribution(1, 1), **kwargs)  # type: ignore[arg-type]


def test_wrong_loss_kind_for_mechanism_is_a_bug() -> None:
    with pytest.raises(EngineInternalError):
        calibrate("laplace", Sensitivity.for_contribution(1, 1), rho=0.1)
    with pytest.raises(EngineInternalError):
        calibrate("gaussian", Sensitivity.for_contribution(1, 1), epsilon=0.1)


def test_sensitivity_validation_and_contribution() -> None:
    s = Sensitivity.for_contribution(5, 3, 7)
    assert (s.l1, s.linf, s.l0) == (105, 21, 5)
    assert Fraction(s.l2) ** 2 >= 5 * 21**2  # never below the exact L2 norm
    assert s.l2 == pytest.approx(21 * math.sqrt(5), rel=1e-15)
    assert Sensitivity(l1=np.int64(3), l2=1.5, linf=1, l0=3).l1 == 3  # type: ignore[arg-type]
    for bad in (
        {"l1": 0, "l2": 1.0, "linf": 1, "l0": 1},
        {"l1": 1, "l2": 0.0, "linf": 1, "l0": 1},
        {"l1": 1, "l2": math.nan, "linf": 1, "l0": 1},
        {"l1": 1.5, "l2": 1.0, "linf": 1, "l0": 1},
        {"l1": True, "l2": 1.0, "linf": 1, "l0": 1},
    ):
        with pytest.raises(EngineInternalError):
            Sensitivity(**bad)  # type: ignore[arg-type]


def test_privacy_loss_has_exactly_one_of_epsilon_and_rho() -> None:
    with pytest.raises(EngineInternalError):
        PrivacyLoss()
    with pytest.raises(EngineInternalError):
        PrivacyLoss(epsilon=1.0, rho=1.0)
    with pytest.raises(EngineInternalError):
        PrivacyLoss(epsilon=1.0, delta=-1e-9)
    assert PrivacyLoss(rho=0.5).measure == "zcdp" and PrivacyLoss(rho=0.5).value == 0.5


# --- noise and the re-check -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_add_noise_returns_int64_dp_array(kind: NoiseKind) -> None:
    calibration = calibrated(kind, Sensitivity.for_contribution(1, 1), 1.0 if kind == "laplace" else 0.5)
    exact = np.arange(50, dtype=np.int64) * 1000
    noisy = add_noise(calibration, exact)
    assert isinstance(noisy, DPArray) and noisy.dtype == np.int64 and noisy.shape == exact.shape
    assert np.all(np.abs(noisy - exact) < 200)  # scale ~1-2: a 200 miss has probability < 1e-40
    assert len(add_noise(calibration, np.array([], dtype=np.int64))) == 0


def test_add_noise_handles_values_beyond_int32() -> None:
    calibration = calibrate("laplace", Sensitivity.for_contribution(1, 1), epsilon=1.0)
    exact = np.array([2**40, -(2**40), 2**62], dtype=np.int64)
    assert np.all(np.abs(add_noise(calibration, exact) - exact) < 200)


@pytest.mark.parametrize(
    "exact",
    [
        pytest.param(np.array([1.5, 2.0]), id="float"),
        pytest.param(np.array([[1, 2]], dtype=np.int64), id="two_dimensional"),
        pytest.param(np.array([2**63], dtype=np.uint64), id="uint64_overflow"),
    ],
)
def test_add_noise_refuses_non_int64_vectors(exact: np.ndarray) -> None:
    calibration = calibrate("laplace", Sensitivity.for_contribution(1, 1), epsilon=1.0)
    with pytest.raises(EngineInternalError):
        add_noise(calibration, exact)


def _tampered(calibration: NoiseCalibration) -> list[NoiseCalibration]:
    loss = calibration.loss
    smaller = (
        PrivacyLoss(epsilon=loss.value * 0.9) if loss.measure == "pure" else PrivacyLoss(rho=loss.value * 0.9)
    )
    one_ulp = (
        PrivacyLoss(epsilon=math.nextafter(loss.value, 0))
        if loss.measure == "pure"
        else PrivacyLoss(rho=math.nextafter(loss.value, 0))
    )
    bigger_sensitivity = Sensitivity(
        l1=calibration.sensitivity.l1 + 1,
        l2=calibration.sensitivity.l2 * 1.5,
        linf=calibration.sensitivity.linf + 1,
        l0=calibration.sensitivity.l0,
    )
    return [
        dataclasses.replace(calibration, loss=smaller),
        dataclasses.replace(calibration, loss=one_ulp),
        dataclasses.replace(calibration, scale=calibration.scale * 0.5),
        dataclasses.replace(calibration, sensitivity=bigger_sensitivity),
        dataclasses.replace(calibration, loss=dataclasses.replace(loss, delta=1e-9)),
    ]


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_tampered_calibration_raises_and_releases_nothing(kind: NoiseKind) -> None:
    sensitivity = Sensitivity.for_contribution(2, 3)
    calibration = calibrated(kind, sensitivity, 0.7 if kind == "laplace" else 0.2)
    for tampered in _tampered(calibration):
        with pytest.raises(PrivacyInvariantError):
            add_noise(tampered, np.zeros(3, dtype=np.int64))


def test_tampered_mechanism_name_raises() -> None:
    calibration = calibrate("laplace", Sensitivity.for_contribution(1, 1), epsilon=0.5)
    with pytest.raises(PrivacyInvariantError):
        add_noise(
            dataclasses.replace(calibration, mechanism="discrete_gaussian"), np.zeros(3, dtype=np.int64)
        )


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_add_noise_on_20_cells_is_well_under_a_millisecond(kind: NoiseKind) -> None:
    sensitivity = Sensitivity.for_contribution(1, 1)
    calibration = calibrated(kind, sensitivity, 0.5 if kind == "laplace" else 0.1)
    exact = np.arange(20, dtype=np.int64)
    add_noise(calibration, exact)
    timings = []
    for _ in range(200):
        # CPU time of this process: the sampler runs in-thread, and other jobs' load does not count.
        start = time.process_time()
        add_noise(calibration, exact)
        timings.append(time.process_time() - start)
    assert float(np.median(timings)) < 1e-3


# --- composition ----------------------------------------------------------------------------------


def test_split_loss_halves_and_total_adds_opendp_losses() -> None:
    halves = split_loss(PrivacyLoss(epsilon=0.3))
    assert halves == (PrivacyLoss(epsilon=0.15), PrivacyLoss(epsilon=0.15))
    sensitivity = Sensitivity.for_contribution(2, 2)
    parts = [calibrate("laplace", sensitivity, epsilon=h.epsilon) for h in halves]
    total = total_loss(parts)
    assert total.epsilon == float(sum(Fraction(p.loss.value) for p in parts))
    assert total.epsilon is not None and total.epsilon <= 0.3


@pytest.mark.parametrize("whole", [0.1, 1 / 3, 0.7, 1e-5, 3.3])
def test_split_loss_parts_never_add_up_to_more_than_the_whole(whole: float) -> None:
    for weights in (
        (Fraction(1, 2), Fraction(1, 2)),
        (Fraction(1, 3), Fraction(2, 3)),
        (Fraction(1, 7),) * 7,
    ):
        parts = split_loss(PrivacyLoss(rho=whole, delta=whole / 10), weights)
        assert sum(Fraction(p.value) for p in parts) <= Fraction(whole)
        assert sum(Fraction(p.delta) for p in parts) <= Fraction(whole / 10)


def test_total_loss_rounds_up_and_refuses_mixed_measures() -> None:
    parts = [PrivacyLoss(epsilon=0.1)] * 3
    total = total_loss(parts)
    assert total.epsilon is not None and Fraction(total.epsilon) >= 3 * Fraction(0.1)
    with pytest.raises(EngineInternalError):
        total_loss([PrivacyLoss(epsilon=0.1), PrivacyLoss(rho=0.1)])
    with pytest.raises(EngineInternalError):
        split_loss(PrivacyLoss(epsilon=1.0), (Fraction(1, 2), Fraction(1, 3)))


# --- quantiles ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        pytest.param(0.5, (1, 2), id="median"),
        pytest.param(0.95, (19, 20), id="p95"),
        pytest.param(0.25, (1, 4), id="quartile"),
        pytest.param(0.333, (333, 1000), id="decimal"),
        pytest.param(0.001, (1, 1000), id="small"),
        pytest.param(0.123456, (1929, 15625), id="six_decimals"),
    ],
)
def test_quantile_fraction_is_the_exact_decimal(q: float, expected: tuple[int, int]) -> None:
    assert quantile_fraction(q) == expected


@pytest.mark.parametrize("q", [0.0, 1.0, -0.5, 1.5, math.nan, 0.1234567, True])
def test_quantile_fraction_refuses_bad_levels(q: float) -> None:
    with pytest.raises(UnsupportedQuery):
        quantile_fraction(q)


def _fresh_noisy_max(measure: str, scale: float) -> dp.Measurement:
    output = dp.max_divergence() if measure == "pure" else dp.zero_concentrated_divergence()
    return dp.m.make_noisy_max(
        dp.vector_domain(dp.atom_domain(T=dp.u64)),
        dp.linf_distance(T=dp.u64),
        output,
        scale=scale,
        negate=True,
    )


@pytest.mark.parametrize("groups", [1, 3, 10])
@pytest.mark.parametrize(
    ("measure", "target"), [("pure", 0.5), ("pure", 1 / 3), ("zcdp", 0.1), ("zcdp", 0.07)]
)
def test_quantile_loss_is_g_times_opendp_map(measure: str, target: float, groups: int) -> None:
    d_in = quantile_d_in(19, 20, 3)
    assert d_in == 57
    calibration = (
        calibrate_quantile(d_in, target, 21, groups)
        if measure == "pure"
        else calibrate_quantile(d_in, None, 21, groups, rho=target)
    )
    per_cell = _fresh_noisy_max(measure, calibration.scale).map(d_in)
    exact_total = groups * Fraction(per_cell)
    assert Fraction(calibration.loss.value) >= exact_total  # never under-charged
    assert calibration.loss.value == pytest.approx(float(exact_total), rel=1e-15)
    assert calibration.loss.value <= target
    assert calibration.loss.value >= target * (1 - 1e-9)
    assert calibration.loss.measure == measure and calibration.candidates == 21


def test_noisy_max_supports_zcdp_in_opendp() -> None:
    """OpenDP 0.16 noisy max takes zero-concentrated divergence: quantiles need not be pure DP."""
    measurement = _fresh_noisy_max("zcdp", 2.0)
    assert str(measurement.output_measure).startswith("ZeroConcentratedDivergence")
    assert measurement.map(1) == pytest.approx((2 * 1 / 2.0) ** 2 / 8)


def test_select_quantile_picks_an_obvious_minimum_and_checks_the_loss() -> None:
    calibration = calibrate_quantile(quantile_d_in(1, 2, 1), 1.0, 5, 1)
    scores = np.array([[10**9, 10**9, 0, 10**9, 10**9]] * 4, dtype=np.uint64)
    selected = select_quantile(calibration, scores)
    assert isinstance(selected, DPArray) and selected.tolist() == [2, 2, 2, 2]
    with pytest.raises(PrivacyInvariantError):
        select_quantile(dataclasses.replace(calibration, scale=calibration.scale / 2), scores)
    with pytest.raises(PrivacyInvariantError):
        select_quantile(dataclasses.replace(calibration, loss=PrivacyLoss(epsilon=0.5)), scores)
    with pytest.raises(EngineInternalError):
        select_quantile(calibration, scores[:, :4])
    with pytest.raises(EngineInternalError):
        select_quantile(calibration, -np.ones((1, 5), dtype=np.int64))


# --- partition selection --------------------------------------------------------------------------


def _fresh_threshold(kind: str, scale: float, threshold: int) -> dp.Measurement:
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=dp.i64))
    if kind == "laplace":
        metric = dp.l01inf_distance(dp.absolute_distance(T=dp.i64))
        output = dp.approximate(dp.max_divergence())
    else:
        metric = dp.l02inf_distance(dp.absolute_distance(T=dp.i64))
        output = dp.approximate(dp.zero_concentrated_divergence())
    return dp.m.make_noise_threshold(domain, metric, output, scale=scale, threshold=threshold)


@pytest.mark.parametrize("delta", [1e-5, 1e-7, 1e-10])
@pytest.mark.parametrize(
    ("kind", "target"), [("laplace", 0.5), ("laplace", 2.0), ("gaussian", 0.05), ("gaussian", 0.5)]
)
@pytest.mark.parametrize("contribution", [(1, 1), (3, 2)])
def test_threshold_is_the_smallest_meeting_delta(
    kind: str, target: float, delta: float, contribution: tuple[int, int]
) -> None:
    sensitivity = Sensitivity.for_contribution(*contribution)
    kwargs = {"epsilon": target} if kind == "laplace" else {"rho": target}
    calibration = calibrate_threshold(kind, sensitivity, delta=delta, **kwargs)  # type: ignore[arg-type]
    assert calibration.threshold is not None
    d_in = (sensitivity.l0, sensitivity.l1, sensitivity.linf)
    loss, actual_delta = _fresh_threshold(kind, calibration.scale, calibration.threshold).map(d_in)
    assert (calibration.loss.value, calibration.loss.delta) == (loss, actual_delta)
    assert 0 < actual_delta <= delta
    assert target * (1 - 1e-9) <= loss <= target
    if calibration.threshold > sensitivity.linf:
        _, looser = _fresh_threshold(kind, calibration.scale, calibration.threshold - 1).map(d_in)
        assert looser > delta


def test_release_threshold_keeps_large_drops_small_and_sorts() -> None:
    calibration = calibrate_threshold("laplace", Sensitivity.for_contribution(1, 1), epsilon=1.0, delta=1e-7)
    assert calibration.threshold is not None and calibration.threshold < 100
    keys = ["zeta", "alpha", "tiny", "mid"]
    exact = np.array([10**6, 10**6, 0, 10**5], dtype=np.int64)
    kept, noisy = release_threshold(calibration, keys, exact)
    assert kept == ["alpha", "mid", "zeta"]  # sorted, not in the input order
    assert isinstance(noisy, DPArray) and noisy.dtype == np.int64
    assert np.all(np.abs(noisy - np.array([10**6, 10**5, 10**6])) < 100)
    with pytest.raises(PrivacyInvariantError):
        release_threshold(dataclasses.replace(calibration, threshold=calibration.threshold - 5), keys, exact)
    with pytest.raises(PrivacyInvariantError):
        release_threshold(
            dataclasses.replace(calibration, loss=dataclasses.replace(calibration.loss, delta=1e-9)),
            keys,
            exact,
        )
    with pytest.raises(EngineInternalError):
        release_threshold(calibration, ["a", "a"], np.array([1, 2], dtype=np.int64))


def test_threshold_refuses_bad_delta() -> None:
    for delta in (0.0, 1.0, -1e-9, math.nan):
        with pytest.raises(LossOutOfRange):
            calibrate_threshold("laplace", Sensitivity.for_contribution(1, 1), epsilon=1.0, delta=delta)
