"""Per-column typing and validation of register files, as DuckDB SQL.

For every physical column of a register the build needs two expressions over the staged raw row:
the value converted to the column's SQL type (NULL when it cannot be converted) and the reason the
row is rejected because of this column (NULL when the value is fine). The reasons follow the
catalog's declarations only: type, nullability, public key set, declared bounds. They describe the
problem, never the value, so a reject file cannot leak what was in the cell.

These are pure functions from catalog declarations to SQL text; ``datasets.build`` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from query_engine.catalog import Column

__all__ = [
    "ColumnCheck",
    "SourceTypeError",
    "column_check",
    "quote",
    "sql_literal",
]

_INTEGER_TYPES = frozenset(
    [
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    ]
)
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE"})
_TIMESTAMP_TYPES = frozenset({"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"})
_DATE_TEXT = r" *[0-9]{1,4}-[0-9]{1,2}-[0-9]{1,2} *"

_EXPECTED = {
    "integer": "an integer type, or text holding whole numbers",
    "float": "a numeric type, or text holding numbers with a decimal point",
    "date": "DATE or TIMESTAMP, or text holding dates as YYYY-MM-DD",
    "string": "text",
}


class SourceTypeError(ValueError):
    """A whole column of the file has a type that cannot hold the catalog's type."""


def quote(name: str) -> str:
    """A SQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str | int | float) -> str:
    """A SQL literal for a string or a number."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


@dataclass(frozen=True)
class ColumnCheck:
    """SQL for one physical column: its converted value and why a row is rejected because of it."""

    typed: str
    reason: str


def _kind(source_type: str) -> str:
    if source_type in _INTEGER_TYPES:
        return "integer"
    if source_type in _FLOAT_TYPES or source_type.startswith("DECIMAL"):
        return "float"
    if source_type == "DATE" or source_type in _TIMESTAMP_TYPES:
        return "date"
    if source_type == "VARCHAR":
        return "text"
    return "other"


def _conversion(col: Column, raw: str, source_type: str) -> tuple[str, str]:
    """(typed expression, reason for a non-NULL value that does not convert)."""
    kind = _kind(source_type)
    target = col.type
    if target == "integer" and kind == "integer":
        return f"TRY_CAST({raw} AS BIGINT)", "'outside the 64-bit integer range'"
    if target == "integer" and kind == "float":
        x = f"CAST({raw} AS DOUBLE)"
        return (
            f"(CASE WHEN isfinite({x}) AND {x} = trunc({x}) THEN TRY_CAST({x} AS BIGINT) END)",
            "'not a whole number'",
        )
    if target == "integer" and kind == "text":
        # A BIGINT cast alone would round '2.5' to 3; agreeing with the DOUBLE cast proves wholeness
        # far more cheaply than a regular expression.
        as_int = f"TRY_CAST({raw} AS BIGINT)"
        return f"(CASE WHEN TRY_CAST({raw} AS DOUBLE) = {as_int} THEN {as_int} END)", "'not a whole number'"
    if target == "float" and kind in ("integer", "float"):
        x = f"CAST({raw} AS DOUBLE)"
        return f"(CASE WHEN isfinite({x}) THEN {x} END)", "'not a finite number'"
    if target == "float" and kind == "text":
        x = f"TRY_CAST({raw} AS DOUBLE)"
        reason = (
            f"(CASE WHEN {x} IS NULL THEN 'not a number (write numbers with a decimal point, e.g. 1.5)' "
            "ELSE 'not a finite number' END)"
        )
        return f"(CASE WHEN isfinite({x}) THEN {x} END)", reason
    if target == "date" and kind == "date":
        return f"CAST({raw} AS DATE)", "'not a date'"
    if target == "date" and kind == "text":
        typed = f"CAST(try_strptime({raw}, '%Y-%m-%d') AS DATE)"
        reason = (
            f"(CASE WHEN regexp_full_match({raw}, '{_DATE_TEXT}') THEN 'not a real calendar date' "
            "ELSE 'not a date of the form YYYY-MM-DD' END)"
        )
        return typed, reason
    if target == "string" and kind == "text":
        return raw, "NULL"
    if target == "string" and kind == "integer":
        return f"CAST({raw} AS VARCHAR)", "NULL"
    raise SourceTypeError(f"is stored as {source_type}; expected {_EXPECTED[target]}")


def column_check(
    col: Column, source_type: str, keyset_table: str | None, *, source: str, raw: str, value: str
) -> ColumnCheck:
    """The typing and validation of physical column ``col``, stored in the file as ``source_type``.

    ``typed`` converts the SQL ``source``. ``reason`` is evaluated one query level up, where the
    untouched source value is visible as ``raw`` and the converted one as ``value``; it is NULL for
    a good value. ``keyset_table`` names a table with one column ``v`` holding the column's public
    key set, typed like the column. Raises SourceTypeError when the file's type is unusable.
    """
    typed, _ = _conversion(col, source, source_type)
    _, not_converted = _conversion(col, raw, source_type)
    missing = "NULL" if col.nullable else "'missing, but the column is not nullable'"
    branches = [f"WHEN {raw} IS NULL THEN {missing}", f"WHEN {value} IS NULL THEN {not_converted}"]
    if keyset_table is not None:
        reason = sql_literal(f"not in the public key set {col.keyset}")
        branches.append(f"WHEN {value} NOT IN (SELECT v FROM {keyset_table}) THEN {reason}")
    if col.bounds is not None and col.type != "string":
        lo, hi = col.bounds.lo, col.bounds.hi
        if col.type == "date":
            lo_sql, hi_sql = f"DATE {sql_literal(str(lo))}", f"DATE {sql_literal(str(hi))}"
            below, above = f"before the declared lower bound {lo}", f"after the declared upper bound {hi}"
        else:
            lo_sql, hi_sql = sql_literal(lo), sql_literal(hi)
            below, above = f"below the declared lower bound {lo}", f"above the declared upper bound {hi}"
        branches.append(f"WHEN {value} < {lo_sql} THEN {sql_literal(below)}")
        branches.append(f"WHEN {value} > {hi_sql} THEN {sql_literal(above)}")
    return ColumnCheck(typed=typed, reason="(CASE " + " ".join(branches) + " END)")
