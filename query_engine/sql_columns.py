"""SQL for catalog columns, physical or derived (year, ATC level, ICD-10 chapter, age, age band,
vital status), as sqlglot expressions over one table alias. Constants come from the catalog only.

Shared by the query compiler and the build-time pre-aggregates (``query_engine.preaggregate``), so a
derived group key is computed by one definition wherever it is stored or queried.
"""

from __future__ import annotations

import re

from sqlglot import exp

from .catalog import Catalog, Column, Register, atc_prefix_length
from .errors import EngineInternalError
from .sql_ast import sql_col, sql_lit

__all__ = ["ColumnSql"]

_STAGE = "compile"


class ColumnSql:
    """Column expressions for one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def column(self, table: str, register: Register, column: Column) -> exp.Expr:
        """A physical column or the SQL for a derived one, over the rows of ``table``."""
        derivation = column.derivation
        if derivation is None:
            return sql_col(table, column.name)
        source = sql_col(table, derivation.source)
        kind = derivation.kind
        if kind == "year":
            return exp.Year(this=source)
        if kind.startswith("atc_level_"):
            return exp.Substring(this=source, start=sql_lit(1), length=sql_lit(atc_prefix_length(kind)))
        if kind == "vital_status":
            dead = exp.and_(source.is_(exp.null()).not_(), source <= self.reference_date())
            return exp.Case(ifs=[exp.If(this=dead, true=sql_lit("dead"))], default=sql_lit("alive"))
        if kind == "icd10_chapter":
            return self.icd10_chapter(source)
        age = self.age(
            source, sql_col(table, derivation.source_secondary) if derivation.source_secondary else None
        )
        if kind == "age":
            return age
        assert column.keyset is not None
        return self.age_band(age, self.catalog.keyset(column.keyset).values)

    def reference_date(self) -> exp.Expr:
        return exp.cast(sql_lit(self.catalog.reference_date), exp.DataType.Type.DATE)

    def age(self, birth: exp.Expr, death: exp.Expr | None, at: exp.Expr | None = None) -> exp.Expr:
        """Whole years from birth to the reference date, or to death if earlier (or to ``at`` if given)."""
        if at is None:
            at = self.reference_date()
        if death is not None:
            died_before = exp.and_(death.is_(exp.null()).not_(), death < self.reference_date())
            at = exp.Case(ifs=[exp.If(this=died_before, true=death)], default=self.reference_date())

        def month_day(date: exp.Expr) -> exp.Expr:
            return exp.Mul(this=exp.Month(this=date.copy()), expression=sql_lit(100)) + exp.Day(
                this=date.copy()
            )

        before_birthday = exp.Case(
            ifs=[exp.If(this=month_day(at) < month_day(birth), true=sql_lit(1))], default=sql_lit(0)
        )
        return exp.paren(
            exp.Sub(
                this=exp.Sub(this=exp.Year(this=at.copy()), expression=exp.Year(this=birth.copy())),
                expression=exp.paren(before_birthday),
            )
        )

    def age_band(self, age: exp.Expr, labels: tuple[str | int, ...]) -> exp.Expr:
        """Label of the band ``a-b`` or the open band ``N+``, parsed from the catalog's key set."""
        bands = [re.fullmatch(r"(\d+)-(\d+)", str(v)) for v in labels]
        open_band = re.fullmatch(r"(\d+)\+", str(labels[-1]))
        if open_band is None or not all(bands[:-1]):
            raise EngineInternalError(
                "Internal error: the age band key set is not of the form a-b ... N+. This is a bug in "
                "sundstat; nothing was released.",
                stage=_STAGE,
            )
        width = int(bands[0].group(2)) - int(bands[0].group(1)) + 1  # type: ignore[union-attr]
        start = exp.Mul(
            this=exp.IntDiv(this=age.copy(), expression=sql_lit(width)), expression=sql_lit(width)
        )
        label = exp.DPipe(
            this=exp.DPipe(this=exp.cast(start, "VARCHAR"), expression=sql_lit("-")),
            expression=exp.cast(exp.Add(this=start.copy(), expression=sql_lit(width - 1)), "VARCHAR"),
        )
        top = int(open_band.group(1))
        return exp.Case(ifs=[exp.If(this=age.copy() >= sql_lit(top), true=sql_lit(f"{top}+"))], default=label)

    def icd10_chapter(self, code: exp.Expr) -> exp.Expr:
        ifs = []
        for chapter, first, last in self.catalog.icd10_chapter_ranges:
            prefix = exp.Substring(this=code.copy(), start=sql_lit(1), length=sql_lit(len(first)))
            ifs.append(
                exp.If(
                    this=exp.Between(this=prefix, low=sql_lit(first), high=sql_lit(last)),
                    true=sql_lit(chapter),
                )
            )
        return exp.Case(ifs=ifs)
