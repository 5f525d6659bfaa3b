"""Releases of analyses: the noisy private table plus estimates computed from it (post-processing only).

Everything here reads ``DPArray``s (OpenDP outputs) and public facts (keys, the plan, noise scales);
the estimates come from ``query_engine.estimators``, pure functions a client can rerun on the
downloaded release with the ``noise`` block. The interval simulations draw from a generator seeded
by the release id, so a release's estimates are reproducible; those draws are never privacy noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any, TypedDict

import numpy as np

from query_engine import estimators
from query_engine.cohort import AnalysisPlan
from query_engine.cohort_lexis import AGE_KINDS
from query_engine.estimators import NoiseModel
from query_engine.mechanisms import DPArray, NoiseCalibration
from query_engine.postprocess import count_rows
from query_engine.release import accuracy_public, noise_public, preview_of, release_of
from query_engine.release_models import AccuracyPublic, Preview, Release, columns_for, new_release_id
from query_engine.spec import Query

__all__ = ["analysis_columns", "make_analysis_preview", "make_analysis_release"]

_DAYS_PER_YEAR = 365.25
Row = dict[str, Any]


def analysis_columns(group_by: Sequence[str], plan: AnalysisPlan) -> list[str]:
    """The columns of an analysis release's main table (docs/engine.md, "Cohorts and analyses")."""
    names = list(group_by)
    if plan.measure == "rate":
        return [*names, "events", "person_years", "rate", *_INTERVALS, "suppressed", *_UNBOUNDED]
    if plan.measure == "survival":
        return [*names, "bin", "time_start", "time_end", "events", "censored"]
    if plan.measure == "prevalence":
        return [*names, "cases", "persons", "proportion", *_INTERVALS, "suppressed"]
    return columns_for(names, "count_persons")


_INTERVALS = ["ci_low", "ci_high", "noise_ci_low", "noise_ci_high", "sampling_ci_low", "sampling_ci_high"]
# A rate's interval is unbounded above when the noisy person-time may be 0 (docs/analyses.md): its
# ci_high is then null and this flag true, so a reader can tell "no upper end" from "suppressed".
_UNBOUNDED = ["ci_unbounded", "noise_ci_unbounded"]


class _RateNoise(TypedDict):
    """The noise of a rate table's two released vectors, as the rate estimators take it."""

    events_noise: NoiseModel
    time_noise: NoiseModel


def _num(x: Any) -> float | None:
    """A JSON number: NaN and infinities (no estimate) become null."""
    value = float(x)
    return value if math.isfinite(value) else None


def _noise_models(plan: AnalysisPlan, calibrations: Sequence[NoiseCalibration]) -> dict[str, NoiseModel]:
    models: dict[str, NoiseModel] = {}
    for output, calibration in zip(plan.outputs, calibrations, strict=True):
        kind = calibration.noise
        assert kind is not None
        models[output.name] = NoiseModel(kind, calibration.scale)
    return models


def _parts(plan: AnalysisPlan) -> list[str]:
    return [o.name for o in plan.outputs]


def _group_rows(query: Query, plan: AnalysisPlan) -> list[Row]:
    """One dict of group values per public group cell, in key order (``[{}]`` without groups)."""
    return [dict(zip(query.group_by, key, strict=True)) for key in product(*(g.keys for g in plan.groups))]


def _accuracy(query: Query, plan: AnalysisPlan, calibrations: Sequence[NoiseCalibration]) -> AccuracyPublic:
    if plan.measure == "rate":
        return AccuracyPublic(
            confidence=query.confidence,
            method="rates: intervals by simulation from the known noise of events and person-time combined "
            "with the Poisson sampling error; each shown apart (noise_ci, sampling_ci)",
        )
    base = accuracy_public("count_persons", calibrations[0], query.confidence)
    if plan.measure == "count_persons":
        return base
    what = "survival: Kaplan-Meier from the noisy histogram" if plan.measure == "survival" else "prevalence"
    return base.model_copy(
        update={
            "method": f"{what}; half_width is per histogram cell (persons), {base.method.split(', ', 1)[1]}"
        }
    )


def make_analysis_preview(
    query: Query, plan: AnalysisPlan, calibrations: Sequence[NoiseCalibration]
) -> Preview:
    """The preview of an analysis: loss, mechanisms, scales and per-cell accuracy; no data touched."""
    accuracy = _accuracy(query, plan, calibrations)
    notes = []
    if plan.measure == "rate":
        assert plan.cohort is not None
        events, time = calibrations
        notes.append(
            f"The loss is split evenly: noisy events (scale {events.scale:.4g}, sensitivity 1) and noisy "
            f"person-time (scale {time.scale:.4g} days, sensitivity {plan.cohort.follow_up_days} days = the "
            "declared follow-up)."
        )
    elif plan.bins is not None:
        notes.append(
            f"A histogram of {plan.group_cells} group(s) x {plan.bins.count} exit bins x 2 (event, censored); "
            "each person is in exactly one cell."
        )
    return preview_of(
        query,
        calibrations,
        _parts(plan),
        cells=plan.cells,
        registers=plan.registers,
        measure=plan.measure,
        accuracy=accuracy,
        notes=notes,
        expected_half_width=accuracy.half_width,
    )


def make_analysis_release(
    query: Query,
    plan: AnalysisPlan,
    calibrations: Sequence[NoiseCalibration],
    noisy: Mapping[str, DPArray],
    *,
    small_cell_threshold: int,
    rate_draws: int = 2000,
) -> Release:
    """The release of an analysis from its DP outputs and public facts only (``rate_draws``: the
    simulation draws of the rates' intervals; a Poisson model, which simulates its own, asks for fewer)."""
    release_id = new_release_id()
    rng = np.random.default_rng(int(release_id[2:], 16))
    groups = _group_rows(query, plan)
    models = _noise_models(plan, calibrations)
    extra: dict[str, Any] = {}
    if plan.measure == "count_persons":
        rows = count_rows(groups, noisy["count"], calibrations[0], query.confidence, small_cell_threshold)
    elif plan.measure == "rate":
        rows, extra = _rates(query, plan, groups, noisy, models, rng, small_cell_threshold, rate_draws)
    elif plan.measure == "survival":
        rows, extra = _survival(query, plan, groups, noisy["count"], models["count"], rng)
    else:
        rows = _prevalence(query, groups, noisy["count"], models["count"], rng, small_cell_threshold)
    return release_of(
        query,
        calibrations,
        _parts(plan),
        release_id=release_id,
        columns=analysis_columns(query.group_by, plan),
        rows=rows,
        measure=plan.measure,
        cells=len(rows),
        accuracy=_accuracy(query, plan, calibrations),
        small_cell_threshold=small_cell_threshold,
        noise=noise_public(_parts(plan), calibrations),
        **extra,
    )


def _suppressed(value: int, threshold: int) -> bool:
    return threshold > 0 and value < threshold


def _rates(
    query: Query,
    plan: AnalysisPlan,
    groups: list[Row],
    noisy: Mapping[str, DPArray],
    models: Mapping[str, NoiseModel],
    rng: np.random.Generator,
    threshold: int,
    draws: int = 2000,
) -> tuple[list[Row], dict[str, Any]]:
    events, days = np.asarray(noisy["events"]), np.asarray(noisy["person_time"])
    per = plan.per_person_years or 1000.0
    noise = _RateNoise(events_noise=models["events"], time_noise=models["person_time"])
    estimates = estimators.incidence_rates(
        events,
        days,
        **noise,
        per_person_years=per,
        confidence=query.confidence,
        draws=draws,
        rng=rng,
    )
    rows = []
    for i, group in enumerate(groups):
        hidden = _suppressed(int(events[i]), threshold)
        row: Row = {**group, "events": None if hidden else int(events[i])}
        row["person_years"] = _num(estimates.person_years[i])
        for name in ("rate", *_INTERVALS):
            row[name] = None if hidden else _num(getattr(estimates, name)[i])
        row["suppressed"] = hidden
        for flag, high in zip(_UNBOUNDED, ("ci_high", "noise_ci_high"), strict=True):
            row[flag] = False if hidden else bool(np.isposinf(getattr(estimates, high)[i]))
        rows.append(row)
    extra: dict[str, Any] = {}
    if plan.standard_population is not None:
        extra["standardised"] = _standardised(query, plan, events, days, noise, per, rng)
    return rows, extra


def _standardised(
    query: Query,
    plan: AnalysisPlan,
    events: np.ndarray,
    days: np.ndarray,
    noise: _RateNoise,
    per: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Directly standardised rates per stratum of the non-age groups (age: the first age-band group)."""
    axis = next(i for i, g in enumerate(plan.groups) if g.kind in AGE_KINDS)
    shape = [len(g.keys) for g in plan.groups]
    ages = plan.groups[axis].keys

    def by_stratum(values: np.ndarray) -> np.ndarray:
        return np.moveaxis(values.reshape(shape), axis, -1).reshape(-1, len(ages))

    assert plan.standard_population is not None
    weights = estimators.standard_weights(
        plan.standard_population, [str(a) for a in ages], persons=plan.standard_population_persons
    )
    result = estimators.direct_standardise(
        by_stratum(events),
        by_stratum(days),
        weights,
        **noise,
        per_person_years=per,
        confidence=query.confidence,
        rng=rng,
    )
    others = [
        (name, g) for i, (name, g) in enumerate(zip(query.group_by, plan.groups, strict=True)) if i != axis
    ]
    strata = [
        dict(zip([n for n, _ in others], key, strict=True)) for key in product(*(g.keys for _, g in others))
    ]
    fields = ("rate", "ci_low", "ci_high", "crude_rate", "crude_ci_low", "crude_ci_high")
    return {
        "population": plan.standard_population,
        "per_person_years": per,
        "rows": [
            {
                **stratum,
                **{f: _num(getattr(result, f)[i]) for f in fields},
                "crude_ci_unbounded": bool(np.isposinf(result.crude_ci_high[i])),
                "age_bands_used": [
                    str(a) for a, used in zip(ages, result.bands_used[i], strict=True) if used
                ],
            }
            for i, stratum in enumerate(strata)
        ],
    }


def _survival(
    query: Query,
    plan: AnalysisPlan,
    groups: list[Row],
    counts: DPArray,
    noise: NoiseModel,
    rng: np.random.Generator,
) -> tuple[list[Row], dict[str, Any]]:
    bins = plan.bins
    assert bins is not None
    table = np.asarray(counts).reshape(len(groups), bins.count, 2)  # status 0 censored, 1 event
    assert plan.cohort is not None
    # The last bin ends at the declared follow-up (T days is it rounded to a day), so horizons at the
    # follow-up itself are inside the curve.
    end_years = np.array([float(bins.end_days(b)) / _DAYS_PER_YEAR for b in range(bins.count)])
    end_years[-1] = plan.cohort.follow_up_years
    end_units = end_years * _DAYS_PER_YEAR / float(bins.unit_days)
    rows: list[Row] = []
    curves: list[Row] = []
    horizons: list[Row] = []
    medians: list[Row] = []
    for g, group in enumerate(groups):
        for b in range(bins.count):
            rows.append(
                {
                    **group,
                    "bin": b,
                    "time_start": b * bins.width,
                    "time_end": round(float(end_units[b]), 6),
                    "events": int(table[g, b, 1]),
                    "censored": int(table[g, b, 0]),
                }
            )
        curve = estimators.kaplan_meier(
            table[g, :, 1], table[g, :, 0], end_years, noise=noise, confidence=query.confidence, rng=rng
        )
        unit_per_year = _DAYS_PER_YEAR / float(bins.unit_days)
        for i in range(len(curve.time)):
            curves.append(
                {
                    **group,
                    "time": round(float(curve.time[i]) * unit_per_year, 6),
                    **{
                        f: _num(getattr(curve, f)[i])
                        for f in ("at_risk", "events", "survival", "ci_low", "ci_high")
                    },
                }
            )
        if plan.horizons_years:
            at = estimators.survival_horizons(curve, plan.horizons_years)
            fields = ("survival", "ci_low", "ci_high", "cumulative_incidence", "ci_ci_low", "ci_ci_high")
            for i, years in enumerate(plan.horizons_years):
                horizons.append({**group, "years": years, **{f: _num(getattr(at, f)[i]) for f in fields}})
        median = estimators.median_survival(curve)
        medians.append(
            {**group, **{f: _scalar(getattr(median, f)) for f in ("median_years", "ci_low", "ci_high")}}
        )
    extra = {"survival": {"unit": bins.unit, "rows": curves}, "horizons": horizons, "median": medians}
    return rows, extra


def _scalar(value: Any) -> float | None:
    array = np.asarray(value, dtype=float).reshape(-1)
    return _num(array[0]) if array.size else None


def _prevalence(
    query: Query,
    groups: list[Row],
    counts: DPArray,
    noise: NoiseModel,
    rng: np.random.Generator,
    threshold: int,
) -> list[Row]:
    table = np.asarray(counts).reshape(len(groups), 2)  # has the condition: 0, 1
    cases, non_cases = table[:, 1], table[:, 0]
    estimates = estimators.proportions(cases, non_cases, noise=noise, confidence=query.confidence, rng=rng)
    rows = []
    for i, group in enumerate(groups):
        hidden = _suppressed(int(cases[i]), threshold)
        row: Row = {
            **group,
            "cases": None if hidden else int(cases[i]),
            "persons": _num(estimates.persons[i]),
        }
        for name in ("proportion", *_INTERVALS):
            row[name] = None if hidden else _num(getattr(estimates, name)[i])
        row["suppressed"] = hidden
        rows.append(row)
    return rows
