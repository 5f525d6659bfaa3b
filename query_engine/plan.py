"""The typed, frozen plan of a validated query: what to read, how to bound, what sensitivity follows.

Privacy facts come from the catalog and the query only. Contribution bounds are derived, not asked
for: a person-level grain or person-level groups cannot contribute more than one row or one group,
so those queries pay for ``G = 1`` and ``c = 1`` whatever ``max_groups``/``max_rows`` say. "One
row per person" is enforced, not trusted: a person-grain register is bounded in SQL to one row per
person (the smallest row key) like any other register, so a duplicated person still counts once.
Likewise person-level group columns do not multiply the groups a person can reach: ``G`` is at most
the product of the key-set sizes of the other group columns (``groups_one_person_reaches``).

A mean sums its values centred on the midpoint of their bounds (``ValueSpec.centre_units``), so one
row moves the sum by at most half the width of the bounds; the release adds the midpoint back.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from .catalog import Catalog, Column, Register
from .errors import EngineInternalError, FixedPointOverflow
from .mechanisms import Sensitivity, quantile_fraction
from .settings import EngineSettings
from .spec import Condition, Measure, Op, ProjectContext, Query
from .validate import TypedValue, cell_count, resolve_column, typed_value

__all__ = [
    "Bounding",
    "Cohort",
    "ColumnRef",
    "Filter",
    "GroupKey",
    "LossRequest",
    "Output",
    "Plan",
    "QuantileSpec",
    "ValueSpec",
    "grain_of",
    "groups_one_person_reaches",
    "make_filter",
    "plan_query",
    "tunable_bounds",
]

NoiseKind = Literal["laplace", "gaussian"]
OutputName = Literal["count", "sum", "scores", "lower_scores", "upper_scores"]

_STAGE = "plan"
_INT64_LIMIT = 2**63
# Most candidate scores one quantile query selects from (cells x candidates), since each of its three
# selections costs about 10 ms per 1,000 scores: a grid is coarsened to fit.
_MAX_QUANTILE_SCORES = 200_000
QUANTILE_OUTPUTS: tuple[OutputName, ...] = ("scores", "lower_scores", "upper_scores")


def _invariant(ok: bool, what: str) -> None:
    if not ok:
        raise EngineInternalError(f"Invalid plan (a bug in sundstat): {what}.", stage=_STAGE)


@dataclass(frozen=True)
class ColumnRef:
    """A catalog column, ``register.column``."""

    register: str
    column: str

    @property
    def qualified(self) -> str:
        return f"{self.register}.{self.column}"


@dataclass(frozen=True)
class Filter:
    """One condition with typed values: one for comparisons, two for between, sorted for in."""

    column: ColumnRef
    op: Op
    values: tuple[TypedValue, ...]

    def __post_init__(self) -> None:
        arity = {"between": 2}.get(self.op, 1)
        if self.op == "in":
            _invariant(len(self.values) >= 1, f"'in' on {self.column.qualified} without values")
        else:
            _invariant(len(self.values) == arity, f"{self.op!r} on {self.column.qualified} takes {arity}")


@dataclass(frozen=True)
class Cohort:
    """The person has a row in ``register`` satisfying all ``filters`` (on the same row)."""

    register: str
    filters: tuple[Filter, ...]

    def __post_init__(self) -> None:
        _invariant(all(f.column.register == self.register for f in self.filters), "cohort mixes registers")


@dataclass(frozen=True)
class GroupKey:
    """A group column and its full public key set in catalog order (``None``: open domain)."""

    column: ColumnRef
    keys: tuple[str | int, ...] | None

    @property
    def is_open(self) -> bool:
        return self.keys is None


@dataclass(frozen=True)
class Bounding:
    """Contribution bounds: at most ``max_groups`` groups (G) and ``max_rows`` rows per group (c).

    ``bound_rows``/``bound_groups`` say whether SQL must enforce them; when False the bound holds
    structurally (distinct persons, or groups that are attributes of the person). A person-grain
    register has ``bound_rows`` with ``c = 1`` (one row per person, whatever the data holds), which
    also bounds it to one group.
    """

    max_groups: int
    max_rows: int
    bound_rows: bool
    bound_groups: bool

    def __post_init__(self) -> None:
        _invariant(self.max_groups >= 1 and self.max_rows >= 1, "bounds must be at least 1")
        _invariant(self.bound_groups or self.max_groups == 1, "unenforced G must be 1")
        _invariant(self.bound_rows or self.max_rows == 1, "unenforced c must be 1")


@dataclass(frozen=True)
class ValueSpec:
    """The measured column: clamp bounds, NULL constant and fixed-point resolution."""

    column: ColumnRef
    lo: float
    hi: float
    resolution: float
    null_value: float

    def __post_init__(self) -> None:
        _invariant(self.lo <= self.hi and self.resolution > 0, "value bounds")
        _invariant(self.lo <= self.null_value <= self.hi, "NULL constant outside the clamp bounds")

    @property
    def magnitude_units(self) -> int:
        """ceil(max(|lo|, |hi|) / resolution), at least 1: the most one row adds to a fixed-point sum.

        At least 1 so that bounds such as [0, 0] still give a sensitivity OpenDP accepts.
        """
        magnitude = max(abs(_exact(self.lo)), abs(_exact(self.hi)))
        return max(1, math.ceil(magnitude / _exact(self.resolution)))

    @property
    def unit_range(self) -> tuple[int, int]:
        """``(L, H)``: the fixed-point units of ``lo`` and ``hi`` (rounded half away from zero, as SQL's
        ROUND), so every clamped value's units lie in ``[L, H]``; the SQL of a mean also clamps to it."""
        resolution = _exact(self.resolution)
        return _round_half_away(_exact(self.lo) / resolution), _round_half_away(_exact(self.hi) / resolution)

    @property
    def centre_units(self) -> int:
        """``M = floor((L + H) / 2)``: the midpoint of the bounds in units, subtracted from every value of
        a mean's sum (so one row moves the sum by at most ``centred_magnitude_units``)."""
        low, high = self.unit_range
        return (low + high) // 2

    @property
    def centred_magnitude_units(self) -> int:
        """``max(M - L, H - M) = ceil((H - L) / 2)``, at least 1: the most one centred row adds to a sum."""
        low, high = self.unit_range
        return max(1, self.centre_units - low, high - self.centre_units)


@dataclass(frozen=True)
class QuantileSpec:
    """Quantile level ``numerator/denominator`` and the candidate grid ``lo_units + j * step_units``."""

    level: float
    numerator: int
    denominator: int
    lo_units: int
    step_units: int
    candidates: int

    def __post_init__(self) -> None:
        _invariant(0 < self.numerator < self.denominator, "quantile level")
        _invariant(self.step_units >= 1 and self.candidates >= 2, "quantile grid")

    @property
    def hi_units(self) -> int:
        return self.lo_units + (self.candidates - 1) * self.step_units

    @property
    def score_linf_per_row(self) -> int:
        """How much one row can move one candidate's score: max(num, den - num)."""
        return max(self.numerator, self.denominator - self.numerator)

    def candidate_values(self, resolution: float) -> tuple[float, ...]:
        return _candidate_values(self.lo_units, self.step_units, self.candidates, resolution)


@functools.lru_cache(maxsize=256)
def _candidate_values(
    lo_units: int, step_units: int, candidates: int, resolution: float
) -> tuple[float, ...]:
    """The grid's values (cached: every release of a quantile query lists the same up to 2,000)."""
    unit = _exact(resolution)
    return tuple(float((lo_units + j * step_units) * unit) for j in range(candidates))


@dataclass(frozen=True)
class Output:
    """One exact integer vector the engine computes and noises, with its declared sensitivity."""

    name: OutputName
    sensitivity: Sensitivity


@dataclass(frozen=True)
class LossRequest:
    """The privacy loss the query asks for; ``share`` is each output's fraction of it."""

    kind: NoiseKind
    epsilon: float | None
    rho: float | None
    target_ci: float | None
    confidence: float

    def __post_init__(self) -> None:
        _invariant(
            sum(x is not None for x in (self.epsilon, self.rho, self.target_ci)) == 1,
            "exactly one loss field",
        )


@dataclass(frozen=True)
class Plan:
    """Everything compile and the mechanisms need; hashable, so compiled SQL can be cached by it."""

    measure: Measure
    grain: str
    person_register: str
    row_filters: tuple[Filter, ...]
    person_filters: tuple[Filter, ...]
    cohorts: tuple[Cohort, ...]
    groups: tuple[GroupKey, ...]
    bounding: Bounding
    value: ValueSpec | None
    quantile: QuantileSpec | None
    outputs: tuple[Output, ...]
    loss: LossRequest
    cells: int
    partition_selection: bool
    registers: tuple[str, ...]

    def __post_init__(self) -> None:
        _invariant(all(f.column.register == self.grain for f in self.row_filters), "row filter off grain")
        _invariant(
            all(f.column.register == self.person_register for f in self.person_filters),
            "person filter off cpr",
        )
        _invariant(
            all(g.column.register in (self.grain, self.person_register) for g in self.groups),
            "group column off grain and person register",
        )
        _invariant(self.partition_selection == any(g.is_open for g in self.groups), "partition selection")
        _invariant(self.partition_selection or self.bounding.max_groups <= self.cells, "G above the cells")
        expected: dict[str, tuple[str, ...]] = {
            "count_persons": ("count",),
            "count_rows": ("count",),
            "sum": ("sum",),
            "mean": ("sum", "count"),
            "quantile": QUANTILE_OUTPUTS,
        }
        _invariant(tuple(o.name for o in self.outputs) == expected[self.measure], "outputs of the measure")
        _invariant((self.value is not None) == (self.measure in ("sum", "mean", "quantile")), "value spec")
        _invariant((self.quantile is not None) == (self.measure == "quantile"), "quantile spec")
        for output in self.outputs:
            _invariant(output.sensitivity.l0 == self.bounding.max_groups, "L0 differs from G")

    @property
    def group_columns(self) -> tuple[str, ...]:
        return tuple(g.column.qualified for g in self.groups)

    @property
    def person_level_groups(self) -> bool:
        return all(g.column.register == self.person_register for g in self.groups)

    @property
    def needs_person_join(self) -> bool:
        """Whether the grain rows must be joined to the person register (its attributes are used)."""
        if self.grain == self.person_register:
            return False
        return bool(self.person_filters) or any(
            g.column.register == self.person_register for g in self.groups
        )

    @property
    def loss_share(self) -> int:
        """Number of outputs the loss is split over (mean: sum and count, by `accuracy.mean_loss_weights`)."""
        return len(self.outputs)


def plan_query(query: Query, catalog: Catalog, context: ProjectContext, settings: EngineSettings) -> Plan:
    """Plan a query that ``validate`` accepted."""
    person = catalog.person_register
    groups = tuple(_group_key(catalog, qualified) for qualified in query.group_by)
    grain, grain_groups = grain_of(query, catalog, groups)
    filters = [_filter(catalog, c) for c in query.where]
    row_filters = tuple(f for f in filters if f.column.register == grain.name)
    person_filters = tuple(f for f in filters if f.column.register == person and grain.name != person)
    cohorts = _cohorts(f for f in filters if f.column.register not in (grain.name, person))
    # count_persons with an explicit register but no conditions on it: persons who have a row there.
    needs_presence = query.measure == "count_persons" and grain.name == person != query.register
    if needs_presence and query.register not in {c.register for c in cohorts}:
        cohorts = (*cohorts, Cohort(query.register, ()))
    columns = [catalog.register(g.column.register).column(g.column.column) for g in groups]
    cells = cell_count(catalog, columns)
    bounding = _bounding(query, grain, grain_groups)
    value = _value_spec(query, catalog, grain) if query.measure in ("sum", "mean", "quantile") else None
    quantile = (
        _quantile_spec(query, value, settings, cells) if value is not None and query.quantile_level else None
    )
    _check_overflow(catalog, bounding, value, quantile)
    outputs = _outputs(query.measure, bounding, value, quantile)
    kind: NoiseKind
    if query.epsilon is not None:
        kind = "laplace"
    elif query.rho is not None:
        kind = "gaussian"
    else:
        kind = "laplace" if context.mode == "pure" else "gaussian"
    loss = LossRequest(kind, query.epsilon, query.rho, query.target_ci, query.confidence)
    touched = {grain.name, *(c.register for c in cohorts)}
    if grain.name != person and (person_filters or any(g.column.register == person for g in groups)):
        touched.add(person)
    return Plan(
        measure=query.measure,
        grain=grain.name,
        person_register=person,
        row_filters=row_filters,
        person_filters=person_filters,
        cohorts=cohorts,
        groups=groups,
        bounding=bounding,
        value=value,
        quantile=quantile,
        outputs=outputs,
        loss=loss,
        cells=cells,
        partition_selection=any(g.is_open for g in groups),
        registers=tuple(sorted(touched)),
    )


def _group_key(catalog: Catalog, qualified: str) -> GroupKey:
    register, column = resolve_column(catalog, qualified)
    keys = catalog.keyset(column.keyset).values if column.keyset else None
    return GroupKey(ColumnRef(register.name, column.name), keys)


def _filter(catalog: Catalog, condition: Condition) -> Filter:
    register, column = resolve_column(catalog, condition.column)
    raw = condition.value if isinstance(condition.value, list) else [condition.value]
    values = tuple(typed_value(column, v, f"the condition on {register.name}.{column.name}") for v in raw)
    if condition.op == "in":
        values = tuple(sorted(set(values), key=lambda v: (str(type(v)), v)))
    return Filter(ColumnRef(register.name, column.name), condition.op, values)


make_filter = _filter  # for the analyses' plan (query_engine.cohort)


def _cohorts(filters: Iterable[Filter]) -> tuple[Cohort, ...]:
    by_register: dict[str, list[Filter]] = {}
    for f in filters:
        by_register.setdefault(f.column.register, []).append(f)
    return tuple(Cohort(name, tuple(fs)) for name, fs in sorted(by_register.items()))


def groups_one_person_reaches(grain_groups: Iterable[GroupKey]) -> int:
    """How many cells one person can reach: the product of the key-set sizes of the group columns that
    are not person-level (an open-domain column counts 1: it is bounded to one key per person).

    A person-level column (grain person, e.g. ``cpr.sex``) contributes a factor 1: the person has one
    value, enforced in SQL by keeping one row per person. So ``lpr.year x cpr.sex`` reaches at most
    as many cells as there are years, not twice as many.
    """
    reach = 1
    for group in grain_groups:
        reach *= 1 if group.keys is None else len(group.keys)
    return reach


def grain_of(
    query: Query, catalog: Catalog, groups: Sequence[GroupKey] | None = None
) -> tuple[Register, list[GroupKey]]:
    """The register whose rows are bounded, and the group columns on it (not on the person register)."""
    person = catalog.person_register
    if groups is None:
        groups = [_group_key(catalog, qualified) for qualified in query.group_by]
    grain = catalog.register(query.effective_register if query.measure == "count_persons" else query.register)
    grain_groups = [g for g in groups if g.column.register != person]
    if query.measure == "count_persons" and not grain_groups:
        # Counting persons with person-level groups only: the grain register (if any) is a cohort.
        grain = catalog.register(person)
    return grain, grain_groups


def tunable_bounds(query: Query, grain: Register, grain_groups: Sequence[GroupKey]) -> tuple[bool, bool]:
    """Whether the query's ``max_groups`` and ``max_rows`` are used (else G or c is fixed at 1)."""
    person_grain = grain.grain == "person"
    return (not person_grain and bool(grain_groups), not person_grain and query.measure != "count_persons")


def _bounding(query: Query, grain: Register, grain_groups: Sequence[GroupKey]) -> Bounding:
    """``G = min(max_groups, groups_one_person_reaches(...))``; ``c`` from the query or the catalog."""
    person_grain = grain.grain == "person"
    groups_tunable, rows_tunable = tunable_bounds(query, grain, grain_groups)
    if groups_tunable:
        reach = groups_one_person_reaches(grain_groups)
        max_groups = min(query.max_groups or grain.groups_per_person[0], reach)
        bound_groups = True
    else:
        max_groups, bound_groups = 1, False
    if rows_tunable:
        max_rows, bound_rows = query.max_rows or grain.rows_per_person[0], True
    else:  # one row per person on a person register (enforced); counting persons needs no row bound
        max_rows, bound_rows = 1, person_grain
    return Bounding(max_groups, max_rows, bound_rows, bound_groups)


def _value_spec(query: Query, catalog: Catalog, grain: Register) -> ValueSpec:
    qualified = query.qualified_column
    assert qualified is not None
    register, column = resolve_column(catalog, qualified)
    assert column.bounds is not None
    lo, hi = float(column.bounds.lo), float(column.bounds.hi)
    if query.bounds is not None:
        lo, hi = query.bounds
    return ValueSpec(
        column=ColumnRef(register.name, column.name),
        lo=lo,
        hi=hi,
        resolution=float(column.bounds.resolution),
        null_value=_null_constant(column, lo, hi),
    )


def _null_constant(column: Column, lo: float, hi: float) -> float:
    """The declared NULL constant, clamped into the query's bounds (so it cannot widen them)."""
    declared = float(column.null_value) if column.null_value is not None else lo
    return min(max(declared, lo), hi)


def _quantile_spec(query: Query, value: ValueSpec, settings: EngineSettings, cells: int) -> QuantileSpec:
    """The grid: the declared bounds at the declared resolution, coarsened to at most
    ``max_quantile_candidates`` points (and ``_MAX_QUANTILE_SCORES`` scores over all cells)."""
    level = query.quantile_level
    assert level is not None
    numerator, denominator = quantile_fraction(level)
    resolution = _exact(value.resolution)
    lo_units = math.ceil(_exact(value.lo) / resolution)
    hi_units = math.floor(_exact(value.hi) / resolution)
    span = hi_units - lo_units
    most = max(2, min(settings.max_quantile_candidates, _MAX_QUANTILE_SCORES // max(cells, 1)))
    step = max(1, math.ceil(span / (most - 1)))
    return QuantileSpec(
        level=level,
        numerator=numerator,
        denominator=denominator,
        lo_units=lo_units,
        step_units=step,
        candidates=span // step + 1,
    )


def _check_overflow(
    catalog: Catalog, bounding: Bounding, value: ValueSpec | None, quantile: QuantileSpec | None
) -> None:
    rows = catalog.max_persons * bounding.max_groups * bounding.max_rows
    if value is not None and quantile is None and rows * value.magnitude_units >= _INT64_LIMIT:
        raise FixedPointOverflow(
            f"A sum over up to {catalog.max_persons} persons with these bounds could overflow 64-bit "
            f"fixed point (max |value| {value.magnitude_units} units of {value.resolution}); narrow the "
            "bounds or lower max_rows/max_groups.",
            stage=_STAGE,
        )
    if quantile is not None and rows * quantile.denominator >= _INT64_LIMIT:
        raise FixedPointOverflow(
            "Quantile scores could overflow 64-bit integers; use a simpler quantile level such as 0.5.",
            stage=_STAGE,
        )


def _outputs(
    measure: Measure, bounding: Bounding, value: ValueSpec | None, quantile: QuantileSpec | None
) -> tuple[Output, ...]:
    g, c = bounding.max_groups, bounding.max_rows
    count = Sensitivity.for_contribution(g, c)
    if measure in ("count_persons", "count_rows"):
        return (Output("count", count),)
    assert value is not None
    if measure == "quantile":
        assert quantile is not None
        # Per cell, each score moves by at most c * max(num, den - num); a person touches G cells.
        # The point and the two interval ends are three selections with the same score sensitivity.
        scores = Sensitivity.for_contribution(g, c, quantile.score_linf_per_row)
        return tuple(Output(name, scores) for name in QUANTILE_OUTPUTS)
    if measure == "sum":
        return (Output("sum", Sensitivity.for_contribution(g, c, value.magnitude_units)),)
    # A mean sums values centred on the midpoint of their bounds: half the width per row, not max |bound|.
    centred = Sensitivity.for_contribution(g, c, value.centred_magnitude_units)
    return (Output("sum", centred), Output("count", count))


def _round_half_away(x: Fraction) -> int:
    """``x`` rounded to the nearest integer, halves away from zero (DuckDB's and Spark's ROUND)."""
    magnitude = math.floor(abs(x) + Fraction(1, 2))
    return magnitude if x >= 0 else -magnitude


def _exact(x: float) -> Fraction:
    """The decimal the number was written as (0.01, not 0.01000000000000000020816...)."""
    return Fraction(repr(x))
