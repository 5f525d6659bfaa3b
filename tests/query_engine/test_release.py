"""Release post-processing: suppression, clipping with the raw value kept, intervals, rounding, models."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from query_engine.accuracy import alpha_for, half_width, mean_interval, quantile_rank_error
from query_engine.errors import EngineInternalError, PrivacyInvariantError
from query_engine.mechanisms import (
    DPArray,
    PrivacyLoss,
    Sensitivity,
    add_noise,
    calibrate,
    calibrate_quantile,
    calibrate_threshold,
    split_loss,
    total_loss,
)
from query_engine.postprocess import count_rows, mean_rows, quantile_rows, sum_rows, threshold_rows
from query_engine.release import accuracy_public, privacy_public
from query_engine.release_models import Preview, PrivacyPublic, Release, columns_for, new_release_id


def dp_array(values: list[int]) -> DPArray:
    """A stand-in for a mechanism's output (tests only: product code gets these from OpenDP)."""
    return np.asarray(values, dtype=np.int64).view(DPArray)


@pytest.fixture(scope="module")
def count_calibration():
    return calibrate("laplace", Sensitivity.for_contribution(1, 1), epsilon=0.5)


def keys_for(n: int) -> list[dict[str, Any]]:
    return [{"cpr.region": f"R{i}"} for i in range(n)]


# --- counts ---------------------------------------------------------------------------------------


def test_count_rows_suppress_small_noisy_counts_only(count_calibration) -> None:
    a = int(half_width(count_calibration, alpha_for(0.95)))
    rows = count_rows(keys_for(4), dp_array([4, 5, -3, 1234]), count_calibration, 0.95)
    assert [r["suppressed"] for r in rows] == [True, False, True, False]
    for row in (rows[0], rows[2]):
        assert row["value"] is None and row["ci_low"] is None and row["ci_high"] is None
        assert row["value_raw"] is None
    assert rows[1] == {
        "cpr.region": "R1",
        "value": 5,
        "ci_low": max(5 - a, 0),
        "ci_high": 5 + a,
        "suppressed": False,
        "value_raw": 5,
    }
    assert rows[3]["ci_low"] == 1234 - a and rows[3]["ci_high"] == 1234 + a


def test_count_rows_clip_at_zero_and_keep_the_raw_value(count_calibration) -> None:
    a = int(half_width(count_calibration, alpha_for(0.95)))
    rows = count_rows(keys_for(3), dp_array([-7, 0, 3]), count_calibration, 0.95, small_cell_threshold=0)
    assert [r["value"] for r in rows] == [0, 0, 3]
    assert [r["value_raw"] for r in rows] == [-7, 0, 3]
    assert [r["ci_low"] for r in rows] == [0, 0, max(0, 3 - a)]
    assert rows[0]["ci_high"] == max(0, -7 + a)
    assert all(type(r["value"]) is int for r in rows)


def test_post_processing_refuses_arrays_that_are_not_dp_outputs(count_calibration) -> None:
    exact = np.array([10, 20], dtype=np.int64)
    with pytest.raises(PrivacyInvariantError):
        count_rows(keys_for(2), exact, count_calibration, 0.95)  # type: ignore[arg-type]
    with pytest.raises(PrivacyInvariantError):
        sum_rows(keys_for(2), exact, count_calibration, 0.95, resolution=1.0, bounds=(0, 1))  # type: ignore[arg-type]
    with pytest.raises(PrivacyInvariantError):
        mean_rows(
            keys_for(2),
            dp_array([1, 2]),
            exact,  # type: ignore[arg-type]
            count_calibration,
            count_calibration,
            0.95,
            bounds=(0, 1),
            resolution=1.0,
        )
    with pytest.raises(EngineInternalError):
        count_rows(keys_for(3), dp_array([1, 2]), count_calibration, 0.95)


def test_add_noise_output_goes_straight_into_rows(count_calibration) -> None:
    noisy = add_noise(count_calibration, np.array([1000, 2000], dtype=np.int64))
    rows = count_rows(keys_for(2), noisy, count_calibration, 0.95)
    assert [r["value_raw"] for r in rows] == noisy.tolist()


# --- sums -----------------------------------------------------------------------------------------


def test_sum_rows_scale_fixed_point_exactly() -> None:
    calibration = calibrate("laplace", Sensitivity.for_contribution(1, 2, 5000), epsilon=1.0)
    a = int(half_width(calibration, alpha_for(0.9)))
    rows = sum_rows(
        keys_for(2), dp_array([12345, -20]), calibration, 0.9, resolution=0.01, bounds=(0.0, 50.0)
    )
    assert rows[0]["value"] == 123.45 and rows[0]["value_raw"] == 123.45
    assert rows[0]["ci_low"] == max(0.0, float(f"{(12345 - a) / 100:.2f}"))
    assert rows[0]["ci_high"] == float(f"{(12345 + a) / 100:.2f}")
    assert rows[1]["value"] == 0 and rows[1]["value_raw"] == -0.2 and rows[1]["ci_low"] == 0
    assert not any(r["suppressed"] for r in rows)


def test_sum_rows_with_negative_bounds_clip_from_above_and_whole_resolution_gives_ints() -> None:
    calibration = calibrate("gaussian", Sensitivity.for_contribution(1, 1, 10), rho=0.5)
    rows = sum_rows(keys_for(2), dp_array([7, -7]), calibration, 0.95, resolution=1.0, bounds=(-10.0, 0.0))
    assert rows[0]["value"] == 0 and rows[0]["value_raw"] == 7 and rows[0]["ci_high"] == 0
    assert rows[1]["value"] == -7 and type(rows[1]["value"]) is int
    mixed = sum_rows(keys_for(1), dp_array([7]), calibration, 0.95, resolution=1.0, bounds=(-10.0, 10.0))
    assert mixed[0]["ci_low"] < 0 < mixed[0]["ci_high"]


# --- means ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mean_calibrations():
    halves = split_loss(PrivacyLoss(epsilon=1.0))
    return (
        calibrate("laplace", Sensitivity.for_contribution(1, 1, 12000), epsilon=halves[0].epsilon),
        calibrate("laplace", Sensitivity.for_contribution(1, 1), epsilon=halves[1].epsilon),
    )


def test_mean_rows_value_interval_and_suppression(mean_calibrations) -> None:
    sum_cal, count_cal = mean_calibrations
    sums, counts = dp_array([4_567_890, 1000, 10**9, 500]), dp_array([1000, 3, 800, 100])
    rows = mean_rows(
        keys_for(4), sums, counts, sum_cal, count_cal, 0.95, bounds=(0.0, 120.0), resolution=0.01
    )
    low, high = mean_interval(sums, counts, sum_cal, count_cal, alpha_for(0.95), (0.0, 120.0), 0.01)
    first = rows[0]
    assert first["value"] == 45.6789 and first["value_raw"] == 45.6789
    assert first["ci_low"] <= low[0] and first["ci_high"] >= high[0]  # rounded outward
    assert first["ci_low"] <= first["value"] <= first["ci_high"]
    assert rows[1]["suppressed"] and rows[1]["value"] is None and rows[1]["ci_low"] is None
    assert rows[2]["value"] == 120.0 and rows[2]["value_raw"] == 12500.0  # clipped to the bounds
    assert rows[2]["ci_high"] == 120.0
    assert rows[3]["value"] == 0.05


def test_mean_rows_never_divide_by_a_non_positive_count(mean_calibrations) -> None:
    sum_cal, count_cal = mean_calibrations
    rows = mean_rows(
        keys_for(2),
        dp_array([10, 10]),
        dp_array([0, -4]),
        sum_cal,
        count_cal,
        0.95,
        bounds=(0.0, 1.0),
        resolution=1.0,
        small_cell_threshold=0,
    )
    assert all(r["suppressed"] for r in rows)


# --- quantiles and partition selection ------------------------------------------------------------


def test_quantile_rows_report_the_candidate_and_its_rank_error() -> None:
    calibration = calibrate_quantile(19 * 2, 1.0, 5, 2)
    interval = ([10.0, 40.0], [19.0, 50.0])

    def rows_of(cells: int, noisy: list[int], candidates: list[int]) -> list[dict[str, Any]]:
        return quantile_rows(
            keys_for(cells),
            dp_array(noisy),
            candidates,
            calibration,
            0.95,
            quantile=0.95,
            interval=interval,
            grid_step=10.0,
        )

    rows = rows_of(2, [0, 4], [10, 20, 30, 40, 50])
    assert [r["value"] for r in rows] == [10, 50]
    assert [(r["ci_low"], r["ci_high"]) for r in rows] == [(10, 19), (40, 50)]
    assert all(r["grid_step"] == 10 and not r["suppressed"] for r in rows)
    expected = quantile_rank_error(calibration, alpha_for(0.95), 20)
    assert expected <= rows[0]["rank_error"] <= expected + 0.01
    with pytest.raises(EngineInternalError):
        rows_of(1, [0], [10, 20])
    with pytest.raises(EngineInternalError, match="one value interval per cell"):
        rows_of(1, [0], [10, 20, 30, 40, 50])


def test_threshold_rows_use_released_keys() -> None:
    calibration = calibrate_threshold("laplace", Sensitivity.for_contribution(1, 1), epsilon=1.0, delta=1e-7)
    rows = threshold_rows("lpr.icd10", ["A01", "B02"], dp_array([500, 40]), calibration, 0.95)
    assert [r["lpr.icd10"] for r in rows] == ["A01", "B02"]
    assert rows[0]["value"] == 500


# --- public models --------------------------------------------------------------------------------


def test_privacy_public_single_and_split(count_calibration, mean_calibrations) -> None:
    single = privacy_public([count_calibration])
    assert single.epsilon == count_calibration.loss.epsilon and single.rho is None
    assert single.mechanism == "discrete_laplace" and single.scale == count_calibration.scale
    split = privacy_public(list(mean_calibrations), ["sum", "count"])
    assert split.epsilon == total_loss(list(mean_calibrations)).epsilon
    assert split.epsilon is not None and split.epsilon <= 1.0
    assert split.scale is None and split.loss_split is not None
    assert [p.part for p in split.loss_split] == ["sum", "count"]
    threshold = calibrate_threshold("gaussian", Sensitivity.for_contribution(1, 1), rho=0.1, delta=1e-6)
    public = privacy_public([threshold])
    assert public.mechanism == "discrete_gaussian_threshold" and public.threshold == threshold.threshold
    assert public.rho == threshold.loss.rho and 0 < public.delta <= 1e-6


def test_accuracy_public_per_measure(count_calibration) -> None:
    sum_cal = calibrate("laplace", Sensitivity.for_contribution(1, 1, 100), epsilon=0.5)
    count = accuracy_public("count_persons", count_calibration, 0.95)
    assert count.half_width == half_width(count_calibration, alpha_for(0.95))
    assert (
        accuracy_public("sum", sum_cal, 0.95, resolution=0.5).half_width
        == half_width(sum_cal, alpha_for(0.95)) / 2
    )
    assert accuracy_public("mean", sum_cal, 0.95).half_width is None
    quantile = accuracy_public("quantile", calibrate_quantile(1, 1.0, 11, 1), 0.95, quantile=0.5)
    assert quantile.rank_error is not None and quantile.half_width is None


def test_release_model_matches_the_contract(count_calibration) -> None:
    rows = count_rows(keys_for(2), dp_array([1234, 2]), count_calibration, 0.95)
    release = Release(
        release_id=new_release_id(),
        project="diabetes-2026",
        privacy=privacy_public([count_calibration]),
        confidence=0.95,
        columns=columns_for(["cpr.region"], "count_persons"),
        rows=rows,
        measure="count_persons",
        cells=2,
    )
    body = release.model_dump(mode="json")
    for field in ("release_id", "project", "cached", "privacy", "confidence", "columns", "rows", "budget"):
        assert field in body
    assert set(body["privacy"]) >= {"epsilon", "delta", "rho", "mechanism", "scale"}
    assert body["columns"][:5] == ["cpr.region", "value", "ci_low", "ci_high", "suppressed"]
    assert body["rows"][1]["value"] is None and body["rows"][1]["suppressed"] is True
    assert body["budget"] is None and body["cached"] is False
    assert Release.model_validate_json(release.model_dump_json()) == release


def test_design_example_release_validates() -> None:
    example = {
        "release_id": "r_0123456789abcdef",
        "project": "diabetes-2026",
        "cached": False,
        "privacy": {"epsilon": 0.5, "delta": 0.0, "rho": None, "mechanism": "discrete_laplace", "scale": 2.0},
        "confidence": 0.95,
        "columns": ["cpr.region", "cpr.age_band", "value", "ci_low", "ci_high", "suppressed"],
        "rows": [
            {
                "cpr.region": "Hovedstaden",
                "cpr.age_band": "40-49",
                "value": 1234,
                "ci_low": 1228,
                "ci_high": 1240,
                "suppressed": False,
            }
        ],
        "budget": {"epsilon_spent": 0.5, "epsilon_remaining": 0.5},
    }
    assert Release.model_validate(example).privacy == PrivacyPublic(
        epsilon=0.5, delta=0.0, mechanism="discrete_laplace", scale=2.0
    )


def test_preview_model(count_calibration) -> None:
    preview = Preview(
        loss=privacy_public([count_calibration]),
        mechanism="discrete_laplace",
        scale=count_calibration.scale,
        cells=20,
        expected_half_width=6.0,
        confidence=0.95,
        registers=["cpr"],
    )
    assert preview.model_dump(mode="json")["loss"]["epsilon"] == count_calibration.loss.epsilon


def test_release_ids_are_random_hex() -> None:
    ids = {new_release_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"r_[0-9a-f]{16}", i) for i in ids)
