"""Compile a LinearPlan to SQL (sqlglot, DuckDB and Spark): one row per person, then the moment sums.

persons    the person register, one row per person (its smallest row_key)
rows       rows of the grain register matching the conditions on it (with the row's person)
ranked     ROW_NUMBER() per person by the stored random row_key
one        the first of them per person JOIN persons, with the person conditions and ``where``
           elsewhere: pid, t1..tk (terms of X but the intercept, clamped, in integer units), y
final      one row: SUM of every released product (CAST to BIGINT; the plan checked the bound)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlglot import exp

from .backends import Backend
from .catalog import Catalog
from .compile import CompiledQuery
from .compile_cohort import _AnalysisSQL, _flag
from .errors import EngineInternalError
from .linear_plan import LinearPlan, NumericTerm
from .sql_ast import sql_and, sql_col, sql_lit, sql_ref, sql_table, sql_window

__all__ = ["compile_linear", "exact_moments"]


def compile_linear(plan: LinearPlan, catalog: Catalog, dialect: str = "duckdb") -> CompiledQuery:
    """The SQL of the exact moments (one row, one column ``m<i>`` per released part)."""
    builder = _LinearSQL(plan, catalog, dialect)
    tree = builder.build()
    return CompiledQuery(sql=tree.sql(dialect=dialect), params=tuple(builder.params), dialect=dialect)


def exact_moments(
    backend: Backend, catalog: Catalog, plan: LinearPlan, timeout_s: float | None = None
) -> np.ndarray:
    """The exact moments (int64, one per part): they leave the engine only through noise."""
    compiled = compile_linear(plan, catalog, backend.dialect)
    table = backend.execute(compiled) if timeout_s is None else backend.execute(compiled, timeout_s=timeout_s)
    if table.num_rows != 1 or table.num_columns != len(plan.parts):
        raise EngineInternalError(
            "Internal error: the moments query did not return one row of moments. This is a bug in sundstat; "
            "nothing was released.",
            stage="execute",
        )
    values = [table.column(i)[0].as_py() for i in range(len(plan.parts))]
    return np.array([0 if v is None else int(v) for v in values], dtype=np.int64)


class _LinearSQL(_AnalysisSQL):
    """Reuses the person, population and column expressions of the analysis SQL."""

    def __init__(self, plan: LinearPlan, catalog: Catalog, dialect: str) -> None:  # noqa: D107
        self.linear = plan
        self.catalog = catalog
        self.dialect = dialect
        self.params: list[Any] = []
        self.person = catalog.register(plan.person_register)
        self.shared = {}

    def units(self, alias: str, term: NumericTerm) -> exp.Expr:
        """The clamped value in integer units of its resolution, clamped again to the units' range."""
        register = self.catalog.register(term.value.column.register)
        value = self.value(alias, register, term.value)
        resolution = term.value.resolution
        if resolution == 1 and all(
            float(x).is_integer() for x in (term.value.lo, term.value.hi, term.value.null_value)
        ):
            units: exp.Expr = exp.cast(value, "BIGINT")
        else:
            scaled = exp.Div(this=exp.cast(value, "DOUBLE"), expression=sql_lit(resolution))
            units = exp.cast(exp.Round(this=scaled), "BIGINT")
        low, high = term.value.unit_range
        return exp.Least(
            this=exp.Greatest(this=units, expressions=[sql_lit(low)], ignore_nulls=True),
            expressions=[sql_lit(high)],
            ignore_nulls=True,
        )

    def alias_of(self, register: str) -> str:
        return "p" if register == self.linear.person_register else "r"

    def build(self) -> exp.Select:
        plan = self.linear
        grain = self.catalog.register(plan.grain)
        ctes: list[tuple[str, exp.Expr]] = list(self.persons())
        rows = exp.select(
            exp.alias_(sql_col("x", grain.person_key), "pid"),
            exp.alias_(sql_col("x", grain.row_key), "rk"),
            "x.*",
        ).from_(exp.alias_(sql_table(grain.name), "x", table=True))
        where = sql_and([self.filter("x", f) for f in plan.row_filters])
        ctes.append(("rows_matching", rows.where(where) if where is not None else rows))
        first = sql_window(
            exp.RowNumber(), [sql_ref("rows_matching", "pid")], [sql_ref("rows_matching", "rk")]
        )
        ctes.append(("ranked", exp.select("*", exp.alias_(first, "rn")).from_("rows_matching")))
        pid = sql_ref("r", "pid")
        terms: list[exp.Expr] = [exp.alias_(pid, "pid")]
        for k, term in enumerate(plan.numeric):
            terms.append(exp.alias_(self.units(self.alias_of(term.value.column.register), term), f"t{k + 1}"))
        first_indicator = 1 + len(plan.numeric)
        for k, indicator in enumerate(plan.indicators):
            register = self.catalog.register(indicator.column.register)
            column = self.column("p", register, register.column(indicator.column.column))
            flag = _flag(exp.EQ(this=column, expression=self.param(indicator.level)))
            terms.append(exp.alias_(flag, f"t{first_indicator + k}"))
        terms.append(
            exp.alias_(self.units(self.alias_of(plan.outcome.value.column.register), plan.outcome), "y")
        )
        on = exp.EQ(this=sql_col("p", self.person.person_key), expression=pid.copy())
        one = (
            exp.select(*terms)
            .from_(exp.alias_(sql_table("ranked"), "r", table=True))
            .join(exp.alias_(sql_table("persons"), "p", table=True), on=on)
        )
        conditions = [sql_ref("r", "rn").eq(sql_lit(1)), *[self.filter("p", f) for f in plan.person_filters]]
        for i, presence in enumerate(plan.presence):
            rows_elsewhere = self.having_rows(presence, f"w{i}").subquery()
            conditions.append(exp.In(this=pid.copy(), query=rows_elsewhere))
        ctes.append(("one", one.where(sql_and(conditions))))
        names = [*[f"t{k}" for k in range(1, len(plan.terms))], "y"]

        def slot(i: int) -> exp.Expr:
            return sql_lit(1) if i == 0 else exp.cast(sql_ref("one", names[i - 1]), "BIGINT")

        sums = []
        for i, part in enumerate(plan.parts):
            product = slot(part.b) if part.a == 0 else exp.Mul(this=slot(part.a), expression=slot(part.b))
            total = exp.func("COALESCE", exp.cast(exp.Sum(this=product), "BIGINT"), sql_lit(0))
            sums.append(exp.alias_(total, f"m{i}"))
        final = exp.select(*sums).from_("one")
        for name, query in ctes:
            final = final.with_(name, as_=query)
        return final
