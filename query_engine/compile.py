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
              An unfiltered count that a build-time pre-aggregate answers (``query_engine.preaggregate``)
              reads ``bounded`` from it instead (no src, kept or windows): ``gn <= G``, ``LEAST(n, c)``
    joined    person-level group keys from the person register, one row per person (the
              smallest row_key: ``persons``), so a duplicated person cannot multiply rows
    agg       exact aggregates per group
    final     the cross join of the key sets LEFT JOINed to agg, zeros included, in key order

Result columns: ``g0..gk`` (group keys), then ``n`` (count), ``s`` (fixed-point sum; for a mean the
sum of ``units - M``, centred on the midpoint of the bounds), or ``j``
(candidate index) and ``score`` for quantiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlglot import exp

from .catalog import ROW_RANK_COLUMN, Catalog, Register
from .compile_preaggregate import answering_preaggregate, preaggregated_ctes
from .plan import Filter, Plan, ValueSpec
from .sql_ast import sql_and, sql_col, sql_lit, sql_ref, sql_table, sql_window
from .sql_columns import ColumnSql
from .sql_persons import grain_verified, person_register_ctes

__all__ = ["CompiledQuery", "compile_plan"]


@dataclass(frozen=True)
class CompiledQuery:
    """SQL text for one dialect and its parameter values: ``$1`` (DuckDB) or ``:p1`` is ``params[0]``."""

    sql: str
    params: tuple[Any, ...]
    dialect: str


def compile_plan(
    plan: Plan,
    catalog: Catalog,
    dialect: str = "duckdb",
    *,
    pretty: bool = False,
    preaggregates: frozenset[str] = frozenset(),
) -> CompiledQuery:
    """Compile the plan's exact, bounded aggregate query for ``dialect`` (``pretty`` for reading).

    ``preaggregates``: the current pre-aggregate tables of the database (``query_engine.preaggregate``);
    one is read instead of the register when it answers the plan exactly.
    """
    builder = _Builder(plan, catalog, dialect, preaggregates)
    tree = builder.build()
    return CompiledQuery(
        sql=tree.sql(dialect=dialect, pretty=pretty), params=tuple(builder.params), dialect=dialect
    )


def _at_most(source: str, rank: str, limit: int) -> exp.Select:
    """``SELECT * FROM source WHERE source.rank <= limit``: the rows a bound keeps, by their rank."""
    return exp.select("*").from_(source).where(sql_ref(source, rank) <= sql_lit(limit))


class _Builder(ColumnSql):
    """Builds the AST for one plan, collecting bound parameters in order of their numbers."""

    def __init__(self, plan: Plan, catalog: Catalog, dialect: str, preaggregates: frozenset[str]) -> None:
        super().__init__(catalog)
        self.plan = plan
        self.dialect = dialect
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
        self.row_ranking = self.how_rows_are_ranked()
        # Row counts with c enforced: one weighted row per person and group (see ``bounding``). Without
        # G bounding only if the cells are person-level: else one person's rows could fill two cells.
        self.weighted = (
            plan.measure == "count_rows"
            and plan.value is None
            and self.row_ranking != "none"
            and (plan.bounding.bound_groups or not self.grain_keys)
        )
        self.preaggregate = answering_preaggregate(self, preaggregates)

    def how_rows_are_ranked(self) -> Literal["none", "stored", "window"]:
        """How a person's first c rows (by row_key) are kept: ``none`` (no row bound, or a verified
        person-grain register, whose one row per person is always kept), ``stored`` (the build's rank
        column of an event register, when no row condition changes the ranks and rows are ranked per
        person only) or ``window`` (ROW_NUMBER over the person's rows)."""
        plan, bounding = self.plan, self.plan.bounding
        grain = self.catalog.register(plan.grain)
        if not bounding.bound_rows or (
            grain_verified(self.catalog, grain, self.dialect)
            and bounding.max_rows >= 1
            and not bounding.bound_groups
        ):
            return "none"
        if (
            self.dialect == "duckdb"
            and grain.name in self.catalog.row_ranked_registers
            and not plan.row_filters
            and not bounding.bound_groups
        ):
            return "stored"
        return "window"

    def param(self, value: Any) -> exp.Placeholder:
        self.params.append(value)
        number = len(self.params)
        # DuckDB binds $1, $2, ... positionally; Spark takes named markers (:p1), mapped to the same list.
        return exp.Placeholder(this=str(number) if self.dialect == "duckdb" else f"p{number}")

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
        number = (lambda x: sql_lit(int(x))) if integral else sql_lit
        filled = exp.Case(ifs=[exp.If(this=missing, true=number(spec.null_value))], default=raw)
        # The value is never NULL here, so the dialects' NULL rules for LEAST/GREATEST do not matter.
        low = exp.Greatest(this=filled, expressions=[number(spec.lo)], ignore_nulls=True)
        return exp.Least(this=low, expressions=[number(spec.hi)], ignore_nulls=True)

    def filter(self, table: str, f: Filter) -> exp.Expr:
        register = self.catalog.register(f.column.register)
        return self.compare(self.column(table, register, register.column(f.column.column)), f)

    def compare(self, col: exp.Expr, f: Filter) -> exp.Expr:
        """``f``'s condition on the expression ``col`` (the column's values), values bound as parameters."""
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
                rows = [(sql_lit(k), sql_lit(o)) for o, k in enumerate(group.keys)]
                ctes.append(
                    (
                        f"k{i}",
                        exp.select("key", "ord").from_(
                            exp.values(rows, alias=f"k{i}", columns=["key", "ord"])
                        ),
                    )
                )
        if self.preaggregate is not None:
            ctes.extend(preaggregated_ctes(self, self.preaggregate))
            last = "bounded"
        else:
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
            exp.alias_(sql_col("g", grain.person_key), "pid"),
            exp.alias_(sql_col("g", grain.row_key), "rk"),
        ]
        for key, group in zip(self.keys, plan.groups, strict=True):
            if key in self.grain_keys:
                column = grain.column(group.column.column)
                outputs.append(exp.alias_(self.column("g", grain, column), key))
        if plan.value is not None:
            outputs.append(exp.alias_(self.value("g", grain, plan.value), "v"))
        if self.row_ranking == "stored" and not self.weighted:
            outputs.append(exp.alias_(sql_col("g", ROW_RANK_COLUMN), "rn"))
        query = exp.select(*outputs).from_(exp.alias_(sql_table(grain.name), "g", table=True))
        conditions = [self.filter("g", f) for f in plan.row_filters]
        if plan.person_filters:
            semi = (
                exp.select(sql_col("p", person.person_key))
                .from_(exp.alias_(sql_table(person.name), "p", table=True))
                .where(sql_and([self.filter("p", f) for f in plan.person_filters]))
            )
            conditions.append(exp.In(this=sql_col("g", grain.person_key), query=semi.subquery()))
        for i, cohort in enumerate(plan.cohorts):
            register = catalog.register(cohort.register)
            alias = f"c{i}"
            semi = exp.select(sql_col(alias, register.person_key)).from_(
                exp.alias_(sql_table(register.name), alias, table=True)
            )
            where = sql_and([self.filter(alias, f) for f in cohort.filters])
            if where is not None:
                semi = semi.where(where)
            conditions.append(exp.In(this=sql_col("g", grain.person_key), query=semi.subquery()))
        where = sql_and(conditions)
        return query.where(where) if where is not None else query

    def kept(self) -> exp.Select:
        query = exp.select("*").from_("src")
        conditions: list[exp.Expr] = []
        for i, (key, group) in enumerate(zip(self.keys, self.plan.groups, strict=True)):
            if key not in self.grain_keys:
                continue
            if group.keys is None:
                conditions.append(sql_ref("src", key).is_(exp.null()).not_())
            else:
                conditions.append(
                    exp.In(this=sql_ref("src", key), query=exp.select("key").from_(f"k{i}").subquery())
                )
        where = sql_and(conditions)
        return query.where(where) if where is not None else query

    def bounding(self, source: str) -> list[tuple[str, exp.Select]]:
        """CTEs that enforce c rows per person and group, then G groups per person."""
        plan, bounding = self.plan, self.plan.bounding
        group_cols = [sql_ref(source, k) for k in self.grain_keys]
        steps: list[tuple[str, exp.Select]] = []
        if plan.measure == "count_persons" and bounding.bound_groups:
            # One row per person and group, keeping the group's smallest row_key for the ranking.
            distinct = (
                exp.select(
                    sql_ref(source, "pid"),
                    *group_cols,
                    exp.alias_(exp.Min(this=sql_ref(source, "rk")), "grk"),
                )
                .from_(source)
                .group_by(sql_ref(source, "pid"), *[c.copy() for c in group_cols])
            )
            steps.append(("person_groups", distinct))
            source = "person_groups"
        elif self.weighted:
            # count_rows: the c rows a person keeps (in a group) are only counted, so the row count
            # capped at c is the count of the kept rows; the group's smallest row_key ranks the group.
            weighted = (
                exp.select(
                    sql_ref(source, "pid"),
                    *group_cols,
                    exp.alias_(
                        exp.Least(
                            this=exp.Count(this=exp.Star()),
                            expressions=[sql_lit(bounding.max_rows)],
                            ignore_nulls=True,
                        ),
                        "w",
                    ),
                    *(
                        [exp.alias_(exp.Min(this=sql_ref(source, "rk")), "grk")]
                        if bounding.bound_groups
                        else []
                    ),
                )
                .from_(source)
                .group_by(sql_ref(source, "pid"), *[c.copy() for c in group_cols])
            )
            steps.append(("rows_weighted", weighted))
            source = "rows_weighted"
        elif self.row_ranking == "stored":
            steps.append(("rows_bounded", _at_most(source, "rn", bounding.max_rows)))
            source = "rows_bounded"
        elif self.row_ranking == "window":
            # Without G bounding the groups are one per person (person-level keys, or a person-grain
            # register whose one kept row has one group): partition by the person alone.
            partition = [sql_ref(source, "pid")] + (group_cols if bounding.bound_groups else [])
            windows = [exp.alias_(sql_window(exp.RowNumber(), partition, [sql_ref(source, "rk")]), "rn")]
            if bounding.bound_groups:
                first_row = sql_window(exp.Min(this=sql_ref(source, "rk")), [p.copy() for p in partition], [])
                windows.append(exp.alias_(first_row, "grk"))
            ranked = exp.select("*", *windows).from_(source)
            steps.append(("rows_ranked", ranked))
            steps.append(("rows_bounded", _at_most("rows_ranked", "rn", bounding.max_rows)))
            source = "rows_bounded"
        if bounding.bound_groups:
            order = [sql_ref(source, "grk"), *[sql_ref(source, k) for k in self.grain_keys]]
            ranked = exp.select(
                "*",
                exp.alias_(
                    sql_window(exp.Anonymous(this="DENSE_RANK"), [sql_ref(source, "pid")], order), "gn"
                ),
            ).from_(source)
            steps.append(("groups_ranked", ranked))
            steps.append(("bounded", _at_most("groups_ranked", "gn", bounding.max_groups)))
        return steps

    def persons(self) -> list[tuple[str, exp.Select]]:
        return person_register_ctes(
            self.catalog, self.catalog.register(self.plan.person_register), self.dialect
        )

    def person_attributes(self, source: str) -> exp.Select:
        """The bounded rows with the person-level group keys joined from ``persons``."""
        person = self.catalog.register(self.plan.person_register)
        outputs: list[exp.Expr] = [exp.Column(this=exp.Star(), table=exp.to_identifier(source))]
        for key, group in zip(self.keys, self.plan.groups, strict=True):
            if key in self.person_keys:
                column = person.column(group.column.column)
                outputs.append(exp.alias_(self.column("p", person, column), key))
        on = exp.EQ(this=sql_col("p", person.person_key), expression=sql_ref(source, "pid"))
        return (
            exp.select(*outputs).from_(source).join(exp.alias_(sql_table("persons"), "p", table=True), on=on)
        )

    def aggregate(self, source: str, ctes: list[tuple[str, exp.Expr]]) -> exp.Select:
        plan = self.plan
        group_cols = [sql_ref(source, k) for k in self.keys]
        if plan.measure == "quantile":
            return self.quantile(source, ctes)
        measures: list[exp.Expr] = []
        if plan.measure in ("sum", "mean"):
            assert plan.value is not None
            units = self.fixed_point(sql_ref(source, "v"))
            if plan.measure == "mean":
                units = self.centred(units)
            measures.append(exp.alias_(exp.cast(exp.Sum(this=units), "BIGINT"), "s"))
        if self.weighted:
            measures.append(exp.alias_(exp.cast(exp.Sum(this=sql_ref(source, "w")), "BIGINT"), "n"))
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
                exp.select(*[sql_ref("agg", k) for k in self.keys], *[sql_ref("agg", n) for n in names])
                .from_("agg")
                .order_by(*[sql_ref("agg", k) for k in self.keys])
            )
        final = self.keys_frame()
        on = sql_and(
            [
                exp.EQ(this=sql_ref("agg", k), expression=sql_ref(f"k{i}", "key"))
                for i, k in enumerate(self.keys)
            ]
        )
        outputs = [exp.func("COALESCE", sql_ref("agg", m.alias), sql_lit(0)).as_(m.alias) for m in measures]
        return (
            final.select(*outputs, copy=False)
            .join("agg", on=on, join_type="LEFT")
            .order_by(*[sql_ref(f"k{i}", "ord") for i in range(len(self.keys))])
        )

    def keys_frame(self) -> exp.Select:
        """SELECT k0.key AS g0, ... FROM k0 CROSS JOIN k1 ...: every public key combination."""
        query = exp.select(*[exp.alias_(sql_ref(f"k{i}", "key"), k) for i, k in enumerate(self.keys)]).from_(
            "k0"
        )
        for i in range(1, len(self.keys)):
            query = query.join(f"k{i}", join_type="CROSS")
        return query

    def zero_if_null(self, measure: exp.Expr) -> exp.Expr:
        assert isinstance(measure, exp.Alias)
        return exp.func("COALESCE", measure.this, sql_lit(0)).as_(measure.alias)

    def fixed_point(self, value: exp.Expr) -> exp.Expr:
        """The value in integer units of the resolution (identity for integer columns at 1)."""
        spec = self.plan.value
        assert spec is not None
        if self.integral_units():
            return exp.cast(value, "BIGINT")
        scaled = exp.Div(this=exp.cast(value, "DOUBLE"), expression=sql_lit(spec.resolution))
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
            units = exp.Greatest(this=units, expressions=[sql_lit(low)], ignore_nulls=True)
            units = exp.Least(this=units, expressions=[sql_lit(high)], ignore_nulls=True)
        return exp.paren(exp.Sub(this=units, expression=sql_lit(spec.centre_units)))

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
            this=self.fixed_point(sql_ref(source, "v")), expressions=[sql_lit(q.lo_units)], ignore_nulls=True
        )
        units = exp.Least(this=low, expressions=[sql_lit(q.hi_units)], ignore_nulls=True)
        # sqlglot does not add parentheses by precedence: the offset is wrapped before // and %.
        offset = exp.paren(exp.Sub(this=units, expression=sql_lit(q.lo_units)))
        on_grid = exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(
                        this=exp.Mod(this=offset.copy(), expression=sql_lit(q.step_units)),
                        expression=sql_lit(0),
                    ),
                    true=sql_lit(1),
                )
            ],
            default=sql_lit(0),
        )
        key_cols = [sql_ref(source, k) for k in self.keys]
        binned = exp.select(
            *key_cols,
            exp.alias_(exp.IntDiv(this=offset, expression=sql_lit(q.step_units)), "d"),
            exp.alias_(on_grid, "e"),
        ).from_(source)
        ctes.append(("binned", binned))
        hist_keys = [sql_ref("binned", k) for k in self.keys]
        hist = (
            exp.select(
                *hist_keys,
                sql_ref("binned", "d"),
                exp.alias_(exp.Sum(this=sql_ref("binned", "e")), "n_on"),
                exp.alias_(exp.Count(this=exp.Star()), "n_bin"),
            )
            .from_("binned")
            .group_by(*[c.copy() for c in hist_keys], sql_ref("binned", "d"))
        )
        ctes.append(("hist", hist))
        series = exp.GenerateSeries(start=sql_lit(0), end=sql_lit(q.candidates - 1))
        ctes.append(("cand", exp.select(exp.alias_(exp.Explode(this=series), "j"))))
        j = sql_ref("cand", "j")
        on = sql_and(
            [
                exp.EQ(this=sql_ref("hist", k), expression=sql_ref(f"k{i}", "key"))
                for i, k in enumerate(self.keys)
            ]
        )
        on = (
            exp.and_(on, exp.EQ(this=sql_ref("hist", "d"), expression=j))
            if on is not None
            else exp.EQ(this=sql_ref("hist", "d"), expression=j)
        )
        counts = [
            exp.func("COALESCE", sql_ref("hist", "n_on"), sql_lit(0)).as_("n_on"),
            exp.func("COALESCE", sql_ref("hist", "n_bin"), sql_lit(0)).as_("n_bin"),
        ]
        if self.keys:
            frame = self.keys_frame().select(
                *[exp.alias_(sql_ref(f"k{i}", "ord"), f"o{i}") for i in range(len(self.keys))], copy=False
            )
            dense = frame.join("cand", join_type="CROSS").join("hist", on=on, join_type="LEFT")
        else:
            dense = exp.select().from_("cand").join("hist", on=on, join_type="LEFT")
        ctes.append(("dense", dense.select(j.copy(), *counts, copy=False)))
        partition = [sql_ref("dense", k) for k in self.keys]
        n_bin = sql_ref("dense", "n_bin")
        running = sql_window(exp.Sum(this=n_bin.copy()), partition, [sql_ref("dense", "j")])
        below = exp.Sub(this=running, expression=n_bin.copy())
        total = sql_window(exp.Sum(this=n_bin.copy()), [c.copy() for c in partition], [])
        cum = exp.select(
            *[sql_ref("dense", k) for k in self.keys],
            *[sql_ref("dense", f"o{i}") for i in range(len(self.keys))],
            sql_ref("dense", "j"),
            sql_ref("dense", "n_on"),
            exp.cast(below, "BIGINT").as_("below"),
            exp.cast(total, "BIGINT").as_("n_rows"),
        ).from_("dense")
        ctes.append(("cum", cum))
        b, n, n_on = sql_ref("cum", "below"), sql_ref("cum", "n_rows"), sql_ref("cum", "n_on")
        above = exp.paren(exp.Sub(this=exp.Sub(this=n, expression=b.copy()), expression=n_on))
        score = exp.Abs(
            this=exp.Sub(
                this=exp.Mul(this=sql_lit(q.denominator - q.numerator), expression=b),
                expression=exp.Mul(this=sql_lit(q.numerator), expression=above),
            )
        )
        return (
            exp.select(
                *[sql_ref("cum", k) for k in self.keys],
                sql_ref("cum", "j"),
                exp.cast(score, "BIGINT").as_("score"),
                sql_ref("cum", "below"),
                sql_ref("cum", "n_rows"),
            )
            .from_("cum")
            .order_by(*[sql_ref("cum", f"o{i}") for i in range(len(self.keys))], sql_ref("cum", "j"))
        )
