"""Calibration, the pipeline step between plan and compile: a plan's loss request -> noise calibrations.

A stated loss (epsilon or rho) is split over the plan's outputs (a mean's sum and count by
``accuracy.mean_loss_weights``, a quantile's point and interval ends by ``QUANTILE_SPLIT``); partition
selection gets a noise-threshold calibration. A ``target_ci`` is met by the smallest loss whose
interval is no wider (``loss_for_half_width``), never below the minimum loss of the settings.
Everything here is public: declared sensitivities and the query, never data.
"""

from __future__ import annotations

from fractions import Fraction

from .accuracy import alpha_for, calibrate_for_half_width, half_width, mean_loss_weights
from .errors import EngineInternalError, UnsupportedQuery
from .mechanisms import (
    NoiseCalibration,
    NoiseKind,
    PrivacyLoss,
    Sensitivity,
    calibrate,
    calibrate_quantile,
    calibrate_threshold,
    split_loss,
)
from .plan import Plan
from .quantile_interval import QUANTILE_SPLIT
from .settings import EngineSettings

__all__ = ["calibrate_plan", "loss_for_half_width"]


def calibrate_plan(plan: Plan, settings: EngineSettings) -> tuple[NoiseCalibration, ...]:
    """The noise calibrations of a planned query, one per output, from its loss request or target_ci."""
    request = plan.loss
    kind = request.kind
    if request.target_ci is not None:
        return (_calibrate_for_target(plan, settings),)
    target = (
        PrivacyLoss(epsilon=request.epsilon) if request.epsilon is not None else PrivacyLoss(rho=request.rho)
    )
    if plan.partition_selection:
        return (
            calibrate_threshold(
                kind,
                plan.outputs[0].sensitivity,
                epsilon=target.epsilon,
                rho=target.rho,
                delta=settings.partition_delta,
            ),
        )
    if plan.measure == "quantile":
        assert plan.quantile is not None
        # The point and the two interval ends: three selections, loss split by QUANTILE_SPLIT.
        m = plan.quantile.candidates
        return tuple(
            calibrate_quantile(o.sensitivity.linf, part.epsilon, m, o.sensitivity.l0, rho=part.rho)
            for o, part in zip(plan.outputs, split_loss(target, QUANTILE_SPLIT), strict=True)
        )
    parts = (target,) if len(plan.outputs) == 1 else split_loss(target, _mean_weights(plan))
    return tuple(
        calibrate(kind, output.sensitivity, epsilon=part.epsilon, rho=part.rho)
        for output, part in zip(plan.outputs, parts, strict=True)
    )


def _calibrate_for_target(plan: Plan, settings: EngineSettings) -> NoiseCalibration:
    """The calibration for a target_ci: the smallest loss meeting it, but never below the minimum.

    A target wider than the interval the minimum loss gives is charged the minimum and gets that
    (narrower) interval; checking this first also keeps huge targets out of the scale search.
    """
    request, sensitivity = plan.loss, plan.outputs[0].sensitivity
    assert request.target_ci is not None
    value = plan.value
    resolution = value.resolution if value is not None and plan.measure == "sum" else 1.0
    if request.kind == "laplace":
        floor = calibrate("laplace", sensitivity, epsilon=settings.min_epsilon)
    else:
        floor = calibrate("gaussian", sensitivity, rho=settings.min_rho)
    widest = half_width(floor, alpha_for(request.confidence)) * resolution
    if request.target_ci >= widest:
        return floor
    calibration = loss_for_half_width(
        plan.measure,
        request.kind,
        sensitivity,
        request.target_ci,
        request.confidence,
        resolution=resolution,
    )
    return calibration if calibration.loss.value >= floor.loss.value else floor


def loss_for_half_width(
    measure: str,
    kind: NoiseKind,
    sensitivity: Sensitivity,
    half_width: float,
    confidence: float,
    *,
    resolution: float = 1.0,
) -> NoiseCalibration:
    """Accuracy-first calibration for a query measure; refused where no honest method exists.

    Counts and sums delegate to ``calibrate_for_half_width``. Means and quantiles raise
    ``UnsupportedQuery``: their interval width depends on the private number of rows.
    """
    if measure in ("count_persons", "count_rows", "sum"):
        return calibrate_for_half_width(kind, sensitivity, half_width, confidence, resolution=resolution)
    if measure in ("mean", "quantile"):
        raise UnsupportedQuery(
            f"A target_ci is not supported for {measure}: the width of its interval depends on the number of "
            "rows, which is private, so no privacy loss can promise it. State epsilon or rho instead, and "
            "use a preview to see the interval it gives."
        )
    raise UnsupportedQuery(
        f"Unknown measure {measure!r}: expected count_persons, count_rows, sum, mean or quantile."
    )


def _mean_weights(plan: Plan) -> tuple[Fraction, Fraction]:
    """A mean's split of the loss between its centred sum and its count (``mean_loss_weights``)."""
    value = plan.value
    if plan.measure != "mean" or value is None:
        raise EngineInternalError("Only a mean splits its loss between outputs.", stage="plan")
    total, count = (o.sensitivity for o in plan.outputs)
    return mean_loss_weights(plan.loss.kind, total, count, value.centred_magnitude_units)
