"""Reading a build-time pre-aggregate (``query_engine.preaggregate``) instead of the register: which
one answers a plan exactly, and the CTEs ending in ``bounded`` that read it.

The rows these CTEs give are the register path's ``bounded`` rows for the same plan (the person's first
G groups by smallest row_key, weight ``LEAST(n, c)`` for row counts), so everything after ``bounded``
(person attributes, cells, key sets) is compiled the same either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from .preaggregate import Preaggregate, catalog_preaggregates
from .sql_ast import sql_and, sql_col, sql_lit, sql_ref, sql_table, sql_window

if TYPE_CHECKING:
    from .compile import _Builder

__all__ = ["answering_preaggregate", "preaggregated_ctes"]


def answering_preaggregate(builder: _Builder, available: frozenset[str]) -> Preaggregate | None:
    """The pre-aggregate that answers the builder's plan exactly, if one is available.

    Only a bounded count over the grain register, with no person or cohort condition, grouped by the
    pre-aggregate's column and any person attributes; with no row condition (the plain table) or with
    row conditions all on the slice column of a sliced one.
    """
    plan = builder.plan
    counts = builder.weighted if plan.measure == "count_rows" else plan.measure == "count_persons"
    if (
        not available
        or builder.dialect != "duckdb"
        or not counts
        or not plan.bounding.bound_groups
        or plan.person_filters
        or plan.cohorts
        or plan.partition_selection
        or len(builder.grain_keys) != 1
    ):
        return None
    group = plan.groups[builder.keys.index(builder.grain_keys[0])]
    for pre in catalog_preaggregates(builder.catalog):
        if pre.table not in available or (pre.register, pre.column) != (plan.grain, group.column.column):
            continue
        on_slice = all(
            (f.column.register, f.column.column) == (pre.register, pre.slice_column) for f in plan.row_filters
        )
        if (pre.slice_column is None and not plan.row_filters) or (
            pre.slice_column is not None and plan.row_filters and on_slice
        ):
            return pre
    return None


def preaggregated_ctes(builder: _Builder, pre: Preaggregate) -> list[tuple[str, exp.Select]]:
    """The bounded rows read from a pre-aggregate: the person's first G groups, weight min(n, c)."""
    bounding = builder.plan.bounding
    key = builder.grain_keys[0]
    table = exp.alias_(sql_table(pre.table), "a", table=True)

    def kept(source: exp.Expr, alias: str, *conditions: exp.Expr) -> exp.Select:
        outputs: list[exp.Expr] = [
            exp.alias_(sql_col(alias, "pid"), "pid"),
            exp.alias_(sql_col(alias, "g"), key),
        ]
        if builder.weighted:
            weight = exp.Least(
                this=sql_col(alias, "n"), expressions=[sql_lit(bounding.max_rows)], ignore_nulls=True
            )
            outputs.append(exp.alias_(weight, "w"))
        within = sql_col(alias, "gn") <= sql_lit(bounding.max_groups)
        return exp.select(*outputs).from_(source).where(sql_and([*conditions, within]))

    filters = builder.plan.row_filters
    if pre.slice_column is None:
        return [("bounded", kept(table, "a"))]
    if len(filters) == 1 and filters[0].op == "=":
        # One slice: its stored rank is the rank among the groups of the person's matching rows.
        return [("bounded", kept(table, "a", builder.compare(sql_col("a", "s"), filters[0])))]
    # The selected slices summed per person and group: the matching rows' count and smallest row_key.
    where = sql_and([builder.compare(sql_col("a", "s"), f) for f in filters])
    groups = (
        exp.select(
            sql_col("a", "pid"),
            sql_col("a", "g"),
            exp.alias_(exp.Sum(this=sql_col("a", "n")), "n"),
            exp.alias_(exp.Min(this=sql_col("a", "grk")), "grk"),
        )
        .from_(table)
        .where(where)
        .group_by(sql_col("a", "pid"), sql_col("a", "g"))
    )
    order = [sql_ref("pre_groups", "grk"), sql_ref("pre_groups", "g")]
    rank = sql_window(exp.Anonymous(this="DENSE_RANK"), [sql_ref("pre_groups", "pid")], order)
    ranked = exp.select("*", exp.alias_(rank, "gn")).from_("pre_groups")
    return [
        ("pre_groups", groups),
        ("pre_ranked", ranked),
        ("bounded", kept(exp.to_identifier("pre_ranked"), "pre_ranked")),
    ]
