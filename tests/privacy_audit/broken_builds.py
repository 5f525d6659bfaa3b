"""Deliberately broken builds: each one a monkeypatch of the engine that the audit must catch.

None of them touches product code on disk; each replaces one function for the duration of a test
(``pytest.MonkeyPatch``), so the rest of the pipeline (SQL, OpenDP, the engine's re-checks) is real.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from query_engine import compile as compile_module
from query_engine import engine as engine_module
from query_engine import plan as plan_module
from query_engine.mechanisms import DPArray, NoiseCalibration, Sensitivity, calibrate_threshold

Patcher = Callable[[pytest.MonkeyPatch], None]


def remove_bounding(patch: pytest.MonkeyPatch) -> None:
    """The compiled SQL applies no c/G bounding: every row of a person reaches the aggregate (a row
    count is then the plain count of rows, not the sum of the per-group weights the bounding makes)."""
    original_init = compile_module._Builder.__init__

    def unweighted_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.weighted = False

    patch.setattr(compile_module._Builder, "__init__", unweighted_init)
    patch.setattr(compile_module._Builder, "bounding", lambda self, source: [])


def _halved(s: Sensitivity) -> Sensitivity:
    return Sensitivity(l1=max(1, s.l1 // 2), l2=s.l2 / 2, linf=max(1, s.linf // 2), l0=s.l0)


def halve_sensitivity(patch: pytest.MonkeyPatch) -> None:
    """The planner declares half the real sensitivity, so noise is calibrated (and charged) for it."""
    original = plan_module._outputs

    def halved(*args: Any) -> tuple[plan_module.Output, ...]:
        return tuple(dataclasses.replace(o, sensitivity=_halved(o.sensitivity)) for o in original(*args))

    patch.setattr(plan_module, "_outputs", halved)


def charge_mean_sum_only(patch: pytest.MonkeyPatch) -> None:
    """A mean's loss is taken from its noisy sum only: the noisy count's half is not accounted."""
    patch.setattr(engine_module, "_combined", lambda calibrations: calibrations[0].loss)


def charge_mean_count_only(patch: pytest.MonkeyPatch) -> None:
    """A mean's loss is taken from its noisy count only: the noisy sum's half is not accounted."""
    patch.setattr(engine_module, "_combined", lambda calibrations: calibrations[-1].loss)


def uncentre_mean_sum(patch: pytest.MonkeyPatch) -> None:
    """A mean's SQL sums the raw values while its sensitivity is still that of the centred sum (half
    the width of the bounds): one row moves the sum by up to ``max(|lo|, |hi|)``, twice what is declared."""
    patch.setattr(compile_module._Builder, "centred", lambda self, units: units)


def lower_threshold(patch: pytest.MonkeyPatch) -> None:
    """Partition selection releases with the threshold of delta = 0.4 while charging the real delta."""
    original = engine_module.release_threshold

    def loose(
        calibration: NoiseCalibration, keys: Sequence[str], counts: np.ndarray
    ) -> tuple[list[str], DPArray]:
        assert calibration.loss.epsilon is not None
        lowered = calibrate_threshold(
            "laplace", calibration.sensitivity, epsilon=calibration.loss.epsilon, delta=0.4
        )
        return original(lowered, keys, counts)

    patch.setattr(engine_module, "release_threshold", loose)


BROKEN_BUILDS: dict[str, tuple[Patcher, str]] = {
    "bounding_removed": (remove_bounding, "count_rows"),
    "bounding_removed_sum": (remove_bounding, "sum"),
    "sensitivity_halved": (halve_sensitivity, "count_rows"),
    "sensitivity_halved_sum": (halve_sensitivity, "sum"),
    "sensitivity_halved_zcdp": (halve_sensitivity, "count_rows_zcdp"),
    "sensitivity_halved_quantile": (halve_sensitivity, "quantile"),
    "mean_charged_sum_only": (charge_mean_sum_only, "mean"),
    "mean_charged_count_only": (charge_mean_count_only, "mean"),
    "mean_sum_not_centred": (uncentre_mean_sum, "mean"),
    "threshold_lowered": (lower_threshold, "partition_selection_new_key"),
}
"""Each broken build and the case it is audited on (the audit must FAIL)."""
