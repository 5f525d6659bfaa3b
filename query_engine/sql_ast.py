"""sqlglot node helpers shared by the compilers (compile, compile_cohort, compile_linear): quoted
identifiers for catalog names, unquoted references to CTE columns, literals from the plan only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from .errors import EngineInternalError

__all__ = ["sql_and", "sql_col", "sql_ident", "sql_lit", "sql_ref", "sql_table", "sql_window"]

_STAGE = "compile"


def sql_ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def sql_table(name: str) -> exp.Table:
    return exp.Table(this=sql_ident(name))


def sql_col(table: str, name: str) -> exp.Column:
    return exp.Column(this=sql_ident(name), table=exp.to_identifier(table))


def sql_ref(table: str, name: str) -> exp.Column:
    """An internal (unquoted) column of a CTE."""
    return exp.column(name, table=table)


def sql_lit(value: Any) -> exp.Expr:
    if isinstance(value, bool) or value is None:
        raise EngineInternalError(
            "Internal error: an unexpected literal in the plan. This is a bug in sundstat; "
            "nothing was released.",
            stage=_STAGE,
        )
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def sql_and(conditions: list[exp.Expr]) -> exp.Expr | None:
    return exp.and_(*conditions) if conditions else None


def sql_window(func: exp.Expr, partition: Sequence[exp.Expr], order: Sequence[exp.Expr]) -> exp.Window:
    return exp.Window(
        this=func,
        partition_by=partition,
        order=exp.Order(expressions=[exp.Ordered(this=o) for o in order]) if order else None,
    )
