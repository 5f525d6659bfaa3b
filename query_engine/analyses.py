"""The pipeline of an analysis (issue 15): plan -> calibrate -> compile -> execute -> noise -> release.

``Engine`` hands every query with ``Query.is_analysis`` to this module. The steps mirror the other
measures: ``prepare_analysis`` (validate, plan, calibrate; touches no data) gives the loss to charge;
``run_analysis`` re-derives it, compares it with the charged cost, executes the per-person SQL of
``compile_cohort``, adds noise only through ``mechanisms.add_noise`` (OpenDP, integers, sensitivity
from the plan), and hands the DP outputs to ``analysis_release``.

Loss: one ``epsilon``/``rho`` for the whole analysis. A rate releases two vectors and splits it
evenly (``split_loss`` halves, rounded down): "events" (L1 = 1) and "person_time" (L1 = T days);
every other analysis releases one histogram (L1 = 1). A ``target_ci`` is accepted for a
count_persons over a cohort (a per-cell half-width, as for other counts) and refused otherwise.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import pyarrow as pa

from .accuracy import alpha_for, half_width
from .analysis_release import make_analysis_preview, make_analysis_release
from .backends import Backend
from .calibrate import loss_for_half_width
from .catalog import Catalog
from .cohort import AnalysisPlan, plan_analysis
from .cohort_lexis import AGE_KINDS
from .compile import CompiledQuery
from .compile_cohort import compile_analysis, result_key_columns
from .errors import (
    EngineInternalError,
    LossOutOfRange,
    PrivacyInvariantError,
    UnsupportedQuery,
    ValueOutsideDomain,
)
from .estimators import known_populations, standard_weights
from .mechanisms import DPArray, NoiseCalibration, PrivacyLoss, add_noise, calibrate, split_loss, total_loss
from .plan import LossRequest
from .release import mechanism_label
from .release_models import Preview, Release
from .settings import EngineSettings
from .spec import ProjectContext, Query

__all__ = [
    "AnalysisExact",
    "PreparedAnalysis",
    "compiled_analysis",
    "exact_analysis",
    "prepare_analysis",
    "preview_analysis",
    "run_analysis",
]


@dataclass(frozen=True)
class PreparedAnalysis:
    """A planned, calibrated analysis: what it will be charged, touching no data."""

    plan: AnalysisPlan
    calibrations: tuple[NoiseCalibration, ...]  # one per plan output, in order
    loss: PrivacyLoss
    mechanism: str


@dataclass(frozen=True)
class AnalysisExact:
    """The exact private table: public keys in order and one int64 vector per plan output."""

    keys: tuple[tuple[Any, ...], ...]
    values: dict[str, np.ndarray]


def prepare_analysis(
    query: Query, catalog: Catalog, context: ProjectContext, settings: EngineSettings
) -> PreparedAnalysis:
    """Validate, plan and calibrate an analysis (errors name what to change)."""
    plan = plan_analysis(query, catalog, context, settings)
    _check_standard_population(plan)
    calibrations = _calibrate(plan, settings)
    loss = total_loss(calibrations)
    limit = settings.max_epsilon if loss.epsilon is not None else settings.max_rho
    if loss.value > limit:
        name = "epsilon" if loss.epsilon is not None else "rho"
        raise LossOutOfRange(
            f"Reaching this target_ci needs {name} = {loss.value:.4g}, above the per-query limit {limit}; "
            "ask for a wider interval or coarser groups.",
            stage="plan",
        )
    return PreparedAnalysis(plan, calibrations, loss, mechanism_label(calibrations))


def _check_standard_population(plan: AnalysisPlan) -> None:
    population = plan.standard_population
    if population is None:
        return
    ages = [g for g in plan.groups if g.kind in AGE_KINDS]
    if not ages:
        raise UnsupportedQuery(
            "Age standardisation needs an age band in group_by: add cohort.age_band or cohort.age_band_5 (age "
            "at index), or cohort.attained_age_band (attained age).",
            stage="validate",
        )
    try:
        standard_weights(population, [str(k) for k in ages[0].keys], persons=plan.standard_population_persons)
    except ValueError as exc:
        known = ", ".join(known_populations())
        raise ValueOutsideDomain(
            f"Unknown or unusable standard population {population!r} ({exc}); known populations: {known}.",
            stage="validate",
        ) from None


def _calibrate(plan: AnalysisPlan, settings: EngineSettings) -> tuple[NoiseCalibration, ...]:
    request = plan.loss
    kind = request.kind
    if request.target_ci is not None:
        (output,) = plan.outputs
        floor = (
            calibrate("laplace", output.sensitivity, epsilon=settings.min_epsilon)
            if kind == "laplace"
            else calibrate("gaussian", output.sensitivity, rho=settings.min_rho)
        )
        if request.target_ci >= half_width(floor, alpha_for(request.confidence)):
            return (floor,)
        found = loss_for_half_width(
            "count_persons", kind, output.sensitivity, request.target_ci, request.confidence
        )
        return (found if found.loss.value >= floor.loss.value else floor,)
    target = (
        PrivacyLoss(epsilon=request.epsilon) if request.epsilon is not None else PrivacyLoss(rho=request.rho)
    )
    parts = split_loss(target) if len(plan.outputs) == 2 else (target,)
    return tuple(
        calibrate(kind, output.sensitivity, epsilon=part.epsilon, rho=part.rho)
        for output, part in zip(plan.outputs, parts, strict=True)
    )


def compiled_analysis(prepared: PreparedAnalysis, catalog: Catalog, dialect: str) -> CompiledQuery:
    """The SQL ``run_analysis`` executes (for benchmarks and parity tests)."""
    return _compiled(prepared.plan, catalog, dialect)


# Building the SQL through sqlglot takes ~0.2 s; it depends on the plan but not on the privacy loss.
_ANY_LOSS = LossRequest("laplace", 1.0, None, None, 0.95)


def _compiled(plan: AnalysisPlan, catalog: Catalog, dialect: str) -> CompiledQuery:
    return _compiled_for(dataclasses.replace(plan, loss=_ANY_LOSS), catalog, dialect)


@functools.lru_cache(maxsize=256)
def _compiled_for(plan: AnalysisPlan, catalog: Catalog, dialect: str) -> CompiledQuery:
    return compile_analysis(plan, catalog, dialect)


def exact_analysis(
    backend: Backend, catalog: Catalog, plan: AnalysisPlan, timeout_s: float | None = None
) -> AnalysisExact:
    """Execute the analysis's SQL: the exact private table (never leaves the engine but via noise)."""
    compiled = _compiled(plan, catalog, backend.dialect)
    table = backend.execute(compiled) if timeout_s is None else backend.execute(compiled, timeout_s=timeout_s)
    return _exact(plan, table)


def _exact(plan: AnalysisPlan, table: pa.Table) -> AnalysisExact:
    names = [name for name, _ in result_key_columns(plan)]
    columns = [table.column(n).to_pylist() for n in names]
    keys = tuple(zip(*columns, strict=True)) if names else ((),) * table.num_rows
    public = tuple(product(*(k for _, k in result_key_columns(plan))))
    if len(keys) != plan.cells or keys != public:
        raise EngineInternalError(
            "Internal error: the analysis result does not hold one row per public cell. This is a bug in "
            "sundstat; nothing was released.",
            stage="execute",
        )
    result = {"count": "n", "events": "ev", "person_time": "pt"}
    values: dict[str, np.ndarray] = {
        o.name: np.array(
            table.column(result[o.name]).to_numpy(zero_copy_only=False), dtype=np.int64, copy=True
        )
        for o in plan.outputs
    }
    return AnalysisExact(keys, values)


def recheck(
    query: Query,
    catalog: Catalog,
    context: ProjectContext,
    settings: EngineSettings,
    prepared: PreparedAnalysis,
    charged: PrivacyLoss | None,
    charged_hash: str | None,
) -> None:
    """Re-derive the plan and check it, the calibrations and the loss against what was charged."""
    plan = plan_analysis(query, catalog, context, settings)
    same_plan = plan == prepared.plan and tuple(o.sensitivity for o in plan.outputs) == tuple(
        c.sensitivity for c in prepared.calibrations
    )
    refuse_unless_as_charged(query, same_plan, prepared.calibrations, prepared.loss, charged, charged_hash)


def refuse_unless_as_charged(
    query: Query,
    same_plan: bool,
    calibrations: tuple[NoiseCalibration, ...],
    prepared_loss: PrivacyLoss,
    charged: PrivacyLoss | None,
    charged_hash: str | None,
) -> None:
    """The last check before noise: the re-derived plan is the calibrated one, and the calibrations add
    up to the loss prepared and charged for this very query; else nothing is released."""
    problems = []
    if not same_plan:
        problems.append("the plan's sensitivity differs from the calibrated one")
    loss = total_loss(calibrations)
    if loss != prepared_loss:
        problems.append(f"the calibrations add up to {loss}, not {prepared_loss}")
    if charged is not None and charged != loss:
        problems.append(f"the charged cost is {charged}, the derived loss {loss}")
    if charged_hash is not None and charged_hash != query.query_hash():
        problems.append("the cost belongs to a different query")
    if problems:
        raise PrivacyInvariantError(
            f"Refusing to release: {'; '.join(problems)}. This is a bug in sundstat; nothing was released.",
            stage="mechanism",
        )


def noisy_outputs(prepared: PreparedAnalysis, exact: AnalysisExact) -> dict[str, DPArray]:
    """The OpenDP mechanisms on the exact vectors (each re-checks its loss before sampling)."""
    return {
        output.name: add_noise(calibration, exact.values[output.name])
        for output, calibration in zip(prepared.plan.outputs, prepared.calibrations, strict=True)
    }


def run_analysis(
    backend: Backend,
    catalog: Catalog,
    settings: EngineSettings,
    query: Query,
    context: ProjectContext,
    prepared: PreparedAnalysis,
    *,
    charged: PrivacyLoss | None = None,
    charged_hash: str | None = None,
    timeout_s: float | None = None,
) -> Release:
    """Execute and release an analysis; ``charged`` is the loss the ledger charged for it."""
    recheck(query, catalog, context, settings, prepared, charged, charged_hash)
    exact = exact_analysis(backend, catalog, prepared.plan, timeout_s)
    noisy = noisy_outputs(prepared, exact)
    return make_analysis_release(
        query,
        prepared.plan,
        prepared.calibrations,
        noisy,
        small_cell_threshold=settings.small_cell_threshold,
    )


def preview_analysis(query: Query, prepared: PreparedAnalysis) -> Preview:
    """The preview of an analysis (no data touched)."""
    return make_analysis_preview(query, prepared.plan, prepared.calibrations)
