"""The Query of the public contract (DESIGN.md section 6), its canonical form and hash.

The model checks shape only (types, one privacy-loss field, operator arity); everything that needs the
catalog is checked by ``validate``. ``parse_query`` turns shape errors into a ``QueryError`` at stage
``spec``, so every error an analyst sees has one form.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from .errors import QueryError

__all__ = [
    "ANALYSIS_MEASURES",
    "DEFAULT_PER_PERSON_YEARS",
    "MODEL_MEASURES",
    "NumericCovariate",
    "CohortDefinition",
    "Condition",
    "EventRule",
    "Exclusion",
    "Exposure",
    "FiniteNumber",
    "IndexEvent",
    "Measure",
    "PrevalenceCondition",
    "TimeBins",
    "Op",
    "ProjectContext",
    "Query",
    "Scalar",
    "parse_query",
]

Measure = Literal[
    "count_persons",
    "count_rows",
    "sum",
    "mean",
    "quantile",
    "rate",
    "survival",
    "prevalence",
    "poisson_regression",
    "logistic_regression",
    "linear_regression",
    "table1",
]
ANALYSIS_MEASURES = ("rate", "survival", "prevalence")
"""Measures released as one private table with a declared sensitivity (issue 15), not per-cell values."""
MODEL_MEASURES = ("poisson_regression", "logistic_regression", "linear_regression", "table1")
"""Models and Table 1 (issue 16): fitted to private tables released once (``query_engine.models``)."""
MAX_FOLLOW_UP_DAYS = 10_958  # 30 years of 365.25 days
Op = Literal["=", "!=", "in", "prefix", "between", "<", "<=", ">", ">="]
Scalar = StrictStr | StrictInt | StrictFloat

_LIST_OPS = ("in", "between")
DEFAULT_PER_PERSON_YEARS = 1000


def _finite_number(value: Any) -> float:
    """A JSON number as a finite float; a string, a bool or a non-finite number is refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = "true/false" if isinstance(value, bool) else type(value).__name__
        raise ValueError(f"Give a number (e.g. 0.5, without quotes), not {shown}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("The number is too large; give a number below 1e308") from None
    if not math.isfinite(number):
        raise ValueError("Give a finite number (not NaN or infinity)")
    return number


FiniteNumber = Annotated[float, BeforeValidator(_finite_number)]
"""A number in the strict sense: ``0.1`` and ``1``, never ``"0.1"``, ``true``, NaN or infinity."""


# ``register`` is the contract's field name; it shadows ABCMeta.register on the class only.
warnings.filterwarnings(
    "ignore",
    message='Field name "register" in "(Query|EventRule|PrevalenceCondition)" shadows',
    category=UserWarning,
)


class Condition(BaseModel):
    """One filter: ``{"column": "lpr.icd10", "op": "prefix", "value": "E11"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(min_length=1, max_length=200)
    op: Op
    value: Scalar | list[Scalar]

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op == "in":
            if not isinstance(self.value, list) or not self.value:
                raise ValueError("Operator 'in' needs a non-empty list of values")
            if len(self.value) > 10_000:
                raise ValueError(
                    "Operator 'in' takes at most 10000 values; split the list over several queries"
                )
        elif self.op == "between":
            if not isinstance(self.value, list) or len(self.value) != 2:
                raise ValueError("Operator 'between' needs a list of two values [low, high]")
        elif isinstance(self.value, list):
            raise ValueError(f"Operator {self.op!r} needs a single value, not a list; use 'in' for a list")
        values = self.value if isinstance(self.value, list) else [self.value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ValueError("Values must be finite numbers")
        return self

    def canonical(self) -> dict[str, Any]:
        value: Any = self.value
        if self.op == "in":
            value = sorted({_normal_scalar(v) for v in self.value}, key=_scalar_sort_key)  # type: ignore[union-attr]
        elif isinstance(value, list):
            value = [_normal_scalar(v) for v in value]
        else:
            value = _normal_scalar(value)
        return {"column": self.column, "op": self.op, "value": value}


_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,59}$"
_WHERE = Field(default=(), max_length=50)


def _where_canonical(where: tuple[Condition, ...]) -> list[dict[str, Any]]:
    return sorted(
        (c.canonical() for c in where),
        key=lambda c: (c["column"], c["op"], json.dumps(c["value"], sort_keys=True)),
    )


class EventRule(BaseModel):
    """Rows of one register with a date, matching ``where``: an outcome or the base of other rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    register: str = Field(min_length=1, max_length=100)
    date: str = Field(min_length=1, max_length=200)
    where: tuple[Condition, ...] = _WHERE

    def canonical(self) -> dict[str, Any]:
        return {"register": self.register, "date": self.date, "where": _where_canonical(self.where)}


class IndexEvent(EventRule):
    """The index event: the first matching row with its date inside ``entry`` ([first, last] day).

    Without ``date`` it is a **population index** on the person register: every person alive on
    ``max(entry[0], birthday at min_age)``, with that day inside ``entry``, enters on it (``where`` then
    filters the person's own row).
    """

    date: str | None = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    entry: tuple[StrictStr, StrictStr]
    min_age: StrictInt | None = Field(default=None, ge=0, le=120)

    @property
    def is_population(self) -> bool:
        """True for a population index (no date: everyone enters at the window's start or at min_age)."""
        return self.date is None

    def canonical(self) -> dict[str, Any]:
        extra = {"min_age": self.min_age} if self.min_age is not None else {}
        return {**super().canonical(), "entry": list(self.entry), **extra}


class Exclusion(EventRule):
    """A matching row before the index date (within ``lookback_days`` if given) excludes the person."""

    lookback_days: StrictInt | None = Field(default=None, ge=1, le=36_600)

    def canonical(self) -> dict[str, Any]:
        return {**super().canonical(), "lookback_days": self.lookback_days}


class Exposure(EventRule):
    """A 0/1 group column ``cohort.<name>``: a matching row on or before the index date (within
    ``lookback_days`` if given)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    lookback_days: StrictInt | None = Field(default=None, ge=0, le=36_600)

    def canonical(self) -> dict[str, Any]:
        return {**super().canonical(), "name": self.name, "lookback_days": self.lookback_days}


class CohortDefinition(BaseModel):
    """A declared cohort (docs/engine.md, "Cohorts and analyses"): index, exclusions, outcome, follow-up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, pattern=_NAME_PATTERN)
    index: IndexEvent
    exclude: tuple[Exclusion, ...] = Field(default=(), max_length=20)
    outcome: EventRule | None = None
    exposures: tuple[Exposure, ...] = Field(default=(), max_length=10)
    follow_up_years: FiniteNumber | None = Field(default=None, ge=1, le=30)
    follow_up_days: StrictInt | None = Field(default=None, ge=1, le=MAX_FOLLOW_UP_DAYS)
    period_years: StrictInt = Field(default=5, ge=1, le=50)

    @model_validator(mode="after")
    def _distinct_exposures(self) -> CohortDefinition:
        names = [e.name for e in self.exposures]
        if len(set(names)) != len(names):
            raise ValueError("Each exposure needs its own name; two exposures share one")
        if (self.follow_up_years is None) == (self.follow_up_days is None):
            raise ValueError(
                "Give exactly one of follow_up_years (1 to 30) or follow_up_days (1 to 10958), "
                "e.g. follow_up_days 30 for death within 30 days"
            )
        return self

    @property
    def follow_up_in_years(self) -> float:
        """The declared follow-up in years (``follow_up_days / 365.25`` when given in days)."""
        if self.follow_up_days is not None:
            return self.follow_up_days / 365.25
        assert self.follow_up_years is not None
        return float(self.follow_up_years)

    def canonical(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index.canonical(),
            "exclude": sorted(
                (e.canonical() for e in self.exclude), key=lambda e: json.dumps(e, sort_keys=True)
            ),
            "outcome": self.outcome.canonical() if self.outcome is not None else None,
            "exposures": [e.canonical() for e in self.exposures],
            # follow_up_days appears only when given, so the hashes of earlier cohorts do not change.
            "follow_up_years": _normal_scalar(self.follow_up_years)
            if self.follow_up_years is not None
            else None,
            **({"follow_up_days": self.follow_up_days} if self.follow_up_days is not None else {}),
            "period_years": self.period_years,
        }


class PrevalenceCondition(BaseModel):
    """The condition of a prevalence: the person has a row of ``register`` matching ``where``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    register: str = Field(min_length=1, max_length=100)
    where: tuple[Condition, ...] = _WHERE

    def canonical(self) -> dict[str, Any]:
        return {"register": self.register, "where": _where_canonical(self.where)}


class TimeBins(BaseModel):
    """The exit-time bins of a survival histogram: ``width`` days, months or years."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: Literal["days", "months", "years"] = "months"
    width: StrictInt = Field(default=1, ge=1, le=36_600)

    def canonical(self) -> dict[str, Any]:
        return {"unit": self.unit, "width": self.width}


class NumericCovariate(BaseModel):
    """A numeric covariate of a linear regression, clamped to ``bounds`` (declared, never from data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(min_length=1, max_length=200)
    bounds: tuple[FiniteNumber, FiniteNumber] | None = None

    def canonical(self) -> dict[str, Any]:
        bounds = [_normal_scalar(b) for b in self.bounds] if self.bounds else None
        return {"column": self.column, "bounds": bounds}


_ANALYSIS_FIELDS = {
    "per_person_years": ("rate", "poisson_regression"),
    "standard_population": ("rate",),
    "standard_population_persons": ("rate",),
    "time_bins": ("survival",),
    "horizons_years": ("survival",),
    "condition": ("prevalence",),
    "reference": ("poisson_regression", "logistic_regression", "linear_regression"),
    "variables": ("table1",),
    "covariates": ("linear_regression",),
}
_COHORT_MEASURES = (
    "count_persons",
    "rate",
    "survival",
    "prevalence",
    "poisson_regression",
    "logistic_regression",
    "table1",
)
_NEEDS_COHORT = ("rate", "survival", "poisson_regression", "logistic_regression", "table1")


class Query(BaseModel):
    """A statistics query: measure, grain register, filters, groups and privacy loss."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(min_length=1, max_length=200)
    measure: Measure
    register: str = Field(default="cpr", min_length=1, max_length=100)
    column: str | None = Field(default=None, min_length=1, max_length=200)
    bounds: tuple[FiniteNumber, FiniteNumber] | None = None
    quantile: FiniteNumber | None = Field(default=None, gt=0, lt=1)
    where: tuple[Condition, ...] = Field(default=(), max_length=50)
    group_by: tuple[str, ...] = Field(default=(), max_length=20)
    epsilon: FiniteNumber | None = None
    rho: FiniteNumber | None = None
    target_ci: FiniteNumber | None = None
    confidence: FiniteNumber = Field(default=0.95, ge=0.5, le=0.999999)
    max_groups: StrictInt | None = Field(default=None, ge=1)
    max_rows: StrictInt | None = Field(default=None, ge=1)
    cohort: CohortDefinition | Annotated[str, Field(pattern=_NAME_PATTERN)] | None = None
    condition: PrevalenceCondition | None = None
    per_person_years: FiniteNumber | None = Field(default=None, ge=1, le=1e9)
    standard_population: str | None = Field(default=None, min_length=1, max_length=50)
    # Public figures of a standard population the engine does not ship (e.g. the Danish population on
    # 1 January of a chosen year, from Statistics Denmark's FOLK1A), persons per age band.
    standard_population_persons: (
        dict[
            Annotated[str, Field(min_length=1, max_length=10)], Annotated[FiniteNumber, Field(gt=0, le=1e10)]
        ]
        | None
    ) = Field(default=None, min_length=1, max_length=40)
    time_bins: TimeBins | None = None
    horizons_years: tuple[Annotated[FiniteNumber, Field(gt=0, le=30)], ...] | None = Field(
        default=None, min_length=1, max_length=10
    )
    reference: dict[Annotated[str, Field(min_length=1, max_length=200)], Scalar] | None = Field(
        default=None, max_length=20
    )
    variables: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] | None = Field(
        default=None, min_length=1, max_length=20
    )
    covariates: tuple[NumericCovariate, ...] | None = Field(default=None, min_length=1, max_length=8)

    @model_validator(mode="after")
    def _one_loss(self) -> Query:
        given = [name for name in ("epsilon", "rho", "target_ci") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "Give exactly one of epsilon, rho or target_ci"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.quantile is not None and self.measure != "quantile":
            raise ValueError(
                "A quantile level is only for measure 'quantile'; "
                "remove 'quantile' or set the measure to 'quantile'"
            )
        return self

    @model_validator(mode="after")
    def _analysis_fields(self) -> Query:
        for name, measures in _ANALYSIS_FIELDS.items():
            if getattr(self, name) is not None and self.measure not in measures:
                raise ValueError(
                    f"The field '{name}' is only for measure {measures[0]!r}; remove it or change the measure"
                )
        if self.standard_population_persons is not None and self.standard_population is None:
            raise ValueError(
                "Figures in 'standard_population_persons' need a 'standard_population' naming them (e.g. \"dk2020\")"
            )
        if self.measure in _NEEDS_COHORT and self.cohort is None:
            raise ValueError(f"Measure {self.measure!r} needs a 'cohort' (its index, outcome and follow-up)")
        if self.measure == "table1" and self.variables is None:
            raise ValueError(
                'Measure \'table1\' needs \'variables\', e.g. ["cpr.sex", "cohort.age_band", "cohort.age"]'
            )
        if self.measure == "linear_regression" and self.column is None:
            raise ValueError(
                "Measure 'linear_regression' needs the outcome in 'column' (a numeric column, e.g. "
                "ind.disposable_income), with 'bounds' to clamp it if the catalog's are too wide"
            )
        if self.measure == "prevalence" and self.condition is None:
            raise ValueError(
                'Measure \'prevalence\' needs a \'condition\', e.g. {"register": "lpr", "where": [...]}'
            )
        if self.cohort is not None and self.measure not in _COHORT_MEASURES:
            raise ValueError(
                f"A cohort is for the measures {', '.join(_COHORT_MEASURES)}, not {self.measure!r}"
            )
        return self

    @property
    def is_analysis(self) -> bool:
        """Whether the query is an analysis over persons (a cohort, or a rate, survival or prevalence)."""
        return self.cohort is not None or self.measure in ANALYSIS_MEASURES

    @property
    def is_model(self) -> bool:
        """Whether the query is a regression model or a Table 1 (issue 16: ``query_engine.models``)."""
        return self.measure in MODEL_MEASURES

    @property
    def qualified_column(self) -> str | None:
        """The measured column as ``register.column`` (an unqualified name is on the grain register)."""
        if self.column is None:
            return None
        return self.column if "." in self.column else f"{self.register}.{self.column}"

    @property
    def quantile_level(self) -> float | None:
        """The quantile level; the median (0.5) unless given."""
        if self.measure != "quantile":
            return None
        return 0.5 if self.quantile is None else self.quantile

    @property
    def effective_register(self) -> str:
        """The grain: for ``count_persons`` the one non-cpr register among the group columns, if any."""
        if self.measure == "count_persons" and not self.is_analysis:
            others = [g.partition(".")[0] for g in self.group_by if "." in g and g.partition(".")[0] != "cpr"]
            if others and self.register == "cpr":
                return others[0]
        return self.register

    def canonical(self) -> dict[str, Any]:
        """The query with defaults filled and order-free lists sorted (group_by order is kept)."""
        where = _where_canonical(self.where)
        canonical = {
            "project": self.project,
            "measure": self.measure,
            "register": self.effective_register,
            "column": self.qualified_column,
            "bounds": [_normal_scalar(b) for b in self.bounds] if self.bounds else None,
            "quantile": _normal_scalar(self.quantile_level) if self.quantile_level is not None else None,
            "where": where,
            "group_by": list(self.group_by),
            "epsilon": _normal_scalar(self.epsilon) if self.epsilon is not None else None,
            "rho": _normal_scalar(self.rho) if self.rho is not None else None,
            "target_ci": _normal_scalar(self.target_ci) if self.target_ci is not None else None,
            "confidence": _normal_scalar(self.confidence),
            "max_groups": self.max_groups,
            "max_rows": self.max_rows,
        }
        return {**canonical, **self._analysis_canonical()}

    def _analysis_canonical(self) -> dict[str, Any]:
        """The analysis fields, present only when used (so the hashes of other queries do not change)."""
        extra: dict[str, Any] = {}
        if self.cohort is not None:
            extra["cohort"] = self.cohort if isinstance(self.cohort, str) else self.cohort.canonical()
        if self.reference is not None:
            extra["reference"] = {k: _normal_scalar(v) for k, v in sorted(self.reference.items())}
        if self.variables is not None:
            extra["variables"] = list(self.variables)
        if self.covariates is not None:
            extra["covariates"] = [c.canonical() for c in self.covariates]
        if self.measure == "poisson_regression":
            extra["per_person_years"] = _normal_scalar(self.per_person_years or DEFAULT_PER_PERSON_YEARS)
        if self.measure == "rate":
            extra["per_person_years"] = _normal_scalar(self.per_person_years or DEFAULT_PER_PERSON_YEARS)
            extra["standard_population"] = self.standard_population
            if self.standard_population_persons is not None:
                extra["standard_population_persons"] = {
                    band: _normal_scalar(n) for band, n in sorted(self.standard_population_persons.items())
                }
        if self.measure == "survival":
            extra["time_bins"] = (self.time_bins or TimeBins()).canonical()
            extra["horizons_years"] = (
                sorted({_normal_scalar(h) for h in self.horizons_years}) if self.horizons_years else None
            )
        if self.condition is not None:
            extra["condition"] = self.condition.canonical()
        return extra

    def canonical_json(self) -> str:
        """Canonical JSON text: sorted keys, no spaces."""
        return self._canonical_text

    def query_hash(self) -> str:
        """sha256 (hex) of the canonical JSON; the ledger caches releases by it."""
        return self._hash

    # The model is frozen, so both are computed once per query object.
    @cached_property
    def _canonical_text(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @cached_property
    def _hash(self) -> str:
        return hashlib.sha256(self._canonical_text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ProjectContext:
    """What the engine needs to know about the project a query runs in."""

    mode: Literal["pure", "zcdp"]
    delta_available: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("pure", "zcdp"):
            raise ValueError(f"The project mode must be 'pure' or 'zcdp', got {self.mode!r}")


def parse_query(data: Mapping[str, Any] | str | bytes) -> Query:
    """Parse a Query from JSON text or a mapping; shape errors become ``QueryError`` (stage spec)."""
    try:
        if isinstance(data, str | bytes):
            return Query.model_validate_json(data)
        return Query.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "query"
        message = first["msg"].removeprefix("Value error, ")
        more = f" ({exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise QueryError(f"Invalid query field '{where}': {message}.{more}", stage="spec") from None


def _normal_scalar(value: Any) -> Any:
    """1.0 and 1 hash alike."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _scalar_sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))
