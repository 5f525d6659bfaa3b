"""DP mechanisms, all from OpenDP: calibration, privacy loss, noise, noisy max, partition selection.

Every privacy loss in this module is read from OpenDP with ``measurement.map(d_in)``; no loss is
ever computed by a hand formula. Closed forms are used only to *choose* a scale, and the map is the
judge of what that scale costs.

Additive noise on an integer vector (counts, fixed-point sums)
    ``discrete_laplace`` (pure DP, ``dp.m.make_laplace`` on ``Vec<i64>`` under the L1 distance)
    and ``discrete_gaussian`` (zCDP, ``dp.m.make_gaussian`` under the L2 distance). OpenDP's map is
    ``epsilon = L1 / scale`` and ``rho = L2^2 / (2 scale^2)``. We read the loss at scale 1 from
    OpenDP (``m1 = map(d_in)`` at scale 1) and invert ``epsilon(s) = m1 / s`` or
    ``rho(s) = m1 / s^2``, then widen the scale by ``1 + 1e-12`` so that the rounding of OpenDP's
    own arithmetic cannot put ``map(d_in)`` above the target. The calibration records exactly
    ``map(d_in)``: that is what the ledger charges, and it is within 1e-9 (relative) below the target.

Re-check before release
    ``add_noise`` (and ``select_quantile``, ``release_threshold``) rebuild the measurement from the
    calibration, recompute the map and compare it with ``calibration.loss`` by equality; any
    difference (a tampered or stale calibration) raises ``PrivacyInvariantError`` and nothing is
    sampled. Measurements are cached by their parameters (not by ``d_in``: a measurement does not
    depend on it), so the hot path costs one map (~0.06 ms) and one invocation.

Composition of several measurements (mean = midpoint + noisy centred sum / noisy count; quantiles)
    Pure DP and zCDP compose by addition, so the loss of a composite is the sum of the OpenDP maps of
    its parts (``total_loss``), summed exactly with ``fractions.Fraction`` and rounded *up* to a
    float. ``split_loss`` rounds each part's target *down*, so the parts never add up to more than
    the whole.

Quantiles: noisy max over candidate scores, per cell
    For ``alpha = num/den`` and candidate ``c``, ``score(c) = |(den-num) #(x<c) - num #(x>c)|``
    (computed in SQL). Adding or removing one row changes each score by at most ``max(num, den-num)``,
    so ``d_in = max(num, den-num) * rows_per_person`` under the (non-monotonic) L-infinity distance.
    ``dp.m.make_noisy_max(..., negate=True)`` selects the candidate with the smallest noisy score.
    OpenDP 0.16 supports both ``max_divergence`` (exponential noise, i.e. permute-and-flip; map
    ``2 d_in / scale``) and ``zero_concentrated_divergence`` (Gumbel noise, i.e. the exponential
    mechanism; map ``(2 d_in / scale)^2 / 8``): quantiles are pure DP when stated with epsilon and zCDP
    when stated with rho. In a zCDP project an epsilon-stated quantile is charged ``rho = eps^2/2``;
    stating ``rho = eps^2/2`` directly buys twice the selection accuracy for the same charge.
    Each cell is its own OpenDP measurement and one person touches at most ``G`` cells, so the query's
    loss is the sum of ``G`` copies of the per-cell map (per-cell target = target / G).

Partition selection (group keys without a public key set; costs delta)
    ``dp.m.make_noise_threshold`` on a map ``key -> count`` under ``l01inf_distance`` (Laplace,
    ``approximate(max_divergence)``) or ``l02inf_distance`` (Gaussian,
    ``approximate(zero_concentrated_divergence)``); ``map((l0, l1, linf))`` returns
    ``(loss, delta)``. The scale comes from the loss target as above; the threshold is the smallest
    integer whose OpenDP delta is at most the requested delta (searched on the threshold, never by
    inverting a delta formula). Released keys are sorted, so their order depends on nothing but the
    released set.

Every array produced here is a ``DPArray``: an ``np.ndarray`` subclass that marks values as outputs of
an OpenDP measurement. Post-processing (``query_engine.postprocess``) accepts only ``DPArray``s.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import opendp.prelude as dp

from query_engine.errors import EngineInternalError, LossOutOfRange, PrivacyInvariantError, UnsupportedQuery

__all__ = [
    "DPArray",
    "MechanismName",
    "NoiseCalibration",
    "NoiseKind",
    "PrivacyLoss",
    "PrivacyMeasure",
    "Sensitivity",
    "add_noise",
    "calibrate",
    "calibrate_quantile",
    "calibrate_scale",
    "calibrate_threshold",
    "quantile_d_in",
    "quantile_fraction",
    "release_threshold",
    "select_quantile",
    "split_loss",
    "total_loss",
]

# Only "contrib": never "honest-but-curious" nor "floating-point"/"idealized-numerics".
dp.enable_features("contrib")

NoiseKind = Literal["laplace", "gaussian"]
MechanismName = Literal["discrete_laplace", "discrete_gaussian", "noisy_max", "noise_threshold"]
PrivacyMeasure = Literal["pure", "zcdp"]

# Widening of a closed-form scale so that OpenDP's map never lands above the target (the map rounds
# up, and the closed form overshoots by 1 ulp about half the time).
_WIDEN = 1.0 + 1e-12
_MAX_WIDEN_STEPS = 8
_MAX_THRESHOLD = 2**62
_MAX_QUANTILE_DENOMINATOR = 1_000_000

_INT_VECTOR = dp.vector_domain(dp.atom_domain(T=dp.i64))
_L1 = dp.l1_distance(T=dp.i64)
_L2 = dp.l2_distance(T=float)
_SCORE_VECTOR = dp.vector_domain(dp.atom_domain(T=dp.u64))
_LINF_SCORES = dp.linf_distance(T=dp.u64)
_COUNT_MAP = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=dp.i64))
_L01INF = dp.l01inf_distance(dp.absolute_distance(T=dp.i64))
_L02INF = dp.l02inf_distance(dp.absolute_distance(T=dp.i64))


class DPArray(np.ndarray):
    """An array whose every element is the output of an OpenDP measurement (safe to post-process)."""


def _as_dp_array(values: Any, dtype: type[np.generic] = np.int64) -> DPArray:
    return np.asarray(values, dtype=dtype).view(DPArray)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise EngineInternalError(f"Sensitivity {name} must be an integer, not a bool.", stage="mechanism")
    try:
        return operator.index(value)
    except TypeError:
        raise EngineInternalError(
            f"Sensitivity {name} must be an integer; got {value!r}.", stage="mechanism"
        ) from None


@dataclass(frozen=True)
class Sensitivity:
    """Declared sensitivity of an integer vector under adding/removing one person.

    ``l1``: sum over cells of |change| (integer units); ``l2``: Euclidean norm of the change;
    ``linf``: largest change in one cell; ``l0``: number of cells one person can touch (G).
    All four come from the catalog and the query (bounds, max_groups, max_rows), never from data.
    """

    l1: int
    l2: float
    linf: int
    l0: int

    def __post_init__(self) -> None:
        for name in ("l1", "linf", "l0"):
            value = _integer(name, getattr(self, name))
            if value < 1:
                raise EngineInternalError(
                    f"Sensitivity {name} must be at least 1; got {value}.", stage="mechanism"
                )
            object.__setattr__(self, name, value)
        l2 = float(self.l2)
        if not math.isfinite(l2) or l2 <= 0:
            raise EngineInternalError(
                f"Sensitivity l2 must be positive and finite; got {self.l2!r}.", stage="mechanism"
            )
        object.__setattr__(self, "l2", l2)

    @classmethod
    def for_contribution(cls, max_groups: int, max_rows: int, max_abs: int = 1) -> Sensitivity:
        """Sensitivity of a vector where a person adds up to ``max_rows`` values of magnitude at most
        ``max_abs`` (fixed-point units) to each of at most ``max_groups`` cells.

        The L2 norm ``max_rows * max_abs * sqrt(max_groups)`` is rounded up to the next float, so the
        declared value is never below the real one.
        """
        g, c, m = (
            _integer("max_groups", max_groups),
            _integer("max_rows", max_rows),
            _integer("max_abs", max_abs),
        )
        linf = c * m
        return cls(l1=g * linf, l2=_sqrt_up(g * linf * linf), linf=linf, l0=g)


@dataclass(frozen=True)
class PrivacyLoss:
    """Privacy loss of one release: epsilon (pure DP) or rho (zCDP), plus delta."""

    epsilon: float | None = None
    rho: float | None = None
    delta: float = 0.0

    def __post_init__(self) -> None:
        if (self.epsilon is None) == (self.rho is None):
            raise EngineInternalError("A privacy loss has exactly one of epsilon and rho.", stage="mechanism")
        for name in ("epsilon", "rho", "delta"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise EngineInternalError(
                    f"A privacy loss needs a finite, non-negative {name}; got {value!r}.", stage="mechanism"
                )

    @property
    def measure(self) -> PrivacyMeasure:
        """``"pure"`` for an epsilon loss, ``"zcdp"`` for a rho loss."""
        return "pure" if self.epsilon is not None else "zcdp"

    @property
    def value(self) -> float:
        """The epsilon or the rho, whichever this loss is stated in."""
        value = self.epsilon if self.epsilon is not None else self.rho
        assert value is not None
        return value


@dataclass(frozen=True)
class NoiseCalibration:
    """A calibrated OpenDP mechanism: its scale, the declared sensitivity and the loss to charge.

    ``loss`` is the loss of the whole release (for ``noisy_max``: of all cells together).
    ``threshold`` is set for ``noise_threshold``; ``candidates`` and ``cells_per_person`` for
    ``noisy_max`` (whose ``sensitivity.linf`` is the per-cell score sensitivity ``d_in``).
    """

    mechanism: MechanismName
    scale: float
    sensitivity: Sensitivity
    loss: PrivacyLoss
    threshold: int | None = None
    candidates: int | None = None

    @property
    def measure(self) -> PrivacyMeasure:
        """``"pure"`` (epsilon) or ``"zcdp"`` (rho)."""
        return self.loss.measure

    @property
    def noise(self) -> NoiseKind | None:
        """The integer noise distribution added to values, or None for a selection (noisy max)."""
        if self.mechanism == "noisy_max":
            return None
        return "laplace" if self.measure == "pure" else "gaussian"


# --- exact float rounding --------------------------------------------------------------------------


def _float_up(value: Fraction) -> float:
    """The smallest float that is >= ``value``."""
    result = float(value)
    if Fraction(result) < value:
        result = math.nextafter(result, math.inf)
    return result


def _float_down(value: Fraction) -> float:
    """The largest float that is <= ``value``."""
    result = float(value)
    if Fraction(result) > value:
        result = math.nextafter(result, -math.inf)
    return result


def _sqrt_up(n: int) -> float:
    """The smallest float that is >= sqrt(n) exactly."""
    root = math.sqrt(n)
    while Fraction(root) ** 2 < n:
        root = math.nextafter(root, math.inf)
    while root > 0 and Fraction(math.nextafter(root, 0.0)) ** 2 >= n:
        root = math.nextafter(root, 0.0)
    return root


def _check_target(name: str, value: float | None) -> float:
    if value is None or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise LossOutOfRange(
            f"The privacy loss {name} must be a positive, finite number, got {value!r}; "
            "give a number above 0."
        )
    return float(value)


def _check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not math.isfinite(scale) or scale <= 0:
        raise EngineInternalError(
            f"A noise scale must be positive and finite; got {scale!r}.", stage="mechanism"
        )
    return float(scale)


# --- measurements (cached by their parameters) -----------------------------------------------------


@lru_cache(maxsize=1024)
def _additive(kind: NoiseKind, scale: float) -> dp.Measurement:
    if kind == "laplace":
        return dp.m.make_laplace(_INT_VECTOR, _L1, scale=scale)
    return dp.m.make_gaussian(_INT_VECTOR, _L2, scale=scale)


@lru_cache(maxsize=256)
def _noisy_max(measure: PrivacyMeasure, scale: float) -> dp.Measurement:
    output = dp.max_divergence() if measure == "pure" else dp.zero_concentrated_divergence()
    return dp.m.make_noisy_max(_SCORE_VECTOR, _LINF_SCORES, output, scale=scale, negate=True)


@lru_cache(maxsize=256)
def _noise_threshold(kind: NoiseKind, scale: float, threshold: int) -> dp.Measurement:
    if kind == "laplace":
        metric, output = _L01INF, dp.approximate(dp.max_divergence())
    else:
        metric, output = _L02INF, dp.approximate(dp.zero_concentrated_divergence())
    return dp.m.make_noise_threshold(_COUNT_MAP, metric, output, scale=scale, threshold=threshold)


def _additive_d_in(kind: NoiseKind, sensitivity: Sensitivity) -> int | float:
    return sensitivity.l1 if kind == "laplace" else sensitivity.l2


def _threshold_d_in(sensitivity: Sensitivity) -> tuple[int, int, int]:
    return (sensitivity.l0, sensitivity.l1, sensitivity.linf)


def _loss(measure: PrivacyMeasure, value: float, delta: float = 0.0) -> PrivacyLoss:
    return (
        PrivacyLoss(epsilon=value, delta=delta) if measure == "pure" else PrivacyLoss(rho=value, delta=delta)
    )


def _measure_of(kind: NoiseKind) -> PrivacyMeasure:
    if kind == "laplace":
        return "pure"
    if kind == "gaussian":
        return "zcdp"
    raise EngineInternalError(f"Unknown noise kind {kind!r}.", stage="mechanism")


def _scale_for(measure: PrivacyMeasure, unit_loss: float, target: float) -> float:
    """Scale at which a loss of ``unit_loss`` at scale 1 becomes ``target`` (before widening)."""
    if measure == "pure":
        return unit_loss / target
    return math.sqrt(unit_loss / target)


def _target(measure: PrivacyMeasure, epsilon: float | None, rho: float | None) -> float:
    if measure == "pure":
        if rho is not None:
            raise EngineInternalError(
                "A pure-DP mechanism is calibrated with epsilon, not rho.", stage="mechanism"
            )
        return _check_target("epsilon", epsilon)
    if epsilon is not None:
        raise EngineInternalError("A zCDP mechanism is calibrated with rho, not epsilon.", stage="mechanism")
    return _check_target("rho", rho)


# --- additive noise -------------------------------------------------------------------------------


def calibrate(
    kind: NoiseKind, sensitivity: Sensitivity, *, epsilon: float | None = None, rho: float | None = None
) -> NoiseCalibration:
    """Calibrate discrete Laplace (``epsilon``) or discrete Gaussian (``rho``) noise to a loss target.

    The returned loss is OpenDP's ``map(d_in)``: at most the target and within 1e-9 of it.
    """
    measure = _measure_of(kind)
    target = _target(measure, epsilon, rho)
    d_in = _additive_d_in(kind, sensitivity)
    scale = _scale_for(measure, _additive(kind, 1.0).map(d_in), target) * _WIDEN
    for _ in range(_MAX_WIDEN_STEPS):
        loss = _additive(kind, scale).map(d_in)
        if loss <= target:
            return _additive_calibration(kind, measure, sensitivity, scale, loss)
        scale *= _WIDEN
    raise PrivacyInvariantError(
        f"Could not calibrate {kind} noise below the target loss {target}: this is a bug.", stage="mechanism"
    )


def calibrate_scale(kind: NoiseKind, sensitivity: Sensitivity, scale: float) -> NoiseCalibration:
    """Calibration of discrete Laplace/Gaussian noise at a given scale; the loss is read by map."""
    measure = _measure_of(kind)
    scale = _check_scale(scale)
    loss = _additive(kind, scale).map(_additive_d_in(kind, sensitivity))
    return _additive_calibration(kind, measure, sensitivity, scale, loss)


def _additive_calibration(
    kind: NoiseKind, measure: PrivacyMeasure, sensitivity: Sensitivity, scale: float, loss: float
) -> NoiseCalibration:
    """The checked calibration of discrete Laplace/Gaussian noise at ``scale`` with OpenDP's ``loss``."""
    return _checked(
        NoiseCalibration(
            mechanism="discrete_laplace" if kind == "laplace" else "discrete_gaussian",
            scale=scale,
            sensitivity=sensitivity,
            loss=_loss(measure, loss),
        )
    )


def _checked(calibration: NoiseCalibration) -> NoiseCalibration:
    _measurement_for(calibration)
    return calibration


def _mismatch(calibration: NoiseCalibration, computed: object) -> PrivacyInvariantError:
    return PrivacyInvariantError(
        f"The privacy loss computed by OpenDP ({computed}) differs from the loss to be charged "
        f"({calibration.loss}) for a {calibration.mechanism} calibration at scale {calibration.scale}: "
        "this is a bug, and nothing was released.",
        stage="mechanism",
    )


@lru_cache(maxsize=1024)
def _measurement_for(calibration: NoiseCalibration) -> dp.Measurement:
    """Rebuild the calibration's measurement and check that OpenDP's map equals the charged loss.

    Cached by the whole (frozen) calibration, loss included: a calibration that differs in any field,
    e.g. a tampered loss, misses the cache and is checked afresh; failures are never cached.
    """
    scale = _check_scale(calibration.scale)
    sensitivity, loss = calibration.sensitivity, calibration.loss
    if calibration.mechanism in ("discrete_laplace", "discrete_gaussian"):
        kind: NoiseKind = "laplace" if calibration.mechanism == "discrete_laplace" else "gaussian"
        measurement = _additive(kind, scale)
        value = measurement.map(_additive_d_in(kind, sensitivity))
        if loss.measure != _measure_of(kind) or loss.value != value or loss.delta != 0.0:
            raise _mismatch(calibration, value)
        return measurement
    if calibration.mechanism == "noisy_max":
        measurement = _noisy_max(loss.measure, scale)
        per_cell = measurement.map(sensitivity.linf)
        value = _compose([per_cell] * sensitivity.l0)
        if calibration.candidates is None or calibration.candidates < 1:
            raise EngineInternalError(
                "A noisy-max calibration needs its number of candidates.", stage="mechanism"
            )
        if loss.value != value or loss.delta != 0.0:
            raise _mismatch(calibration, value)
        return measurement
    if calibration.mechanism == "noise_threshold":
        if calibration.threshold is None:
            raise EngineInternalError("A noise-threshold calibration needs its threshold.", stage="mechanism")
        kind = "laplace" if loss.measure == "pure" else "gaussian"
        measurement = _noise_threshold(kind, scale, calibration.threshold)
        value, delta = measurement.map(_threshold_d_in(sensitivity))
        if loss.value != value or loss.delta != delta:
            raise _mismatch(calibration, (value, delta))
        return measurement
    raise EngineInternalError(f"Unknown mechanism {calibration.mechanism!r}.", stage="mechanism")


def _int64(values: np.ndarray) -> np.ndarray:
    try:
        return values.astype(np.int64, casting="safe", copy=False)
    except TypeError:
        raise EngineInternalError(
            f"Exact aggregates must fit in int64; got {values.dtype}.", stage="mechanism"
        ) from None


def add_noise(calibration: NoiseCalibration, exact: np.ndarray) -> DPArray:
    """Add the calibrated integer noise to an int64 vector of exact aggregates.

    The measurement is rebuilt from the calibration and its OpenDP loss re-checked against
    ``calibration.loss`` before anything is sampled.
    """
    if calibration.mechanism not in ("discrete_laplace", "discrete_gaussian"):
        raise EngineInternalError(
            f"Internal error: add_noise takes a Laplace or Gaussian calibration, not {calibration.mechanism}."
            " This is a bug in sundstat; nothing was released.",
            stage="mechanism",
        )
    values = np.asarray(exact)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise EngineInternalError(
            "Internal error: add_noise takes a one-dimensional integer vector, not "
            f"{values.dtype} with shape {values.shape}. This is a bug in sundstat; nothing was released.",
            stage="mechanism",
        )
    values = _int64(values)
    measurement = _measurement_for(calibration)
    return _as_dp_array(measurement(values))


# --- composition ----------------------------------------------------------------------------------


def _compose(values: Iterable[float]) -> float:
    """Exact sum of losses, rounded up to a float (never under-charges)."""
    return _float_up(sum((Fraction(v) for v in values), Fraction(0)))


def split_loss(
    loss: PrivacyLoss, weights: Sequence[Fraction | int] = (Fraction(1, 2), Fraction(1, 2))
) -> tuple[PrivacyLoss, ...]:
    """Split a loss target into parts (default: halves) whose sum never exceeds the whole.

    Weights are exact rationals that add up to 1. Delta is split with the same weights.
    """
    fractions = [Fraction(w) for w in weights]
    if not fractions or any(w <= 0 for w in fractions) or sum(fractions) != 1:
        raise EngineInternalError(f"Loss split weights must be positive and add up to 1; got {weights!r}.")
    whole, delta = Fraction(loss.value), Fraction(loss.delta)
    return tuple(_loss(loss.measure, _float_down(whole * w), _float_down(delta * w)) for w in fractions)


def total_loss(parts: Iterable[NoiseCalibration | PrivacyLoss]) -> PrivacyLoss:
    """The loss of a composition: epsilons (or rhos) and deltas added exactly, rounded up."""
    losses = [p.loss if isinstance(p, NoiseCalibration) else p for p in parts]
    if not losses:
        raise EngineInternalError(
            "Internal error: total_loss needs at least one part. This is a bug in sundstat; "
            "nothing was released."
        )
    if len(losses) == 1 and type(losses[0].value) is float and type(losses[0].delta) is float:
        return losses[0]  # the sum of one float is that float, exactly: nothing to round
    measures = {loss.measure for loss in losses}
    if len(measures) != 1:
        raise EngineInternalError(
            "Cannot add epsilon and rho losses: convert pure-DP parts to rho = epsilon^2/2 in the ledger."
        )
    return _loss(losses[0].measure, _compose(x.value for x in losses), _compose(x.delta for x in losses))


# --- quantiles ------------------------------------------------------------------------------------


def quantile_fraction(q: float) -> tuple[int, int]:
    """The quantile as an exact reduced fraction ``(num, den)`` of its decimal form (0.95 -> 19/20)."""
    if isinstance(q, bool) or not isinstance(q, int | float) or not math.isfinite(q) or not 0 < q < 1:
        raise UnsupportedQuery(
            f"A quantile must be a number strictly between 0 and 1, got {q!r}; give e.g. 0.5 for the median."
        )
    fraction = Fraction(repr(float(q)))
    if fraction.denominator > _MAX_QUANTILE_DENOMINATOR:
        raise UnsupportedQuery(
            f"A quantile may have at most 6 decimals; got {q!r}. Round it, e.g. to {q:.3f}."
        )
    return fraction.numerator, fraction.denominator


def quantile_d_in(num: int, den: int, rows_per_person: int) -> int:
    """L-infinity sensitivity of the quantile scores: ``max(num, den - num) * rows_per_person``."""
    if not 0 < num < den or rows_per_person < 1:
        raise EngineInternalError(
            f"Invalid quantile fraction {num}/{den} or rows per person {rows_per_person}."
        )
    return max(num, den - num) * rows_per_person


def calibrate_quantile(
    sensitivity_d_in: int,
    epsilon: float | None,
    candidates: int,
    groups_per_person: int,
    *,
    rho: float | None = None,
) -> NoiseCalibration:
    """Calibrate a per-cell noisy-max selection so that ``groups_per_person`` cells cost the target.

    ``epsilon`` gives pure DP (exponential noise), ``rho`` zCDP (Gumbel noise); give exactly one.
    The loss is ``groups_per_person`` times OpenDP's per-cell map, added exactly.
    """
    measure: PrivacyMeasure = "pure" if epsilon is not None else "zcdp"
    target = _target(measure, epsilon, rho)
    d_in = _integer("d_in", sensitivity_d_in)
    g = _integer("groups_per_person", groups_per_person)
    m = _integer("candidates", candidates)
    if d_in < 1 or g < 1 or m < 1:
        raise EngineInternalError("Quantile d_in, groups per person and candidates must be at least 1.")
    sensitivity = Sensitivity(l1=g * d_in, l2=_sqrt_up(g * d_in * d_in), linf=d_in, l0=g)
    per_cell_target = _float_down(Fraction(target) / g)
    scale = _scale_for(measure, _noisy_max(measure, 1.0).map(d_in), per_cell_target) * _WIDEN
    for _ in range(_MAX_WIDEN_STEPS):
        loss = _compose([_noisy_max(measure, scale).map(d_in)] * g)
        if loss <= target:
            return _checked(
                NoiseCalibration(
                    mechanism="noisy_max",
                    scale=scale,
                    sensitivity=sensitivity,
                    loss=_loss(measure, loss),
                    candidates=m,
                )
            )
        scale *= _WIDEN
    raise PrivacyInvariantError(
        f"Could not calibrate noisy max below the target loss {target}: this is a bug."
    )


def select_quantile(calibration: NoiseCalibration, scores: np.ndarray) -> DPArray:
    """Select, per cell (row of ``scores``), the index of the candidate with the smallest noisy score.

    ``scores`` is a ``(cells, candidates)`` array of non-negative integer scores; each row is one
    invocation of the OpenDP noisy-max measurement.
    """
    if calibration.mechanism != "noisy_max":
        raise EngineInternalError(
            f"Internal error: select_quantile takes a noisy-max calibration, not {calibration.mechanism}."
            " This is a bug in sundstat; nothing was released."
        )
    matrix = np.asarray(scores)
    if (
        matrix.ndim != 2
        or matrix.shape[1] != calibration.candidates
        or not np.issubdtype(matrix.dtype, np.integer)
        or (matrix.dtype.kind == "i" and matrix.size and matrix.min() < 0)
    ):
        raise EngineInternalError(
            f"Quantile scores must be non-negative integers of shape (cells, {calibration.candidates}); "
            f"got {matrix.dtype} with shape {matrix.shape}."
        )
    matrix = matrix.astype(np.uint64, copy=False)
    measurement = _measurement_for(calibration)
    return _as_dp_array([measurement(row) for row in matrix])


# --- partition selection --------------------------------------------------------------------------


def calibrate_threshold(
    kind: NoiseKind,
    sensitivity: Sensitivity,
    *,
    epsilon: float | None = None,
    rho: float | None = None,
    delta: float,
) -> NoiseCalibration:
    """Calibrate noisy counts with a release threshold for keys outside a public key set.

    The scale meets the epsilon/rho target; the threshold is the smallest integer whose OpenDP delta
    is at most ``delta``. The calibration's loss is OpenDP's ``(loss, delta)`` at that threshold.
    """
    measure = _measure_of(kind)
    target = _target(measure, epsilon, rho)
    if isinstance(delta, bool) or not math.isfinite(delta) or not 0 < delta < 1:
        raise LossOutOfRange(
            f"Partition selection needs a delta strictly between 0 and 1, got {delta!r}; "
            "give a delta such as 1e-7."
        )
    return _calibrate_threshold(kind, sensitivity, target, float(delta))


@lru_cache(maxsize=256)
def _calibrate_threshold(
    kind: NoiseKind, sensitivity: Sensitivity, target: float, delta: float
) -> NoiseCalibration:
    measure = _measure_of(kind)
    d_in = _threshold_d_in(sensitivity)
    low = sensitivity.linf  # OpenDP refuses a threshold below the L-infinity sensitivity
    scale = _scale_for(measure, _noise_threshold(kind, 1.0, low).map(d_in)[0], target) * _WIDEN
    for _ in range(_MAX_WIDEN_STEPS):
        if _noise_threshold(kind, scale, low).map(d_in)[0] <= target:
            break
        scale *= _WIDEN
    else:
        raise PrivacyInvariantError(
            f"Could not calibrate the threshold's noise below {target}: this is a bug."
        )

    def delta_at(threshold: int) -> float:
        return _noise_threshold(kind, scale, threshold).map(d_in)[1]

    # Smallest threshold with delta_at(threshold) <= delta; delta_at is non-increasing.
    if delta_at(low) <= delta:
        threshold = low
    else:
        step = 1
        while delta_at(low + step) > delta:
            step *= 2
            if low + step > _MAX_THRESHOLD:
                raise LossOutOfRange(f"No release threshold reaches delta {delta}; allow a larger delta.")
        bad, good = low + step // 2, low + step
        while good - bad > 1:
            middle = (bad + good) // 2
            if delta_at(middle) <= delta:
                good = middle
            else:
                bad = middle
        threshold = good
    value, actual_delta = _noise_threshold(kind, scale, threshold).map(d_in)
    return _checked(
        NoiseCalibration(
            mechanism="noise_threshold",
            scale=scale,
            sensitivity=sensitivity,
            loss=_loss(measure, value, actual_delta),
            threshold=threshold,
        )
    )


def release_threshold(
    calibration: NoiseCalibration, keys: Sequence[str], exact_counts: np.ndarray
) -> tuple[list[str], DPArray]:
    """Noisy counts for the keys whose noisy count reaches the threshold; other keys are dropped.

    Kept keys are returned sorted, so their order is a function of the released set only.
    """
    if calibration.mechanism != "noise_threshold":
        raise EngineInternalError(
            f"Internal error: release_threshold takes a threshold calibration, not {calibration.mechanism}."
            " This is a bug in sundstat; nothing was released."
        )
    counts = np.asarray(exact_counts)
    if counts.ndim != 1 or len(counts) != len(keys) or not np.issubdtype(counts.dtype, np.integer):
        raise EngineInternalError(
            "Internal error: release_threshold needs one integer count per key. This is a bug in sundstat; "
            "nothing was released."
        )
    if not all(isinstance(key, str) for key in keys) or len(set(keys)) != len(keys):
        raise EngineInternalError(
            "Internal error: release_threshold needs distinct string keys. This is a bug in sundstat; "
            "nothing was released."
        )
    counts = _int64(counts)
    measurement = _measurement_for(calibration)
    released: dict[str, int] = measurement(dict(zip(keys, counts.tolist(), strict=True)))
    kept = sorted(released)
    return kept, _as_dp_array([released[key] for key in kept])
