"""WHERE: AND-ed conditions, each comparing one catalog column with literals of its type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from sqlglot import exp
from sqlglot.tokens import TokenType

from .columns import derived_hint, resolve
from .errors import SqlSyntaxError, SqlValueError
from .nodes import Value, describe, flatten, flatten_and, literal, parse_number, unparen
from .scope import Ref, Scope
from .text import DIALECT

__all__ = ["Condition", "where"]


_COMPARISONS: dict[type[exp.Expr], tuple[str, str]] = {
    # node -> (op with the column on the left, op with the column on the right)
    exp.EQ: ("=", "="),
    exp.NEQ: ("!=", "!="),
    exp.LT: ("<", ">"),
    exp.LTE: ("<=", ">="),
    exp.GT: (">", "<"),
    exp.GTE: (">=", "<="),
}


@dataclass(frozen=True)
class Condition:
    """One WHERE condition, in the JSON API's operators."""

    ref: Ref
    op: str
    value: Value | list[Value]


def where(scope: Scope, select: exp.Select) -> list[Condition]:
    """The AND-ed WHERE conditions (none without WHERE)."""
    where = select.args.get("where")
    if where is None:
        return []
    return [_condition(scope, part) for part in flatten_and(where.this)]


def _condition(scope: Scope, node: exp.Expr) -> Condition:
    node = unparen(node)
    if isinstance(node, exp.Or):
        _or_condition(scope, node)
    if isinstance(node, exp.Is):
        column_end = scope.text.end(node.this)
        at = scope.text.keyword((TokenType.IS,), after=column_end if column_end is not None else -1)
        word = "IS NOT NULL" if node.args.get("negate") else "IS NULL"
        scope.refuse(
            at if at is not None else scope.text.offset(node),
            word,
            f"{word} is not supported; a missing value counts as its column's declared constant.",
        )
    if isinstance(node, exp.Not) or node.args.get("negate"):
        _not_condition(scope, node)
    if node.find(exp.Select):
        scope.refuse_subquery(node.find(exp.Select) or node)
    comparison = _COMPARISONS.get(type(node))
    if comparison is not None:
        return _comparison(scope, node, comparison)
    if isinstance(node, exp.In):
        extra = [k for k, v in node.args.items() if v and k not in ("this", "expressions")]
        if extra:
            scope.refuse_node(node, f"IN {extra[0]}", "IN takes a list of literal values: col IN ('a', 'b').")
        ref = _condition_column(scope, node.this, node)
        return Condition(ref, "in", [_value(scope, v, ref) for v in node.expressions])
    if isinstance(node, exp.Between):
        if node.args.get("symmetric"):
            scope.refuse_node(node, "BETWEEN SYMMETRIC", "write BETWEEN low AND high.")
        low_end, high_start = scope.text.end(node.args["low"]), scope.text.start(node.args["high"])
        if (
            low_end is None
            or high_start is None
            or scope.text.keyword((TokenType.AND,), after=low_end, before=high_start) is None
        ):
            at = scope.text.offset(node.args["high"])
            scope.refuse(
                at, "syntax", "SQL syntax error: BETWEEN needs AND: BETWEEN low AND high.", SqlSyntaxError
            )
        ref = _condition_column(scope, node.this, node)
        return Condition(
            ref, "between", [_value(scope, node.args["low"], ref), _value(scope, node.args["high"], ref)]
        )
    if isinstance(node, exp.Like):
        return _like(scope, node)
    if isinstance(node, exp.Escape):
        scope.refuse_node(node, "LIKE ... ESCAPE", "LIKE takes a prefix with one trailing %: LIKE 'E11%'.")
    if isinstance(node, exp.ILike):
        scope.refuse_node(
            node,
            "ILIKE",
            "ILIKE is not supported; codes are upper case: write LIKE 'E11%'.",
        )
    scope.refuse_node(
        node,
        describe(node),
        f"the condition {node.sql(dialect=DIALECT)!r} is not supported; conditions compare a column with "
        "literals: =, <>, <, <=, >, >=, IN (...), BETWEEN ... AND ..., LIKE 'prefix%'.",
    )


def _or_condition(scope: Scope, node: exp.Or) -> NoReturn:
    left_end = scope.text.end(node.this)
    at = scope.text.keyword(
        (TokenType.OR,), after=left_end if left_end is not None else scope.text.offset(node)
    )
    alternatives = flatten(node, exp.Or)
    same_column = (
        all(
            isinstance(a, exp.EQ)
            and isinstance(unparen(a.this), exp.Column)
            and literal(unparen(a.expression)) is not None
            for a in alternatives
        )
        and len({unparen(a.this).sql().lower() for a in alternatives}) == 1
    )
    if same_column:
        column = unparen(alternatives[0].this).sql(dialect=DIALECT)
        values = ", ".join(unparen(a.expression).sql(dialect=DIALECT) for a in alternatives)
        suggestion = f"For alternatives on one column write IN: {column} IN ({values})."
    else:
        suggestion = (
            "OR across columns or registers cannot be expressed; run one query per alternative "
            "(each costs its own privacy loss)."
        )
    scope.refuse(
        at if at is not None else scope.text.offset(node),
        "OR",
        f"OR is not supported; conditions combine with AND. {suggestion}",
    )


def _not_condition(scope: Scope, node: exp.Expr) -> NoReturn:
    inner = node.this if isinstance(node, exp.Not) else node
    inner = unparen(inner)
    start = scope.text.start(inner)
    end = scope.text.end(inner)
    at = None
    if start is not None and end is not None:
        at = scope.text.keyword((TokenType.NOT,), after=start, before=end)
        if at is None:
            at = scope.text.last_keyword((TokenType.NOT,), start)
    if isinstance(inner, exp.EQ):
        suggestion = f" Write {inner.this.sql(dialect=DIALECT)} <> {inner.expression.sql(dialect=DIALECT)}."
    elif isinstance(inner, exp.In):
        suggestion = " List the values you want with IN (...) instead."
    else:
        suggestion = ""
    scope.refuse(
        at if at is not None else scope.text.offset(node),
        "NOT",
        f"NOT is not supported.{suggestion}",
    )


def _comparison(scope: Scope, node: exp.Expr, ops: tuple[str, str]) -> Condition:
    left, right = unparen(node.this), unparen(node.expression)
    if isinstance(left, exp.Column) and isinstance(right, exp.Column):
        resolve(scope, left)
        resolve(scope, right)
        scope.refuse_node(
            node,
            "column comparison",
            "comparing two columns is not supported; compare a column with a literal. Registers are "
            "linked by JOIN ... USING (person_id).",
        )
    if isinstance(left, exp.Column):
        ref = _condition_column(scope, left, node)
        return Condition(ref, ops[0], _value(scope, right, ref))
    if isinstance(right, exp.Column) and literal(left) is not None:
        ref = _condition_column(scope, right, node)
        return Condition(ref, ops[1], _value(scope, left, ref))
    for side in (left, right):
        if isinstance(side, exp.Func) or side.find(exp.Select):
            _bad_condition_side(scope, side, node)
    scope.refuse_node(
        node,
        describe(node),
        f"the condition {node.sql(dialect=DIALECT)!r} is not supported; compare a column with a literal.",
    )


def _condition_column(scope: Scope, node: exp.Expr, condition: exp.Expr) -> Ref:
    node = unparen(node)
    if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
        return resolve(scope, node)
    _bad_condition_side(scope, node, condition)


def _bad_condition_side(scope: Scope, node: exp.Expr, condition: exp.Expr) -> NoReturn:
    if node.find(exp.Select):
        scope.refuse_subquery(node.find(exp.Select) or node)
    if isinstance(node, exp.Func):
        scope.refuse_node(
            node,
            describe(node),
            f"functions in WHERE are not supported ({describe(node)}); compare a catalog column with "
            f"literals.{derived_hint(scope, node)}",
        )
    scope.refuse_node(
        node,
        describe(node),
        f"the condition {condition.sql(dialect=DIALECT)!r} is not supported; compare a column with a literal.",
    )


def _like(scope: Scope, node: exp.Like) -> Condition:
    ref = _condition_column(scope, node.this, node)
    pattern_node = unparen(node.expression)
    pattern = literal(pattern_node)
    if not isinstance(pattern, str) or not (isinstance(pattern_node, exp.Literal) and pattern_node.is_string):
        scope.refuse_node(pattern_node, "LIKE pattern", "LIKE takes a text prefix: LIKE 'E11%'.")
    body = pattern[:-1] if pattern.endswith("%") else pattern
    if "%" in body or "_" in body or not pattern.endswith("%"):
        if "%" not in pattern and "_" not in pattern:
            hint = f"For an exact match write {ref.column} = '{pattern}'."
        else:
            hint = "Only a prefix with one trailing % is supported: LIKE 'E11%'."
        scope.refuse_node(
            pattern_node, "LIKE pattern", f"the LIKE pattern {pattern!r} is not supported. {hint}"
        )
    if not body:
        scope.refuse_node(pattern_node, "LIKE pattern", "LIKE '%' matches everything; remove the condition.")
    return Condition(ref, "prefix", body)


def _value(scope: Scope, node: exp.Expr, ref: Ref) -> Value:
    """A literal converted to the column's type (PostgreSQL reads '2019' as a number for a number column)."""
    node = unparen(node)
    column = scope.catalog.register(ref.register).column(ref.column)
    offset = scope.text.offset(node)
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.DATE):
        text_value = literal(node.this)
        if isinstance(text_value, str) and column.type == "date":
            return text_value
        scope.refuse(
            offset,
            "CAST",
            f"{ref.qualified} is a {column.type} column; compare it with a literal.",
            SqlValueError,
        )
    value = literal(node)
    if value is None:
        if isinstance(node, exp.Null):
            scope.refuse(offset, "NULL", "conditions on NULL are not supported.")
        if isinstance(node, exp.Select | exp.Subquery) or node.find(exp.Select):
            scope.refuse_subquery(node.find(exp.Select) or node)
        scope.refuse(
            offset,
            describe(node),
            f"values in conditions must be literals such as 'E11', 2019 or DATE '2019-01-01', not "
            f"{node.sql(dialect=DIALECT)!r}.",
        )
    if column.is_numeric:
        if isinstance(value, str):
            number = parse_number(value)
            if number is None:
                scope.refuse(
                    offset, "value", f"{ref.qualified} is a number; {value!r} is not one.", SqlValueError
                )
            return number
        return value
    if not isinstance(value, str):
        example = "'2019-01-01'" if column.type == "date" else f"'{value}'"
        scope.refuse(
            offset,
            "value",
            f"{ref.qualified} is a {column.type} column; write the value in single quotes: {example}.",
            SqlValueError,
        )
    return value
