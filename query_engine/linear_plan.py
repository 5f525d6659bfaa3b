"""The plan of a linear regression (issue 16): clamped terms and the sensitivity of each moment.

Rows: the rows of the grain register (``register``) matching the conditions on it (same row), of
persons matching the conditions on the person register and having rows elsewhere; **one row per
person**: the matching row with the smallest stored random ``row_key``. Terms of that row, each a
fixed-point integer bounded by a declaration (never by data):

- the intercept, 1;
- each numeric covariate, clamped to its ``bounds`` (or the catalog's), NULL replaced by the declared
  constant, in units of the catalog resolution: ``|x| <= M_x = magnitude_units``;
- each categorical covariate (``group_by``, public key set) as 0/1 indicators of its non-reference
  levels: ``|x| <= 1``;
- the outcome ``y`` = ``column`` clamped like a numeric covariate: ``|y| <= M_y``.

The released moments are the sums over persons of the products ``a * b`` of two terms (the upper
triangle of X'X, whose [intercept, intercept] entry is n, then X'y and y'y). Adding or removing one
person adds or removes one row, so the moment of (a, b) changes by at most ``M_a * M_b``: that is its
L1 (= L2 = L-infinity) sensitivity, from the declared clamps only. Products that are the same for
every row by construction are released once: two indicators of one covariate are never both 1
(their product is 0: not released), and an indicator squared is the indicator itself (its moment
is the [intercept, indicator] one). Each released moment is its own discrete Laplace/Gaussian
measurement; the loss is split evenly between them, so every moment's noise is proportional to its
sensitivity (the same relative error against its declared range); under zCDP that is exactly one
discrete Gaussian release of the moment vector scaled by 1/sensitivity, with L2 = sqrt(parts).

A moment sums at most ``catalog.max_persons`` products, so the plan refuses clamps whose sums could
overflow 64-bit integers (``fixed_point_overflow``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from .catalog import Catalog
from .errors import (
    FixedPointOverflow,
    InvalidBounds,
    QueryError,
    TooManyGroupColumns,
    UnsupportedQuery,
    ValueOutsideDomain,
)
from .mechanisms import Sensitivity
from .models_plan import MAX_COVARIATES
from .plan import Cohort, ColumnRef, Filter, ValueSpec, _null_constant, make_filter
from .settings import EngineSettings
from .spec import ProjectContext, Query
from .suggest import did_you_mean
from .validate import check_condition, check_loss, resolve_column, resolve_register

__all__ = ["Indicator", "LinearPlan", "MomentPart", "NumericTerm", "plan_linear"]

_STAGE = "validate"
_INT64_LIMIT = 2**63
_MAX_TERMS = 16


def _refuse(error: type[QueryError], message: str) -> NoReturn:
    raise error(message, stage=_STAGE)


@dataclass(frozen=True)
class NumericTerm:
    """A clamped numeric column in fixed-point units."""

    name: str
    value: ValueSpec

    @property
    def magnitude(self) -> int:
        return self.value.magnitude_units


@dataclass(frozen=True)
class Indicator:
    """1 if the person's ``column`` equals ``level`` (a non-reference key), else 0."""

    covariate: str
    column: ColumnRef
    level: str | int

    @property
    def name(self) -> str:
        return f"{self.covariate}={self.level}"


@dataclass(frozen=True)
class MomentPart:
    """One released moment: the sum over persons of term ``a`` times term ``b`` (indices into ``LinearPlan.slots``)."""

    name: str
    a: int
    b: int
    sensitivity: Sensitivity


@dataclass(frozen=True)
class LinearPlan:
    """Everything compile_linear, the mechanisms and the release need."""

    grain: str
    person_register: str
    row_filters: tuple[Filter, ...]
    person_filters: tuple[Filter, ...]
    presence: tuple[Cohort, ...]
    numeric: tuple[NumericTerm, ...]
    indicators: tuple[Indicator, ...]
    outcome: NumericTerm
    parts: tuple[MomentPart, ...]
    reference: tuple[tuple[str, str | int], ...]
    registers: tuple[str, ...]

    @property
    def terms(self) -> tuple[str, ...]:
        """The columns of X: intercept, numeric covariates, indicators."""
        return ("intercept", *(t.name for t in self.numeric), *(i.name for i in self.indicators))

    @property
    def slots(self) -> tuple[str, ...]:
        """The terms of X then the outcome y (the indices of ``MomentPart``)."""
        return (*self.terms, "y")

    @property
    def cells(self) -> int:
        return len(self.parts)

    def magnitude(self, slot: int) -> int:
        """The declared most |value| of term ``slot`` in units."""
        k = len(self.numeric)
        if slot == 0 or 1 + k <= slot < len(self.terms):
            return 1
        if slot == len(self.terms):
            return self.outcome.magnitude
        return self.numeric[slot - 1].magnitude

    def source(self, a: int, b: int) -> int | None:
        """The part whose moment equals that of (a, b), or None if it is 0 by construction."""
        a, b = min(a, b), max(a, b)
        first = 1 + len(self.numeric)
        if first <= a < len(self.terms) and first <= b < len(self.terms):
            if a != b and self.indicators[a - first].covariate == self.indicators[b - first].covariate:
                return None
            if a == b:
                a = 0
        for i, part in enumerate(self.parts):
            if (part.a, part.b) == (a, b):
                return i
        return None


def _numeric(
    catalog: Catalog, qualified: str, bounds: tuple[float, float] | None, what: str, allowed: set[str]
) -> NumericTerm:
    register, column = resolve_column(catalog, qualified)
    if register.name not in allowed:
        _refuse(
            UnsupportedQuery,
            f"The {what} {qualified} is on {register.name}; a linear regression reads one row per person of "
            f"{' and '.join(sorted(allowed))}. Use a column of those registers.",
        )
    if column.bounds is None or column.type not in ("integer", "float"):
        _refuse(
            UnsupportedQuery,
            f"The {what} {qualified} is not a numeric column with declared bounds; choose a numeric column.",
        )
    lo, hi = float(column.bounds.lo), float(column.bounds.hi)
    if bounds is not None:
        if bounds[0] >= bounds[1]:
            _refuse(
                InvalidBounds,
                f"The bounds {list(bounds)} of {qualified} are empty or reversed; give [low, high].",
            )
        lo, hi = bounds
    value = ValueSpec(
        column=ColumnRef(register.name, column.name),
        lo=lo,
        hi=hi,
        resolution=float(column.bounds.resolution),
        null_value=_null_constant(column, lo, hi),
    )
    return NumericTerm(qualified, value)


def plan_linear(
    query: Query, catalog: Catalog, context: ProjectContext, settings: EngineSettings
) -> LinearPlan:
    """Check a linear_regression query against the catalog and plan its moments."""
    check_loss(query, context, settings)
    for name in ("quantile", "max_groups", "max_rows", "target_ci"):
        if getattr(query, name) is not None:
            _refuse(UnsupportedQuery, f"The field '{name}' is not used by a linear_regression; remove it.")
    person = catalog.person_register
    grain = resolve_register(catalog, query.register).name
    allowed = {grain, person}
    assert query.qualified_column is not None
    outcome = _numeric(catalog, query.qualified_column, query.bounds, "outcome", allowed)
    numeric = tuple(
        _numeric(catalog, c.column, c.bounds, "covariate", allowed) for c in query.covariates or ()
    )
    names = [t.name for t in numeric]
    if len(set(names)) != len(names) or outcome.name in names:
        _refuse(UnsupportedQuery, "A column appears twice among the outcome and covariates; list each once.")
    if len(query.group_by) > MAX_COVARIATES:
        _refuse(
            TooManyGroupColumns,
            f"A linear_regression takes at most {MAX_COVARIATES} categorical covariates, got {len(query.group_by)}.",
        )
    indicators, reference = _indicators(query, catalog, person)
    row_filters, person_filters, presence = _conditions(query, catalog, grain, person)
    slots = 1 + len(numeric) + len(indicators) + 1
    if slots - 1 > _MAX_TERMS:
        _refuse(
            TooManyGroupColumns,
            f"The model has {slots - 1} terms; at most {_MAX_TERMS} are allowed. Use fewer or coarser covariates.",
        )
    parts = _parts(numeric, indicators, outcome)
    worst = max(p.sensitivity.linf for p in parts)
    if catalog.max_persons * worst >= _INT64_LIMIT:
        _refuse(
            FixedPointOverflow,
            f"A moment over up to {catalog.max_persons} persons with these bounds could overflow 64-bit fixed "
            f"point (a product of up to {worst} units per person); narrow the bounds of the outcome or covariates.",
        )
    registers = {grain, person, *(c.register for c in presence)}
    return LinearPlan(
        grain=grain,
        person_register=person,
        row_filters=row_filters,
        person_filters=person_filters,
        presence=presence,
        numeric=numeric,
        indicators=indicators,
        outcome=outcome,
        parts=parts,
        reference=reference,
        registers=tuple(sorted(registers)),
    )


def _conditions(
    query: Query, catalog: Catalog, grain: str, person: str
) -> tuple[tuple[Filter, ...], tuple[Filter, ...], tuple[Cohort, ...]]:
    """``where`` split into conditions on the grain row, on the person's row, and on having rows elsewhere."""
    rows: list[Filter] = []
    persons: list[Filter] = []
    elsewhere: dict[str, list[Filter]] = {}
    for condition in query.where:
        check_condition(condition, catalog)
        checked = make_filter(catalog, condition)
        register = checked.column.register
        if register == person:
            persons.append(checked)
        elif register == grain:
            rows.append(checked)
        else:
            elsewhere.setdefault(register, []).append(checked)
    presence = tuple(Cohort(name, tuple(fs)) for name, fs in sorted(elsewhere.items()))
    return tuple(rows), tuple(persons), presence


def _indicators(
    query: Query, catalog: Catalog, person: str
) -> tuple[tuple[Indicator, ...], tuple[tuple[str, str | int], ...]]:
    given = dict(query.reference or {})
    unknown = [n for n in given if n not in query.group_by]
    if unknown:
        _refuse(
            UnsupportedQuery,
            f"The reference level is given for {unknown[0]!r}, which is not a categorical covariate."
            f"{did_you_mean(unknown[0], query.group_by)} Categorical covariates (group_by): {', '.join(query.group_by) or 'none'}.",
        )
    indicators: list[Indicator] = []
    reference = []
    for name in query.group_by:
        register, column = resolve_column(catalog, name)
        if register.name != person or column.keyset is None or column.open_domain:
            _refuse(
                UnsupportedQuery,
                f"A categorical covariate must be a column of {person} with a public key set; {name} is not.",
            )
        assert column.keyset is not None
        keys = catalog.keyset(column.keyset).values
        base = given.get(name, keys[0])
        if base not in keys:
            _refuse(
                ValueOutsideDomain,
                f"The reference level {base!r} of {name} is not one of its keys; choose one of them.",
            )
        assert isinstance(base, str | int)
        reference.append((name, base))
        indicators += [Indicator(name, ColumnRef(register.name, column.name), k) for k in keys if k != base]
    return tuple(indicators), tuple(reference)


def _parts(
    numeric: tuple[NumericTerm, ...], indicators: tuple[Indicator, ...], outcome: NumericTerm
) -> tuple[MomentPart, ...]:
    names = ("intercept", *(t.name for t in numeric), *(i.name for i in indicators), "y")
    magnitudes = (1, *(t.magnitude for t in numeric), *(1 for _ in indicators), outcome.magnitude)
    first, last = 1 + len(numeric), 1 + len(numeric) + len(indicators)
    parts = []
    for a in range(len(names)):
        for b in range(a, len(names)):
            both_indicators = first <= a < last and first <= b < last
            if both_indicators and (
                a == b or indicators[a - first].covariate == indicators[b - first].covariate
            ):
                continue  # x*x = x (the [intercept, x] moment) or 0 by construction
            sensitivity = Sensitivity.for_contribution(1, 1, magnitudes[a] * magnitudes[b])
            label = "n" if (a, b) == (0, 0) else f"{names[a]}*{names[b]}" if a else f"sum {names[b]}"
            parts.append(MomentPart(label, a, b, sensitivity))
    return tuple(parts)
