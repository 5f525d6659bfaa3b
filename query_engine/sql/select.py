"""The SELECT list: group columns and exactly one aggregate (with CLAMP bounds or a bounds hint)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from sqlglot import exp
from sqlglot.tokens import TokenType

from ..spec import Measure
from .columns import derived_hint, is_person_key, resolve
from .nodes import NUMBER, describe, is_aggregate, literal, show_number
from .scope import Ref, Scope
from .text import DIALECT

__all__ = ["SUPPORTED_AGGREGATES", "Aggregate", "Item", "apply_bounds_hint", "select_list"]


SUPPORTED_AGGREGATES = (
    "COUNT(*), COUNT(DISTINCT person_id), SUM(col), AVG(col), MEDIAN(col) or "
    "PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col)"
)
_MENTIONS_BOUNDS = re.compile(r"\bbounds\s*:", re.IGNORECASE)  # any such comment must be a well-formed hint
_BOUNDS_HINT = re.compile(rf"\s*bounds\s*:\s*({NUMBER})\s*,\s*({NUMBER})\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Aggregate:
    """The one aggregate; COUNT(*) (``measure`` None) becomes count_rows or count_persons by the grain."""

    measure: Measure | None  # None: COUNT(*), decided by the grain
    column: Ref | None
    bounds: tuple[float, float] | None
    quantile: float | None
    offset: int


@dataclass(frozen=True)
class Item:
    """One selected group column."""

    ref: Ref
    alias: str | None


def select_list(scope: Scope, select: exp.Select) -> tuple[list[Item], Aggregate]:
    """The selected group columns and the one aggregate; anything else is refused."""
    groups: list[Item] = []
    aggregate: Aggregate | None = None
    for item in select.expressions:
        node, alias = (item.this, item.alias) if isinstance(item, exp.Alias) else (item, None)
        if isinstance(node, exp.Star) or (isinstance(node, exp.Column) and isinstance(node.this, exp.Star)):
            scope.refuse_node(
                node,
                "SELECT *",
                f"SELECT * is not supported; select the group columns and one aggregate: {SUPPORTED_AGGREGATES}.",
            )
        if isinstance(node, exp.Column):
            ref = resolve(scope, node)
            if any(g.ref.qualified == ref.qualified for g in groups):
                scope.refuse(
                    ref.offset, "repeated column", f"{ref.qualified} is selected twice; select it once."
                )
            groups.append(Item(ref, alias))
        elif is_aggregate(node):
            if aggregate is not None:
                scope.refuse_node(
                    node,
                    "multiple aggregates",
                    "a query has exactly one aggregate; run one query per aggregate.",
                )
            aggregate = _aggregate(scope, node)
        else:
            _not_a_select_item(scope, node)
    if aggregate is None:
        scope.refuse(
            scope.text.offset(select.expressions[0]) if select.expressions else scope.text.tokens[0].start,
            "no aggregate",
            f"the query needs exactly one aggregate: {SUPPORTED_AGGREGATES}. Person-level values are never released.",
        )
    return groups, aggregate


def _not_a_select_item(scope: Scope, node: exp.Expr) -> NoReturn:
    if isinstance(node, exp.Subquery) or node.find(exp.Select):
        scope.refuse_subquery(node.find(exp.Select) or node)
    if isinstance(node, exp.Window) or node.find(exp.Window):
        scope.refuse_node(node, "window function", "window functions (OVER) are not supported.")
    if node.find(exp.AggFunc):
        scope.refuse_node(
            node,
            "expression on an aggregate",
            f"only a bare aggregate can be selected, not {node.sql(dialect=DIALECT)!r}; compute with the released "
            "value instead (AVG(col) gives a mean).",
        )
    if isinstance(node, exp.Literal | exp.Boolean | exp.Null):
        scope.refuse_node(
            node, "constant", "constants cannot be selected; select group columns and one aggregate."
        )
    scope.refuse_node(
        node,
        describe(node),
        f"{describe(node)} is not supported in SELECT; select catalog columns (derived columns such as "
        f"age_band by name) and one aggregate: {SUPPORTED_AGGREGATES}.{derived_hint(scope, node)}",
    )


def _aggregate(scope: Scope, node: exp.Expr) -> Aggregate:
    offset = scope.text.offset(node)
    if isinstance(node, exp.Window):
        scope.refuse(offset, "window function", "window functions (OVER) are not supported.")
    if isinstance(node, exp.Filter):
        scope.refuse(
            offset, "FILTER", "an aggregate FILTER clause is not supported; put the condition in WHERE."
        )
    if isinstance(node, exp.Count):
        return _count(scope, node, offset)
    if isinstance(node, exp.Sum | exp.Avg | exp.Median):
        ref, bounds = _measured(scope, node.this, node)
        measure: Measure = (
            "sum" if isinstance(node, exp.Sum) else "mean" if isinstance(node, exp.Avg) else "quantile"
        )
        return Aggregate(measure, ref, bounds, 0.5 if measure == "quantile" else None, offset)
    if isinstance(node, exp.WithinGroup):
        return _percentile(scope, node, offset)
    name = describe(node)
    why = " (it would release one person's value)" if isinstance(node, exp.Min | exp.Max) else ""
    scope.refuse(offset, name, f"{name} is not supported{why}; the aggregates are {SUPPORTED_AGGREGATES}.")


def _count(scope: Scope, node: exp.Count, offset: int) -> Aggregate:
    arg = node.this
    if node.args.get("expressions"):
        scope.refuse(
            offset,
            "COUNT with several arguments",
            "COUNT takes one argument: COUNT(*) or COUNT(DISTINCT person_id).",
        )
    if isinstance(arg, exp.Star):
        return Aggregate(None, None, None, None, offset)
    if isinstance(arg, exp.Distinct):
        columns = arg.expressions
        if len(columns) == 1 and isinstance(columns[0], exp.Column) and is_person_key(scope, columns[0]):
            return Aggregate("count_persons", None, None, None, offset)
        at = scope.text.last_keyword(
            (TokenType.DISTINCT,), scope.text.offset(columns[0]) if columns else offset + 1
        )
        scope.refuse(
            at if at is not None else offset,
            "DISTINCT on other columns",
            "COUNT(DISTINCT ...) is only for the person key: write COUNT(DISTINCT person_id), or group by "
            "the column to count per value.",
        )
    if isinstance(arg, exp.Column):
        scope.refuse_node(
            arg,
            "COUNT(column)",
            "COUNT(column) is not supported: write COUNT(*) for rows of the FROM register or "
            "COUNT(DISTINCT person_id) for persons.",
        )
    _inside_aggregate(scope, arg)


def _percentile(scope: Scope, node: exp.WithinGroup, offset: int) -> Aggregate:
    function, order = node.this, node.expression
    if not isinstance(function, exp.PercentileCont | exp.PercentileDisc) or function.args.get("expression"):
        scope.refuse(
            offset,
            describe(function),
            f"{describe(function)} WITHIN GROUP is not supported; write PERCENTILE_CONT(q).",
        )
    level = _numeric(scope, function.this, "the percentile level")
    if not 0 < level < 1:
        scope.refuse_node(
            function.this,
            "percentile level",
            f"the percentile level must be between 0 and 1 (exclusive), got {level}.",
        )
    ordered = order.expressions if isinstance(order, exp.Order) else []
    if len(ordered) != 1:
        scope.refuse(offset, "WITHIN GROUP", "WITHIN GROUP needs exactly one column: (ORDER BY col).")
    item = ordered[0]
    if item.args.get("desc"):
        scope.refuse_node(
            item,
            "ORDER BY ... DESC",
            f"descending order is not supported; write PERCENTILE_CONT({show_number(1 - level)}) WITHIN GROUP (ORDER BY col).",
        )
    ref, bounds = _measured(scope, item.this, node)
    return Aggregate("quantile", ref, bounds, float(level), offset)


def _measured(scope: Scope, node: exp.Expr, aggregate: exp.Expr) -> tuple[Ref, tuple[float, float] | None]:
    """The aggregated column, with bounds if it is wrapped in CLAMP(col, lo, hi)."""
    if isinstance(node, exp.Column):
        return resolve(scope, node), None
    if isinstance(node, exp.Anonymous) and node.name.upper() == "CLAMP":
        args = node.expressions
        if len(args) != 3 or not isinstance(args[0], exp.Column):
            scope.refuse_node(node, "CLAMP", "CLAMP takes a column and two numbers: CLAMP(col, lo, hi).")
        lo = _numeric(scope, args[1], "a CLAMP bound")
        hi = _numeric(scope, args[2], "a CLAMP bound")
        return resolve(scope, args[0]), (float(lo), float(hi))
    if isinstance(node, exp.Distinct):
        keyword = scope.text.last_keyword((TokenType.DISTINCT,), scope.text.offset(node) + 1)
        scope.refuse(
            keyword if keyword is not None else scope.text.offset(node),
            "DISTINCT on other columns",
            f"DISTINCT inside {describe(aggregate)} is not supported; aggregate every row of the grain register.",
        )
    _inside_aggregate(scope, node)


def _inside_aggregate(scope: Scope, node: exp.Expr) -> NoReturn:
    if node.find(exp.Select):
        scope.refuse_subquery(node.find(exp.Select) or node)
    scope.refuse_node(
        node,
        "expression inside an aggregate",
        f"{node.sql(dialect=DIALECT)!r} inside an aggregate is not supported; aggregate a catalog column, "
        "optionally as CLAMP(col, lo, hi) to narrow its bounds.",
    )


def _numeric(scope: Scope, node: exp.Expr, what: str) -> int | float:
    value = literal(node)
    if isinstance(value, int | float):
        return value
    scope.refuse_node(
        node, "non-numeric literal", f"{what} must be a number, not {node.sql(dialect=DIALECT)!r}."
    )


def apply_bounds_hint(scope: Scope, aggregate: Aggregate) -> Aggregate:
    """The aggregate with the bounds of a ``/* bounds: lo, hi */`` comment, if the text has one."""
    hints = [(body, at) for body, at in scope.text.comments() if _MENTIONS_BOUNDS.search(body)]
    if not hints:
        return aggregate
    if len(hints) > 1:
        scope.refuse(hints[1][1], "bounds hint", "give one bounds hint per query.")
    body, at = hints[0]
    match = _BOUNDS_HINT.fullmatch(body)
    if match is None:
        scope.refuse(
            at,
            "bounds hint",
            f"the bounds hint {body.strip()!r} is malformed; write /* bounds: 0, 30 */.",
        )
    if aggregate.measure not in ("sum", "mean", "quantile"):
        scope.refuse(
            at,
            "bounds hint",
            "bounds apply to SUM, AVG, MEDIAN and PERCENTILE_CONT only; counts take none.",
        )
    if aggregate.bounds is not None:
        scope.refuse(at, "bounds hint", "the aggregate already has CLAMP bounds; give bounds once.")
    bounds = (float(match.group(1)), float(match.group(2)))
    return Aggregate(aggregate.measure, aggregate.column, bounds, aggregate.quantile, aggregate.offset)
