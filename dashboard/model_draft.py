"""The models and the Table 1 being drafted on the Models and Table 1 pages (pure; no Streamlit).

``ModelDraft`` is a Poisson or logistic regression of a cohort on categorical covariates (public group
columns), or a linear regression of a clamped numeric outcome (``LinearOutcome``) on clamped numeric
and categorical covariates; ``Table1Draft`` is a cohort described by an exposure group. ``to_query()``
is the request body of preview and run. The service checks everything again; these checks only say
early, in the page's language, what is missing.

>>> from dashboard.cohort_draft import StoredCohort
>>> cohort = StoredCohort("first-mi")
>>> ModelDraft("p1", "poisson_regression", cohort, ("cpr.sex",), most=4).to_query()["measure"]
'poisson_regression'
>>> Table1Draft("p1", cohort, "cpr.sex", ("cohort.age",)).to_query()["variables"]
['cohort.age']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from dashboard.catalog_lookup import Json
from dashboard.cohort_draft import COHORT_GROUPS, Cohort, check_groups
from dashboard.query_draft import DraftError, LossKind, check_loss

__all__ = [
    "MODEL_KINDS",
    "TABLE1_NUMERIC",
    "LinearOutcome",
    "ModelDraft",
    "ModelKind",
    "NumericCovariate",
    "Table1Draft",
    "table1_variables",
]

ModelKind = Literal["poisson_regression", "logistic_regression", "linear_regression"]
MODEL_KINDS: tuple[ModelKind, ...] = ("poisson_regression", "logistic_regression", "linear_regression")
TABLE1_NUMERIC = ("cohort.age",)
"""Numeric Table 1 variables (quartiles); the engine reads age at index from the 5-year bands."""


def table1_variables(exposures: tuple[str, ...] = ()) -> tuple[str, ...]:
    """What a Table 1 may describe: the cohort's group columns, its exposures, the outcome, and age."""
    return (*COHORT_GROUPS, *(f"cohort.{e}" for e in exposures), "cohort.event", *TABLE1_NUMERIC)


@dataclass(frozen=True)
class NumericCovariate:
    """A numeric covariate of a linear model, clamped to ``bounds``."""

    column: str
    bounds: tuple[float, float]

    def __post_init__(self) -> None:
        if not self.bounds[0] < self.bounds[1]:
            raise DraftError("error_bounds", lo=self.bounds[0], hi=self.bounds[1])


@dataclass(frozen=True)
class LinearOutcome:
    """The outcome of a linear model: a numeric column of ``register`` clamped to ``bounds``, and its
    numeric covariates (one row per person)."""

    register: str
    column: str
    bounds: tuple[float, float]
    covariates: tuple[NumericCovariate, ...] = ()

    def __post_init__(self) -> None:
        if not self.bounds[0] < self.bounds[1]:
            raise DraftError("error_bounds", lo=self.bounds[0], hi=self.bounds[1])


def _loss(kind: LossKind, loss: float, confidence: float) -> Json:
    return {kind: loss, "confidence": confidence}


@dataclass(frozen=True)
class ModelDraft:
    """A regression: ``cohort`` for Poisson and logistic models, ``linear`` for a linear one;
    ``covariates`` are categorical group columns (at most ``most``, the engine's limit), ``reference``
    their reference levels (missing: the first key)."""

    project: str
    kind: ModelKind
    cohort: Cohort | None
    covariates: tuple[str, ...] = ()
    most: int = 4
    reference: Mapping[str, str] | None = None
    linear: LinearOutcome | None = None
    loss_kind: LossKind = "epsilon"
    loss: float = 1.0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        check_groups(self.covariates, self.most)
        check_loss(self.loss, self.loss_kind)
        if self.kind == "linear_regression":
            if self.linear is None:
                raise DraftError("error_model_outcome")
            if not self.covariates and not self.linear.covariates:
                raise DraftError("error_model_covariates")
        elif not self.covariates:
            raise DraftError("error_model_covariates")

    def to_query(self) -> Json:
        """The request body of preview and run."""
        query: Json = {"project": self.project, "measure": self.kind}
        if self.linear is not None and self.kind == "linear_regression":
            query |= {
                "register": self.linear.register,
                "column": self.linear.column,
                "bounds": list(self.linear.bounds),
                "covariates": [
                    {"column": c.column, "bounds": list(c.bounds)} for c in self.linear.covariates
                ],
            }
        elif self.cohort is not None:
            query["cohort"] = self.cohort.to_json()
        query["group_by"] = list(self.covariates)
        reference = {k: v for k, v in (self.reference or {}).items() if k in self.covariates}
        if reference:
            query["reference"] = reference
        return {**query, **_loss(self.loss_kind, self.loss, self.confidence)}


@dataclass(frozen=True)
class Table1Draft:
    """A Table 1 of a cohort by one exposure group column (None: the whole cohort in one column)."""

    project: str
    cohort: Cohort
    group_by: str | None
    variables: tuple[str, ...]
    loss_kind: LossKind = "epsilon"
    loss: float = 1.0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        check_loss(self.loss, self.loss_kind)
        if not self.variables:
            raise DraftError("error_table1_variables")
        if self.group_by is not None and self.group_by in self.variables:
            raise DraftError("error_table1_group_is_variable", column=self.group_by)

    def to_query(self) -> Json:
        """The request body of preview and run."""
        return {
            "project": self.project,
            "measure": "table1",
            "cohort": self.cohort.to_json(),
            "group_by": [] if self.group_by is None else [self.group_by],
            "variables": list(self.variables),
            **_loss(self.loss_kind, self.loss, self.confidence),
        }
