"""The public contract of a release and a preview (pydantic models); no computation.

``query_engine.release`` builds these from a plan, its calibrations and the mechanisms' outputs;
the service returns them as the bodies of ``POST /v1/queries`` and ``POST /v1/queries/preview``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .spec import Measure

__all__ = [
    "AccuracyPublic",
    "LossPart",
    "Measure",
    "Preview",
    "PrivacyPublic",
    "QuantileWidth",
    "Release",
    "columns_for",
    "new_release_id",
]


class LossPart(BaseModel):
    """One measurement of a composite release (e.g. the noisy sum of a mean)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    part: str
    epsilon: float | None = None
    rho: float | None = None
    delta: float = 0.0
    mechanism: str
    scale: float


class PrivacyPublic(BaseModel):
    """The privacy loss of a release as charged, and the mechanism that produced it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: float | None = None
    delta: float = 0.0
    rho: float | None = None
    mechanism: str
    scale: float | None = None
    loss_split: list[LossPart] | None = None
    threshold: int | None = None


class QuantileWidth(BaseModel):
    """The expected half-width of a quantile's value interval for cells of ``rows`` rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int
    half_width: float


class AccuracyPublic(BaseModel):
    """Per-cell accuracy: interval half-width (value units) or quantile rank error (rows).

    Quantiles also carry ``grid_step`` (value units), ``rank_half_width`` (rows between the quantile's
    rank and either interval end) and ``expected_half_widths`` (value units, per public cell size).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    # Analyses (docs/engine.md, "Cohorts and analyses"): the noise of each released vector, so that
    # estimators can be rerun on a downloaded release, and the estimates computed from the table.
    noise: dict[str, dict[str, Any]] | None = None
    standardised: dict[str, Any] | None = None
    survival: dict[str, Any] | None = None
    horizons: list[dict[str, Any]] | None = None
    median: list[dict[str, Any]] | None = None
    # Models and Table 1 (issue 16): the fit of a model (terms with ratios or coefficients and both
    # intervals); the layout of a Table 1 (its rows are in ``rows``).
    model: dict[str, Any] | None = None
    table1: dict[str, Any] | None = None


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
    # Models and Table 1: the expected interval of the estimates asked for (docs/analyses.md, "Models").
    expected_intervals: list[dict[str, Any]] | None = None


def new_release_id() -> str:
    """A new release id: ``r_`` and 16 random hex characters."""
    return "r_" + secrets.token_hex(8)


def columns_for(group_by: Sequence[str], measure: Measure) -> list[str]:
    """The release columns: the group columns, then value, interval, suppression and extras."""
    extra = ["rank_error", "grid_step"] if measure == "quantile" else ["value_raw"]
    return [*group_by, "value", "ci_low", "ci_high", "suppressed", *extra]
