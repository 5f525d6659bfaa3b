"""Small readers of sqlglot nodes: names, literals, flattened AND/OR chains, names for messages."""

from __future__ import annotations

import re

from sqlglot import exp

from .text import DIALECT

__all__ = [
    "NUMBER",
    "Value",
    "describe",
    "flatten",
    "flatten_and",
    "is_aggregate",
    "literal",
    "name_of",
    "parse_number",
    "show_number",
    "unparen",
]

Value = str | int | float
NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


def name_of(identifier: exp.Expr) -> str:
    """An identifier's name: unquoted names are case-insensitive (lower case), quoted ones exact."""
    if isinstance(identifier, exp.Identifier):
        return identifier.this if identifier.quoted else identifier.this.lower()
    return identifier.name.lower()


def unparen(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def flatten(node: exp.Expr, kind: type[exp.Expr]) -> list[exp.Expr]:
    node = unparen(node)
    if isinstance(node, kind):
        return flatten(node.this, kind) + flatten(node.expression, kind)
    return [node]


def flatten_and(node: exp.Expr) -> list[exp.Expr]:
    return flatten(node, exp.And)


def is_aggregate(node: exp.Expr) -> bool:
    return isinstance(node, exp.AggFunc | exp.WithinGroup | exp.Window | exp.Filter) and not node.find(
        exp.Select
    )


def literal(node: exp.Expr) -> Value | None:
    """The value of a literal (string, number, negative number), else None."""
    node = unparen(node)
    if isinstance(node, exp.Neg):
        inner = literal(node.this)
        return -inner if isinstance(inner, int | float) else None
    if not isinstance(node, exp.Literal):
        return None
    if node.is_string:
        return str(node.this)
    return parse_number(str(node.this))


def parse_number(text: str) -> int | float | None:
    text = text.strip()
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(NUMBER, text):
        return float(text)
    return None


def show_number(value: float) -> str:
    return f"{round(value, 10):g}"


def describe(node: exp.Expr) -> str:
    """A short name for a construct in a message: ``YEAR(...)``, ``CASE``, ``expression 'a + 1'``."""
    if isinstance(node, exp.Func):
        name = node.name.upper() if isinstance(node, exp.Anonymous) else node.sql_name()
        return f"{name}(...)"
    if isinstance(node, exp.Case):
        return "CASE"
    return f"expression {node.sql(dialect=DIALECT)!r}"
