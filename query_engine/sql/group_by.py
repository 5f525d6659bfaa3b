"""GROUP BY: exactly the selected group columns (by name, alias or ordinal), nothing else."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.tokens import TokenType

from .columns import derived_hint, resolve
from .errors import SqlSyntaxError
from .nodes import describe, literal, name_of, unparen
from .scope import Ref, Scope
from .select import Item
from .text import DIALECT

__all__ = ["group_by"]


def group_by(scope: Scope, select: exp.Select, groups: list[Item]) -> None:
    """Refuse a GROUP BY that is not exactly the selected group columns."""
    group = select.args.get("group")
    if group is None:
        if groups:
            first = groups[0].ref
            scope.refuse(
                first.offset,
                "column without GROUP BY",
                f"{first.qualified} is neither aggregated nor grouped; add GROUP BY "
                f"{', '.join(g.ref.column for g in groups)}.",
            )
        return
    for arg in ("all", "rollup", "cube", "grouping_sets", "totals"):
        if group.args.get(arg):
            at = scope.text.keyword((TokenType.GROUP_BY,), top_level=True)
            word = "GROUP BY ALL" if arg == "all" else arg.replace("_", " ").upper()
            listed = ", ".join(g.ref.column for g in groups) or "<columns>"
            scope.refuse(
                at if at is not None else scope.text.offset(group),
                word,
                f"{word} is not supported; list the group columns: GROUP BY {listed}.",
            )
    if not group.expressions:
        at = scope.text.keyword((TokenType.GROUP_BY,), top_level=True)
        at = at if at is not None else scope.text.offset(select)
        scope.refuse(at, "syntax", "SQL syntax error: GROUP BY needs the group columns.", SqlSyntaxError)
    grouped: list[str] = []
    for node in group.expressions:
        ref = _group_item(scope, unparen(node), select, groups)
        selected = [g.ref.qualified for g in groups]
        if ref.qualified not in selected:
            scope.refuse(
                ref.offset,
                "GROUP BY column not selected",
                f"{ref.qualified} is grouped but not selected; add it to SELECT (every group column is a "
                "column of the released table).",
            )
        grouped.append(ref.qualified)
    for item in groups:
        if item.ref.qualified not in grouped:
            scope.refuse(
                item.ref.offset,
                "column not in GROUP BY",
                f"{item.ref.qualified} is selected but not in GROUP BY; add it to GROUP BY.",
            )


def _group_item(scope: Scope, node: exp.Expr, select: exp.Select, groups: list[Item]) -> Ref:
    ordinal = literal(node)
    if isinstance(ordinal, int) and not isinstance(node, exp.Neg):
        items = select.expressions
        if not 1 <= ordinal <= len(items):
            scope.refuse_node(
                node, "GROUP BY ordinal", f"GROUP BY {ordinal}: the SELECT list has {len(items)} items."
            )
        target = items[ordinal - 1]
        target = target.this if isinstance(target, exp.Alias) else target
        if not isinstance(target, exp.Column):
            scope.refuse_node(
                node,
                "GROUP BY ordinal",
                f"GROUP BY {ordinal} refers to the aggregate; group by columns only.",
            )
        ref = resolve(scope, target)
        return Ref(ref.register, ref.column, scope.text.offset(node))
    if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
        name = name_of(node.this)
        if node.args.get("table") is None and not any(t.register.has_column(name) for t in scope.tables):
            aliased = next((g for g in groups if g.alias is not None and g.alias == node.name), None)
            if aliased is not None:
                return Ref(aliased.ref.register, aliased.ref.column, scope.text.offset(node))
        return resolve(scope, node)
    if isinstance(node, exp.Rollup | exp.Cube | exp.GroupingSets):
        word = "GROUPING SETS" if isinstance(node, exp.GroupingSets) else type(node).__name__.upper()
        listed = ", ".join(g.ref.column for g in groups) or "<columns>"
        scope.refuse_node(
            node,
            word,
            f"{word} is not supported; list the group columns (GROUP BY {listed}) and run one query per grouping.",
        )
    scope.refuse_node(
        node,
        describe(node),
        f"GROUP BY takes catalog columns, not {node.sql(dialect=DIALECT)!r}.{derived_hint(scope, node)}",
    )
