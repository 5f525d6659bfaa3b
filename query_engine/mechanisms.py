"""DP mechanisms, all from OpenDP: calibration, privacy loss, noise, noisy max, partition selection.

INTERFACE SKETCH (to be implemented): the planner computes a ``Sensitivity`` from declared bounds
only; ``calibrate`` builds the OpenDP measurement and reads the loss with ``measurement.map(d_in)``;
``add_noise`` rebuilds the measurement, re-checks the loss and samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

NoiseKind = Literal["laplace", "gaussian"]
MechanismName = Literal["discrete_laplace", "discrete_gaussian", "noisy_max", "noise_threshold"]


@dataclass(frozen=True)
class Sensitivity:
    """Declared sensitivity of an integer vector under adding/removing one person.

    ``l1``: sum over cells of |change| (integer units); ``l2``: Euclidean norm of the change;
    ``linf``: largest change in one cell; ``l0``: number of cells one person can touch (G).
    """

    l1: int
    l2: float
    linf: int
    l0: int


@dataclass(frozen=True)
class PrivacyLoss:
    """Privacy loss of one release: epsilon (pure DP) or rho (zCDP), plus delta."""

    epsilon: float | None = None
    rho: float | None = None
    delta: float = 0.0


@dataclass(frozen=True)
class NoiseCalibration:
    """A calibrated additive-noise mechanism for one integer vector."""

    mechanism: MechanismName
    scale: float
    sensitivity: Sensitivity
    loss: PrivacyLoss


def calibrate(
    kind: NoiseKind, sensitivity: Sensitivity, *, epsilon: float | None = None, rho: float | None = None
) -> NoiseCalibration:
    raise NotImplementedError


def add_noise(calibration: NoiseCalibration, exact: np.ndarray) -> np.ndarray:
    raise NotImplementedError
