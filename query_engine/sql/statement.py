"""SQL for analysts: one SELECT parsed with sqlglot into the same ``Query`` as the JSON API.

The analyst's SQL text never reaches a database. It is tokenized and parsed (PostgreSQL syntax),
the tree is walked against a whitelist, and the result is a ``Query`` that goes through
validate -> plan -> compile exactly like a JSON query. Anything outside the whitelist is refused
with an ``SqlError`` that names the construct and its line and column.

Supported::

    SELECT <group columns>, <one aggregate>
    FROM register [AS r] [JOIN register [AS s] USING (person_id) | ON r.person_id = s.person_id] ...
    [WHERE <condition> AND <condition> ...]
    [GROUP BY <the group columns>]

Aggregates: ``COUNT(*)`` (rows of the FROM register; persons when FROM is the person register),
``COUNT(DISTINCT person_id)``, ``SUM``, ``AVG``, ``MEDIAN`` and ``PERCENTILE_CONT(q) WITHIN GROUP
(ORDER BY col)``, each over a catalog column or ``CLAMP(col, lo, hi)``; or a comment hint
``/* bounds: lo, hi */``. Conditions: ``=``, ``<>``/``!=``, ``<``, ``<=``, ``>``, ``>=``, ``IN``,
``BETWEEN`` and ``LIKE 'E11%'`` (a prefix), each between a column and literals.

Semantics (the JSON API's): the FROM register is the grain; conditions on one register hold on
the same row; a joined register means "the person has a row there satisfying its conditions".
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NoReturn

from sqlglot import exp
from sqlglot.tokens import TokenType

from ..catalog import Catalog
from ..spec import Query, parse_query
from .cohort_source import cohort_fields, is_cohort_source
from .errors import SqlSyntaxError, SqlTooDeep
from .from_join import from_clause
from .group_by import group_by
from .parse import MAX_SQL_CONDITIONS, MAX_SQL_DEPTH, NAMES, parse
from .scope import Scope, Table
from .select import Aggregate, Item, apply_bounds_hint, select_list
from .where import Condition, where

__all__ = ["sql_to_query"]

_KEYWORD_WORDS = {
    "WITHIN",
    "GROUP",
    "CAST",
}  # keywords the tokenizer reads as names; the tree keeps no position
# Select clauses refused with a name, the keyword to point at and a suggestion (in SQL text order).
_CLAUSES: tuple[tuple[str, str, tuple[TokenType, ...], str], ...] = (
    (
        "with_",
        "WITH (a common table expression)",
        (TokenType.WITH,),
        "Write one SELECT over registers joined USING (person_id); conditions on a joined register "
        "already select a cohort.",
    ),
    (
        "distinct",
        "SELECT DISTINCT",
        (TokenType.DISTINCT,),
        "Group with GROUP BY; to count persons write COUNT(DISTINCT person_id).",
    ),
    (
        "having",
        "HAVING",
        (TokenType.HAVING,),
        "Conditions on aggregate values are not possible under DP: filter rows with WHERE, or filter "
        "the released table.",
    ),
    ("qualify", "QUALIFY", (TokenType.QUALIFY,), "Window functions are not supported."),
    ("windows", "WINDOW", (TokenType.WINDOW,), "Window functions are not supported."),
    (
        "order",
        "ORDER BY",
        (TokenType.ORDER_BY,),
        "A release has one row per public key, in key-set order; sort the released table instead.",
    ),
    (
        "limit",
        "LIMIT",
        (TokenType.LIMIT, TokenType.FETCH),
        "A release has one row per public key; restrict the groups with WHERE instead.",
    ),
    (
        "offset",
        "OFFSET",
        (TokenType.OFFSET,),
        "A release has one row per public key; restrict the groups with WHERE instead.",
    ),
)
_ALLOWED_SELECT_ARGS = {"expressions", "from_", "joins", "where", "group"}


def sql_to_query(
    sql: str,
    *,
    project: str,
    catalog: Catalog,
    epsilon: float | None = None,
    rho: float | None = None,
    target_ci: float | None = None,
    confidence: float = 0.95,
    max_groups: int | None = None,
    max_rows: int | None = None,
) -> Query:
    """Parse one SELECT statement into a ``Query``; raise an ``SqlError`` naming what is refused.

    The privacy loss (exactly one of ``epsilon``, ``rho``, ``target_ci``) and the optional bounding
    fields are given beside the SQL, as in the JSON body. Catalog checks that need no SQL position
    (key sets, value domains, catalog bounds, loss limits) are left to ``validate``.

    >>> from datasets.packaged_catalog import load_packaged_catalog
    >>> query = sql_to_query(
    ...     "SELECT region, COUNT(*) FROM cpr WHERE sex = 'F' GROUP BY region",
    ...     project="demo", catalog=load_packaged_catalog(), epsilon=0.5,
    ... )
    >>> query.measure, query.group_by, query.where[0].column
    ('count_persons', ('cpr.region',), 'cpr.sex')
    """
    try:
        tree, text = parse(sql)
        fields = _translate(Scope(tree, text, catalog))
    except RecursionError:
        # A backstop for shapes the nesting check does not count: refused the same way, never a 500.
        raise SqlTooDeep(
            f"Line 1, column 1: the SQL text nests too deeply to be read; keep parentheses and operators "
            f"within {MAX_SQL_DEPTH} levels and at most {MAX_SQL_CONDITIONS} AND/OR conditions.",
            position={"line": 1, "column": 1},
            construct="nesting",
        ) from None
    fields.update(
        project=project,
        epsilon=epsilon,
        rho=rho,
        target_ci=target_ci,
        confidence=confidence,
        max_groups=max_groups,
        max_rows=max_rows,
    )
    return parse_query({k: v for k, v in fields.items() if v is not None})


# --- the text: tokens and positions -------------------------------------------------------------


def _translate(scope: Scope) -> dict[str, Any]:
    """Read every clause of the statement in ``scope`` and collect the Query fields."""
    select = _statement(scope)
    _clauses(scope, select)
    if is_cohort_source(select):
        fields = cohort_fields(scope, select)
        _every_word_used(scope)
        return fields
    scope = replace(scope, tables=tuple(from_clause(scope, select)))
    groups, aggregate = select_list(scope, select)
    conditions = where(scope, select)
    group_by(scope, select, groups)
    aggregate = apply_bounds_hint(scope, aggregate)
    fields = _assemble(scope, groups, aggregate, conditions)
    _every_word_used(scope)
    return fields


def _statement(scope: Scope) -> exp.Select:
    tree = scope.tree
    if isinstance(tree, exp.Select):
        return tree
    if isinstance(tree, exp.SetOperation):
        word = type(tree).__name__.upper()
        offset = scope.text.keyword((TokenType.UNION, TokenType.INTERSECT, TokenType.EXCEPT), top_level=True)
        scope.refuse(
            offset if offset is not None else scope.text.offset(tree),
            word,
            f"{word} is not supported; run each SELECT as its own query.",
        )
    if isinstance(tree, exp.Subquery):
        scope.refuse(
            scope.text.tokens[0].start,
            "parenthesized query",
            "a parenthesized query is not supported; remove the outer parentheses.",
        )
    word = scope.text.tokens[0].text.upper() if scope.text.tokens else type(tree).__name__.upper()
    scope.refuse_node(tree, word, f"{word} statements are not supported; only SELECT is.")


def _clauses(scope: Scope, select: exp.Select) -> None:
    for arg, name, keywords, suggestion in _CLAUSES:
        if select.args.get(arg):
            offset = scope.text.keyword(keywords, top_level=True)
            if offset is not None and arg in ("limit", "order"):  # FETCH for LIMIT; ORDER BY as written
                written = next(t.text for t in scope.text.tokens if t.start == offset)
                name = " ".join(written.upper().split())
            node = select.args[arg]
            at = (
                offset
                if offset is not None
                else scope.text.offset(node if isinstance(node, exp.Expr) else select)
            )
            scope.refuse(at, name, f"{name} is not supported. {suggestion}")
    for arg, value in select.args.items():
        if value and arg not in _ALLOWED_SELECT_ARGS:
            node = value[0] if isinstance(value, list) else value
            at = scope.text.offset(node) if isinstance(node, exp.Expr) else scope.text.offset(select)
            name = arg.strip("_").replace("_", " ").upper()
            scope.refuse(at, name, f"the {name} clause is not supported.")
    if not select.args.get("from_"):
        scope.refuse_node(select, "SELECT without FROM", "a query needs FROM <register>, e.g. FROM cpr.")


def _every_word_used(scope: Scope) -> None:
    """Refuse names and literals the parser skipped: every one must be in the tree."""
    used = {n.meta["start"] for n in scope.tree.walk() if "start" in n.meta}
    for token in scope.text.tokens:
        word = token.token_type == TokenType.VAR and token.text.upper() in _KEYWORD_WORDS
        if (
            token.token_type in (*NAMES, TokenType.NUMBER, TokenType.STRING)
            and token.start not in used
            and not word
        ):
            scope.refuse(
                token.start,
                "syntax",
                f"SQL syntax error near {token.text!r}: it is not part of any clause.",
                SqlSyntaxError,
            )


def _assemble(
    scope: Scope, groups: list[Item], aggregate: Aggregate, conditions: list[Condition]
) -> dict[str, Any]:
    grain = scope.tables[0].register
    person = scope.catalog.person_register
    measure = aggregate.measure or ("count_persons" if grain.name == person else "count_rows")
    filtered = {c.ref.register for c in conditions}
    if aggregate.column is not None and aggregate.column.register != grain.name:
        scope.refuse(
            aggregate.column.offset,
            "aggregate off the grain",
            f"the aggregate's column {aggregate.column.qualified} must be on the FROM register {grain.name} "
            f"(the grain: the rows that are aggregated); write FROM {aggregate.column.register} JOIN "
            f"{grain.name} USING (person_id).",
        )
    if measure == "count_persons":
        register = _person_count_register(scope, groups, filtered)
    else:
        register = grain.name
        for item in groups:
            if item.ref.register not in (grain.name, person):
                scope.refuse(
                    item.ref.offset,
                    "group column off the grain",
                    f"group columns of a {measure} over {grain.name} rows must be on {grain.name} or {person} "
                    f"(one value per person); {item.ref.qualified} is not.",
                )
        for table in scope.tables[1:]:
            if table.register.name != person and table.register.name not in filtered:
                _unused_join(scope, table)
    return {
        "measure": measure,
        "register": register,
        "column": aggregate.column.qualified if aggregate.column else None,
        "bounds": list(aggregate.bounds) if aggregate.bounds else None,
        "quantile": aggregate.quantile,
        "where": [{"column": c.ref.qualified, "op": c.op, "value": c.value} for c in conditions],
        "group_by": [g.ref.qualified for g in groups],
    }


def _person_count_register(scope: Scope, groups: list[Item], filtered: set[str]) -> str:
    """``register`` of a count_persons: the person register, or a joined register the person must be in."""
    person = scope.catalog.person_register
    grouped: list[str] = []
    for item in groups:
        if item.ref.register != person and item.ref.register not in grouped:
            if grouped:
                scope.refuse(
                    item.ref.offset,
                    "groups on two registers",
                    f"persons can be grouped by {person} columns and columns of one other register; "
                    f"{item.ref.qualified} is on a second one ({grouped[0]} is the first).",
                )
            grouped.append(item.ref.register)
    unused = [
        t
        for t in scope.tables
        if t.register.name != person and t.register.name not in filtered | set(grouped)
    ]
    if not unused:
        return person
    if grouped or len(unused) > 1:
        _unused_join(scope, unused[0] if grouped else unused[1])
    return unused[0].register.name


def _unused_join(scope: Scope, table: Table) -> NoReturn:
    name = table.register.name
    scope.refuse(
        table.offset,
        "join without conditions",
        f"{name} is joined but nothing in WHERE or GROUP BY uses it. A joined register restricts the "
        f"query to persons who have a {name} row satisfying its conditions; with no condition on {name} "
        f"that cannot be expressed here. Add a condition on {name} or remove the join.",
    )
