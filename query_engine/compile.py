"""Compile a Plan to SQL through sqlglot expressions: one dialect-agnostic AST, bound parameters.

Identifiers and constants (reference date, chapter ranges, key sets) come from the catalog only;
every analyst-supplied value is a bound parameter (``$1``, ``$2``, ...). The query shape:

    src       grain rows joined to the person register (if its attributes are used), row filters,
              cohort semi-joins, derived group keys and the clamped value
    kept      rows whose group keys are in the public key sets (inner semantics: never added)
    bounded   at most c rows per person and group (row_number by the stored row_key), then at
              most G groups per person (dense_rank by the group's smallest row_key); a
              person-grain register: one row per person (c = 1, partitioned by the person alone).
              A row count needs no row_number: one row per person and group weighs
              ``w = LEAST(COUNT(*), c)`` (the c kept rows), and the groups are ranked as before,
              so the same rows count, from one hash aggregate instead of a sort over every row
    joined    person-level group keys from the person register, one row per person (the
              smallest row_key: ``persons``), so a duplicated person cannot multiply rows
    agg       exact aggregates per group
    final     the cross join of the key sets LEFT JOINed to agg, zeros included, in key order

Result columns: ``g0..gk`` (group keys), then ``n`` (count), ``s`` (fixed-point sum; for a mean the
sum of ``units - M``, centred on the midpoint of the bounds), or ``j``
(candidate index) and ``score`` for quantiles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from .catalog import Catalog, Column, Register, atc_prefix_length
from .errors import EngineInternalError
from .plan import Filter, Plan, ValueSpec

__all__ = ["CompiledQuery", "compile_plan"]

_STAGE = "compile"


@dataclass(frozen=True)
class CompiledQuery:
    """SQL text for one dialect and its parameter values: ``$1`` (DuckDB) or ``:p1`` is ``params[0]``."""

    sql: str
    params: tuple[Any, ...]
    dialect: str


def compile_plan(
    plan: Plan, catalog: Catalog, dialect: str = "duckdb", *, pretty: bool = False
) -> CompiledQuery:
    """Compile the plan's exact, bounded aggregate query for ``dialect`` (``pretty`` for reading)."""
    builder = _Builder(plan, catalog, dialect)
    tree = builder.build()
    return CompiledQuery(
        sql=tree.sql(dialect=dialect, pretty=pretty), params=tuple(builder.params), dialect=dialect
    )


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _table(name: str) -> exp.Table:
    return exp.Table(this=_ident(name))


def _col(table: str, name: str) -> exp.Column:
    return exp.Column(this=_ident(name), table=exp.to_identifier(table))


def _ref(table: str, name: str) -> exp.Column:
    """An internal (unquoted) column of a CTE."""
    return exp.column(name, table=table)


def _lit(value: Any) -> exp.Expr:
    if isinstance(value, bool) or value is None:
        raise EngineInternalError(
            "Internal error: an unexpected literal in the plan. This is a bug in sundstat; "
            "nothing was released.",
            stage=_STAGE,
        )
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _and(conditions: list[exp.Expr]) -> exp.Expr | None:
    return exp.and_(*conditions) if conditions else None


def _window(func: exp.Expr, partition: Sequence[exp.Expr], order: Sequence[exp.Expr]) -> exp.Window:
    return exp.Window(
        this=func,
        partition_by=partition,
        order=exp.Order(expressions=[exp.Ordered(this=o) for o in order]) if order else None,
    )


class _Builder:
    """Builds the AST for one plan, collecting bound parameters in order of their numbers."""

    def __init__(self, plan: Plan, catalog: Catalog, dialect: str) -> None:
        self.plan = plan
        self.dialect = dialect
        self.catalog = catalog
        self.params: list[Any] = []
        self.keys = [f"g{i}" for i in range(len(plan.groups))]
        # Person attributes are joined after bounding (fewer rows to join, narrower windows); they
        # are constant per person, so bounding by the grain keys alone is the same bounding.
        late = plan.grain != plan.person_register
        self.person_keys = [
            k
            for k, g in zip(self.keys, plan.groups, strict=True)
            if late and g.column.register == plan.person_register
        ]
        self.grain_keys = [k for k in self.keys if k not in self.person_keys]
        # Row counts with c and G enforced: one weighted row per person and group (see ``bounding``).
        self.weighted = (
            plan.measure == "count_rows"
            and plan.value is None
            and plan.bounding.bound_rows
            and plan.bounding.bound_groups
        )

    def param(self, value: Any) -> exp.Placeholder:
        self.params.append(value)
        number = len(self.params)
        # DuckDB binds $1, $2, ... positionally; Spark takes named markers (:p1), mapped to the same list.
        return exp.Placeholder(this=str(number) if self.dialect == "duckdb" else f"p{number}")

    # --- column expressions -------------------------------------------------------------------

    def column(self, table: str, register: Register, column: Column) -> exp.Expr:
        """A physical column or the SQL for a derived one, over the rows of ``table``."""
        derivation = column.derivation
        if derivation is None:
            return _col(table, column.name)
        source = _col(table, derivation.source)
        kind = derivation.kind
        if kind == "year":
            return exp.Year(this=source)
        if kind.startswith("atc_level_"):
            return exp.Substring(this=source, start=_lit(1), length=_lit(atc_prefix_length(kind)))
        if kind == "vital_status":
            dead = exp.and_(source.is_(exp.null()).not_(), source <= self.reference_date())
            return exp.Case(ifs=[exp.If(this=dead, true=_lit("dead"))], default=_lit("alive"))
        if kind == "icd10_chapter":
            return self.icd10_chapter(source)
        age = self.age(
            source, _col(table, derivation.source_secondary) if derivation.source_secondary else None
        )
        if kind == "age":
            return age
        assert column.keyset is not None
        return self.age_band(age, self.catalog.keyset(column.keyset).values)

    def reference_date(self) -> exp.Expr:
        return exp.cast(_lit(self.catalog.reference_date), exp.DataType.Type.DATE)

    def age(self, birth: exp.Expr, death: exp.Expr | None, at: exp.Expr | None = None) -> exp.Expr:
        """Whole years from birth to the reference date, or to death if earlier (or to ``at`` if given)."""
        if at is None:
            at = self.reference_date()
        if death is not None:
            died_before = exp.and_(death.is_(exp.null()).not_(), death < self.reference_date())
            at = exp.Case(ifs=[exp.If(this=died_before, true=death)], default=self.reference_date())

        def month_day(date: exp.Expr) -> exp.Expr:
            return exp.Mul(this=exp.Month(this=date.copy()), expression=_lit(100)) + exp.Day(this=date.copy())

        before_birthday = exp.Case(
            ifs=[exp.If(this=month_day(at) < month_day(birth), true=_lit(1))], default=_lit(0)
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
        start = exp.Mul(this=exp.IntDiv(this=age.copy(), expression=_lit(width)), expression=_lit(width))
        label = exp.DPipe(
            this=exp.DPipe(this=exp.cast(start, "VARCHAR"), expression=_lit("-")),
            expression=exp.cast(exp.Add(this=start.copy(), expression=_lit(width - 1)), "VARCHAR"),
        )
        top = int(open_band.group(1))
        return exp.Case(ifs=[exp.If(this=age.copy() >= _lit(top), true=_lit(f"{top}+"))], default=label)

    def icd10_chapter(self, code: exp.Expr) -> exp.Expr:
        ifs = []
        for chapter, first, last in self.catalog.icd10_chapter_ranges:
            prefix = exp.Substring(this=code.copy(), start=_lit(1), length=_lit(len(first)))
            ifs.append(
                exp.If(this=exp.Between(this=prefix, low=_lit(first), high=_lit(last)), true=_lit(chapter))
            )
        return exp.Case(ifs=ifs)

    def value(self, table: str, register: Register, spec: ValueSpec) -> exp.Expr:
        """The clamped value with NULL (and NaN) replaced by the declared constant, as a number."""
        column = register.column(spec.column.column)
        raw = self.column(table, register, column)
        missing: exp.Expr = raw.copy().is_(exp.null())
        if column.type == "float":
            missing = exp.or_(missing, exp.IsNan(this=raw.copy()))
        integral = column.type == "integer" and all(
            float(x).is_integer() for x in (spec.lo, spec.hi, spec.null_value)
        )
        number = (lambda x: _lit(int(x))) if integral else _lit
        filled = exp.Case(ifs=[exp.If(this=missing, true=number(spec.null_value))], default=raw)
        # The value is never NULL here, so the dialects' NULL rules for LEAST/GREATEST do not matter.
        low = exp.Greatest(this=filled, expressions=[number(spec.lo)], ignore_nulls=True)
        return exp.Least(this=low, expressions=[number(spec.hi)], ignore_nulls=True)

    def filter(self, table: str, f: Filter) -> exp.Expr:
        register = self.catalog.register(f.column.register)
        col = self.column(table, register, register.column(f.column.column))
        values = [self.param(v) for v in f.values]
        if f.op == "=":
            return exp.EQ(this=col, expression=values[0])
        if f.op == "!=":
            return exp.NEQ(this=col, expression=values[0])
        if f.op == "in":
            return exp.In(this=col, expressions=values)
        if f.op == "prefix":
            return exp.StartsWith(this=col, expression=values[0])
        if f.op == "between":
            return exp.Between(this=col, low=values[0], high=values[1])
        comparison = {"<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}[f.op]
        return comparison(this=col, expression=values[0])

    # --- query ---------------------------------------------------------------------------------

    def build(self) -> exp.Select:
        plan = self.plan
        ctes: list[tuple[str, exp.Expr]] = []
        for i, group in enumerate(plan.groups):
            if group.keys is not None:
                rows = [(_lit(k), _lit(o)) for o, k in enumerate(group.keys)]
                ctes.append(
                    (
                        f"k{i}",
                        exp.select("key", "ord").from_(
                            exp.values(rows, alias=f"k{i}", columns=["key", "ord"])
                        ),
                    )
                )
        ctes.append(("src", self.source()))
        last = "src"
        if plan.bounding.bound_groups:
            # Out-of-domain keys must not use up a person's G groups. Otherwise the final LEFT JOIN
            # from the key sets drops them, and filtering early would only cost time.
            ctes.append(("kept", self.kept()))
            last = "kept"
        for name, step in self.bounding(last):
            ctes.append((name, step))
            last = name
        if self.person_keys:
            ctes.extend(self.persons())
            ctes.append(("joined", self.person_attributes(last)))
            last = "joined"
        final = self.aggregate(last, ctes)
        for name, query in ctes:
            final = final.with_(name, as_=query)
        return final

    def source(self) -> exp.Select:
        plan, catalog = self.plan, self.catalog
        grain = catalog.register(plan.grain)
        person = catalog.register(plan.person_register)
        outputs: list[exp.Expr] = [
            exp.alias_(_col("g", grain.person_key), "pid"),
            exp.alias_(_col("g", grain.row_key), "rk"),
        ]
        for key, group in zip(self.keys, plan.groups, strict=True):
            if key in self.grain_keys:
                column = grain.column(group.column.column)
                outputs.append(exp.alias_(self.column("g", grain, column), key))
        if plan.value is not None:
            outputs.append(exp.alias_(self.value("g", grain, plan.value), "v"))
        query = exp.select(*outputs).from_(exp.alias_(_table(grain.name), "g", table=True))
        conditions = [self.filter("g", f) for f in plan.row_filters]
        if plan.person_filters:
            semi = (
                exp.select(_col("p", person.person_key))
                .from_(exp.alias_(_table(person.name), "p", table=True))
                .where(_and([self.filter("p", f) for f in plan.person_filters]))
            )
            conditions.append(exp.In(this=_col("g", grain.person_key), query=semi.subquery()))
        for i, cohort in enumerate(plan.cohorts):
            register = catalog.register(cohort.register)
            alias = f"c{i}"
            semi = exp.select(_col(alias, register.person_key)).from_(
                exp.alias_(_table(register.name), alias, table=True)
            )
            where = _and([self.filter(alias, f) for f in cohort.filters])
            if where is not None:
                semi = semi.where(where)
            conditions.append(exp.In(this=_col("g", grain.person_key), query=semi.subquery()))
        where = _and(conditions)
        return query.where(where) if where is not None else query

    def kept(self) -> exp.Select:
        query = exp.select("*").from_("src")
        conditions: list[exp.Expr] = []
        for i, (key, group) in enumerate(zip(self.keys, self.plan.groups, strict=True)):
            if key not in self.grain_keys:
                continue
            if group.keys is None:
                conditions.append(_ref("src", key).is_(exp.null()).not_())
            else:
                conditions.append(
                    exp.In(this=_ref("src", key), query=exp.select("key").from_(f"k{i}").subquery())
                )
        where = _and(conditions)
        return query.where(where) if where is not None else query

    def bounding(self, source: str) -> list[tuple[str, exp.Select]]:
        """CTEs that enforce c rows per person and group, then G groups per person."""
        plan, bounding = self.plan, self.plan.bounding
        group_cols = [_ref(source, k) for k in self.grain_keys]
        steps: list[tuple[str, exp.Select]] = []
        if plan.measure == "count_persons" and bounding.bound_groups:
            # One row per person and group, keeping the group's smallest row_key for the ranking.
            distinct = (
                exp.select(
                    _ref(source, "pid"), *group_cols, exp.alias_(exp.Min(this=_ref(source, "rk")), "grk")
                )
                .from_(source)
                .group_by(_ref(source, "pid"), *[c.copy() for c in group_cols])
            )
            steps.append(("person_groups", distinct))
            source = "person_groups"
        elif self.weighted:
            # count_rows: the c rows a person keeps in a group are only counted, so the group's row
            # count capped at c is the count of the kept rows; the group's smallest row_key ranks it.
            weighted = (
                exp.select(
                    _ref(source, "pid"),
                    *group_cols,
                    exp.alias_(
                        exp.Least(
                            this=exp.Count(this=exp.Star()),
                            expressions=[_lit(bounding.max_rows)],
                            ignore_nulls=True,
                        ),
                        "w",
                    ),
                    exp.alias_(exp.Min(this=_ref(source, "rk")), "grk"),
                )
                .from_(source)
                .group_by(_ref(source, "pid"), *[c.copy() for c in group_cols])
            )
            steps.append(("rows_weighted", weighted))
            source = "rows_weighted"
        elif bounding.bound_rows:
            # Without G bounding the groups are one per person (person-level keys, or a person-grain
            # register whose one kept row has one group): partition by the person alone.
            partition = [_ref(source, "pid")] + (group_cols if bounding.bound_groups else [])
            windows = [exp.alias_(_window(exp.RowNumber(), partition, [_ref(source, "rk")]), "rn")]
            if bounding.bound_groups:
                first_row = _window(exp.Min(this=_ref(source, "rk")), [p.copy() for p in partition], [])
                windows.append(exp.alias_(first_row, "grk"))
            ranked = exp.select("*", *windows).from_(source)
            steps.append(("rows_ranked", ranked))
            steps.append(
                (
                    "rows_bounded",
                    exp.select("*")
                    .from_("rows_ranked")
                    .where(_ref("rows_ranked", "rn") <= _lit(bounding.max_rows)),
                )
            )
            source = "rows_bounded"
        if bounding.bound_groups:
            order = [_ref(source, "grk"), *[_ref(source, k) for k in self.grain_keys]]
            ranked = exp.select(
                "*", exp.alias_(_window(exp.Anonymous(this="DENSE_RANK"), [_ref(source, "pid")], order), "gn")
            ).from_(source)
            steps.append(("groups_ranked", ranked))
            steps.append(
                (
                    "bounded",
                    exp.select("*")
                    .from_("groups_ranked")
                    .where(_ref("groups_ranked", "gn") <= _lit(bounding.max_groups)),
                )
            )
        return steps

    def persons(self) -> list[tuple[str, exp.Select]]:
        """CTEs ``persons_ranked`` and ``persons``: the person register, one row per person.

        The kept row is the person's smallest row_key, so it depends only on that person's rows.
        """
        person = self.catalog.register(self.plan.person_register)
        first = _window(exp.RowNumber(), [_col("p", person.person_key)], [_col("p", person.row_key)])
        ranked = exp.select("*", exp.alias_(first, "prn")).from_(
            exp.alias_(_table(person.name), "p", table=True)
        )
        kept = exp.select("*").from_("persons_ranked").where(_ref("persons_ranked", "prn").eq(_lit(1)))
        return [("persons_ranked", ranked), ("persons", kept)]

    def person_attributes(self, source: str) -> exp.Select:
        """The bounded rows with the person-level group keys joined from ``persons``."""
        person = self.catalog.register(self.plan.person_register)
        outputs: list[exp.Expr] = [exp.Column(this=exp.Star(), table=exp.to_identifier(source))]
        for key, group in zip(self.keys, self.plan.groups, strict=True):
            if key in self.person_keys:
                column = person.column(group.column.column)
                outputs.append(exp.alias_(self.column("p", person, column), key))
        on = exp.EQ(this=_col("p", person.person_key), expression=_ref(source, "pid"))
        return exp.select(*outputs).from_(source).join(exp.alias_(_table("persons"), "p", table=True), on=on)

    def aggregate(self, source: str, ctes: list[tuple[str, exp.Expr]]) -> exp.Select:
        plan = self.plan
        group_cols = [_ref(source, k) for k in self.keys]
        if plan.measure == "quantile":
            return self.quantile(source, ctes)
        measures: list[exp.Expr] = []
        if plan.measure in ("sum", "mean"):
            assert plan.value is not None
            units = self.fixed_point(_ref(source, "v"))
            if plan.measure == "mean":
                units = self.centred(units)
            measures.append(exp.alias_(exp.cast(exp.Sum(this=units), "BIGINT"), "s"))
        if self.weighted:
            measures.append(exp.alias_(exp.cast(exp.Sum(this=_ref(source, "w")), "BIGINT"), "n"))
        elif plan.measure != "sum":
            measures.append(exp.alias_(exp.Count(this=exp.Star()), "n"))
        if not self.keys:
            return exp.select(*[self.zero_if_null(m) for m in measures]).from_(source)
        agg = exp.select(*group_cols, *measures).from_(source).group_by(*[c.copy() for c in group_cols])
        ctes.append(("agg", agg))
        if plan.partition_selection:
            # Keys are not public: only observed groups exist; the mechanism thresholds them.
            names = [m.alias for m in measures]
            return (
                exp.select(*[_ref("agg", k) for k in self.keys], *[_ref("agg", n) for n in names])
                .from_("agg")
                .order_by(*[_ref("agg", k) for k in self.keys])
            )
        final = self.keys_frame()
        on = _and(
            [exp.EQ(this=_ref("agg", k), expression=_ref(f"k{i}", "key")) for i, k in enumerate(self.keys)]
        )
        outputs = [exp.func("COALESCE", _ref("agg", m.alias), _lit(0)).as_(m.alias) for m in measures]
        return (
            final.select(*outputs, copy=False)
            .join("agg", on=on, join_type="LEFT")
            .order_by(*[_ref(f"k{i}", "ord") for i in range(len(self.keys))])
        )

    def keys_frame(self) -> exp.Select:
        """SELECT k0.key AS g0, ... FROM k0 CROSS JOIN k1 ...: every public key combination."""
        query = exp.select(*[exp.alias_(_ref(f"k{i}", "key"), k) for i, k in enumerate(self.keys)]).from_(
            "k0"
        )
        for i in range(1, len(self.keys)):
            query = query.join(f"k{i}", join_type="CROSS")
        return query

    def zero_if_null(self, measure: exp.Expr) -> exp.Expr:
        assert isinstance(measure, exp.Alias)
        return exp.func("COALESCE", measure.this, _lit(0)).as_(measure.alias)

    def fixed_point(self, value: exp.Expr) -> exp.Expr:
        """The value in integer units of the resolution (identity for integer columns at 1)."""
        spec = self.plan.value
        assert spec is not None
        if self.integral_units():
            return exp.cast(value, "BIGINT")
        scaled = exp.Div(this=exp.cast(value, "DOUBLE"), expression=_lit(spec.resolution))
        return exp.cast(exp.Round(this=scaled), "BIGINT")

    def centred(self, units: exp.Expr) -> exp.Expr:
        """A mean's summand: the units clamped to ``[L, H]`` minus the midpoint ``M`` (plan.ValueSpec).

        The clamp holds ``|units - M| <= centred_magnitude_units`` even if floating-point division
        rounded a value at a bound one unit outward; integer values at resolution 1 are exact already.
        """
        spec = self.plan.value
        assert spec is not None
        low, high = spec.unit_range
        if not self.integral_units():
            units = exp.Greatest(this=units, expressions=[_lit(low)], ignore_nulls=True)
            units = exp.Least(this=units, expressions=[_lit(high)], ignore_nulls=True)
        return exp.paren(exp.Sub(this=units, expression=_lit(spec.centre_units)))

    def integral_units(self) -> bool:
        """Whether values are whole units already (integer column, resolution 1, whole bounds)."""
        spec = self.plan.value
        assert spec is not None
        column = self.catalog.register(spec.column.register).column(spec.column.column)
        return (
            column.type == "integer"
            and spec.resolution == 1
            and all(float(x).is_integer() for x in (spec.lo, spec.hi, spec.null_value))
        )

    def quantile(self, source: str, ctes: list[tuple[str, exp.Expr]]) -> exp.Select:
        """Per cell and candidate j: the rows below c_j, the cell's rows, and the noisy-max score.

        Values are taken in fixed-point units and offset to the first candidate, so that a row lies
        in bin ``d = a // step`` (``c_d <= x < c_(d+1)``) and equals ``c_d`` iff ``a % step = 0``.
        A histogram per (cell, bin) is made dense over the grid and summed cumulatively, so the cost
        is linear in rows + cells x candidates. With ``below = #(x < c_j)`` and ``rows = n``,
        ``score = |(den - num) * below - num * #(x > c_j)|`` where ``#(x > c_j) = n - below - on``.
        """
        q = self.plan.quantile
        assert q is not None
        low = exp.Greatest(
            this=self.fixed_point(_ref(source, "v")), expressions=[_lit(q.lo_units)], ignore_nulls=True
        )
        units = exp.Least(this=low, expressions=[_lit(q.hi_units)], ignore_nulls=True)
        # sqlglot does not add parentheses by precedence: the offset is wrapped before // and %.
        offset = exp.paren(exp.Sub(this=units, expression=_lit(q.lo_units)))
        on_grid = exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(
                        this=exp.Mod(this=offset.copy(), expression=_lit(q.step_units)), expression=_lit(0)
                    ),
                    true=_lit(1),
                )
            ],
            default=_lit(0),
        )
        key_cols = [_ref(source, k) for k in self.keys]
        binned = exp.select(
            *key_cols,
            exp.alias_(exp.IntDiv(this=offset, expression=_lit(q.step_units)), "d"),
            exp.alias_(on_grid, "e"),
        ).from_(source)
        ctes.append(("binned", binned))
        hist_keys = [_ref("binned", k) for k in self.keys]
        hist = (
            exp.select(
                *hist_keys,
                _ref("binned", "d"),
                exp.alias_(exp.Sum(this=_ref("binned", "e")), "n_on"),
                exp.alias_(exp.Count(this=exp.Star()), "n_bin"),
            )
            .from_("binned")
            .group_by(*[c.copy() for c in hist_keys], _ref("binned", "d"))
        )
        ctes.append(("hist", hist))
        series = exp.GenerateSeries(start=_lit(0), end=_lit(q.candidates - 1))
        ctes.append(("cand", exp.select(exp.alias_(exp.Explode(this=series), "j"))))
        j = _ref("cand", "j")
        on = _and(
            [exp.EQ(this=_ref("hist", k), expression=_ref(f"k{i}", "key")) for i, k in enumerate(self.keys)]
        )
        on = (
            exp.and_(on, exp.EQ(this=_ref("hist", "d"), expression=j))
            if on is not None
            else exp.EQ(this=_ref("hist", "d"), expression=j)
        )
        counts = [
            exp.func("COALESCE", _ref("hist", "n_on"), _lit(0)).as_("n_on"),
            exp.func("COALESCE", _ref("hist", "n_bin"), _lit(0)).as_("n_bin"),
        ]
        if self.keys:
            frame = self.keys_frame().select(
                *[exp.alias_(_ref(f"k{i}", "ord"), f"o{i}") for i in range(len(self.keys))], copy=False
            )
            dense = frame.join("cand", join_type="CROSS").join("hist", on=on, join_type="LEFT")
        else:
            dense = exp.select().from_("cand").join("hist", on=on, join_type="LEFT")
        ctes.append(("dense", dense.select(j.copy(), *counts, copy=False)))
        partition = [_ref("dense", k) for k in self.keys]
        n_bin = _ref("dense", "n_bin")
        running = _window(exp.Sum(this=n_bin.copy()), partition, [_ref("dense", "j")])
        below = exp.Sub(this=running, expression=n_bin.copy())
        total = _window(exp.Sum(this=n_bin.copy()), [c.copy() for c in partition], [])
        cum = exp.select(
            *[_ref("dense", k) for k in self.keys],
            *[_ref("dense", f"o{i}") for i in range(len(self.keys))],
            _ref("dense", "j"),
            _ref("dense", "n_on"),
            exp.cast(below, "BIGINT").as_("below"),
            exp.cast(total, "BIGINT").as_("n_rows"),
        ).from_("dense")
        ctes.append(("cum", cum))
        b, n, n_on = _ref("cum", "below"), _ref("cum", "n_rows"), _ref("cum", "n_on")
        above = exp.paren(exp.Sub(this=exp.Sub(this=n, expression=b.copy()), expression=n_on))
        score = exp.Abs(
            this=exp.Sub(
                this=exp.Mul(this=_lit(q.denominator - q.numerator), expression=b),
                expression=exp.Mul(this=_lit(q.numerator), expression=above),
            )
        )
        return (
            exp.select(
                *[_ref("cum", k) for k in self.keys],
                _ref("cum", "j"),
                exp.cast(score, "BIGINT").as_("score"),
                _ref("cum", "below"),
                _ref("cum", "n_rows"),
            )
            .from_("cum")
            .order_by(*[_ref("cum", f"o{i}") for i in range(len(self.keys))], _ref("cum", "j"))
        )
