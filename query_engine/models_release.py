"""Releases and previews of models and Table 1: the noisy tables plus fits computed from them.

Post-processing only: every estimate reads ``DPArray``s (OpenDP outputs) and public facts (keys,
the plan, the noise scales) through the pure functions of ``query_engine.estimators``. Interval
simulations draw from a generator seeded by the release id (reproducible; never privacy noise).

The preview states the expected interval of what the analyst asked for, before any data is
touched. For a ratio of one covariate level against its reference, each side is a margin of
``c`` released cells (``c`` = cells / levels of that covariate), so with ``E`` events (logistic:
outcomes) on each side the log ratio's variance is about ``2 (1/E + c v / E^2)`` with ``v`` the
variance of one cell's noise; the preview gives the half-width ``z sqrt(...)`` for a few ``E``, beside
the naive ``z sqrt(2/E)`` without noise. Person-time noise is left out of that approximation (its
scale is T days per cell, small beside the person-time of a level with ``E`` events unless the
rate is extreme).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any

import numpy as np
from scipy import stats

from query_engine import estimators
from query_engine.analysis_release import make_analysis_release
from query_engine.cohort import AnalysisPlan
from query_engine.estimators import NoiseModel, RegressionResult
from query_engine.estimators.table1 import grouped_quantiles, level_shares
from query_engine.linear_plan import LinearPlan
from query_engine.linear_release import linear_preview_rows, make_linear_release
from query_engine.mechanisms import DPArray, NoiseCalibration
from query_engine.models_plan import ModelPlan, Table1Variable
from query_engine.release import noise_public, preview_of, release_of
from query_engine.release_models import AccuracyPublic, Preview, Release, new_release_id
from query_engine.spec import Query

__all__ = ["make_linear_release", "make_model_preview", "make_model_release"]

TABLE1_COLUMNS = [
    "variable",
    "level",
    "statistic",
    "group",
    "value",
    "ci_low",
    "ci_high",
    "count",
    "suppressed",
]
_EVENTS_FOR_PREVIEW = (10, 100, 1000, 10000)
# Simulation draws: the model's bootstrap (the interval is mean +- z sd of the refits, whose sd 400
# draws estimate to about 3.5%), and the rate table's per-cell intervals of a Poisson release (fewer
# than a rate release's 2,000, so the model stays within 1.5x the raw SQL plus fit at 1M persons).
_MODEL_DRAWS = 400
_RATE_DRAWS = 1000
_TABLE1_DRAWS = 1000


def _num(x: Any) -> float | None:
    value = float(x)
    return value if math.isfinite(value) else None


def _noise(calibration: NoiseCalibration) -> NoiseModel:
    assert calibration.noise is not None
    return NoiseModel(calibration.noise, calibration.scale)


def _part_names(plan: ModelPlan) -> list[str]:
    if plan.measure == "table1":
        return [v.name for v in plan.variables]
    return [o.name for o in plan.tables[0].outputs]


def _labels(query: Query, table: AnalysisPlan, covariates: Sequence[str]) -> dict[str, list[Any]]:
    """One label per released group cell for each covariate, in key order."""
    cells = list(product(*(g.keys for g in table.groups[: len(covariates)])))
    return {name: [cell[i] for cell in cells] for i, name in enumerate(covariates)}


def _model_section(
    plan: ModelPlan, result: RegressionResult, confidence: float, family: str, ratio: str
) -> dict[str, Any]:
    rows = []
    for i, term in enumerate(result.terms):
        covariate = next(c for c in plan.covariates if term.startswith(f"{c}="))
        rows.append(
            {
                "term": term,
                "covariate": covariate,
                "level": term[len(covariate) + 1 :],
                "estimate": _num(result.estimate[i]),
                "ci_low": _num(result.ci_low[i]),
                "ci_high": _num(result.ci_high[i]),
                "naive_ci_low": _num(result.naive_ci_low[i]),
                "naive_ci_high": _num(result.naive_ci_high[i]),
            }
        )
    return {
        "family": family,
        "estimate": ratio,
        "reference": {name: level for name, level in plan.reference},
        "confidence": confidence,
        "draws": _MODEL_DRAWS,
        "method": "fitted by statsmodels GLM to the noisy table; ci: parametric bootstrap from the fitted model "
        "and the known noise, refitting each draw; naive_ci: the GLM's Wald interval treating the noisy "
        "table as exact",
        "terms": rows,
    }


def make_model_release(
    query: Query,
    plan: ModelPlan,
    calibrations: Sequence[NoiseCalibration],
    tables: Sequence[Mapping[str, DPArray]],
    *,
    small_cell_threshold: int,
) -> Release:
    """The release of a Poisson or logistic model or a Table 1 from its DP tables and public facts."""
    if plan.measure == "table1":
        return _table1_release(query, plan, calibrations, tables, small_cell_threshold)
    (table,), (noisy,) = plan.tables, tables
    if plan.measure == "poisson_regression":
        base_query = query.model_copy(update={"measure": "rate", "reference": None})
    else:
        base_query = query.model_copy(
            update={
                "measure": "count_persons",
                "reference": None,
                "group_by": (*plan.covariates, "cohort.event"),
            }
        )
    base = make_analysis_release(
        base_query,
        table,
        calibrations,
        noisy,
        small_cell_threshold=small_cell_threshold,
        rate_draws=_RATE_DRAWS,
    )
    rng = np.random.default_rng(int(base.release_id[2:], 16))
    empty = _empty_level(query, plan, noisy)
    try:
        model = (
            _unfitted(plan, query.confidence, empty) if empty else _fit(query, plan, calibrations, noisy, rng)
        )
    except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
        # The table is released (and paid for) whatever the fit does; say why there is no fit.
        model = _unfitted(plan, query.confidence, type(exc).__name__)
    return base.model_copy(update={"measure": query.measure, "query": query.canonical(), "model": model})


def _fit(
    query: Query,
    plan: ModelPlan,
    calibrations: Sequence[NoiseCalibration],
    noisy: Mapping[str, DPArray],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The model section: the estimator fitted to the released table."""
    (table,) = plan.tables
    labels = _labels(query, table, plan.covariates)
    reference = dict(plan.reference)
    if plan.measure == "poisson_regression":
        events_noise, time_noise = (_noise(c) for c in calibrations)
        result = estimators.poisson_regression(
            labels,
            np.asarray(noisy["events"]),
            np.asarray(noisy["person_time"]),
            events_noise=events_noise,
            time_noise=time_noise,
            reference=reference,
            confidence=query.confidence,
            draws=_MODEL_DRAWS,
            rng=rng,
        )
        return _model_section(plan, result, query.confidence, "poisson", "rate_ratio")
    else:
        counts = np.asarray(noisy["count"]).reshape(-1, 2)  # cohort.event 0, 1
        result = estimators.logistic_regression(
            labels,
            counts[:, 1],
            counts[:, 0],
            noise=_noise(calibrations[0]),
            reference=reference,
            confidence=query.confidence,
            draws=_MODEL_DRAWS,
            rng=rng,
        )
        return _model_section(plan, result, query.confidence, "binomial", "odds_ratio")


def _empty_level(query: Query, plan: ModelPlan, noisy: Mapping[str, DPArray]) -> str | None:
    """A covariate level none of whose cells the fit can use (a rule on the released table only)."""
    if plan.measure == "poisson_regression":
        usable = np.asarray(noisy["person_time"]) > 0
    else:
        counts = np.maximum(np.asarray(noisy["count"]).reshape(-1, 2), 0)
        usable = counts.sum(axis=1) > 0
    for name, labels in _labels(query, plan.tables[0], plan.covariates).items():
        for level in dict.fromkeys(labels):
            if not any(u for u, label in zip(usable, labels, strict=True) if label == level):
                return f"no usable cell of {name}={level}"
    return None


def _unfitted(plan: ModelPlan, confidence: float, reason: str) -> dict[str, Any]:
    """The model section when no fit exists (e.g. every cell of a level lost to noise)."""
    poisson = plan.measure == "poisson_regression"
    return {
        "family": "poisson" if poisson else "binomial",
        "estimate": "rate_ratio" if poisson else "odds_ratio",
        "reference": dict(plan.reference),
        "confidence": confidence,
        "draws": _MODEL_DRAWS,
        "terms": [],
        "error": f"The model could not be fitted to the noisy table ({reason}): some covariate level has too "
        "little data beside the noise. The table is released as it is; use coarser covariates or a larger loss.",
    }


def _bin_edges(keys: Sequence[Any]) -> np.ndarray:
    """Edges of age bands labelled "0-4", ..., "95+" (the open last band as wide as the one before)."""
    lows = [float(str(k).split("-")[0].rstrip("+")) for k in keys]
    width = lows[-1] - lows[-2] if len(lows) > 1 else 1.0
    return np.array([*lows, lows[-1] + width])


def _table1_release(
    query: Query,
    plan: ModelPlan,
    calibrations: Sequence[NoiseCalibration],
    tables: Sequence[Mapping[str, DPArray]],
    threshold: int,
) -> Release:
    release_id = new_release_id()
    rng = np.random.default_rng(int(release_id[2:], 16))
    group_name = plan.covariates[0] if plan.covariates else None
    group_keys: tuple[Any, ...] = plan.tables[0].groups[0].keys if group_name else ("all",)
    rows: list[dict[str, Any]] = []
    z = float(stats.norm.ppf(0.5 + query.confidence / 2))
    totals = []
    for variable, table, noisy, calibration in zip(
        plan.variables, plan.tables, tables, calibrations, strict=True
    ):
        levels = table.groups[-1].keys
        counts = np.asarray(noisy["count"], dtype=float).reshape(len(group_keys), len(levels))
        noise = _noise(calibration)
        totals.append((np.maximum(counts, 0).sum(axis=1), len(levels) * noise.variance))
        rows += _variable_rows(variable, levels, group_keys, counts, noise, query.confidence, rng)
    persons = np.mean([t for t, _ in totals], axis=0)
    spread = z * math.sqrt(sum(v for _, v in totals)) / len(totals)
    header = [
        {
            "variable": "persons",
            "level": None,
            "statistic": "n",
            "group": g,
            "value": _num(persons[i]),
            "ci_low": _num(max(persons[i] - spread, 0.0)),
            "ci_high": _num(persons[i] + spread),
            "count": _num(persons[i]),
        }
        for i, g in enumerate(group_keys)
    ]
    return release_of(
        query,
        calibrations,
        _part_names(plan),
        release_id=release_id,
        columns=TABLE1_COLUMNS,
        rows=_suppress(header + rows, dict(zip(group_keys, persons, strict=True)), threshold),
        measure="table1",
        cells=plan.cells,
        accuracy=_accuracy(query, plan),
        small_cell_threshold=threshold,
        noise=noise_public(_part_names(plan), calibrations),
        table1={
            "group_by": group_name,
            "groups": list(group_keys),
            "variables": [v.name for v in plan.variables],
        },
    )


def _suppress(
    rows: list[dict[str, Any]], persons: Mapping[Any, float], threshold: int
) -> list[dict[str, Any]]:
    """Small cells (a noisy count, or a quartile's group, below the threshold) lose their numbers."""
    for row in rows:
        size = row["count"] if row["count"] is not None else persons[row["group"]]
        hidden = bool(threshold > 0 and size < threshold)
        if hidden:
            row.update(value=None, ci_low=None, ci_high=None, count=None)
        row["suppressed"] = hidden
    return rows


def _variable_rows(
    variable: Table1Variable,
    levels: Sequence[Any],
    group_keys: Sequence[Any],
    counts: np.ndarray,
    noise: NoiseModel,
    confidence: float,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    rows = []
    if variable.kind == "categorical":
        shares = level_shares(counts, noise=noise, confidence=confidence, draws=_TABLE1_DRAWS, rng=rng)
        for j, level in enumerate(levels):
            for i, g in enumerate(group_keys):
                rows.append(
                    {
                        "variable": variable.name,
                        "level": level,
                        "statistic": "percent",
                        "group": g,
                        "value": _num(100 * shares.share[i, j]),
                        "ci_low": _num(100 * shares.ci_low[i, j]),
                        "ci_high": _num(100 * shares.ci_high[i, j]),
                        "count": _num(shares.count[i, j]),
                    }
                )
        return rows
    quartiles = grouped_quantiles(
        counts, _bin_edges(levels), noise=noise, confidence=confidence, draws=_TABLE1_DRAWS, rng=rng
    )
    for k, statistic in enumerate(("q1", "median", "q3")):
        for i, g in enumerate(group_keys):
            rows.append(
                {
                    "variable": variable.name,
                    "level": None,
                    "statistic": statistic,
                    "group": g,
                    "value": _num(quartiles.value[i, k]),
                    "ci_low": _num(quartiles.ci_low[i, k]),
                    "ci_high": _num(quartiles.ci_high[i, k]),
                    "count": None,
                }
            )
    return rows


def _accuracy(query: Query, plan: ModelPlan) -> AccuracyPublic:
    if plan.measure == "table1":
        method = (
            "table1: percentages and quartiles from one noisy histogram per variable (the loss split evenly, "
            "which balances their relative error); intervals by parametric bootstrap of sampling and noise"
        )
    else:
        method = (
            f"{plan.measure}: fitted to the released table; noise-aware intervals by parametric bootstrap "
            "from the known noise, beside the naive intervals"
        )
    return AccuracyPublic(confidence=query.confidence, method=method)


def _ratio_widths(
    plan: ModelPlan, calibrations: Sequence[NoiseCalibration], confidence: float
) -> list[dict[str, Any]]:
    table = plan.tables[0]
    variance = _noise(calibrations[0]).variance
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    group_cells = math.prod(len(g.keys) for g in table.groups[: len(plan.covariates)])
    rows = []
    for name, group in zip(plan.covariates, table.groups, strict=False):
        cells = group_cells // len(group.keys)
        for events in _EVENTS_FOR_PREVIEW:
            half = z * math.sqrt(2 * (1 / events + cells * variance / events**2))
            naive = z * math.sqrt(2 / events)
            rows.append(
                {
                    "covariate": name,
                    "cells_per_level": cells,
                    "events_per_level": events,
                    "half_width_log": round(half, 4),
                    "naive_half_width_log": round(naive, 4),
                    "ratio_interval_at_1": [round(math.exp(-half), 4), round(math.exp(half), 4)],
                }
            )
    return rows


def _table1_widths(
    plan: ModelPlan, calibrations: Sequence[NoiseCalibration], confidence: float
) -> list[dict[str, Any]]:
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    rows = []
    for variable, calibration in zip(plan.variables, calibrations, strict=True):
        sd = math.sqrt(_noise(calibration).variance)
        for persons in (100, 1000, 10000):
            rows.append(
                {
                    "variable": variable.name,
                    "persons_per_group": persons,
                    "percent_half_width_at_50": round(
                        100 * z * math.sqrt(0.25 / persons + (sd / persons) ** 2), 3
                    ),
                }
            )
    return rows


def make_model_preview(
    query: Query, plan: ModelPlan | LinearPlan, calibrations: Sequence[NoiseCalibration]
) -> Preview:
    """The preview: total loss, its split, the noise per part and the expected interval of the estimates."""
    if isinstance(plan, LinearPlan):
        names = [p.name for p in plan.parts]
        expected, notes = linear_preview_rows(plan, calibrations, query.confidence)
        accuracy = AccuracyPublic(confidence=query.confidence, method="linear_regression: noisy moments")
    else:
        names = _part_names(plan)
        accuracy = _accuracy(query, plan)
        if plan.measure == "table1":
            expected = _table1_widths(plan, calibrations, query.confidence)
            notes = [
                f"One histogram per variable ({len(plan.variables)}), each person in one cell of each; the loss is "
                "split evenly between them, which gives every percentage the same expected error relative to its "
                "group's size."
            ]
        else:
            expected = _ratio_widths(plan, calibrations, query.confidence)
            notes = [
                "expected_intervals: the half-width of a log ratio (level vs reference) for a given number of events "
                "on each side, with the noise of this release and without it (naive)."
            ]
    return preview_of(
        query,
        calibrations,
        names,
        cells=plan.cells,
        registers=plan.registers,
        measure=query.measure,
        accuracy=accuracy,
        notes=notes,
        expected_intervals=expected,
    )
