"""A Poisson model's rate ratios as a release computes them, repeated on fresh noise: the exact table of
the model plus OpenDP noise at the release's own calibrations, fitted as the release fits it. Shared by
the model coverage test and the national-scale models accuracy benchmark."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from query_engine import estimators
from query_engine.estimators import NoiseModel, RegressionResult
from query_engine.mechanisms import add_noise


def exact_rate_ratios(labels: Mapping[str, Sequence[Any]], exact: Mapping[str, np.ndarray]) -> np.ndarray:
    """The estimate of the same fit on the exact table (no noise): what the intervals should cover."""
    none = NoiseModel("laplace", 0.0)
    return estimators.poisson_regression(
        labels, exact["events"], exact["person_time"], events_noise=none, time_noise=none, draws=100
    ).estimate


def noisy_fits(
    labels: Mapping[str, Sequence[Any]],
    exact: Mapping[str, np.ndarray],
    calibrations: Sequence[Any],
    repetitions: int,
) -> Iterator[RegressionResult]:
    """``repetitions`` fits, each on the exact events and person-time plus fresh noise of ``calibrations``
    (the prepared model's, events then person-time), with the noise-aware intervals of a release."""
    events_cal, time_cal = calibrations
    events_noise = NoiseModel("laplace", events_cal.scale)
    time_noise = NoiseModel("laplace", time_cal.scale)
    for _ in range(repetitions):
        yield estimators.poisson_regression(
            labels,
            np.asarray(add_noise(events_cal, exact["events"])),
            np.asarray(add_noise(time_cal, exact["person_time"])),
            events_noise=events_noise,
            time_noise=time_noise,
            draws=400,
        )
