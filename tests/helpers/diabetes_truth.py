"""The generator's stated type 2 diabetes incidence, checked against observed events: the stated rates
must fit and two wrong ones must not (so the check can fail). Shared by the generator's truth tests and
the engine's population-rate tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from datasets.synthetic.truths import TRUTHS, DiabetesIncidence

Z = 4.0  # tolerance in standard errors

TRUTH_CASES = [
    pytest.param(TRUTHS.diabetes, True, id="stated"),
    pytest.param(
        DiabetesIncidence(
            18, (0.0, *TRUTHS.diabetes.female[2:], 9.0), (0.0, *TRUTHS.diabetes.male[2:], 11.0)
        ),
        False,
        id="wrong_bands_shifted_by_one",
    ),
    pytest.param(
        dataclasses.replace(TRUTHS.diabetes, male=TRUTHS.diabetes.female), False, id="wrong_men_like_women"
    ),
]
"""``(truth, holds)``: the stated incidence, and two wrong ones the data must reject."""


def assert_incidence(
    truth: DiabetesIncidence,
    holds: bool,
    cells: dict[str, np.ndarray],
    min_cells: int,
) -> None:
    """Events per (sex, 10-year age band) cell (``male``, ``band``, ``events``, ``years``) are within
    ``Z`` standard errors of ``truth`` in every cell expecting over 20 events exactly when ``holds``."""
    band = cells["band"].astype(np.int64)
    expected = truth.per_year(band, cells["male"].astype(bool)) * cells["years"]
    enough = expected > 20
    gaps = (cells["events"] - expected)[enough] / np.sqrt(expected[enough])
    assert enough.sum() >= min_cells
    assert (np.max(np.abs(gaps)) < Z) == holds, dict(zip(band[enough], gaps, strict=True))
