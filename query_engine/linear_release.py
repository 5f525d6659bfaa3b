"""The release of a linear regression: noisy moments -> X'X, X'y, y'y, n -> coefficients (post-processing).

Moments are released in integer units; here they become value units (times the resolutions of the
two terms), the structural entries are filled in (an indicator squared is the indicator; two
indicators of one covariate multiply to 0, with noise scale 0), and ``estimators.linear_regression``
fits the coefficients with noise-aware intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from query_engine import estimators
from query_engine.estimators import NoisyMoments
from query_engine.linear_plan import LinearPlan
from query_engine.mechanisms import DPArray, NoiseCalibration
from query_engine.release import noise_public, release_of
from query_engine.release_models import AccuracyPublic, Release, new_release_id
from query_engine.spec import Query

__all__ = ["LINEAR_COLUMNS", "linear_preview_rows", "make_linear_release"]

LINEAR_COLUMNS = ["term", "estimate", "ci_low", "ci_high", "naive_ci_low", "naive_ci_high"]
_DRAWS = 500


def _num(x: Any) -> float | None:
    value = float(x)
    return value if math.isfinite(value) else None


def _resolutions(plan: LinearPlan) -> list[float]:
    """The value of one unit of each slot (terms of X, then y)."""
    return [
        1.0,
        *(t.value.resolution for t in plan.numeric),
        *(1.0 for _ in plan.indicators),
        plan.outcome.value.resolution,
    ]


def _moments(plan: LinearPlan, values: np.ndarray, scales: np.ndarray, kind: str) -> NoisyMoments:
    p = len(plan.terms)
    unit = _resolutions(plan)
    full = np.zeros((p + 1, p + 1))
    scale = np.zeros((p + 1, p + 1))
    for a in range(p + 1):
        for b in range(a, p + 1):
            source = plan.source(a, b)
            if source is not None:
                factor = unit[a] * unit[b]
                full[a, b] = full[b, a] = values[source] * factor
                scale[a, b] = scale[b, a] = scales[source] * factor
    assert kind in ("laplace", "gaussian")
    return NoisyMoments(
        terms=plan.terms,
        xtx=full[:p, :p],
        xty=full[:p, p],
        yty=float(full[p, p]),
        count=float(full[0, 0]),
        kind=kind,  # type: ignore[arg-type]
        xtx_scale=scale[:p, :p],
        xty_scale=scale[:p, p],
        yty_scale=float(scale[p, p]),
        count_scale=float(scale[0, 0]),
    )


def make_linear_release(
    query: Query, plan: LinearPlan, calibrations: Sequence[NoiseCalibration], noisy: Sequence[DPArray]
) -> Release:
    """Coefficients with noise-aware and naive intervals, and the noisy moments they came from."""
    release_id = new_release_id()
    rng = np.random.default_rng(int(release_id[2:], 16))
    values = np.array([int(np.asarray(v)[0]) for v in noisy], dtype=float)
    scales = np.array([c.scale for c in calibrations])
    kind = calibrations[0].noise
    assert kind is not None
    moments = _moments(plan, values, scales, kind)
    result = estimators.linear_regression(moments, confidence=query.confidence, draws=_DRAWS, rng=rng)
    rows = [
        {"term": term, **{f: _num(getattr(result, f)[i]) for f in LINEAR_COLUMNS[1:]}}
        for i, term in enumerate(result.terms)
    ]
    names = [part.name for part in plan.parts]
    model = {
        "family": "gaussian",
        "estimate": "coefficient",
        "outcome": plan.outcome.name,
        "reference": dict(plan.reference),
        "confidence": query.confidence,
        "draws": _DRAWS,
        "method": "least squares on the noisy moments (X'X made positive definite); ci: the naive covariance "
        "plus the covariance of refits with fresh noise on X'X and X'y; naive_ci: ordinary least squares",
        "terms": rows,
        "moments": {
            "terms": list(moments.terms),
            "kind": moments.kind,
            "xtx": moments.xtx.tolist(),
            "xty": moments.xty.tolist(),
            "yty": moments.yty,
            "count": moments.count,
            "xtx_scale": moments.xtx_scale.tolist(),
            "xty_scale": moments.xty_scale.tolist(),
            "yty_scale": moments.yty_scale,
            "count_scale": moments.count_scale,
        },
    }
    return release_of(
        query,
        calibrations,
        names,
        release_id=release_id,
        columns=LINEAR_COLUMNS,
        rows=rows,
        measure="linear_regression",
        cells=len(plan.parts),
        accuracy=AccuracyPublic(
            confidence=query.confidence,
            method="linear_regression: coefficients from noisy sufficient statistics; noise-aware Wald intervals",
        ),
        small_cell_threshold=None,
        noise=noise_public(names, calibrations),
        model=model,
    )


def linear_preview_rows(
    plan: LinearPlan, calibrations: Sequence[NoiseCalibration], confidence: float
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per released moment: its sensitivity and the noise's half-width, in value units."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    unit = _resolutions(plan)
    rows = []
    for part, calibration in zip(plan.parts, calibrations, strict=True):
        variance = estimators.NoiseModel(calibration.noise or "laplace", calibration.scale).variance
        factor = unit[part.a] * unit[part.b]
        rows.append(
            {
                "moment": part.name,
                "sensitivity": part.sensitivity.l1 * factor,
                "noise_half_width": z * math.sqrt(variance) * factor,
            }
        )
    notes = [
        f"{len(plan.parts)} moments, each person one row (clamped); the loss is split evenly between them, so each "
        "moment's noise is proportional to its declared sensitivity."
    ]
    return rows, notes
