"""Analyses over a named cohort in SQL: ``FROM cohort('name')`` with ``RATE(...)`` or ``COUNT(*)``.

::

    SELECT cpr.sex, cohort.age_band, RATE(1000) FROM cohort('first-mi') GROUP BY cpr.sex, cohort.age_band
    SELECT cohort.attained_age_band, RATE(1000, 'esp2013') FROM cohort('adults-2010')
        GROUP BY cohort.attained_age_band
    SELECT cohort.event, COUNT(*) FROM cohort('first-mi') GROUP BY cohort.event

``cohort('name')`` names a cohort stored in the project (the service resolves it exactly as for a
JSON query with ``"cohort": "name"``). ``RATE(per_person_years [, standard_population])`` is the
measure ``rate`` (events per ``per_person_years``, default 1000; the second argument asks for direct
standardisation), and ``COUNT(*)`` is ``count_persons`` over the cohort's members. Group columns are
the cohort's columns (``cohort.age_band``, ``cohort.period``, ``cohort.attained_age_band`` ...) and
the person register's (``cpr.sex``), written qualified; the engine checks them against the catalog
with did-you-mean suggestions. Survival curves stay JSON-only (``measure: survival``): their time
bins and horizons do not read naturally as SQL.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from .nodes import literal, name_of
from .scope import Scope

__all__ = ["cohort_fields", "is_cohort_source"]

_COHORT_FUNCTION = "COHORT"
_NOT_JSON_ONLY = ("SURVIVAL", "KAPLAN_MEIER", "PREVALENCE")


def _source(select: exp.Select) -> exp.Anonymous | None:
    table = select.args["from_"].this if select.args.get("from_") else None
    if isinstance(table, exp.Table) and isinstance(table.this, exp.Anonymous):
        function = table.this
        if str(function.this).upper() == _COHORT_FUNCTION:
            return function
    return None


def is_cohort_source(select: exp.Select) -> bool:
    """Whether the statement reads ``FROM cohort('name')``."""
    return _source(select) is not None


def cohort_fields(scope: Scope, select: exp.Select) -> dict[str, Any]:
    """The Query fields of an analysis over ``FROM cohort('name')`` (SqlError with a position if not)."""
    source = _source(select)
    assert source is not None
    name = _cohort_name(scope, source)
    table = select.args["from_"].this
    if table.alias:
        scope.refuse_node(
            table,
            "alias of a cohort",
            f"cohort('{name}') takes no alias: its columns are always written cohort.<column>.",
        )
    for arg, word in (("joins", "JOIN"), ("where", "WHERE")):
        if select.args.get(arg):
            node = select.args[arg][0] if isinstance(select.args[arg], list) else select.args[arg]
            scope.refuse_node(
                node,
                f"{word} on a cohort",
                f"{word} is not available over cohort('{name}'): put conditions in the cohort's definition "
                "(or send the JSON query with 'where'), and group by a column instead of filtering on it.",
            )
    groups: list[str] = []
    measure: dict[str, Any] | None = None
    for item in select.expressions:
        node = item.this if isinstance(item, exp.Alias) else item
        if isinstance(node, exp.Column):
            groups.append(_group_name(scope, node))
            continue
        if measure is not None:
            scope.refuse_node(
                node, "second measure", "a query over a cohort has one measure; remove this one."
            )
        measure = _measure(scope, node)
    if measure is None:
        scope.refuse_node(
            select, "no measure", f"add RATE(1000) or COUNT(*) to the SELECT list over cohort('{name}')."
        )
    _check_group_by(scope, select, groups)
    return {"cohort": name, "group_by": groups, **measure}


def _cohort_name(scope: Scope, source: exp.Anonymous) -> str:
    args = source.expressions
    value = literal(args[0]) if len(args) == 1 else None
    if not isinstance(value, str) or not value:
        scope.refuse_node(
            source,
            "cohort()",
            "cohort() takes one quoted name of a cohort stored in the project, e.g. cohort('first-mi').",
        )
    return value


def _group_name(scope: Scope, column: exp.Column) -> str:
    qualifier = column.table.lower()
    if not qualifier:
        scope.refuse_node(
            column,
            "unqualified column",
            f"write the column with its source over a cohort: cohort.{name_of(column.this)} (a cohort column) "
            f"or {scope.catalog.person_register}.{name_of(column.this)} (a person attribute).",
        )
    return f"{qualifier}.{name_of(column.this)}"


def _measure(scope: Scope, node: exp.Expr) -> dict[str, Any]:
    if isinstance(node, exp.Count) and isinstance(node.this, exp.Star):
        return {"measure": "count_persons"}
    function = str(node.this).upper() if isinstance(node, exp.Anonymous) else ""
    if function == "RATE":
        return _rate(scope, node)
    if function in _NOT_JSON_ONLY:
        scope.refuse_node(
            node,
            function,
            f"{function}(...) is not part of the SQL dialect: survival curves and prevalences are JSON-only "
            "(POST /v1/queries with measure 'survival' or 'prevalence').",
        )
    scope.refuse_node(
        node,
        "measure over a cohort",
        "over a cohort the SELECT list takes group columns and one measure: RATE(1000), "
        "RATE(1000, 'esp2013') or COUNT(*).",
    )


def _rate(scope: Scope, node: exp.Expr) -> dict[str, Any]:
    args = [literal(a) for a in node.expressions]
    per = args[0] if args else None
    population = args[1] if len(args) > 1 else None
    valid_per = per is None or (isinstance(per, int | float) and not isinstance(per, bool) and per > 0)
    if len(args) > 2 or not valid_per or (len(args) > 1 and not isinstance(population, str)):
        scope.refuse_node(
            node,
            "RATE()",
            "RATE takes the person-years to express the rate per (a positive number, default 1000) and "
            "optionally a quoted standard population, e.g. RATE(1000) or RATE(1000, 'esp2013').",
        )
    fields: dict[str, Any] = {"measure": "rate"}
    if per is not None:
        fields["per_person_years"] = per
    if population is not None:
        fields["standard_population"] = population
    return fields


def _check_group_by(scope: Scope, select: exp.Select, groups: list[str]) -> None:
    group = select.args.get("group")
    for node in group.expressions if group else []:
        if not isinstance(node, exp.Column):
            scope.refuse_node(node, "GROUP BY", "GROUP BY over a cohort lists its group columns by name.")
    written = [_group_name(scope, c) for c in group.expressions] if group else []
    if sorted(written) != sorted(groups):
        at = group if group is not None else select
        scope.refuse_node(
            at,
            "GROUP BY",
            f"GROUP BY must list exactly the group columns of the SELECT list ({', '.join(groups) or 'none'}); "
            f"it lists {', '.join(written) or 'none'}.",
        )
