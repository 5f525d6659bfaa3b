"""Releases: the public contract (pydantic models) and the post-processing of noisy values into rows.

Post-processing only ever sees outputs of OpenDP measurements: every function here takes
``DPArray``s (made only by ``query_engine.mechanisms``) and refuses plain arrays, so an exact
aggregate cannot reach a release by mistake. What it does, all of it post-processing:

- counts: the value is clipped at zero (the unclipped noisy value is kept as ``value_raw`` for
  unbiased downstream use); the interval ``[raw - a, raw + a]`` is intersected with ``[0, inf)``;
  a cell whose noisy count is below the small-cell threshold is suppressed (value, interval and raw
  value are null), decided on the noisy value only.
- sums: fixed-point integers times the resolution (each the float nearest the exact product);
  clipped at zero when the declared bounds make the sum non-negative (or non-positive).
- a small-cell threshold of 0 turns suppression off.
- means: midpoint + noisy centred sum / noisy count (the sum is of values minus the midpoint of
  their bounds), clipped to the declared bounds, with the honest interval of
  ``query_engine.accuracy.mean_interval``; suppressed when the noisy count is small (always when it
  is not positive); values get two decimals beyond the resolution.
- quantiles: the selected candidate; ``ci_low``/``ci_high`` the value interval made of the two
  interval-end selections (``query_engine.quantile_interval``), ``grid_step`` the grid's spacing, and
  ``rank_error`` (rows) of the point, with the meaning given in ``query_engine.accuracy``.

Interval endpoints are rounded outward (down/up), so rounding never reduces coverage.
``make_preview`` and ``make_release`` are what the engine calls (plan, calibrations and, for a
release, the mechanisms' outputs -> the public models); the engine applies the mechanisms itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from query_engine.accuracy import alpha_for, half_width, mean_interval, quantile_rank_error
from query_engine.errors import EngineInternalError, PrivacyInvariantError
from query_engine.mechanisms import DPArray, NoiseCalibration, quantile_fraction, total_loss
from query_engine.quantile_interval import expected_half_widths, rank_half_width, value_interval

if TYPE_CHECKING:
    from query_engine.plan import Plan
    from query_engine.spec import Query

__all__ = [
    "AccuracyPublic",
    "LossPart",
    "Preview",
    "PrivacyPublic",
    "QuantileWidth",
    "Release",
    "accuracy_public",
    "columns_for",
    "count_rows",
    "make_preview",
    "make_release",
    "mechanism_label",
    "mean_rows",
    "new_release_id",
    "privacy_public",
    "quantile_rows",
    "sum_rows",
    "threshold_rows",
]

Measure = Literal["count_persons", "count_rows", "sum", "mean", "quantile"]
Key = Mapping[str, Any]
Row = dict[str, Any]

DEFAULT_SMALL_CELL_THRESHOLD = 5
_MEAN_EXTRA_DECIMALS = 2


# --- public models --------------------------------------------------------------------------------


class LossPart(BaseModel):
    """One measurement of a composite release (e.g. the noisy sum of a mean)."""

    model_config = ConfigDict(extra="forbid")

    part: str
    epsilon: float | None = None
    rho: float | None = None
    delta: float = 0.0
    mechanism: str
    scale: float


class PrivacyPublic(BaseModel):
    """The privacy loss of a release as charged, and the mechanism that produced it."""

    model_config = ConfigDict(extra="forbid")

    epsilon: float | None = None
    delta: float = 0.0
    rho: float | None = None
    mechanism: str
    scale: float | None = None
    loss_split: list[LossPart] | None = None
    threshold: int | None = None


class QuantileWidth(BaseModel):
    """The expected half-width of a quantile's value interval for cells of ``rows`` rows."""

    model_config = ConfigDict(extra="forbid")

    rows: int
    half_width: float


class AccuracyPublic(BaseModel):
    """Per-cell accuracy: interval half-width (value units) or quantile rank error (rows).

    Quantiles also carry ``grid_step`` (value units), ``rank_half_width`` (rows between the quantile's
    rank and either interval end) and ``expected_half_widths`` (value units, per public cell size).
    """

    model_config = ConfigDict(extra="forbid")

    half_width: float | None = None
    confidence: float
    rank_error: float | None = None
    method: str
    grid_step: float | None = None
    rank_half_width: float | None = None
    expected_half_widths: list[QuantileWidth] | None = None


class Release(BaseModel):
    """The response of ``POST /v1/queries``."""

    release_id: str
    project: str
    cached: bool = False
    privacy: PrivacyPublic
    confidence: float
    columns: list[str]
    rows: list[dict[str, Any]]
    budget: dict[str, Any] | None = None
    measure: Measure | None = None
    query: dict[str, Any] | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    cells: int = 0
    accuracy: AccuracyPublic | None = None
    small_cell_threshold: int | None = None
    warnings: list[str] = Field(default_factory=list)


class Preview(BaseModel):
    """The response of ``POST /v1/queries/preview``: cost and expected accuracy, no data touched."""

    loss: PrivacyPublic
    mechanism: str
    scale: float | None = None
    cells: int
    expected_half_width: float | None = None
    confidence: float
    registers: list[str]
    measure: Measure | None = None
    rank_error: float | None = None
    accuracy: AccuracyPublic | None = None
    notes: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


def new_release_id() -> str:
    """A new release id: ``r_`` and 16 random hex characters."""
    return "r_" + secrets.token_hex(8)


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
            half_width=float(_scaled(int(half_width(calibration, alpha)), resolution)),
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
            rank_error=_ceil_decimals(quantile_rank_error(calibration, alpha, den), 2),
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
            "grid_step": float(_scaled(quantile.step_units, value.resolution)),
            "rank_half_width": _ceil_decimals(
                rank_half_width(calibrations[1], alpha, quantile.denominator), 2
            ),
            "expected_half_widths": [
                QuantileWidth(rows=n, half_width=_ceil_decimals(w, _decimals(value.resolution)))
                for n, w in widths.items()
            ],
        }
    )


def columns_for(group_by: Sequence[str], measure: Measure) -> list[str]:
    """The release columns: the group columns, then value, interval, suppression and extras."""
    extra = ["rank_error", "grid_step"] if measure == "quantile" else ["value_raw"]
    return [*group_by, "value", "ci_low", "ci_high", "suppressed", *extra]


# --- helpers --------------------------------------------------------------------------------------


def _require_dp(name: str, values: Any) -> np.ndarray:
    if not isinstance(values, DPArray):
        raise PrivacyInvariantError(
            f"Post-processing received {name} that is not the output of an OpenDP measurement: "
            "this is a bug, and nothing was released."
        )
    array = np.asarray(values)
    if array.ndim != 1:
        raise EngineInternalError(
            f"Internal error: {name} must be one-dimensional. This is a bug in sundstat; "
            "nothing was released."
        )
    return array


def _check_keys(keys: Sequence[Key], n: int) -> None:
    if len(keys) != n:
        raise EngineInternalError(f"Got {len(keys)} keys for {n} cells.")


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _decimals(resolution: float) -> int:
    exponent = _decimal(resolution).normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _scaled(units: int, resolution: float) -> int | float:
    """``units * resolution`` exactly (an int when the resolution is whole)."""
    value = Decimal(units) * _decimal(resolution)
    return int(value) if value == value.to_integral_value() else float(value)


def _times_resolution(units: np.ndarray, resolution: float) -> np.ndarray:
    """``units * resolution``, each the float nearest to the exact product (ints for whole resolutions).

    With ``resolution = p/q`` exactly, ``units * p`` is an exact integer and one IEEE division by
    ``q`` rounds correctly; products beyond 2^53 go through ``Fraction``.
    """
    fraction = Fraction(repr(float(resolution)))
    p, q = fraction.numerator, fraction.denominator
    ints = np.asarray(units, dtype=np.int64)
    largest = int(np.abs(ints).max()) if ints.size else 0
    if q == 1 and largest * p < 2**63:
        return ints * p
    if largest * p < 2**53:
        return (ints * p).astype(np.float64) / q
    return np.array([float(Fraction(int(u) * p, q)) for u in ints.tolist()], dtype=np.float64)


def _ceil_decimals(value: float, decimals: int) -> float:
    return float(_decimal(value).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_CEILING))


def _check_threshold(small_cell_threshold: int) -> int:
    if isinstance(small_cell_threshold, bool) or small_cell_threshold < 0:
        raise EngineInternalError(f"The small-cell threshold must be >= 0; got {small_cell_threshold!r}.")
    return int(small_cell_threshold)


def _suppressed_row(key: Key, extra: str = "value_raw") -> Row:
    return {**key, "value": None, "ci_low": None, "ci_high": None, "suppressed": True, extra: None}


# --- post-processing ------------------------------------------------------------------------------


def count_rows(
    keys: Sequence[Key],
    noisy: DPArray,
    calibration: NoiseCalibration,
    confidence: float,
    small_cell_threshold: int = DEFAULT_SMALL_CELL_THRESHOLD,
) -> list[Row]:
    """Rows of a count release: clipped value, raw value, interval and small-cell suppression.

    A threshold of 0 turns suppression off (negative noisy counts then show as 0, raw value kept).
    """
    values = _require_dp("noisy counts", noisy)
    _check_keys(keys, len(values))
    threshold = _check_threshold(small_cell_threshold)
    a = int(half_width(calibration, alpha_for(confidence)))
    rows: list[Row] = []
    for key, raw in zip(keys, values.tolist(), strict=True):
        if threshold > 0 and raw < threshold:
            rows.append(_suppressed_row(key))
            continue
        rows.append(
            {
                **key,
                "value": max(raw, 0),
                "ci_low": max(raw - a, 0),
                "ci_high": max(raw + a, 0),
                "suppressed": False,
                "value_raw": raw,
            }
        )
    return rows


def threshold_rows(
    column: str,
    kept_keys: Sequence[str],
    noisy: DPArray,
    calibration: NoiseCalibration,
    confidence: float,
    small_cell_threshold: int = DEFAULT_SMALL_CELL_THRESHOLD,
) -> list[Row]:
    """Rows of a count with DP partition selection (keys from ``release_threshold``)."""
    if calibration.mechanism != "noise_threshold":
        raise EngineInternalError(
            "Internal error: threshold_rows takes a noise-threshold calibration. This is a bug in sundstat; "
            "nothing was released."
        )
    return count_rows(
        [{column: key} for key in kept_keys], noisy, calibration, confidence, small_cell_threshold
    )


def sum_rows(
    keys: Sequence[Key],
    noisy: DPArray,
    calibration: NoiseCalibration,
    confidence: float,
    *,
    resolution: float,
    bounds: tuple[float, float],
) -> list[Row]:
    """Rows of a sum release: fixed-point noisy sums times the resolution, with intervals.

    When the declared bounds make every sum non-negative (non-positive), values and intervals are
    clipped at zero from below (above); ``value_raw`` keeps the unclipped value.
    """
    values = _require_dp("noisy sums", noisy)
    _check_keys(keys, len(values))
    lower, upper = bounds
    a = int(half_width(calibration, alpha_for(confidence)))

    def clip(x: np.ndarray) -> np.ndarray:
        if lower >= 0:
            x = np.maximum(x, 0)
        if upper <= 0:
            x = np.minimum(x, 0)
        return x

    raw = _times_resolution(values, resolution)
    low = _times_resolution(values - a, resolution)
    high = _times_resolution(values + a, resolution)
    return [
        {**key, "value": v, "ci_low": lo, "ci_high": hi, "suppressed": False, "value_raw": r}
        for key, v, lo, hi, r in zip(
            keys,
            clip(raw).tolist(),
            clip(low).tolist(),
            clip(high).tolist(),
            raw.tolist(),
            strict=True,
        )
    ]


def mean_rows(
    keys: Sequence[Key],
    noisy_sum: DPArray,
    noisy_count: DPArray,
    sum_calibration: NoiseCalibration,
    count_calibration: NoiseCalibration,
    confidence: float,
    *,
    bounds: tuple[float, float],
    resolution: float,
    centre_units: int = 0,
    small_cell_threshold: int = DEFAULT_SMALL_CELL_THRESHOLD,
) -> list[Row]:
    """Rows of a mean release: ``centre + noisy sum / noisy count`` clipped to the bounds, with honest
    intervals. ``noisy_sum`` sums the values minus ``centre_units`` (units of ``resolution``).

    Cells whose noisy count is below the small-cell threshold (or not positive) are suppressed.
    Values are rounded to two decimals beyond the resolution; interval ends outward.
    """
    sums = _require_dp("noisy sums", noisy_sum)
    counts = _require_dp("noisy counts", noisy_count)
    if len(sums) != len(counts):
        raise EngineInternalError("A mean needs one noisy sum and one noisy count per cell.")
    _check_keys(keys, len(sums))
    threshold = max(_check_threshold(small_cell_threshold), 1)
    lower, upper = float(bounds[0]), float(bounds[1])
    low, high = mean_interval(
        noisy_sum,
        noisy_count,
        sum_calibration,
        count_calibration,
        alpha_for(confidence),
        bounds,
        resolution,
        centre_units=centre_units,
    )
    shown = counts >= threshold
    step = 10.0 ** (_decimals(resolution) + _MEAN_EXTRA_DECIMALS)
    centre = float(_scaled(centre_units, resolution))
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = np.asarray(_times_resolution(sums, resolution), dtype=np.float64) / np.where(
            shown, counts, 1
        )
    raw = centre + centred
    value = np.round(np.clip(raw, lower, upper) * step) / step
    value_raw = np.round(raw * step) / step
    ci_low = np.maximum(np.floor(low * step) / step, lower)
    ci_high = np.minimum(np.ceil(high * step) / step, upper)
    rows: list[Row] = []
    for key, ok, v, r, lo, hi in zip(
        keys,
        shown.tolist(),
        value.tolist(),
        value_raw.tolist(),
        ci_low.tolist(),
        ci_high.tolist(),
        strict=True,
    ):
        if ok:
            rows.append({**key, "value": v, "ci_low": lo, "ci_high": hi, "suppressed": False, "value_raw": r})
        else:
            rows.append(_suppressed_row(key))
    return rows


def quantile_rows(
    keys: Sequence[Key],
    selected: DPArray,
    candidates: Sequence[Any],
    calibration: NoiseCalibration,
    confidence: float,
    *,
    quantile: float,
    interval: tuple[Sequence[float], Sequence[float]],
    grid_step: float,
) -> list[Row]:
    """Rows of a quantile release: the selected candidate, its value interval, rank error and grid step.

    ``interval`` is ``query_engine.quantile_interval.value_interval`` of the DP selections.
    """
    indices = _require_dp("selected candidates", selected)
    _check_keys(keys, len(indices))
    if calibration.candidates != len(candidates):
        raise EngineInternalError(f"Expected {calibration.candidates} candidates, got {len(candidates)}.")
    lows, highs = interval
    if len(lows) != len(indices) or len(highs) != len(indices):
        raise EngineInternalError("A quantile release needs one value interval per cell.")
    _, den = quantile_fraction(quantile)
    rank_error = _ceil_decimals(quantile_rank_error(calibration, alpha_for(confidence), den), 2)
    return [
        {
            **key,
            "value": candidates[index],
            "ci_low": _number(low),
            "ci_high": _number(high),
            "suppressed": False,
            "rank_error": rank_error,
            "grid_step": _number(grid_step),
        }
        for key, index, low, high in zip(keys, indices.tolist(), lows, highs, strict=True)
    ]


# --- the engine's entry points --------------------------------------------------------------------


def mechanism_label(calibrations: Sequence[NoiseCalibration]) -> str:
    """The mechanisms of a query's calibrations, in order, joined by ``+`` (the cost's ``mechanism``)."""
    return "+".join(dict.fromkeys(c.mechanism for c in calibrations))


def _parts(plan: Plan) -> list[str] | None:
    return [o.name for o in plan.outputs] if len(plan.outputs) > 1 else None


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


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
    return Preview(
        loss=privacy_public(calibrations, _parts(plan)),
        mechanism=mechanism_label(calibrations),
        scale=calibrations[0].scale if len(calibrations) == 1 else None,
        cells=plan.cells,
        expected_half_width=accuracy.half_width,
        confidence=query.confidence,
        registers=list(plan.registers),
        measure=plan.measure,
        rank_error=accuracy.rank_error,
        accuracy=accuracy,
        notes=notes,
    )


def make_release(
    query: Query,
    plan: Plan,
    calibrations: Sequence[NoiseCalibration],
    keys: Sequence[Sequence[Any]],
    noisy: Mapping[str, DPArray],
    *,
    small_cell_threshold: int,
) -> Release:
    """The release of a query from its DP outputs and public facts only.

    ``keys`` are the released group keys in order (for partition selection: the kept ones), and
    ``noisy`` the mechanisms' outputs by name: ``count``, ``sum`` (counts, sums, means) or ``index``
    (the selected quantile candidate per cell).
    """
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
            candidates = [_number(c) for c in quantile.candidate_values(value.resolution)]
            interval = value_interval(
                quantile, value.resolution, noisy["index"], noisy["lower_index"], noisy["upper_index"]
            )
            rows = quantile_rows(
                named,
                noisy["index"],
                candidates,
                first,
                confidence,
                quantile=quantile.level,
                interval=interval,
                grid_step=float(_scaled(quantile.step_units, value.resolution)),
            )
    return Release(
        release_id=new_release_id(),
        project=query.project,
        privacy=privacy_public(calibrations, _parts(plan)),
        confidence=confidence,
        columns=columns_for(names, plan.measure),
        rows=rows,
        measure=plan.measure,
        query=query.canonical(),
        cells=len(rows),
        accuracy=_accuracy(query, plan, calibrations),
        small_cell_threshold=small_cell_threshold,
    )
