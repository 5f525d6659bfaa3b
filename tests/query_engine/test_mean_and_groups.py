"""The mean's estimator (centred sum, loss split, interval) and the groups one person can reach (G)."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import opendp.prelude as dp
import pytest

from query_engine.accuracy import (
    alpha_for,
    half_width,
    mean_half_width,
    mean_interval,
    mean_loss_weights,
)
from query_engine.catalog import Catalog
from query_engine.engine import Engine
from query_engine.mechanisms import DPArray, PrivacyLoss, Sensitivity, calibrate, split_loss, total_loss
from query_engine.plan import Plan, plan_query
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from query_engine.validate import validate

PURE = ProjectContext("pure")
WITH_DELTA = ProjectContext("pure", delta_available=True)


def _plan(catalog: Catalog, context: ProjectContext = PURE, **fields: Any) -> Plan:
    query = parse_query({"project": "p", "epsilon": 1.0, **fields})
    validate(query, catalog, context, EngineSettings())
    return plan_query(query, catalog, context, EngineSettings())


def _dp(values: list[int]) -> DPArray:
    return np.asarray(values, dtype=np.int64).view(DPArray)


# --- G: the groups one person can reach -----------------------------------------------------------


def test_person_level_columns_do_not_multiply_the_groups(catalog: Catalog) -> None:
    years = len(catalog.keyset(catalog.register("lpr").column("year").keyset or "").values)
    plan = _plan(
        catalog, measure="count_rows", register="lpr", group_by=["lpr.year", "cpr.sex"], max_groups=50
    )
    assert plan.cells == 2 * years
    assert plan.bounding.max_groups == years  # not 2 * years: a person has one sex
    assert all(o.sensitivity.l0 == years for o in plan.outputs)
    assert plan.outputs[0].sensitivity.l1 == years * plan.bounding.max_rows


def test_several_grain_columns_multiply_their_key_sets(catalog: Catalog) -> None:
    types = len(catalog.keyset(catalog.register("lpr").column("contact_type").keyset or "").values)
    plan = _plan(
        catalog,
        measure="count_persons",
        group_by=["lpr.contact_type", "cpr.region", "cpr.sex"],
        max_groups=50,
    )
    assert plan.cells == types * 5 * 2
    assert plan.bounding.max_groups == types


def test_max_groups_below_the_reach_is_kept(catalog: Catalog) -> None:
    plan = _plan(
        catalog, measure="count_rows", register="lpr", group_by=["lpr.year", "cpr.sex"], max_groups=4
    )
    assert plan.bounding.max_groups == 4


@pytest.mark.parametrize("max_groups", [None, 2, 50])
@pytest.mark.parametrize("group_by", [["lpr.diagnosis_code"], ["lpr.diagnosis_code", "cpr.sex"]])
def test_a_lone_open_domain_column_gets_one_group(
    catalog: Catalog, max_groups: int | None, group_by: list[str]
) -> None:
    fields = {} if max_groups is None else {"max_groups": max_groups}
    plan = _plan(catalog, WITH_DELTA, measure="count_persons", group_by=group_by, **fields)
    assert plan.partition_selection
    assert plan.bounding.max_groups == 1 and plan.bounding.bound_groups


def test_person_level_groups_only_still_give_one_group(catalog: Catalog) -> None:
    plan = _plan(
        catalog, measure="count_rows", register="lpr", group_by=["cpr.region", "cpr.sex"], max_groups=50
    )
    assert plan.bounding.max_groups == 1 and not plan.bounding.bound_groups


# --- the mean's centred sum -----------------------------------------------------------------------


def test_a_mean_sums_centred_values_with_half_the_width(catalog: Catalog) -> None:
    plan = _plan(catalog, measure="mean", column="cpr.age")  # bounds [0, 110] at resolution 1
    value = plan.value
    assert value is not None
    assert (value.unit_range, value.centre_units, value.centred_magnitude_units) == ((0, 110), 55, 55)
    total, count = plan.outputs
    assert total.sensitivity.l1 == 55 and count.sensitivity.l1 == 1
    assert value.magnitude_units == 110  # what a sum (not a mean) still pays


@pytest.mark.parametrize(
    ("column", "bounds", "expected"),
    [
        ("lmdb.ddd", [0.5, 100.25], ((50, 10025), 5037, 4988)),  # at 0.01, odd width: M rounds down
        ("lmdb.ddd", [0.004, 0.015], ((0, 2), 1, 1)),  # bounds between grid points round like SQL
        ("ind.disposable_income", [-3000, 1000], ((-3000, 1000), -1000, 2000)),
        ("lmdb.ddd", [7, 7], ((700, 700), 700, 1)),  # one value: sensitivity 1 (OpenDP needs >= 1)
    ],
)
def test_centre_and_half_width_in_units(
    catalog: Catalog, column: str, bounds: list[float], expected: tuple
) -> None:
    register, name = column.split(".")
    plan = _plan(catalog, measure="mean", register=register, column=name, bounds=bounds)
    value = plan.value
    assert value is not None
    assert (value.unit_range, value.centre_units, value.centred_magnitude_units) == expected
    low, high = value.unit_range
    assert max(value.centre_units - low, high - value.centre_units) <= value.centred_magnitude_units


def test_exact_centred_sum_is_the_sum_minus_the_midpoint_times_the_count(small_db: Path) -> None:
    fields = {"project": "p", "register": "lpr", "column": "los_days", "bounds": [0, 61], "epsilon": 1}
    with Engine.open(small_db) as engine:
        total = engine._exact_for_tests(parse_query({**fields, "measure": "sum"}), PURE)
        mean = engine._exact_for_tests(parse_query({**fields, "measure": "mean"}), PURE)
    centre = 30  # floor(61 / 2)
    assert mean.values["sum"].tolist() == (total.values["sum"] - centre * mean.values["count"]).tolist()


def test_the_release_adds_the_midpoint_back(small_db: Path) -> None:
    query = parse_query(
        {
            "project": "p",
            "measure": "mean",
            "register": "lpr",
            "column": "los_days",
            "bounds": [0, 60],
            "epsilon": 10,
        }
    )
    with Engine.open(small_db) as engine:
        exact = engine._exact_for_tests(query, PURE)
        release = engine.run(query, PURE, cost=engine.cost(query, PURE))
    truth = 30 + exact.values["sum"][0] / exact.values["count"][0]
    (row,) = release.rows
    assert row["ci_low"] <= truth <= row["ci_high"]
    assert abs(row["value"] - truth) < 0.5  # epsilon 50 on hundreds of rows: a small error


# --- the loss split -------------------------------------------------------------------------------


def _variance(share: float, kind: str, ds: float, dc: float, m2: float) -> float:
    """The mean's error variance (up to the common factor) for the sum's share of the loss."""
    if kind == "laplace":
        return ds**2 / share**2 + m2 * dc**2 / (1 - share) ** 2
    return ds**2 / share + m2 * dc**2 / (1 - share)


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
@pytest.mark.parametrize(("g", "c", "h"), [(1, 1, 55), (3, 2, 5038), (15, 10, 1)])
def test_mean_loss_weights_minimise_the_variance(kind: str, g: int, c: int, h: int) -> None:
    total = Sensitivity.for_contribution(g, c, h)
    count = Sensitivity.for_contribution(g, c)
    share, rest = mean_loss_weights(kind, total, count, h)  # type: ignore[arg-type]
    assert share + rest == 1 and isinstance(share, Fraction) and share.denominator <= 1000
    ds, dc = (total.l1, count.l1) if kind == "laplace" else (total.l2, count.l2)
    m2 = h * h / 3  # uniform centred mean over the bounds
    grid = np.linspace(0.01, 0.99, 9801)
    best = grid[np.argmin([_variance(x, kind, ds, dc, m2) for x in grid])]
    assert abs(float(share) - best) < 2e-3
    # Closed forms: 3^(1/3) : 1 (Laplace) and sqrt(3) : 1 (Gaussian), whatever G, c and the bounds.
    ratio = 3 ** (1 / 3) if kind == "laplace" else math.sqrt(3)
    assert float(share) == pytest.approx(ratio / (1 + ratio), abs=1e-3)
    assert _variance(float(share), kind, ds, dc, m2) < _variance(0.5, kind, ds, dc, m2)


def test_the_engine_charges_the_split_parts_and_their_sum(small_db: Path) -> None:
    query = parse_query({"project": "p", "measure": "mean", "column": "cpr.age", "epsilon": 1.0})
    with Engine.open(small_db) as engine:
        cost = engine.cost(query, PURE)
        prepared = engine._prepare(query, PURE)
    sum_part, count_part = prepared.calibrations
    weights = mean_loss_weights("laplace", sum_part.sensitivity, count_part.sensitivity, 55)
    expected = split_loss(PrivacyLoss(epsilon=1.0), weights)
    assert sum_part.loss.epsilon is not None and count_part.loss.epsilon is not None
    assert sum_part.loss.epsilon == pytest.approx(expected[0].epsilon, rel=1e-9)
    assert sum_part.loss.epsilon > count_part.loss.epsilon
    assert cost.loss.epsilon == pytest.approx(1.0, rel=1e-9) and cost.loss.epsilon <= 1.0
    assert Fraction(sum_part.loss.epsilon) + Fraction(count_part.loss.epsilon) <= Fraction(cost.loss.epsilon)
    # Each part's loss is OpenDP's map at its scale and sensitivity, and the charge is their composition.
    space = dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l1_distance(T=dp.i64)
    for part in (sum_part, count_part):
        assert part.loss.epsilon == dp.m.make_laplace(*space, scale=part.scale).map(part.sensitivity.l1)
    assert sum_part.sensitivity.l1 == 55 * count_part.sensitivity.l1
    assert cost.loss == total_loss(prepared.calibrations)


# --- the interval ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibrations() -> tuple:
    weights = mean_loss_weights(
        "laplace", Sensitivity.for_contribution(1, 1, 55), Sensitivity.for_contribution(1, 1), 55
    )
    parts = split_loss(PrivacyLoss(epsilon=1.0), weights)
    return (
        calibrate("laplace", Sensitivity.for_contribution(1, 1, 55), epsilon=parts[0].epsilon),
        calibrate("laplace", Sensitivity.for_contribution(1, 1), epsilon=parts[1].epsilon),
    )


def test_mean_interval_is_the_centred_interval_shifted(calibrations: tuple) -> None:
    sum_cal, count_cal = calibrations
    sums, counts = _dp([12_000, -3_000, 0]), _dp([1_000, 400, 50])
    low, high = mean_interval(sums, counts, sum_cal, count_cal, 0.05, (0.0, 110.0), centre_units=55)
    base_low, base_high = mean_interval(sums, counts, sum_cal, count_cal, 0.05, (-55.0, 55.0))
    assert np.allclose(low, base_low + 55, rtol=0, atol=1e-9) and np.allclose(
        high, base_high + 55, rtol=0, atol=1e-9
    )
    a, b = half_width(sum_cal, 0.025), half_width(count_cal, 0.025)
    assert low[0] <= 55 + (12_000 - a) / (1_000 + b) and high[0] >= 55 + (12_000 + a) / (1_000 - b)


def test_mean_half_width_shrinks_with_the_count_and_matches_the_interval(calibrations: tuple) -> None:
    sum_cal, count_cal = calibrations
    widths = [
        mean_half_width(sum_cal, count_cal, 0.95, count=n, bounds=(0.0, 110.0), centre_units=55)
        for n in (100, 1_000, 10_000)
    ]
    assert widths[0] > widths[1] > widths[2] > 0
    a, b = half_width(sum_cal, 0.025), half_width(count_cal, 0.025)
    # At the midpoint the interval is a / (n - b) and a / (n + b) around it; the widest is at a bound.
    assert widths[2] >= (a / (10_000 - b) + a / (10_000 + b)) / 2
    tiny = mean_half_width(sum_cal, count_cal, 0.95, count=1, bounds=(0.0, 110.0), centre_units=55)
    assert tiny == 55.0  # the count's interval reaches zero: the bounds
    assert alpha_for(0.95) == pytest.approx(0.05)
