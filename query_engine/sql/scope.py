"""The scope every clause reader shares: the parsed tree, its text, the catalog and the FROM/JOIN tables.

A ``Scope`` is frozen: the statement reader builds it without tables, reads FROM/JOIN, and hands
the clause readers a copy that holds the tables. Refusals live here because every reader needs them
with the text's positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from sqlglot import exp
from sqlglot.tokens import TokenType

from ..catalog import Catalog, Register
from .errors import SqlError, UnsupportedSql
from .text import SqlText

__all__ = ["Ref", "Scope", "Table"]


@dataclass(frozen=True)
class Table:
    """A register in FROM/JOIN, under the name the query refers to it by."""

    name: str
    register: Register
    offset: int  # start of its FROM or JOIN clause


@dataclass(frozen=True)
class Ref:
    """A resolved catalog column and where it was written."""

    register: str
    column: str
    offset: int

    @property
    def qualified(self) -> str:
        """``register.column``, as the JSON API names it."""
        return f"{self.register}.{self.column}"


@dataclass(frozen=True)
class Scope:
    """One statement being translated: its tree and text, the catalog, and the tables in FROM/JOIN."""

    tree: exp.Expr
    text: SqlText
    catalog: Catalog
    tables: tuple[Table, ...] = ()

    def refuse(
        self, offset: int, construct: str, message: str, cls: type[SqlError] = UnsupportedSql
    ) -> NoReturn:
        """Raise ``cls`` with ``message`` at the line and column of ``offset``."""
        raise self.text.error(cls, offset, construct, message)

    def refuse_node(self, node: exp.Expr, construct: str, message: str) -> NoReturn:
        """Refuse ``node`` as unsupported SQL, pointing at where it starts."""
        self.refuse(self.text.offset(node), construct, message)

    def refuse_subquery(self, node: exp.Expr) -> NoReturn:
        """Refuse a subquery, pointing at its SELECT."""
        start = self.text.start(node)
        at = self.text.last_keyword((TokenType.SELECT,), start + 1) if start is not None else None
        self.refuse(
            at if at is not None else self.text.offset(node),
            "subquery",
            "subqueries are not supported. Join registers USING (person_id): a condition on a joined "
            "register already means 'the person has such a row'.",
        )
