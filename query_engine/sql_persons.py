"""The person register in the compiled SQL: whether a register's grain was verified, and ``persons``.

Shared by the query compiler (``compile``) and the analysis compiler (``compile_cohort``).
"""

from __future__ import annotations

from sqlglot import exp

from .catalog import Catalog, Register
from .sql_ast import sql_col, sql_lit, sql_ref, sql_table, sql_window

__all__ = ["grain_verified", "person_register_ctes"]


def grain_verified(catalog: Catalog, register: Register, dialect: str) -> bool:
    """Whether ``register`` is known to hold at most one row per person in the database served.

    True only for a person-grain register of a DuckDB database whose grain the engine verified at open
    (``Catalog.person_grain_verified``): then ranking its rows per person would always give 1.
    """
    return dialect == "duckdb" and catalog.person_grain_verified and register.grain == "person"


def person_register_ctes(catalog: Catalog, person: Register, dialect: str) -> list[tuple[str, exp.Select]]:
    """CTEs ending in ``persons``: the person register, one row per person.

    The kept row is the person's smallest row_key, so it depends only on that person's rows; a register
    whose grain is verified (``grain_verified``) is read as it is.
    """
    table = exp.alias_(sql_table(person.name), "p", table=True)
    if grain_verified(catalog, person, dialect):
        return [("persons", exp.select("*").from_(table))]
    first = sql_window(exp.RowNumber(), [sql_col("p", person.person_key)], [sql_col("p", person.row_key)])
    ranked = exp.select("*", exp.alias_(first, "prn")).from_(table)
    kept = exp.select("*").from_("persons_ranked").where(sql_ref("persons_ranked", "prn").eq(sql_lit(1)))
    return [("persons_ranked", ranked), ("persons", kept)]
