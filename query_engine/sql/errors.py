"""Errors of the SQL dialect: ``QueryError`` subclasses (422) that carry the position of the construct.

::

    QueryError
    └── SqlError                      invalid_sql: base; every SQL error has position and construct
        ├── SqlSyntaxError            sql_syntax_error: the text does not parse
        ├── UnsupportedSql            unsupported_sql: valid SQL outside the dialect
        ├── SqlAmbiguousColumn        ambiguous_column: an unqualified column is on several registers
        ├── SqlUnknownRegister        unknown_register (also an ``UnknownRegister``)
        ├── SqlUnknownColumn          unknown_column (also an ``UnknownColumn``)
        ├── SqlColumnNotQueryable     column_not_queryable (also a ``ColumnNotQueryable``)
        ├── SqlValueError             value_outside_domain (also a ``ValueOutsideDomain``)
        └── SqlTooDeep                sql_too_deep: nesting or AND/OR chains beyond the limit

The catalog-level errors keep the codes of the JSON API, so a client handles ``unknown_column`` the
same way whichever route produced it. ``position`` is ``{"line": L, "column": C}`` (1-based, in
characters) of the first character of the construct; the service adds it to the error body.
"""

from __future__ import annotations

from typing import TypedDict

from ..errors import (
    ColumnNotQueryable,
    QueryError,
    RegisterNotLoaded,
    UnknownColumn,
    UnknownRegister,
    ValueOutsideDomain,
)

__all__ = [
    "SqlAmbiguousColumn",
    "SqlColumnNotQueryable",
    "SqlError",
    "SqlPosition",
    "SqlRegisterNotLoaded",
    "SqlSyntaxError",
    "SqlTooDeep",
    "SqlUnknownColumn",
    "SqlUnknownRegister",
    "SqlValueError",
    "UnsupportedSql",
]


class SqlPosition(TypedDict):
    """Where a construct starts in the SQL text: 1-based line and column."""

    line: int
    column: int


class SqlError(QueryError):
    """An SQL text that cannot be turned into a Query; nothing was touched or spent."""

    code = "invalid_sql"

    def __init__(self, message: str, *, position: SqlPosition, construct: str) -> None:
        super().__init__(message, stage="sql")
        self.position = position
        self.construct = construct


class SqlSyntaxError(SqlError):
    """The text is not valid SQL."""

    code = "sql_syntax_error"


class UnsupportedSql(SqlError):
    """Valid SQL that the dialect refuses (OR, subqueries, outer joins, LIMIT, ...)."""

    code = "unsupported_sql"


class SqlAmbiguousColumn(SqlError):
    """An unqualified column name exists on more than one register of the query."""

    code = "ambiguous_column"


class SqlUnknownRegister(SqlError, UnknownRegister):
    """A table that is not a catalog register, or a qualifier that is not in FROM."""

    code = "unknown_register"


class SqlRegisterNotLoaded(SqlError, RegisterNotLoaded):
    """A table the catalog declares but this installation did not load."""

    code = "register_not_loaded"


class SqlUnknownColumn(SqlError, UnknownColumn):
    """A column that is not in the catalog."""

    code = "unknown_column"


class SqlColumnNotQueryable(SqlError, ColumnNotQueryable):
    """A key or identifier used as a filter, group or measured column."""

    code = "column_not_queryable"


class SqlValueError(SqlError, ValueOutsideDomain):
    """A literal of the wrong type for its column (a number for a code, text for a number)."""

    code = "value_outside_domain"


class SqlTooDeep(SqlError):
    """Parentheses, prefix operators or AND/OR chains nested beyond the dialect's limit (checked
    before parsing, so a deep text cannot exhaust the parser's recursion)."""

    code = "sql_too_deep"
