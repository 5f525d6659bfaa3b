"""The plan of a model or a Table 1 (issue 16): which private tables to release, and the loss of each.

A model is fitted to private tables that the engine already knows how to release (``cohort.py``),
so its privacy argument is theirs (one row per person; sensitivity from the declaration):

==================  ====================================================  ==========================
measure             released tables                                       loss
==================  ====================================================  ==========================
poisson_regression  the rate table over the covariates: events (L1 = 1)   split evenly, as a rate
                    and person-time (L1 = T days) per cell
logistic_regression the histogram of persons by covariates x cohort.event  all of it (one histogram)
                    (one cell per person, L1 = 1)
table1              one histogram per variable: persons by group x level  split evenly between the
                    (each L1 = 1; a person is in one cell of each)        variables (see below)
==================  ====================================================  ==========================

Table 1's split balances the expected relative error: each variable's histogram has sensitivity 1,
so an even split gives every histogram the same noise scale, and every percentage (a level's count
over the group's persons) the same expected error relative to the group size; a median is read from
the histogram of its bins, with the same noise. Under zCDP an even split of rho over k histograms of
L2 sensitivity 1 is exactly one discrete Gaussian release of the stacked vector with L2 = sqrt(k)
(rho = k / (2 scale^2) either way), i.e. the combined release of issue 16 item 5.

The linear regression plans its own table (``linear_plan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, NoReturn

from .catalog import Catalog
from .cohort import AnalysisPlan, plan_analysis
from .errors import QueryError, TooManyGroupColumns, UnsupportedQuery, ValueOutsideDomain
from .settings import EngineSettings
from .spec import ProjectContext, Query
from .suggest import did_you_mean

__all__ = [
    "MAX_COVARIATES",
    "NUMERIC_VARIABLES",
    "ModelPlan",
    "Table1Variable",
    "plan_model",
]

_STAGE = "validate"
MAX_COVARIATES = 4
_MAX_TABLE1_GROUPS = 1
NUMERIC_VARIABLES = {"cohort.age": "cohort.age_band_5"}
"""Numeric Table 1 variables and the public bins their median is read from (age at index: 5-year bands)."""

ModelKind = Literal["poisson_regression", "logistic_regression", "table1"]


def _refuse(error: type[QueryError], message: str) -> NoReturn:
    raise error(message, stage=_STAGE)


@dataclass(frozen=True)
class Table1Variable:
    """One Table 1 variable: categorical (percent per level) or numeric (median from ``bins``)."""

    name: str
    kind: Literal["categorical", "numeric"]
    column: str  # the histogram's column (for a numeric variable: its bins)


@dataclass(frozen=True)
class ModelPlan:
    """The tables a model releases (``tables``, each an ``AnalysisPlan``) and how its loss is split."""

    measure: ModelKind
    tables: tuple[AnalysisPlan, ...]
    weights: tuple[Fraction, ...]  # the share of the loss of each table
    covariates: tuple[str, ...]
    reference: tuple[tuple[str, str | int | float], ...]
    variables: tuple[Table1Variable, ...] = ()
    cross: AnalysisPlan | None = None  # Table 1: every group and variable column, to run one statement

    @property
    def registers(self) -> tuple[str, ...]:
        return tuple(sorted({r for t in self.tables for r in t.registers}))

    @property
    def cells(self) -> int:
        return sum(t.cells for t in self.tables)


def plan_model(
    query: Query, catalog: Catalog, context: ProjectContext, settings: EngineSettings
) -> ModelPlan:
    """Check a poisson_regression, logistic_regression or table1 query and plan its tables."""
    if query.target_ci is not None:
        _refuse(
            UnsupportedQuery,
            f"A target_ci is not available for measure {query.measure!r}: the interval of a model's ratio "
            "depends on private counts. Give epsilon (or rho in a zcdp project), and use a preview to see the "
            "expected interval it gives.",
        )
    if query.measure == "table1":
        return _table1(query, catalog, context, settings)
    assert query.measure in ("poisson_regression", "logistic_regression")
    measure: ModelKind = query.measure
    covariates = tuple(query.group_by)
    if not covariates:
        _refuse(
            UnsupportedQuery,
            f'A {measure} needs covariates in group_by, e.g. ["cohort.metformin", "cpr.sex", '
            '"cohort.age_band"].',
        )
    if len(covariates) > MAX_COVARIATES:
        _refuse(
            TooManyGroupColumns,
            f"A {measure} takes at most {MAX_COVARIATES} covariates, got {len(covariates)}; remove some from "
            "group_by.",
        )
    if "cohort.event" in covariates:
        _refuse(
            UnsupportedQuery,
            "cohort.event is the outcome of the model, not a covariate; remove it from group_by.",
        )
    base = {"reference": None}
    # Up to four covariates (and the outcome column of a logistic model): more group columns than a
    # plain analysis takes; the cell limit still applies.
    settings = settings.model_copy(
        update={"max_group_columns": max(settings.max_group_columns, MAX_COVARIATES + 1)}
    )
    if measure == "poisson_regression":
        table = plan_analysis(
            query.model_copy(update={**base, "measure": "rate"}), catalog, context, settings
        )
    else:
        if query.per_person_years is not None:
            _refuse(UnsupportedQuery, "per_person_years is for rates; remove it from a logistic_regression.")
        histogram = query.model_copy(
            update={**base, "measure": "count_persons", "group_by": (*covariates, "cohort.event")}
        )
        table = plan_analysis(histogram, catalog, context, settings)
    reference = _reference(query, table)
    return ModelPlan(measure, (table,), (Fraction(1),), covariates, reference)


def _reference(query: Query, table: AnalysisPlan) -> tuple[tuple[str, str | int | float], ...]:
    """The reference levels (checked against the public key sets); the first key of each by default."""
    given = dict(query.reference or {})
    keys = dict(zip(query.group_by, (g.keys for g in table.groups), strict=False))
    unknown = [name for name in given if name not in keys]
    if unknown:
        _refuse(
            UnsupportedQuery,
            f"The reference level is given for {unknown[0]!r}, which is not a covariate.{did_you_mean(unknown[0], keys)}"
            f" Covariates: {', '.join(keys)}.",
        )
    chosen = []
    for name in query.group_by:
        levels = keys[name]
        level = given.get(name, levels[0])
        if level not in levels:
            shown = ", ".join(repr(k) for k in levels[:20])
            _refuse(
                ValueOutsideDomain,
                f"The reference level {level!r} of {name} is not one of its keys ({shown}); choose one of them.",
            )
        chosen.append((name, level))
    return tuple(chosen)


def _table1(query: Query, catalog: Catalog, context: ProjectContext, settings: EngineSettings) -> ModelPlan:
    if len(query.group_by) > _MAX_TABLE1_GROUPS:
        _refuse(
            TooManyGroupColumns,
            f'A table1 compares groups of one column (e.g. group_by ["cohort.metformin"]), got '
            f"{len(query.group_by)}; keep one.",
        )
    if query.reference is not None or query.per_person_years is not None:
        _refuse(UnsupportedQuery, "A table1 takes no 'reference' or 'per_person_years'; remove them.")
    assert query.variables is not None
    if len(set(query.variables)) != len(query.variables):
        _refuse(UnsupportedQuery, "A variable appears twice in 'variables'; list each once.")
    variables = []
    for name in query.variables:
        if name in query.group_by:
            _refuse(
                UnsupportedQuery,
                f"{name} is the column that splits the table into groups; remove it from 'variables'.",
            )
        if name in NUMERIC_VARIABLES:
            variables.append(Table1Variable(name, "numeric", NUMERIC_VARIABLES[name]))
        else:
            variables.append(Table1Variable(name, "categorical", name))
    tables = []
    for variable in variables:
        histogram = query.model_copy(
            update={
                "measure": "count_persons",
                "group_by": (*query.group_by, variable.column),
                "variables": None,
            }
        )
        try:
            tables.append(plan_analysis(histogram, catalog, context, settings))
        except QueryError as exc:
            exc.message = (
                f"Variable {variable.name}: {exc.message} Numeric variables: {', '.join(NUMERIC_VARIABLES)}."
            )
            exc.args = (exc.message,)
            raise
    columns = tuple(dict.fromkeys((*query.group_by, *(v.column for v in variables))))
    # The cross plan is never released (only its margins, the tables above, are): no cell limit.
    unlimited = settings.model_copy(update={"max_group_columns": len(columns), "max_cells": 2**62})
    everything = query.model_copy(update={"measure": "count_persons", "group_by": columns, "variables": None})
    cross = plan_analysis(everything, catalog, context, unlimited)
    share = Fraction(1, len(tables))
    return ModelPlan(
        "table1", tuple(tables), (share,) * len(tables), tuple(query.group_by), (), tuple(variables), cross
    )
