"""Population cohorts and Lexis splitting of person-time (issue 15: incidence by attained age).

**Population index.** ``"index": {"register": "cpr", "entry": [first, last], "min_age": 18}`` (no
``date``): every person of the person register enters on ``max(first, birthday at min_age)`` if that
day lies in ``[first, last]`` and the person is alive on it (``min_age`` omitted: 0, the birth day).
``where`` of the index filters the person's own row. Exclusions, outcome and exposures then work as
for an event index (e.g. an earlier E11 excludes prevalent cases, the first E11 after entry is the
outcome).

**Lexis splitting** (rates only). The group columns ``cohort.attained_age_band`` (and ``_5``) and
``cohort.attained_period`` place each day at risk in the cell of the person's age and calendar year
on that day: a person at risk on days ``[0, t)`` after the index (``t`` the clamped person-time of
the cohort) contributes ``|[0, t) ∩ [lo, hi)|`` days to the cell whose age band / period spans days
``[lo, hi)`` after their index, and their event (if any) to the one cell holding day ``t``. The age
band ``a-b`` of a person spans ``[birthday at a, birthday at b + 1)`` (``date + INTERVAL a YEAR``,
so a 29 February birthday falls on 28 February in other years); a period ``y1-y2`` spans
``[y1-01-01, (y2 + 1)-01-01)``.

Sensitivity: the cells of one person's split are disjoint pieces of ``[0, t)`` with ``t <= T``, so
their person-time adds up to at most ``T`` (L1 <= T; L2 <= T since the squares of non-negative parts
sum to at most the square of their sum) and their events to at most 1 (the event is in exactly the one
cell holding day ``t``). The declaration stays ``T`` and 1; only ``l0`` (cells one person can touch)
grows to the number of split cells, which no additive mechanism uses. See docs/privacy-model.md.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from .catalog import Catalog
from .errors import InvalidBounds, UnsupportedQuery
from .validate import typed_value

if TYPE_CHECKING:
    from .cohort import AnalysisGroup, AnalysisPlan, CohortPlan, IndexRule
    from .plan import Filter
    from .spec import IndexEvent

__all__ = [
    "AGE_KINDS",
    "ATTAINED_KINDS",
    "ATTAINED_NAMES",
    "attained_columns",
    "population_index",
    "Period",
    "calendar_periods",
    "PopulationEntry",
    "attained_periods",
    "birth_column",
    "lexis_cells",
    "population_entry",
]

_STAGE = "validate"
ATTAINED_KINDS = ("attained_age_band", "attained_period")
AGE_KINDS = ("age_band", "attained_age_band")  # group kinds that standardisation can use
ATTAINED_NAMES = ("attained_age_band", "attained_age_band_5", "attained_period")
# The open age band "N+" ends this many years after birth (beyond any follow-up).
_OPEN_BAND_END_YEARS = 200


@dataclass(frozen=True)
class Period:
    """One calendar period, ``first_year``..``last_year`` (a public key): of index dates or attained time."""

    label: str
    first_year: int
    last_year: int


def calendar_periods(first_year: int, last_year: int, width: int) -> tuple[Period, ...]:
    """Periods of ``width`` years from ``first_year``; the last is cut at ``last_year``."""
    periods = []
    for start in range(first_year, last_year + 1, width):
        end = min(start + width - 1, last_year)
        periods.append(Period(str(start) if start == end else f"{start}-{end}", start, end))
    return tuple(periods)


@dataclass(frozen=True)
class PopulationEntry:
    """A population index's checked window and entry age (``birth``: the birth-date column)."""

    entry_first: dt.date
    entry_last: dt.date
    min_age: int
    birth: str


def birth_column(catalog: Catalog) -> str:
    """The person register's birth-date column (the source of its derived age)."""
    person = catalog.register(catalog.person_register)
    for column in person.columns:
        if column.derivation is not None and column.derivation.kind == "age":
            return column.derivation.source
    raise UnsupportedQuery(
        f"The person register {person.name} has no derived age column, so a population index (entry at an "
        "age) and attained age bands are not available in this catalog.",
        stage=_STAGE,
    )


def population_index(index: IndexEvent, catalog: Catalog, filters: tuple[Filter, ...]) -> IndexRule:
    """Plan a population index (no ``date``) with its checked ``where`` on the person register."""
    from .cohort import IndexRule

    entry = population_entry(index, catalog)
    return IndexRule(
        catalog.person_register,
        None,
        filters,
        entry.entry_first,
        entry.entry_last,
        entry.min_age,
        entry.birth,
    )


def attained_columns(catalog: Catalog, cohort: CohortPlan) -> dict[str, AnalysisGroup]:
    """The cohort's attained group columns (rates only): age bands of the catalog, calendar periods."""
    from .cohort import AnalysisGroup

    person = catalog.register(catalog.person_register)
    columns = {}
    for name in ("age_band", "age_band_5"):
        keyset = person.column(name).keyset if person.has_column(name) else None
        if keyset is not None:
            keys = catalog.keyset(keyset).values
            columns[f"attained_{name}"] = AnalysisGroup(
                f"cohort.attained_{name}", "attained_age_band", keyset, keys
            )
    labels = tuple(p.label for p in attained_periods(cohort, catalog, cohort.period_years))
    columns["attained_period"] = AnalysisGroup("cohort.attained_period", "attained_period", "period", labels)
    return columns


def population_entry(index: IndexEvent, catalog: Catalog) -> PopulationEntry:
    """Check a population index (no ``date``): it must be on the person register."""
    person = catalog.person_register
    if index.register != person:
        raise UnsupportedQuery(
            f"An index without a 'date' is a population index and must be on the person register {person}; "
            f"got {index.register!r}. Give the date column of {index.register}'s index event, or use "
            f'"register": "{person}" for everyone alive in the entry window.',
            stage=_STAGE,
        )
    birth = birth_column(catalog)
    column = catalog.register(person).column(birth)
    what = f"the entry window of the population index ({person})"
    first, last = (typed_value(column, v, what) for v in index.entry)
    assert isinstance(first, dt.date) and isinstance(last, dt.date)
    if first > last:
        raise InvalidBounds(
            f"The entry window [{first}, {last}] is reversed; give [first day, last day].", stage=_STAGE
        )
    return PopulationEntry(first, last, index.min_age or 0, birth)


def attained_periods(cohort: CohortPlan, catalog: Catalog, width: int) -> tuple[Period, ...]:
    """Calendar periods of attained time: from the entry window's first year to the last year a person
    can be followed in (``min(reference date, entry end + T days)``), ``width`` years each."""
    reference = dt.date.fromisoformat(catalog.reference_date)
    last_day = min(reference, cohort.index.entry_last + dt.timedelta(days=cohort.follow_up_days))
    first_year = cohort.index.entry_first.year
    return calendar_periods(first_year, max(first_year, last_day.year), width)


def lexis_cells(groups: tuple[AnalysisGroup, ...]) -> int:
    """How many cells one person's person-time can be split over (1 without attained groups)."""
    return math.prod(len(g.keys) for g in groups if g.kind in ATTAINED_KINDS)


# --- SQL ---------------------------------------------------------------------------------------------


def _band_years(label: str) -> tuple[int, int]:
    closed = re.fullmatch(r"(\d+)-(\d+)", label)
    if closed:
        return int(closed.group(1)), int(closed.group(2)) + 1
    open_band = re.fullmatch(r"(\d+)\+", label)
    assert open_band is not None, label
    return int(open_band.group(1)), _OPEN_BAND_END_YEARS


def lexis_ctes(
    plan: AnalysisPlan, cohort: CohortPlan, catalog: Catalog, source: str
) -> list[tuple[str, Any]]:
    """CTEs splitting each row of ``source`` (pid, groups, event, t, index_date, birth) over the attained
    groups: ``lexis`` has one row per (person, attained cell) with that cell's ``event`` and ``t``."""
    index_date, birth = exp.column("index_date", table="c"), exp.column("birth", table="c")
    t = exp.column("t", table="c")

    def days_to(date: exp.Expr) -> exp.Expr:
        return exp.DateDiff(this=date, expression=index_date.copy())

    def at_age(years: exp.Expr) -> exp.Expr:
        return exp.DateAdd(this=birth.copy(), expression=years, unit=exp.Var(this="YEAR"))

    ctes: list[tuple[str, Any]] = []
    bounds: list[tuple[exp.Expr, exp.Expr]] = []
    outputs: list[exp.Expr] = [exp.column("pid", table="c")]
    joined: list[str] = []
    for i, group in enumerate(plan.groups):
        if group.kind not in ATTAINED_KINDS:
            outputs.append(exp.alias_(exp.column(f"g{i}", table="c"), f"g{i}"))
            continue
        alias = f"lx{i}"
        rows = _key_rows(group, cohort, catalog)
        lo: exp.Expr = exp.column("lo", table=alias)
        hi: exp.Expr = exp.column("hi", table=alias)
        if group.kind == "attained_age_band":
            lo, hi = at_age(lo), at_age(hi)
        bounds.append((days_to(lo), days_to(hi)))
        values = exp.values(rows, alias=alias, columns=["key", "lo", "hi"])
        ctes.append((alias, exp.select("key", "lo", "hi").from_(values)))
        joined.append(alias)
        outputs.append(exp.alias_(exp.column("key", table=alias), f"g{i}"))
    zero, one = exp.Literal.number(0), exp.Literal.number(1)
    # GREATEST/LEAST skip NULLs, so a NULL birth date (possible in data that does not enforce the
    # catalog's NOT NULL) would give every age band the whole [0, t): such a person is left out of an
    # attained-age split (below), and no other argument can be NULL (key bounds are literals).
    start = exp.Greatest(this=zero.copy(), expressions=[lo for lo, _ in bounds], ignore_nulls=True)
    stop = exp.Least(this=t.copy(), expressions=[hi for _, hi in bounds], ignore_nulls=True)
    days = exp.Greatest(
        this=exp.Sub(this=stop, expression=start), expressions=[zero.copy()], ignore_nulls=True
    )
    inside = [
        exp.and_(exp.GTE(this=t.copy(), expression=lo.copy()), exp.LT(this=t.copy(), expression=hi.copy()))
        for lo, hi in bounds
    ]
    holds_exit = exp.and_(exp.column("event", table="c").eq(one.copy()), *inside)
    event = exp.Case(ifs=[exp.If(this=holds_exit, true=one.copy())], default=zero.copy())
    split = exp.select(*outputs, exp.alias_(event, "event"), exp.alias_(days, "t")).from_(
        exp.alias_(exp.to_table(source), "c", table=True)
    )
    for alias in joined:
        split = split.join(alias, join_type="CROSS")
    if any(g.kind == "attained_age_band" for g in plan.groups):
        split = split.where(birth.copy().is_(exp.null()).not_())
    ctes.append(("lexis_cells", split))
    cell_t, cell_event = exp.column("t", table="lexis_cells"), exp.column("event", table="lexis_cells")
    kept = (
        exp.select("*").from_("lexis_cells").where(exp.or_(cell_t > zero.copy(), cell_event.eq(one.copy())))
    )
    ctes.append(("lexis", kept))
    return ctes


def _key_rows(group: AnalysisGroup, cohort: CohortPlan, catalog: Catalog) -> list[tuple[exp.Expr, ...]]:
    """(key, lo, hi) of each attained key: ages in years, or period start and end dates."""
    if group.kind == "attained_age_band":
        return [
            (exp.Literal.string(str(k)), *map(exp.Literal.number, _band_years(str(k)))) for k in group.keys
        ]
    periods = {p.label: p for p in attained_periods(cohort, catalog, cohort.period_years)}

    def day(year: int) -> exp.Expr:
        return exp.cast(exp.Literal.string(f"{year}-01-01"), "DATE")

    return [
        (exp.Literal.string(str(k)), day(periods[str(k)].first_year), day(periods[str(k)].last_year + 1))
        for k in group.keys
    ]
