"""Column references: resolved against the FROM/JOIN tables, refused with a suggestion when unknown."""

from __future__ import annotations

from typing import NoReturn

from sqlglot import exp

from ..suggest import did_you_mean
from .errors import (
    SqlAmbiguousColumn,
    SqlColumnNotQueryable,
    SqlError,
    SqlUnknownColumn,
    SqlUnknownRegister,
)
from .nodes import name_of
from .scope import Ref, Scope, Table

__all__ = ["derived_hint", "is_person_key", "resolve", "table_for"]


def table_for(scope: Scope, column: exp.Column, qualifier: str) -> Table:
    """The table a qualified column names; refuse an unknown or not-joined table."""
    table = next((t for t in scope.tables if t.name == qualifier), None)
    if table is not None:
        return table
    offset = scope.text.offset(column)
    aliased = next((t for t in scope.tables if t.register.name == qualifier), None)
    if aliased is not None:
        scope.refuse(
            offset,
            "table name",
            f"register {qualifier} is called {aliased.name!r} in this query; write {aliased.name}.{name_of(column.this)}.",
            SqlUnknownRegister,
        )
    if scope.catalog.has_register(qualifier):
        scope.refuse(
            offset,
            "table name",
            f"register {qualifier} is not in FROM; add JOIN {qualifier} USING (person_id).",
            SqlUnknownRegister,
        )
    names = [t.name for t in scope.tables]
    scope.refuse(
        offset,
        "table name",
        f"unknown table {qualifier!r}.{did_you_mean(qualifier, names)} Tables of this query: {', '.join(names)}.",
        SqlUnknownRegister,
    )


def resolve(scope: Scope, column: exp.Column, *, queryable: bool = True) -> Ref:
    """Resolve a column against the FROM/JOIN registers; refuse unknown, ambiguous and key columns."""
    offset = scope.text.offset(column)
    if column.args.get("db") or column.args.get("catalog"):
        scope.refuse(offset, "qualified name", "write columns as column or table.column.")
    name = name_of(column.this)
    qualifier = column.args.get("table")
    if qualifier is not None:
        table = table_for(scope, column, name_of(qualifier))
        if not table.register.has_column(name):
            queryable_names = [c.name for c in table.register.columns if c.queryable]
            scope.refuse(
                offset,
                "column",
                f"unknown column {name!r} in register {table.register.name}.{did_you_mean(name, queryable_names)} "
                f"Columns of {table.register.name}: {', '.join(queryable_names)}.",
                SqlUnknownColumn,
            )
    else:
        candidates = [t for t in scope.tables if t.register.has_column(name)]
        if len(candidates) > 1:
            options = " or ".join(f"{t.name}.{name}" for t in candidates)
            scope.refuse(
                offset,
                "column",
                f"column {name!r} is on {', '.join(t.register.name for t in candidates)}; qualify it: {options}.",
                SqlAmbiguousColumn,
            )
        if not candidates:
            _unknown_column(scope, column, name, offset)
        table = candidates[0]
    catalog_column = table.register.column(name)
    if queryable and not catalog_column.queryable:
        if catalog_column.role == "person_key":
            what = "the person key: it links registers (JOIN ... USING (person_id)) and is counted with "
            what += "COUNT(DISTINCT person_id), but"
        else:
            what = "a row key" if catalog_column.role == "row_key" else "an identifier"
            what += ": keys and identifiers"
        scope.refuse(
            offset,
            "column",
            f"{table.register.name}.{name} is {what} cannot be filtered, grouped or aggregated.",
            SqlColumnNotQueryable,
        )
    return Ref(table.register.name, name, offset)


def _unknown_column(scope: Scope, column: exp.Column, name: str, offset: int) -> NoReturn:
    names = sorted({c.name for t in scope.tables for c in t.register.columns if c.queryable})
    elsewhere = [
        r.name
        for r in scope.catalog.registers
        if r.has_column(name) and r.name not in {t.register.name for t in scope.tables}
    ]
    hint = (
        f" It is a column of {' and '.join(elsewhere)}: add JOIN {elsewhere[0]} USING (person_id)."
        if elsewhere
        else ""
    )
    if isinstance(column.this, exp.Identifier) and column.this.quoted and not elsewhere:
        hint += f" Double quotes name a column; write text values in single quotes: '{name}'."
    registers = ", ".join(t.register.name for t in scope.tables)
    scope.refuse(
        offset,
        "column",
        f"unknown column {name!r} (registers in FROM: {registers}).{did_you_mean(name, names)}{hint}",
        SqlUnknownColumn,
    )


def derived_hint(scope: Scope, node: exp.Expr) -> str:
    """For a function over a column: the derived catalog columns computed from that column."""
    inner = node.find(exp.Column)
    if inner is None or isinstance(inner.this, exp.Star):
        return ""
    try:
        ref = resolve(scope, inner, queryable=False)
    except SqlError:
        return ""
    register = scope.catalog.register(ref.register)
    derived = [
        c.name for c in register.columns if c.derivation is not None and c.derivation.source == ref.column
    ]
    if not derived:
        return ""
    return f" Derived columns of {ref.register} computed from {ref.column}: {', '.join(derived)}."


def is_person_key(scope: Scope, column: exp.Column) -> bool:
    """Whether ``column`` is the person key of its table."""
    name = name_of(column.this)
    qualifier = column.args.get("table")
    if qualifier is None:
        return any(t.register.person_key == name for t in scope.tables)
    table = table_for(scope, column, name_of(qualifier))
    return table.register.person_key == name
