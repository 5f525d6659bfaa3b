"""The pipeline of a model or a Table 1 (issue 16): plan -> calibrate -> execute -> noise -> fit.

``Engine`` hands every query with ``Query.is_model`` to this module. Poisson and logistic models and
Table 1 release the tables of ``models_plan`` (each through the analysis SQL of ``compile_cohort``
and OpenDP noise from ``mechanisms.add_noise``); the linear regression releases its noisy moments
(``linear_plan``, ``compile_linear``). The fits and intervals are post-processing
(``models_release``). As for every query the loss is derived before any data is touched, re-derived
and compared with the charged cost before execution, and each mechanism re-checks its own loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .analyses import exact_analysis, refuse_unless_as_charged
from .backends import Backend
from .catalog import Catalog
from .compile import CompiledQuery
from .compile_cohort import compile_analysis
from .compile_linear import compile_linear, exact_moments
from .compile_table1 import compile_table1, table1_histograms
from .errors import LossOutOfRange
from .linear_plan import LinearPlan, plan_linear
from .mechanisms import DPArray, NoiseCalibration, PrivacyLoss, add_noise, calibrate, split_loss, total_loss
from .models_plan import ModelPlan, plan_model
from .models_release import make_linear_release, make_model_preview, make_model_release
from .release import mechanism_label
from .release_models import Preview, Release
from .settings import EngineSettings
from .spec import ProjectContext, Query

__all__ = ["PreparedModel", "compiled_model", "prepare_model", "preview_model", "run_model"]


@dataclass(frozen=True)
class PreparedModel:
    """A planned, calibrated model: what it will be charged, touching no data."""

    plan: ModelPlan | LinearPlan
    calibrations: tuple[NoiseCalibration, ...]  # one per released vector, in plan order
    loss: PrivacyLoss
    mechanism: str


def _plan(
    query: Query, catalog: Catalog, context: ProjectContext, settings: EngineSettings
) -> ModelPlan | LinearPlan:
    if query.measure == "linear_regression":
        return plan_linear(query, catalog, context, settings)
    return plan_model(query, catalog, context, settings)


def _sensitivities(plan: ModelPlan | LinearPlan) -> list[tuple[Fraction, object]]:
    """(share of the loss, sensitivity) of every released vector, in order."""
    if isinstance(plan, LinearPlan):
        share = Fraction(1, len(plan.parts))
        return [(share, part.sensitivity) for part in plan.parts]
    return [
        (weight / len(table.outputs), output.sensitivity)
        for table, weight in zip(plan.tables, plan.weights, strict=True)
        for output in table.outputs
    ]


def prepare_model(
    query: Query, catalog: Catalog, context: ProjectContext, settings: EngineSettings
) -> PreparedModel:
    """Validate, plan and calibrate a model (errors name what to change); no data touched."""
    plan = _plan(query, catalog, context, settings)
    kind = (
        "laplace"
        if query.epsilon is not None or (query.rho is None and context.mode == "pure")
        else "gaussian"
    )
    target = PrivacyLoss(epsilon=query.epsilon) if query.epsilon is not None else PrivacyLoss(rho=query.rho)
    shares = _sensitivities(plan)
    parts = split_loss(target, [share for share, _ in shares]) if len(shares) > 1 else (target,)
    calibrations = tuple(
        calibrate(kind, sensitivity, epsilon=part.epsilon, rho=part.rho)  # type: ignore[arg-type]
        for (_, sensitivity), part in zip(shares, parts, strict=True)
    )
    loss = total_loss(calibrations)
    limit = settings.max_epsilon if loss.epsilon is not None else settings.max_rho
    if loss.value > limit:
        raise LossOutOfRange(
            f"The loss {loss.value:.4g} is above the per-query limit {limit}; ask for less.", stage="plan"
        )
    return PreparedModel(plan, calibrations, loss, mechanism_label(calibrations))


def compiled_model(prepared: PreparedModel, catalog: Catalog, dialect: str) -> list[CompiledQuery]:
    """The SQL ``run_model`` executes, one statement per released table (for benchmarks)."""
    if isinstance(prepared.plan, LinearPlan):
        return [compile_linear(prepared.plan, catalog, dialect)]
    if prepared.plan.measure == "table1":
        return [compile_table1(prepared.plan, catalog, dialect)]
    return [compile_analysis(table, catalog, dialect) for table in prepared.plan.tables]


def _recheck(
    query: Query,
    catalog: Catalog,
    context: ProjectContext,
    settings: EngineSettings,
    prepared: PreparedModel,
    charged: PrivacyLoss | None,
    charged_hash: str | None,
) -> None:
    """Re-derive the plan and check it, the calibrations and the loss against what was charged."""
    plan = _plan(query, catalog, context, settings)
    same_plan = plan == prepared.plan and tuple(s for _, s in _sensitivities(plan)) == tuple(
        c.sensitivity for c in prepared.calibrations
    )
    refuse_unless_as_charged(query, same_plan, prepared.calibrations, prepared.loss, charged, charged_hash)


def run_model(
    backend: Backend,
    catalog: Catalog,
    settings: EngineSettings,
    query: Query,
    context: ProjectContext,
    prepared: PreparedModel,
    *,
    charged: PrivacyLoss | None = None,
    charged_hash: str | None = None,
    timeout_s: float | None = None,
) -> Release:
    """Execute, add noise and release a model; ``charged`` is the loss the ledger charged for it."""
    _recheck(query, catalog, context, settings, prepared, charged, charged_hash)
    plan = prepared.plan
    calibrations = iter(prepared.calibrations)
    if isinstance(plan, LinearPlan):
        exact = exact_moments(backend, catalog, plan, timeout_s)
        noisy = [add_noise(next(calibrations), exact[i : i + 1]) for i in range(len(plan.parts))]
        return make_linear_release(query, plan, prepared.calibrations, noisy)
    tables: list[dict[str, DPArray]] = []
    if plan.measure == "table1":
        for histogram in table1_histograms(backend, catalog, plan, timeout_s):
            tables.append({"count": add_noise(next(calibrations), histogram)})
        return make_model_release(
            query, plan, prepared.calibrations, tables, small_cell_threshold=settings.small_cell_threshold
        )
    for table in plan.tables:
        values = exact_analysis(backend, catalog, table, timeout_s).values
        tables.append({o.name: add_noise(next(calibrations), values[o.name]) for o in table.outputs})
    return make_model_release(
        query, plan, prepared.calibrations, tables, small_cell_threshold=settings.small_cell_threshold
    )


def preview_model(query: Query, prepared: PreparedModel) -> Preview:
    """The preview of a model: total loss, its split and the expected interval of what was asked."""
    return make_model_preview(query, prepared.plan, prepared.calibrations)
