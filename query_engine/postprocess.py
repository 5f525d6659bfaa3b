"""Post-processing of noisy values into release rows: rounding, intervals, small-cell suppression.

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

Interval endpoints are rounded outward (down/up), so rounding never reduces coverage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from query_engine.accuracy import alpha_for, half_width, mean_interval, quantile_rank_error
from query_engine.errors import EngineInternalError, PrivacyInvariantError
from query_engine.mechanisms import DPArray, NoiseCalibration, quantile_fraction

__all__ = [
    "DEFAULT_SMALL_CELL_THRESHOLD",
    "ceil_decimals",
    "count_rows",
    "decimals_of",
    "mean_rows",
    "number",
    "quantile_rows",
    "scaled",
    "sum_rows",
    "threshold_rows",
]

Key = Mapping[str, Any]
Row = dict[str, Any]

DEFAULT_SMALL_CELL_THRESHOLD = 5
_MEAN_EXTRA_DECIMALS = 2


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


def decimals_of(resolution: float) -> int:
    """The number of decimals of a resolution (0.01 -> 2)."""
    exponent = _decimal(resolution).normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def scaled(units: int, resolution: float) -> int | float:
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


def ceil_decimals(value: float, decimals: int) -> float:
    """``value`` rounded up to ``decimals`` decimals."""
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
    step = 10.0 ** (decimals_of(resolution) + _MEAN_EXTRA_DECIMALS)
    centre = float(scaled(centre_units, resolution))
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
    rank_error = ceil_decimals(quantile_rank_error(calibration, alpha_for(confidence), den), 2)
    return [
        {
            **key,
            "value": candidates[index],
            "ci_low": number(low),
            "ci_high": number(high),
            "suppressed": False,
            "rank_error": rank_error,
            "grid_step": number(grid_step),
        }
        for key, index, low, high in zip(keys, indices.tolist(), lows, highs, strict=True)
    ]


def number(x: float) -> int | float:
    """An int when the float is whole, else the float."""
    return int(x) if float(x).is_integer() else x
