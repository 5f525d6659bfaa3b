"""The plan of an analysis over persons (issue 15): a declared cohort, its public groups and outputs.

An analysis is a query with a ``cohort`` or a measure ``rate``, ``survival`` or ``prevalence``
(``Query.is_analysis``). Its private table has **one row per person** (``compile_cohort``), so
the privacy argument is the same for every measure: adding or removing one person (all their rows
in every register) adds or removes exactly one row of that table, and changes no other person's row
(every step is partitioned by person). Each released vector is a histogram or a sum over that table:

=============  ===========================================  =====================================
measure        released vectors (per public cell)           one person changes (declared)
=============  ===========================================  =====================================
count_persons  persons per group                            one cell by 1: L1 = 1
rate           events; person-time in days                  one cell by <= 1; one cell by <= T
survival       persons per (group, exit bin, status)        one cell by 1: L1 = 1
prevalence     persons per (group, has the condition)       one cell by 1: L1 = 1
=============  ===========================================  =====================================

``T`` is ``round(365.25 * follow_up_years)`` days, a public declaration: person-time is clamped to
``[0, T]`` in SQL and ``event`` is a 0/1 ``CASE``, so the bounds hold whatever the data hold. Group
keys come from public key sets (catalog key sets; periods from the declared entry window; 0/1 for
events and exposures) and every key is released, zeros included.

Everything here is checked against the catalog first (stage ``validate``), with did-you-mean
suggestions; a named cohort (a string) must have been resolved by the service before the engine sees it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal, NoReturn

from .catalog import Catalog
from .cohort_lexis import (
    ATTAINED_KINDS,
    ATTAINED_NAMES,
    Period,
    attained_columns,
    calendar_periods,
    lexis_cells,
    population_index,
)
from .errors import (
    EngineInternalError,
    InvalidBounds,
    QueryError,
    TooManyCells,
    TooManyGroupColumns,
    UnknownColumn,
    UnsupportedQuery,
    ValueOutsideDomain,
)
from .mechanisms import Sensitivity
from .plan import Cohort, Filter, LossRequest, make_filter
from .settings import EngineSettings
from .spec import (
    DEFAULT_PER_PERSON_YEARS,
    CohortDefinition,
    Condition,
    EventRule,
    ProjectContext,
    Query,
    TimeBins,
)
from .suggest import did_you_mean
from .validate import check_condition, check_loss, resolve_column, resolve_register, typed_value

__all__ = [
    "MAX_SURVIVAL_BINS",
    "AnalysisGroup",
    "AnalysisOutput",
    "AnalysisPlan",
    "Bins",
    "CohortPlan",
    "DatedRule",
    "IndexRule",
    "Period",
    "check_cohort",
    "follow_up_days",
    "plan_analysis",
]

_STAGE = "validate"
MAX_SURVIVAL_BINS = 400
_MAX_SURVIVAL_GROUPS = 2
_DAYS_PER_YEAR = Fraction(1461, 4)  # 365.25
_UNIT_DAYS = {"days": Fraction(1), "months": _DAYS_PER_YEAR / 12, "years": _DAYS_PER_YEAR}
_DEFAULT_HORIZONS = (1.0, 5.0, 10.0)
# An outcome on a date column of this name (a death) counts on the index day itself.
_SAME_DAY_DATE_COLUMN = "death_date"

AnalysisMeasure = Literal["count_persons", "rate", "survival", "prevalence"]
GroupKind = Literal[
    "age_band", "period", "event", "exposure", "person", "attained_age_band", "attained_period"
]


def _refuse(error: type[QueryError], message: str) -> NoReturn:
    raise error(message, stage=_STAGE)


def follow_up_days(years: float) -> int:
    """``T = round(365.25 * years)`` days (halves up): the declared most person-time of one person."""
    return math.floor(_DAYS_PER_YEAR * Fraction(repr(float(years))) + Fraction(1, 2))


@dataclass(frozen=True)
class DatedRule:
    """Rows of ``register`` matching ``filters``, dated by ``date``; ``lookback_days`` limits how far
    before the index date they count (``None``: any time)."""

    register: str
    date: str
    filters: tuple[Filter, ...]
    lookback_days: int | None = None


@dataclass(frozen=True)
class IndexRule:
    """The index event: the first row (date, then row_key) matching ``filters`` dated in the entry window;
    ``date`` None: a population index (entry at max(entry_first, birthday at min_age); cohort_lexis)."""

    register: str
    date: str | None
    filters: tuple[Filter, ...]
    entry_first: dt.date
    entry_last: dt.date
    min_age: int = 0
    birth: str | None = None


@dataclass(frozen=True)
class CohortPlan:
    """A checked cohort: index, exclusions, outcome (``None``: death), exposures, follow-up ``T`` days."""

    index: IndexRule
    exclusions: tuple[DatedRule, ...]
    outcome: DatedRule | None
    outcome_same_day: bool
    exposures: tuple[tuple[str, DatedRule], ...]
    follow_up_years: float
    follow_up_days: int
    periods: tuple[Period, ...]
    period_years: int = 5

    def __post_init__(self) -> None:
        if self.follow_up_days != follow_up_days(self.follow_up_years) or self.follow_up_days < 1:
            raise EngineInternalError(
                "Invalid cohort plan (a bug in sundstat): follow-up days.", stage="plan"
            )


@dataclass(frozen=True)
class AnalysisGroup:
    """A public group column of an analysis and its full key set in order.

    ``source`` is the person column (``person``), the key set (``age_band``), or the exposure name.
    """

    name: str
    kind: GroupKind
    source: str
    keys: tuple[str | int, ...]


@dataclass(frozen=True)
class Bins:
    """Survival exit bins of ``length_days = num/den`` days: bin ``min(t * den // num, count - 1)``.

    The last bin ends at the follow-up ``T`` days (a remainder under one day joins it).
    """

    unit: Literal["days", "months", "years"]
    width: int
    num: int
    den: int
    count: int
    follow_up_days: int

    @property
    def length_days(self) -> Fraction:
        return Fraction(self.num, self.den)

    def end_days(self, b: int) -> Fraction:
        """The end of bin ``b`` in days (the last bin ends at the follow-up maximum)."""
        return min(self.length_days * (b + 1), Fraction(self.follow_up_days))

    @property
    def unit_days(self) -> Fraction:
        """Days in one unit (a month is 365.25 / 12 days)."""
        return _UNIT_DAYS[self.unit]

    def in_units(self, days: Fraction) -> float:
        return float(days / self.unit_days)


@dataclass(frozen=True)
class AnalysisOutput:
    """One exact integer vector of the private table, with its declared sensitivity."""

    name: Literal["count", "events", "person_time"]
    sensitivity: Sensitivity


@dataclass(frozen=True)
class AnalysisPlan:
    """Everything compile_cohort, the mechanisms and the release need; hashable (SQL is cached by it)."""

    measure: AnalysisMeasure
    cohort: CohortPlan | None
    person_register: str
    person_filters: tuple[Filter, ...]
    presence: tuple[Cohort, ...]
    groups: tuple[AnalysisGroup, ...]
    condition: Cohort | None
    bins: Bins | None
    outputs: tuple[AnalysisOutput, ...]
    loss: LossRequest
    cells: int
    registers: tuple[str, ...]
    per_person_years: float | None = None
    standard_population: str | None = None
    standard_population_persons: tuple[tuple[str, float], ...] | None = None
    horizons_years: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        expected = _outputs(self.measure, self.cohort, self.groups)
        checks = [
            (self.outputs == expected, "outputs and their sensitivity"),
            ((self.bins is not None) == (self.measure == "survival"), "bins"),
            ((self.condition is not None) == (self.measure == "prevalence"), "condition"),
            (self.cohort is not None or self.measure == "prevalence", "cohort"),
            (self.cells == self.group_cells * self.cells_per_group, "cells"),
        ]
        for ok, what in checks:
            if not ok:
                raise EngineInternalError(f"Invalid analysis plan (a bug in sundstat): {what}.", stage="plan")

    @property
    def group_cells(self) -> int:
        return math.prod(len(g.keys) for g in self.groups)

    @property
    def cells_per_group(self) -> int:
        """Histogram cells inside one group: (bin, status) for survival, has-the-condition for prevalence."""
        if self.bins is not None:
            return self.bins.count * 2
        return 2 if self.measure == "prevalence" else 1


def _outputs(
    measure: AnalysisMeasure, cohort: CohortPlan | None, groups: tuple[AnalysisGroup, ...]
) -> tuple[AnalysisOutput, ...]:
    """The released vectors and their declared sensitivities (module docstring; cohort_lexis for l0)."""
    one = Sensitivity.for_contribution(1, 1)
    if measure != "rate":
        return (AnalysisOutput("count", one),)
    assert cohort is not None
    time = replace(Sensitivity.for_contribution(1, 1, cohort.follow_up_days), l0=lexis_cells(groups))
    return (AnalysisOutput("events", one), AnalysisOutput("person_time", time))


def plan_analysis(
    query: Query, catalog: Catalog, context: ProjectContext, settings: EngineSettings
) -> AnalysisPlan:
    """Check an analysis query against the catalog and plan it (errors at stage ``validate``)."""
    check_loss(query, context, settings)
    _check_unused_fields(query)
    if isinstance(query.cohort, str):
        _refuse(
            UnsupportedQuery,
            f"The cohort {query.cohort!r} is a name: the service looks up the project's named cohorts before "
            "the engine runs. Send the query to the service, or give the cohort's definition itself.",
        )
    person = catalog.person_register
    cohort = _cohort_plan(query.cohort, catalog) if query.cohort is not None else None
    groups = _groups(query, catalog, cohort, settings)
    person_filters, presence = _population(query, catalog)
    condition = None
    if query.condition is not None:
        register = resolve_register(catalog, query.condition.register).name
        filters = _rule_filters(catalog, register, query.condition.where, "the condition")
        condition = Cohort(register, filters)
    bins = _bins(query.time_bins or TimeBins(), cohort) if query.measure == "survival" else None
    assert query.measure in ("count_persons", "rate", "survival", "prevalence")
    measure: AnalysisMeasure = query.measure
    group_cells = math.prod(len(g.keys) for g in groups)
    per_group = bins.count * 2 if bins is not None else (2 if measure == "prevalence" else 1)
    cells = group_cells * per_group
    if cells > settings.max_cells:
        _refuse(
            TooManyCells,
            f"The analysis has {cells} histogram cells ({group_cells} groups x {per_group}); at most "
            f"{settings.max_cells} are allowed. Group by fewer or coarser columns"
            + (", or use wider time bins." if bins is not None else "."),
        )
    outputs = _outputs(measure, cohort, groups)
    touched = {person, *(c.register for c in presence)}
    if condition is not None:
        touched.add(condition.register)
    if cohort is not None:
        touched |= {cohort.index.register, *(r.register for r in cohort.exclusions)}
        touched |= {r.register for _, r in cohort.exposures}
        if cohort.outcome is not None:
            touched.add(cohort.outcome.register)
    return AnalysisPlan(
        measure=measure,
        cohort=cohort,
        person_register=person,
        person_filters=person_filters,
        presence=presence,
        groups=groups,
        condition=condition,
        bins=bins,
        outputs=outputs,
        loss=_loss_request(query, context),
        cells=cells,
        registers=tuple(sorted(touched)),
        per_person_years=float(query.per_person_years or DEFAULT_PER_PERSON_YEARS)
        if measure == "rate"
        else None,
        standard_population=query.standard_population,
        standard_population_persons=(
            tuple(sorted(query.standard_population_persons.items()))
            if query.standard_population_persons is not None
            else None
        ),
        horizons_years=_horizons(query, cohort) if measure == "survival" else (),
    )


def _check_unused_fields(query: Query) -> None:
    for name in ("column", "bounds", "quantile", "max_groups", "max_rows"):
        if getattr(query, name) is not None:
            _refuse(
                UnsupportedQuery,
                f"The field '{name}' is not used by a {query.measure} over persons (each person counts once, with "
                "bounds declared by the cohort); remove it.",
            )
    if query.register != "cpr":
        _refuse(
            UnsupportedQuery,
            f"An analysis counts persons and takes no 'register' (got {query.register!r}); put conditions "
            "on other registers in 'where' or in the cohort definition.",
        )
    if query.target_ci is not None and query.measure != "count_persons":
        _refuse(
            UnsupportedQuery,
            f"A target_ci is not available for measure {query.measure!r}: its interval depends on private "
            "counts and person-time. Give epsilon (or rho in a zcdp project) instead, and use a preview to "
            "see the noise it gives.",
        )


def _loss_request(query: Query, context: ProjectContext) -> LossRequest:
    if query.epsilon is not None:
        kind: Literal["laplace", "gaussian"] = "laplace"
    elif query.rho is not None:
        kind = "gaussian"
    else:
        kind = "laplace" if context.mode == "pure" else "gaussian"
    return LossRequest(kind, query.epsilon, query.rho, query.target_ci, query.confidence)


def _date_column(catalog: Catalog, register: str, date: str, what: str) -> str:
    register_obj, column = resolve_column(catalog, f"{register}.{date}")
    if column.type != "date" or column.is_derived:
        dates = [
            c.name for c in register_obj.columns if c.type == "date" and c.queryable and not c.is_derived
        ]
        _refuse(
            UnsupportedQuery,
            f"The date of {what} must be a date column of {register} ({', '.join(dates) or 'none'}); "
            f"{date!r} is not one.",
        )
    return column.name


def _rule_filters(
    catalog: Catalog, register: str, where: tuple[Condition, ...], what: str
) -> tuple[Filter, ...]:
    filters = []
    for condition in where:
        qualified = condition.column if "." in condition.column else f"{register}.{condition.column}"
        on, _ = resolve_column(catalog, qualified)
        if on.name != register:
            _refuse(
                UnsupportedQuery,
                f"The conditions of {what} must be on its register {register}; {qualified} is on {on.name}. "
                f"Give {on.name} a rule of its own (an exclusion or an exposure) or a condition in 'where'.",
            )
        checked = condition.model_copy(update={"column": qualified})
        check_condition(checked, catalog)
        filters.append(make_filter(catalog, checked))
    return tuple(filters)


def _dated_rule(catalog: Catalog, rule: EventRule, what: str, lookback: int | None = None) -> DatedRule:
    register = resolve_register(catalog, rule.register).name
    date = _date_column(catalog, register, rule.date, what)
    filters = _rule_filters(catalog, register, rule.where, what)
    return DatedRule(register, date, filters, lookback)


def check_cohort(definition: CohortDefinition, catalog: Catalog) -> CohortPlan:
    """Check a cohort definition against the catalog alone (e.g. before storing it under its name)."""
    return _cohort_plan(definition, catalog)


def _index_rule(definition: CohortDefinition, catalog: Catalog) -> IndexRule:
    if definition.index.is_population:
        where = _rule_filters(
            catalog, catalog.person_register, definition.index.where, "the population index"
        )
        return population_index(definition.index, catalog, where)
    if definition.index.min_age is not None:
        _refuse(
            UnsupportedQuery,
            "min_age belongs to a population index (without 'date'); for an index event, restrict the age "
            "with a condition on the person register in 'where' instead.",
        )
    index = _dated_rule(catalog, definition.index, "the index event")
    assert index.date is not None
    date_column = catalog.register(index.register).column(index.date)
    what = f"the entry window of the index event ({index.register}.{index.date})"
    first, last = (typed_value(date_column, v, what) for v in definition.index.entry)
    assert isinstance(first, dt.date) and isinstance(last, dt.date)
    if first > last:
        _refuse(InvalidBounds, f"The entry window [{first}, {last}] is reversed; give [first day, last day].")
    return IndexRule(index.register, index.date, index.filters, first, last)


def _cohort_plan(definition: CohortDefinition, catalog: Catalog) -> CohortPlan:
    index = _index_rule(definition, catalog)
    first, last = index.entry_first, index.entry_last
    exclusions = tuple(
        _dated_rule(catalog, rule, f"exclusion {i + 1}", rule.lookback_days)
        for i, rule in enumerate(definition.exclude)
    )
    outcome = _dated_rule(catalog, definition.outcome, "the outcome") if definition.outcome else None
    exposures = tuple(
        (e.name, _dated_rule(catalog, e, f"exposure {e.name!r}", e.lookback_days))
        for e in definition.exposures
    )
    reserved = {"age_band", "age_band_5", "period", "event", *ATTAINED_NAMES}
    for name, _ in exposures:
        if name in reserved:
            _refuse(
                UnsupportedQuery,
                f"The exposure name {name!r} is taken by a cohort column ({', '.join(sorted(reserved))}); "
                "rename the exposure.",
            )
    return CohortPlan(
        index=index,
        exclusions=exclusions,
        outcome=outcome,
        outcome_same_day=outcome is not None and outcome.date == _SAME_DAY_DATE_COLUMN,
        exposures=exposures,
        follow_up_years=definition.follow_up_in_years,
        follow_up_days=definition.follow_up_days or follow_up_days(definition.follow_up_in_years),
        periods=calendar_periods(first.year, last.year, definition.period_years),
        period_years=definition.period_years,
    )


def _cohort_columns(catalog: Catalog, cohort: CohortPlan) -> dict[str, AnalysisGroup]:
    person = catalog.register(catalog.person_register)
    columns: dict[str, AnalysisGroup] = {}
    for name in ("age_band", "age_band_5"):
        if person.has_column(name) and person.column(name).keyset:
            keyset = person.column(name).keyset
            assert keyset is not None
            columns[name] = AnalysisGroup(f"cohort.{name}", "age_band", keyset, catalog.keyset(keyset).values)
    columns["period"] = AnalysisGroup(
        "cohort.period", "period", "period", tuple(p.label for p in cohort.periods)
    )
    columns.update(attained_columns(catalog, cohort))
    columns["event"] = AnalysisGroup("cohort.event", "event", "event", (0, 1))
    for name, _ in cohort.exposures:
        columns[name] = AnalysisGroup(f"cohort.{name}", "exposure", name, (0, 1))
    return columns


def _groups(
    query: Query, catalog: Catalog, cohort: CohortPlan | None, settings: EngineSettings
) -> tuple[AnalysisGroup, ...]:
    limit = _MAX_SURVIVAL_GROUPS if query.measure == "survival" else settings.max_group_columns
    if len(query.group_by) > limit:
        _refuse(
            TooManyGroupColumns,
            f"A {query.measure} takes at most {limit} group columns, got {len(query.group_by)}; remove some "
            "from group_by.",
        )
    if len(set(query.group_by)) != len(query.group_by):
        _refuse(UnsupportedQuery, "A column appears twice in group_by; list each once.")
    person = catalog.register(catalog.person_register)
    groups = []
    for name in query.group_by:
        prefix, _, column_name = name.partition(".")
        if prefix == "cohort":
            if cohort is None:
                _refuse(
                    UnsupportedQuery,
                    f"The column {name} belongs to a cohort, and this query has none; add a 'cohort' or group by "
                    f"columns of {person.name}.",
                )
            available = _cohort_columns(catalog, cohort)
            if column_name not in available:
                _refuse(
                    UnknownColumn,
                    f"Unknown cohort column {column_name!r}.{did_you_mean(column_name, available)} Columns of "
                    f"the cohort: {', '.join(g.name for g in available.values())}.",
                )
            group = available[column_name]
            if group.kind == "event" and query.measure in ("rate", "survival"):
                _refuse(
                    UnsupportedQuery,
                    f"A {query.measure} counts the events itself; remove cohort.event from group_by.",
                )
            if group.kind in ATTAINED_KINDS and query.measure != "rate":
                _refuse(
                    UnsupportedQuery,
                    f"{group.name} splits each person's time over several cells, which only a rate can use; "
                    f"group a {query.measure} by cohort.age_band or cohort.period (at the index) instead.",
                )
            groups.append(group)
            continue
        register, column = resolve_column(catalog, name)
        if register.name != person.name:
            _refuse(
                UnsupportedQuery,
                f"An analysis groups persons by cohort columns (cohort.age_band, cohort.period, ...) or by "
                f"columns of {person.name}; {name} is on {register.name}. Put {register.name} in 'where' or "
                "in the cohort definition instead.",
            )
        if column.keyset is None or column.open_domain:
            _refuse(
                UnsupportedQuery,
                f"Column {name} has no public key set and cannot be grouped by; group by a column with one.",
            )
        assert column.keyset is not None
        groups.append(AnalysisGroup(name, "person", column.name, catalog.keyset(column.keyset).values))
    return tuple(groups)


def _population(query: Query, catalog: Catalog) -> tuple[tuple[Filter, ...], tuple[Cohort, ...]]:
    """``where`` as conditions on the person's own row (person register) and on having a row elsewhere."""
    person = catalog.person_register
    person_filters: list[Filter] = []
    by_register: dict[str, list[Filter]] = {}
    for condition in query.where:
        if condition.column.partition(".")[0] == "cohort":
            _refuse(
                UnsupportedQuery,
                f"The 'where' list cannot filter on the cohort column {condition.column}; group by it instead, or "
                "narrow the cohort's definition.",
            )
        check_condition(condition, catalog)
        checked = make_filter(catalog, condition)
        if checked.column.register == person:
            person_filters.append(checked)
        else:
            by_register.setdefault(checked.column.register, []).append(checked)
    presence = tuple(Cohort(name, tuple(fs)) for name, fs in sorted(by_register.items()))
    return tuple(person_filters), presence


def _bins(bins: TimeBins, cohort: CohortPlan | None) -> Bins:
    assert cohort is not None
    length = _UNIT_DAYS[bins.unit] * bins.width
    total = cohort.follow_up_days
    whole, rest = divmod(Fraction(total), length)
    # T is the follow-up rounded to a day: a last bin shorter than one day would only hold that rounding.
    count = max(1, int(whole) + (1 if rest >= 1 else 0))
    if count > MAX_SURVIVAL_BINS:
        _refuse(
            ValueOutsideDomain,
            f"Bins of {bins.width} {bins.unit} over {cohort.follow_up_years:g} years of follow-up make {count} "
            f"bins; at most {MAX_SURVIVAL_BINS} are allowed. Use wider bins (e.g. months instead of days).",
        )
    if length > total:
        _refuse(
            ValueOutsideDomain,
            f"A bin of {bins.width} {bins.unit} is longer than the follow-up of {cohort.follow_up_years:g} "
            "years; use narrower bins.",
        )
    return Bins(bins.unit, bins.width, length.numerator, length.denominator, count, total)


def _horizons(query: Query, cohort: CohortPlan | None) -> tuple[float, ...]:
    assert cohort is not None
    maximum = cohort.follow_up_years
    if query.horizons_years is None:
        return tuple(h for h in _DEFAULT_HORIZONS if h <= maximum)
    beyond = [h for h in query.horizons_years if h > maximum]
    if beyond:
        _refuse(
            ValueOutsideDomain,
            f"The horizon {beyond[0]:g} years is beyond the follow-up of {maximum:g} years; give horizons "
            "within the follow-up.",
        )
    return tuple(sorted(set(query.horizons_years)))
