"""Releases: a planned query's calibrations and DP outputs -> the public ``Preview`` and ``Release``.

``make_preview`` and ``make_release`` are what the engine calls (plan, calibrations and, for a
release, the mechanisms' outputs -> the models of ``query_engine.release_models``); the engine applies
the mechanisms itself. The privacy block (loss as charged, per part for composite releases) and the
accuracy block (known before the data is touched) are built here; the rows, all post-processing of
``DPArray``s, come from ``query_engine.postprocess``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from query_engine.accuracy import alpha_for, half_width, quantile_rank_error
from query_engine.errors import EngineInternalError
from query_engine.mechanisms import DPArray, NoiseCalibration, quantile_fraction, total_loss
from query_engine.postprocess import (
    Row,
    ceil_decimals,
    count_rows,
    decimals_of,
    mean_rows,
    number,
    quantile_rows,
    scaled,
    sum_rows,
)
from query_engine.quantile_interval import expected_half_widths, rank_half_width, value_interval
from query_engine.release_models import (
    AccuracyPublic,
    LossPart,
    Measure,
    Preview,
    PrivacyPublic,
    QuantileWidth,
    Release,
    columns_for,
    new_release_id,
)

if TYPE_CHECKING:
    from query_engine.plan import Plan
    from query_engine.spec import Query

__all__ = [
    "ReleaseFacts",
    "accuracy_public",
    "make_preview",
    "make_release",
    "mechanism_label",
    "noise_public",
    "preview_of",
    "privacy_public",
    "release_facts",
    "release_of",
]


# --- privacy and accuracy summaries ---------------------------------------------------------------


def _mechanism_name(calibration: NoiseCalibration) -> str:
    if calibration.mechanism == "noise_threshold":
        return (
            "discrete_laplace_threshold" if calibration.measure == "pure" else "discrete_gaussian_threshold"
        )
    return calibration.mechanism


def privacy_public(
    calibrations: Sequence[NoiseCalibration], parts: Sequence[str] | None = None
) -> PrivacyPublic:
    """The public privacy block of a release made by one calibration, or by several (``parts`` names them)."""
    if not calibrations:
        raise EngineInternalError("A release needs at least one calibration.")
    loss = total_loss(calibrations)
    if len(calibrations) == 1:
        (single,) = calibrations
        return PrivacyPublic(
            epsilon=loss.epsilon,
            delta=loss.delta,
            rho=loss.rho,
            mechanism=_mechanism_name(single),
            scale=single.scale,
            threshold=single.threshold,
        )
    names = list(parts) if parts is not None else [f"part_{i}" for i in range(len(calibrations))]
    if len(names) != len(calibrations):
        raise EngineInternalError("Name every part of a composite release.")
    split = [
        LossPart(
            part=name,
            epsilon=c.loss.epsilon,
            rho=c.loss.rho,
            delta=c.loss.delta,
            mechanism=_mechanism_name(c),
            scale=c.scale,
        )
        for name, c in zip(names, calibrations, strict=True)
    ]
    mechanisms = {part.mechanism for part in split}
    return PrivacyPublic(
        epsilon=loss.epsilon,
        delta=loss.delta,
        rho=loss.rho,
        mechanism=mechanisms.pop() if len(mechanisms) == 1 else "composite",
        scale=None,
        loss_split=split,
    )


def accuracy_public(
    measure: Measure,
    calibration: NoiseCalibration,
    confidence: float,
    *,
    resolution: float = 1.0,
    quantile: float | None = None,
) -> AccuracyPublic:
    """Per-cell accuracy known before the data is touched (for previews and releases).

    For a mean the half-width depends on the private count, so it is null (each row has its interval).
    """
    alpha = alpha_for(confidence)
    if measure in ("count_persons", "count_rows", "sum"):
        kind = calibration.noise
        return AccuracyPublic(
            half_width=float(scaled(int(half_width(calibration, alpha)), resolution)),
            confidence=confidence,
            method=f"discrete_{'laplacian' if kind == 'laplace' else 'gaussian'}_scale_to_accuracy, "
            "closed interval on integer noise, per cell",
        )
    if measure == "mean":
        return AccuracyPublic(
            confidence=confidence,
            method="midpoint + noisy centred sum / noisy count; sum and count intervals at alpha/2 each "
            "(union bound), ratio, declared bounds",
        )
    if measure == "quantile":
        if quantile is None:
            raise EngineInternalError("A quantile's accuracy needs the quantile.")
        _, den = quantile_fraction(quantile)
        return AccuracyPublic(
            confidence=confidence,
            rank_error=ceil_decimals(quantile_rank_error(calibration, alpha, den), 2),
            method="noisy-max utility bound: rank error in rows relative to the best candidate",
        )
    raise EngineInternalError(f"Unknown measure {measure!r}.")


def _quantile_accuracy(query: Query, plan: Plan, calibrations: Sequence[NoiseCalibration]) -> AccuracyPublic:
    """The point's rank error plus the value interval's grid step and expected half-widths."""
    quantile, value = plan.quantile, plan.value
    assert quantile is not None and value is not None and len(calibrations) == 3
    base = accuracy_public("quantile", calibrations[0], query.confidence, quantile=quantile.level)
    alpha = alpha_for(query.confidence)
    widths = expected_half_widths(quantile, calibrations[1], alpha, (value.lo, value.hi), value.resolution)
    return base.model_copy(
        update={
            "method": "value interval: two noisy-max selections of ranks shifted by the selection error "
            "(alpha/2 each), widened to the point; rank_error: noisy-max utility bound of the point",
            "grid_step": float(scaled(quantile.step_units, value.resolution)),
            "rank_half_width": ceil_decimals(
                rank_half_width(calibrations[1], alpha, quantile.denominator), 2
            ),
            "expected_half_widths": [
                QuantileWidth(rows=n, half_width=ceil_decimals(w, decimals_of(value.resolution)))
                for n, w in widths.items()
            ],
        }
    )


# --- the engine's entry points --------------------------------------------------------------------


def mechanism_label(calibrations: Sequence[NoiseCalibration]) -> str:
    """The mechanisms of a query's calibrations, in order, joined by ``+`` (the cost's ``mechanism``)."""
    return "+".join(dict.fromkeys(c.mechanism for c in calibrations))


def preview_of(
    query: Query,
    calibrations: Sequence[NoiseCalibration],
    parts: Sequence[str],
    *,
    cells: int,
    registers: Sequence[str],
    measure: Measure,
    accuracy: AccuracyPublic,
    notes: list[str],
    expected_half_width: float | None = None,
    rank_error: float | None = None,
    expected_intervals: list[dict[str, Any]] | None = None,
) -> Preview:
    """A preview of any kind of query: its loss (one part per calibration, named by ``parts``), its
    mechanisms, the scale of a single calibration, and what the caller knows of its accuracy."""
    return Preview(
        loss=privacy_public(calibrations, parts),
        mechanism=mechanism_label(calibrations),
        scale=calibrations[0].scale if len(calibrations) == 1 else None,
        cells=cells,
        expected_half_width=expected_half_width,
        confidence=query.confidence,
        registers=list(registers),
        measure=measure,
        rank_error=rank_error,
        accuracy=accuracy,
        notes=notes,
        expected_intervals=expected_intervals,
    )


def release_of(
    query: Query,
    calibrations: Sequence[NoiseCalibration],
    parts: Sequence[str],
    *,
    release_id: str,
    columns: list[str],
    rows: list[Row],
    measure: Measure,
    cells: int,
    accuracy: AccuracyPublic,
    small_cell_threshold: int | None,
    privacy: PrivacyPublic | None = None,
    **estimates: Any,
) -> Release:
    """A release of any kind of query: its project, privacy block (as in ``preview_of``; ``privacy``
    if already built from the same calibrations), confidence and canonical query, its table, and the
    ``estimates`` fields of analyses and models."""
    return Release(
        release_id=release_id,
        project=query.project,
        privacy=privacy if privacy is not None else privacy_public(calibrations, parts),
        confidence=query.confidence,
        columns=columns,
        rows=rows,
        measure=measure,
        query=query.canonical(),
        cells=cells,
        accuracy=accuracy,
        small_cell_threshold=small_cell_threshold,
        **estimates,
    )


def noise_public(parts: Sequence[str], calibrations: Sequence[NoiseCalibration]) -> dict[str, dict[str, Any]]:
    """The ``noise`` block of an analysis or model release: each released part's mechanism and scale,
    so that its estimators can be rerun on the downloaded release."""
    return {
        name: {"mechanism": c.mechanism, "scale": c.scale}
        for name, c in zip(parts, calibrations, strict=True)
    }


def _parts(plan: Plan) -> list[str]:
    return [o.name for o in plan.outputs]


def _accuracy(query: Query, plan: Plan, calibrations: Sequence[NoiseCalibration]) -> AccuracyPublic:
    if plan.measure == "quantile":
        return _quantile_accuracy(query, plan, calibrations)
    resolution = plan.value.resolution if plan.value is not None and plan.measure == "sum" else 1.0
    return accuracy_public(
        plan.measure, calibrations[0], query.confidence, resolution=resolution, quantile=query.quantile_level
    )


def make_preview(query: Query, plan: Plan, calibrations: Sequence[NoiseCalibration]) -> Preview:
    """The preview of a planned query: its loss, mechanism and expected per-cell accuracy."""
    accuracy = _accuracy(query, plan, calibrations)
    notes: list[str] = []
    if plan.partition_selection:
        open_columns = ", ".join(g.column.qualified for g in plan.groups if g.is_open)
        notes.append(
            f"Keys of {open_columns} are not public: only groups whose noisy count reaches "
            f"{calibrations[0].threshold} are released."
        )
    elif plan.measure == "mean":
        notes.append("A mean's interval depends on its noisy count; each released row carries its own.")
    elif plan.measure == "quantile" and accuracy.expected_half_widths:
        widths = ", ".join(f"±{w.half_width:g} at {w.rows:,} rows" for w in accuracy.expected_half_widths)
        notes.append(
            f"Each quantile comes with a value interval; for values spread evenly over the bounds expect {widths} "
            f"per cell (grid step {accuracy.grid_step:g}); data concentrated near the quantile give narrower ones."
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
        rank_error=accuracy.rank_error,
    )


@dataclass(frozen=True)
class ReleaseFacts:
    """What every release of one prepared query states before any data is read: built once per
    query and plan, so that a release only post-processes its DP outputs."""

    privacy: PrivacyPublic
    accuracy: AccuracyPublic
    columns: tuple[str, ...]
    candidates: tuple[int | float, ...] = ()  # a quantile's grid, as released numbers


def release_facts(query: Query, plan: Plan, calibrations: Sequence[NoiseCalibration]) -> ReleaseFacts:
    """The ``ReleaseFacts`` of a planned query and its calibrations."""
    candidates: tuple[int | float, ...] = ()
    if plan.quantile is not None and plan.value is not None:
        candidates = tuple(number(c) for c in plan.quantile.candidate_values(plan.value.resolution))
    return ReleaseFacts(
        privacy=privacy_public(calibrations, _parts(plan)),
        accuracy=_accuracy(query, plan, calibrations),
        columns=tuple(columns_for(list(query.group_by), plan.measure)),
        candidates=candidates,
    )


def make_release(
    query: Query,
    plan: Plan,
    calibrations: Sequence[NoiseCalibration],
    keys: Sequence[Sequence[Any]],
    noisy: Mapping[str, DPArray],
    *,
    small_cell_threshold: int,
    facts: ReleaseFacts | None = None,
    warnings: Sequence[str] = (),
) -> Release:
    """The release of a query from its DP outputs and public facts only.

    ``keys`` are the released group keys in order (for partition selection: the kept ones), and
    ``noisy`` the mechanisms' outputs by name: ``count``, ``sum`` (counts, sums, means) or ``index``
    (the selected quantile candidate per cell). ``facts`` are ``release_facts`` of the same query,
    plan and calibrations (built here if not given).
    """
    if facts is None:
        facts = release_facts(query, plan, calibrations)
    names = list(query.group_by)
    named = [dict(zip(names, key, strict=True)) for key in keys]
    confidence = query.confidence
    first = calibrations[0]
    rows: list[Row]
    if plan.measure in ("count_persons", "count_rows"):
        rows = count_rows(named, noisy["count"], first, confidence, small_cell_threshold)
    elif plan.partition_selection:
        raise EngineInternalError("Partition selection is only planned for counts.")
    else:
        value = plan.value
        assert value is not None
        bounds = (value.lo, value.hi)
        if plan.measure == "sum":
            rows = sum_rows(
                named, noisy["sum"], first, confidence, resolution=value.resolution, bounds=bounds
            )
        elif plan.measure == "mean":
            rows = mean_rows(
                named,
                noisy["sum"],
                noisy["count"],
                first,
                calibrations[1],
                confidence,
                bounds=bounds,
                resolution=value.resolution,
                centre_units=value.centre_units,
                small_cell_threshold=small_cell_threshold,
            )
        else:
            quantile = plan.quantile
            assert quantile is not None
            interval = value_interval(
                quantile, value.resolution, noisy["index"], noisy["lower_index"], noisy["upper_index"]
            )
            rows = quantile_rows(
                named,
                noisy["index"],
                facts.candidates,
                first,
                confidence,
                quantile=quantile.level,
                interval=interval,
                grid_step=float(scaled(quantile.step_units, value.resolution)),
            )
    return release_of(
        query,
        calibrations,
        _parts(plan),
        release_id=new_release_id(),
        columns=list(facts.columns),
        rows=rows,
        measure=plan.measure,
        cells=len(rows),
        accuracy=facts.accuracy,
        small_cell_threshold=small_cell_threshold,
        privacy=facts.privacy,
        warnings=list(warnings),
    )
