"""Compile an AnalysisPlan to SQL (sqlglot, DuckDB and Spark): the per-person table and its histogram.

The query shape (every step partitioned by person, so one person's rows decide only that person's row)::

    persons      the person register, one row per person (its smallest row_key)
    idx_rows     rows of the index register matching the index filters, dated inside the entry window
    idx          per person the FIRST of them (the earliest date): the index date
    ev<k>        rows that several rules below select alike, read once (person, date)
    ex<i>        persons with an exclusion row before their index date (within the lookback)
    outc         per person the first outcome row after the index date (same day for a death date)
    xp<i>        persons with an exposure row on or before their index date (within the lookback)
    members      idx JOIN persons, minus the excluded and those dead before the index, with the
                 population conditions (``where``); one row per person: pid, group keys,
                 t_out, t_death, t_ref (days from the index to outcome, death, reference date)
    cohort       stop = LEAST(t_out, t_death, t_ref, T); event = 1 if the outcome (or death) is the
                 stop, else 0; t = GREATEST(stop, 0), so 0 <= t <= T and event is 0 or 1
    agg          per public cell: COUNT(*) (count, survival, prevalence) or SUM(event), SUM(t) (rate)
    final        the cross join of the key sets LEFT JOIN agg, zeros included, in key order

A prevalence without a cohort starts from ``persons`` (with ``where``) instead of ``idx``. Result
columns: ``g0..gk`` (groups), then ``b`` and ``st`` (survival: exit bin, status 0 censored / 1 event)
or ``hc`` (prevalence: has the condition 0/1), then ``n`` or ``ev`` and ``pt``.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from .catalog import Catalog
from .cohort import AnalysisGroup, AnalysisPlan, CohortPlan, DatedRule
from .cohort_lexis import ATTAINED_KINDS, birth_column, lexis_ctes
from .compile import CompiledQuery, _Builder
from .plan import Cohort, Filter
from .sql_ast import sql_and, sql_col, sql_lit, sql_ref, sql_table
from .sql_persons import person_register_ctes

__all__ = ["compile_analysis", "result_key_columns"]


def compile_analysis(
    plan: AnalysisPlan, catalog: Catalog, dialect: str = "duckdb", *, pretty: bool = False
) -> CompiledQuery:
    """Compile the analysis's exact private table (one row per public cell) for ``dialect``."""
    builder = _AnalysisSQL(plan, catalog, dialect)
    tree = builder.build()
    return CompiledQuery(
        sql=tree.sql(dialect=dialect, pretty=pretty), params=tuple(builder.params), dialect=dialect
    )


def result_key_columns(plan: AnalysisPlan) -> list[tuple[str, tuple[Any, ...]]]:
    """The key columns of the result, in order, with their public key sets."""
    keys: list[tuple[str, tuple[Any, ...]]] = [(f"g{i}", g.keys) for i, g in enumerate(plan.groups)]
    if plan.bins is not None:
        keys += [("b", tuple(range(plan.bins.count))), ("st", (0, 1))]
    if plan.measure == "prevalence":
        keys.append(("hc", (0, 1)))
    return keys


def _days(end: exp.Expr, start: exp.Expr) -> exp.Expr:
    """Whole days from ``start`` to ``end`` (DuckDB DATE_DIFF('DAY', ...), Spark DATEDIFF)."""
    return exp.DateDiff(this=end, expression=start)


_AGAINST_INDEX: dict[tuple[bool, bool], type[exp.Binary]] = {
    (False, False): exp.LT,
    (False, True): exp.LTE,
    (True, False): exp.GT,
    (True, True): exp.GTE,
}


def _against_index(date: exp.Expr, index_date: exp.Expr, *, after: bool, same_day: bool) -> exp.Expr:
    """A row's ``date`` before (``after``: after) the person's index date; ``same_day``: or on it."""
    return _AGAINST_INDEX[(after, same_day)](this=date, expression=index_date)


def _flag(condition: exp.Expr) -> exp.Expr:
    return exp.Case(ifs=[exp.If(this=condition, true=sql_lit(1))], default=sql_lit(0))


class _AnalysisSQL(_Builder):
    """The column and filter expressions of ``compile._Builder``, over an analysis plan."""

    def __init__(self, plan: AnalysisPlan, catalog: Catalog, dialect: str) -> None:
        # Only the expression helpers of the base class are used; its plan-based state is not needed.
        self.analysis = plan
        self.catalog = catalog
        self.dialect = dialect
        self.params: list[Any] = []
        self.person = catalog.register(plan.person_register)
        # Exposures not grouped by are not computed (they do not change who is a member).
        self.used_exposures = {g.source for g in plan.groups if g.kind == "exposure"}
        self.split = any(g.kind in ATTAINED_KINDS for g in plan.groups)
        # Rule rows read once for several rules: (register, date, filters) -> CTE name (``rule_ctes``).
        self.shared: dict[tuple[str, str, tuple[Filter, ...]], str] = {}

    def build(self) -> exp.Select:
        plan = self.analysis
        ctes: list[tuple[str, exp.Expr]] = []
        key_columns = result_key_columns(plan)
        for i, (_, keys) in enumerate(key_columns):
            rows = [(sql_lit(k), sql_lit(o)) for o, k in enumerate(keys)]
            ctes.append(
                (
                    f"k{i}",
                    exp.select("key", "ord").from_(exp.values(rows, alias=f"k{i}", columns=["key", "ord"])),
                )
            )
        ctes.extend(self.persons())
        if plan.cohort is not None:
            ctes.extend(self.cohort_ctes(plan.cohort))
            last = "cohort"
            if self.split:
                ctes.extend(lexis_ctes(plan, plan.cohort, self.catalog, last))
                last = "lexis"
        else:
            ctes.append(("members", self.population()))
            last = "members"
        final = self.histogram(last, [name for name, _ in key_columns], ctes)
        for name, query in ctes:
            final = final.with_(name, as_=query)
        return final

    def persons(self) -> list[tuple[str, exp.Select]]:
        return person_register_ctes(self.catalog, self.person, self.dialect)

    # --- the population ----------------------------------------------------------------------------

    def population_conditions(self, pid: exp.Expr) -> list[exp.Expr]:
        """``where``: conditions on the person's own row (alias ``p``) and on having rows elsewhere."""
        conditions = [self.filter("p", f) for f in self.analysis.person_filters]
        for i, presence in enumerate(self.analysis.presence):
            conditions.append(exp.In(this=pid.copy(), query=self.having_rows(presence, f"w{i}").subquery()))
        return conditions

    def having_rows(self, rule: Cohort, alias: str) -> exp.Select:
        register = self.catalog.register(rule.register)
        query = exp.select(sql_col(alias, register.person_key)).from_(
            exp.alias_(sql_table(register.name), alias, table=True)
        )
        where = sql_and([self.filter(alias, f) for f in rule.filters])
        return query.where(where) if where is not None else query

    def population(self) -> exp.Select:
        """A prevalence without a cohort: every person (one row each) matching ``where``."""
        pid = sql_col("p", self.person.person_key)
        outputs = [exp.alias_(pid, "pid"), *self.person_group_columns(), self.condition_column(pid)]
        query = exp.select(*outputs).from_(exp.alias_(sql_table("persons"), "p", table=True))
        where = sql_and(self.population_conditions(pid))
        return query.where(where) if where is not None else query

    def condition_column(self, pid: exp.Expr) -> exp.Expr:
        condition = self.analysis.condition
        assert condition is not None
        has = exp.In(this=pid.copy(), query=self.having_rows(condition, "hc_rows").subquery())
        return exp.alias_(_flag(has), "hc")

    def person_group_columns(self) -> list[exp.Expr]:
        return [
            exp.alias_(self.column("p", self.person, self.person.column(g.source)), f"g{i}")
            for i, g in enumerate(self.analysis.groups)
            if g.kind == "person"
        ]

    # --- the cohort --------------------------------------------------------------------------------

    def population_index(self, cohort: CohortPlan) -> exp.Select:
        """A population index: each person alive on max(entry start, birthday at min_age) within the window."""
        index = cohort.index
        assert index.birth is not None
        birth = sql_col("p", index.birth)
        at_age = exp.DateAdd(this=birth.copy(), expression=sql_lit(index.min_age), unit=exp.Var(this="YEAR"))
        entry = exp.cast(exp.Greatest(this=self.param(index.entry_first), expressions=[at_age]), "DATE")
        conditions = [
            birth.is_(exp.null()).not_(),
            exp.LTE(this=entry.copy(), expression=self.param(index.entry_last)),
            *[self.filter("p", f) for f in index.filters],
        ]
        pid = exp.alias_(sql_col("p", self.person.person_key), "pid")
        return (
            exp.select(pid, exp.alias_(entry, "index_date"))
            .from_(exp.alias_(sql_table("persons"), "p", table=True))
            .where(sql_and(conditions))
        )

    def cohort_ctes(self, cohort: CohortPlan) -> list[tuple[str, exp.Expr]]:
        index = cohort.index
        if index.date is None:
            return [("idx", self.population_index(cohort)), *self.rule_ctes(cohort)]
        register = self.catalog.register(index.register)
        date = sql_col("x", index.date)
        in_window = exp.Between(
            this=date, low=self.param(index.entry_first), high=self.param(index.entry_last)
        )
        rows = (
            exp.select(exp.alias_(sql_col("x", register.person_key), "pid"), exp.alias_(date.copy(), "d"))
            .from_(exp.alias_(sql_table(register.name), "x", table=True))
            .where(sql_and([in_window, *[self.filter("x", f) for f in index.filters]]))
        )
        # The index is the person's first matching row; only its date is carried on, so the earliest
        # date is the index (a hash aggregate, where ranking the rows would sort them).
        idx = (
            exp.select(
                sql_ref("idx_rows", "pid"), exp.alias_(exp.Min(this=sql_ref("idx_rows", "d")), "index_date")
            )
            .from_("idx_rows")
            .group_by(sql_ref("idx_rows", "pid"))
        )
        return [("idx_rows", rows), ("idx", idx), *self.rule_ctes(cohort)]

    def rule_ctes(self, cohort: CohortPlan) -> list[tuple[str, exp.Expr]]:
        """Exclusions, outcome, exposures, members and the exit, after the index (``idx``)."""
        ctes: list[tuple[str, exp.Expr]] = []
        rules = [*cohort.exclusions, *([cohort.outcome] if cohort.outcome is not None else [])]
        rules += [rule for name, rule in cohort.exposures if name in self.used_exposures]
        # Rows that two rules select alike (e.g. E11 contacts: excluded before the index, the outcome
        # after it) are read from the register once, in a CTE ``ev<k>`` both rules join to the index.
        self.shared = {}
        for rule in rules:
            key = (rule.register, rule.date, rule.filters)
            if key not in self.shared and sum(1 for r in rules if (r.register, r.date, r.filters) == key) > 1:
                self.shared[key] = f"ev{len(self.shared)}"
                ctes.append((self.shared[key], self.event_rows(rule)))
        for i, rule in enumerate(cohort.exclusions):
            ctes.append((f"ex{i}", self.dated(rule, same_day=False)))
        if cohort.outcome is not None:
            ctes.append(("outc", self.outcome(cohort.outcome, cohort.outcome_same_day)))
        for i, (name, rule) in enumerate(cohort.exposures):
            if name in self.used_exposures:
                ctes.append((f"xp{i}", self.dated(rule, same_day=True)))
        ctes.append(("members", self.members(cohort)))
        ctes.append(("cohort", self.exit(cohort)))
        return ctes

    def event_rows(self, rule: DatedRule) -> exp.Select:
        """The rule's matching rows of its register: person (``pid``) and date (``d``)."""
        register = self.catalog.register(rule.register)
        query = exp.select(
            exp.alias_(sql_col("x", register.person_key), "pid"), exp.alias_(sql_col("x", rule.date), "d")
        ).from_(exp.alias_(sql_table(register.name), "x", table=True))
        where = sql_and([self.filter("x", f) for f in rule.filters])
        return query.where(where) if where is not None else query

    def rule_rows(self, rule: DatedRule) -> tuple[exp.Select, exp.Expr, list[exp.Expr]]:
        """Rows of the rule's register (alias ``x``) joined to their person's index date; the row's date;
        and the rule's conditions on the rows (none where they come from a shared ``ev<k>``)."""
        shared = self.shared.get((rule.register, rule.date, rule.filters))
        if shared is not None:
            on = exp.EQ(this=sql_col("x", "pid"), expression=sql_ref("idx", "pid"))
            query = exp.select().from_(exp.alias_(sql_table(shared), "x", table=True)).join("idx", on=on)
            return query, sql_col("x", "d"), []
        register = self.catalog.register(rule.register)
        on = exp.EQ(this=sql_col("x", register.person_key), expression=sql_ref("idx", "pid"))
        query = exp.select().from_(exp.alias_(sql_table(register.name), "x", table=True)).join("idx", on=on)
        return query, sql_col("x", rule.date), [self.filter("x", f) for f in rule.filters]

    def dated(self, rule: DatedRule, *, same_day: bool) -> exp.Select:
        """Persons with a matching row before (``same_day``: on or before) their index date, within the lookback."""
        query, date, matching = self.rule_rows(rule)
        index_date = sql_ref("idx", "index_date")
        when = _against_index(date, index_date, after=False, same_day=same_day)
        conditions = [when, *matching]
        if rule.lookback_days is not None:
            conditions.append(
                exp.LTE(this=_days(index_date.copy(), date.copy()), expression=sql_lit(rule.lookback_days))
            )
        return query.select(sql_ref("idx", "pid"), copy=False).where(sql_and(conditions)).distinct()

    def outcome(self, rule: DatedRule, same_day: bool) -> exp.Select:
        """Per person the first outcome date after the index date (on it, for a death date)."""
        query, date, matching = self.rule_rows(rule)
        after = _against_index(date, sql_ref("idx", "index_date"), after=True, same_day=same_day)
        return (
            query.select(sql_ref("idx", "pid"), exp.alias_(exp.Min(this=date.copy()), "od"), copy=False)
            .where(sql_and([after, *matching]))
            .group_by(sql_ref("idx", "pid"))
        )

    def group_column(self, i: int, group: AnalysisGroup, cohort: CohortPlan) -> exp.Expr | None:
        """The SQL of a cohort group column (``None`` for ``cohort.event``, computed at the exit)."""
        index_date = sql_ref("i", "index_date")
        if group.kind == "person":
            return self.column("p", self.person, self.person.column(group.source))
        if group.kind == "age_band":
            column = next(c for c in self.person.columns if c.keyset == group.source and c.derivation)
            assert column.derivation is not None
            age = self.age(sql_col("p", column.derivation.source), None, at=index_date)
            return self.age_band(age, group.keys)
        if group.kind == "period":
            year = exp.Year(this=index_date)
            ifs = [
                exp.If(
                    this=exp.Between(this=year.copy(), low=sql_lit(p.first_year), high=sql_lit(p.last_year)),
                    true=sql_lit(p.label),
                )
                for p in cohort.periods
            ]
            return exp.Case(ifs=ifs)
        if group.kind == "exposure":
            k = [name for name, _ in cohort.exposures].index(group.source)
            return _flag(sql_ref(f"xp{k}", "pid").is_(exp.null()).not_())
        return None  # cohort.event (at the exit) and the attained groups (split in cohort_lexis)

    def members(self, cohort: CohortPlan) -> exp.Select:
        """One row per cohort member: group keys and days from the index to outcome, death, reference."""
        person = self.person
        pid, index_date = sql_ref("i", "pid"), sql_ref("i", "index_date")
        death = sql_col("p", "death_date")
        outputs: list[exp.Expr] = [exp.alias_(pid, "pid")]
        for i, group in enumerate(self.analysis.groups):
            column = self.group_column(i, group, cohort)
            if column is not None:
                outputs.append(exp.alias_(column, f"g{i}"))
        if self.analysis.condition is not None:
            outputs.append(self.condition_column(pid))
        if cohort.outcome is not None:
            outputs.append(exp.alias_(_days(sql_ref("o", "od"), index_date.copy()), "t_out"))
        outputs.append(exp.alias_(_days(death.copy(), index_date.copy()), "t_death"))
        outputs.append(exp.alias_(_days(self.reference_date(), index_date.copy()), "t_ref"))
        if self.split:
            birth = cohort.index.birth or birth_column(self.catalog)
            outputs += [exp.alias_(index_date.copy(), "index_date"), exp.alias_(sql_col("p", birth), "birth")]
        on_person = exp.EQ(this=sql_col("p", person.person_key), expression=pid.copy())
        query = (
            exp.select(*outputs)
            .from_(exp.alias_(sql_table("idx"), "i", table=True))
            .join(exp.alias_(sql_table("persons"), "p", table=True), on=on_person)
        )
        if cohort.outcome is not None:
            on = exp.EQ(this=sql_ref("o", "pid"), expression=pid.copy())
            query = query.join(exp.alias_(sql_table("outc"), "o", table=True), on=on, join_type="LEFT")
        for k, (name, _) in enumerate(cohort.exposures):
            if name in self.used_exposures:
                on = exp.EQ(this=sql_ref(f"xp{k}", "pid"), expression=pid.copy())
                query = query.join(f"xp{k}", on=on, join_type="LEFT")
        # Persons dead before their index date are data errors, not cohort members.
        alive = exp.or_(
            death.copy().is_(exp.null()), exp.GTE(this=death.copy(), expression=index_date.copy())
        )
        conditions: list[exp.Expr] = [alive]
        for k in range(len(cohort.exclusions)):
            excluded = exp.In(this=pid.copy(), query=exp.select("pid").from_(f"ex{k}").subquery())
            conditions.append(exp.Not(this=excluded))
        conditions += self.population_conditions(pid)
        return query.where(sql_and(conditions))

    def exit(self, cohort: CohortPlan) -> exp.Select:
        """Exit, event (0/1) and person-time in days clamped to [0, T]."""
        big = sql_lit(cohort.follow_up_days + 1)
        t_out, t_death, t_ref = (sql_ref("members", n) for n in ("t_out", "t_death", "t_ref"))
        ends: list[exp.Expr] = [
            exp.func("COALESCE", t_death, big.copy()),
            t_ref,
            sql_lit(cohort.follow_up_days),
        ]
        if cohort.outcome is not None:
            ends.insert(0, exp.func("COALESCE", t_out, big.copy()))
        stop = exp.Least(this=ends[0], expressions=ends[1:], ignore_nulls=True)
        decisive = t_out.copy() if cohort.outcome is not None else t_death.copy()
        event = _flag(
            exp.and_(decisive.is_(exp.null()).not_(), exp.LTE(this=decisive.copy(), expression=stop.copy()))
        )
        time = exp.Greatest(this=stop.copy(), expressions=[sql_lit(0)], ignore_nulls=True)
        flags = ["hc"] if self.analysis.condition is not None else []
        groups = [
            exp.alias_(event.copy(), f"g{i}") if g.kind == "event" else sql_ref("members", f"g{i}")
            for i, g in enumerate(self.analysis.groups)
            if g.kind not in ATTAINED_KINDS
        ]
        if self.split:
            groups += [sql_ref("members", "index_date"), sql_ref("members", "birth")]
        return exp.select(
            sql_ref("members", "pid"),
            *groups,
            *[sql_ref("members", k) for k in flags],
            exp.alias_(event, "event"),
            exp.alias_(time, "t"),
        ).from_("members")

    # --- the histogram -----------------------------------------------------------------------------

    def histogram(self, source: str, keys: list[str], ctes: list[tuple[str, exp.Expr]]) -> exp.Select:
        plan = self.analysis
        columns: dict[str, exp.Expr] = {k: sql_ref(source, k) for k in keys}
        if plan.bins is not None:
            bins = plan.bins
            scaled = exp.IntDiv(
                this=exp.paren(exp.Mul(this=sql_ref(source, "t"), expression=sql_lit(bins.den))),
                expression=sql_lit(bins.num),
            )
            columns["b"] = exp.Least(this=scaled, expressions=[sql_lit(bins.count - 1)], ignore_nulls=True)
            columns["st"] = sql_ref(source, "event")
        if plan.measure == "rate":
            measures = [
                exp.alias_(exp.cast(exp.Sum(this=sql_ref(source, "event")), "BIGINT"), "ev"),
                exp.alias_(exp.cast(exp.Sum(this=sql_ref(source, "t")), "BIGINT"), "pt"),
            ]
        else:
            measures = [exp.alias_(exp.Count(this=exp.Star()), "n")]
        if not keys:
            return exp.select(
                *[exp.func("COALESCE", m.this, sql_lit(0)).as_(m.alias) for m in measures]
            ).from_(source)
        agg = (
            exp.select(*[exp.alias_(columns[k], k) for k in keys], *measures)
            .from_(source)
            .group_by(*[columns[k].copy() for k in keys])
        )
        ctes.append(("agg", agg))
        frame = exp.select(*[exp.alias_(sql_ref(f"k{i}", "key"), k) for i, k in enumerate(keys)]).from_("k0")
        for i in range(1, len(keys)):
            frame = frame.join(f"k{i}", join_type="CROSS")
        on = sql_and(
            [exp.EQ(this=sql_ref("agg", k), expression=sql_ref(f"k{i}", "key")) for i, k in enumerate(keys)]
        )
        outputs = [exp.func("COALESCE", sql_ref("agg", m.alias), sql_lit(0)).as_(m.alias) for m in measures]
        return (
            frame.select(*outputs, copy=False)
            .join("agg", on=on, join_type="LEFT")
            .order_by(*[sql_ref(f"k{i}", "ord") for i in range(len(keys))])
        )
