"""FROM and JOIN: registers by name, joined by an inner join on the person key only."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.tokens import TokenType

from ..suggest import did_you_mean
from ..validate import not_loaded_message
from .errors import SqlRegisterNotLoaded, SqlSyntaxError, SqlUnknownRegister
from .nodes import flatten_and, name_of, unparen
from .scope import Scope, Table
from .text import DIALECT

__all__ = ["from_clause"]


def from_clause(scope: Scope, select: exp.Select) -> list[Table]:
    """The FROM register and the joined ones, in text order; the first is the grain."""
    source = select.args["from_"].this
    tables = [_table(scope, source, scope.text.offset(source), [])]
    for join in select.args.get("joins") or []:
        start = scope.text.join_start(scope.text.offset(join.this))
        _join_kind(scope, join, start)
        table = _table(scope, join.this, start, tables)
        _join_condition(scope, join, table, tables, start)
        tables.append(table)
    return tables


def _table(scope: Scope, node: exp.Expr, start: int, tables: list[Table]) -> Table:
    if isinstance(node, exp.Subquery) and not node.find(exp.Select):
        at = scope.text.last_keyword((TokenType.L_PAREN,), scope.text.offset(node) + 1)
        scope.refuse(
            at if at is not None else scope.text.offset(node),
            "parenthesized table",
            "parentheses around a table are not supported; write FROM <register>.",
        )
    if isinstance(node, exp.Subquery):
        scope.refuse_subquery(node)
    if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
        scope.refuse_node(
            node,
            "table expression",
            f"only register names may appear in FROM and JOIN ({', '.join(scope.catalog.register_names)}); "
            f"{node.sql(dialect=DIALECT)!r} is not one.",
        )
    extra = [k for k, v in node.args.items() if v and k not in ("this", "alias")]
    if extra:
        what = "a schema-qualified name" if extra[0] in ("db", "catalog") else f"table option {extra[0]}"
        scope.refuse_node(
            node, what, f"{what} is not supported; write the register name only, e.g. FROM lpr."
        )
    alias = node.args.get("alias")
    if alias is not None and not isinstance(alias.this, exp.Identifier):
        at = scope.text.offset(alias)
        scope.refuse(at, "syntax", "SQL syntax error: a table alias must be a name.", SqlSyntaxError)
    if alias is not None and alias.args.get("columns"):
        scope.refuse_node(alias, "column aliases", "column aliases on a table are not supported.")
    name = name_of(node.this)
    if name in scope.catalog.absent_registers:
        message = not_loaded_message(scope.catalog, name)
        scope.refuse(scope.text.offset(node), "table", message, SqlRegisterNotLoaded)
    if not scope.catalog.has_register(name):
        scope.refuse(
            scope.text.offset(node),
            "table",
            f"unknown register {name!r}.{did_you_mean(name, scope.catalog.register_names)} "
            f"Registers: {', '.join(scope.catalog.register_names)}.",
            SqlUnknownRegister,
        )
    register = scope.catalog.register(name)
    reference = name_of(alias.this) if alias is not None else name
    for other in tables:
        if other.register.name == register.name:
            scope.refuse(
                start,
                "repeated register",
                f"register {name} appears twice. Conditions on one register hold on the same row; "
                "joining it again (to ask for two different rows) is not supported.",
            )
        if other.name == reference:
            scope.refuse(
                start,
                "repeated table name",
                f"two tables are called {reference!r}; give them different aliases.",
            )
    return Table(reference, register, start)


def _join_kind(scope: Scope, join: exp.Join, start: int) -> None:
    side, kind, method = join.args.get("side"), join.args.get("kind"), join.args.get("method")
    word = None
    if side:
        word = f"{str(side).upper()} JOIN"
    elif method:
        word = f"{str(method).upper()} JOIN"
    elif kind and str(kind).upper() != "INNER":
        word = f"{str(kind).upper()} JOIN"
    elif not join.args.get("on") and not join.args.get("using"):
        comma = scope.text.tokens[_token_index(scope, start)].token_type == TokenType.COMMA
        word = "a comma join" if comma else "a JOIN without a join condition"
    if word is None:
        extra = [k for k, v in join.args.items() if v and k not in ("this", "on", "using", "kind")]
        if extra:
            word = f"join option {extra[0]}"
    if word is not None:
        target = join.this.name if isinstance(join.this, exp.Table) else "register"
        scope.refuse(
            start,
            word,
            f"{word} is not supported: registers are linked by an inner join on the person key. "
            f"Write JOIN {target} USING (person_id).",
        )


def _token_index(scope: Scope, offset: int) -> int:
    return next((i for i, t in enumerate(scope.text.tokens) if t.start >= offset), 0)


def _join_condition(scope: Scope, join: exp.Join, table: Table, tables: list[Table], start: int) -> None:
    using = join.args.get("using")
    if using:
        names = [name_of(u.this if isinstance(u, exp.Column) else u) for u in using]
        if names != [table.register.person_key]:
            key = table.register.person_key
            bad = next((u for u, n in zip(using, names, strict=True) if n != key), using[0])
            scope.refuse_node(
                bad,
                "non-person join",
                f"joins are only on the person key: JOIN {table.register.name} USING "
                f"({table.register.person_key}), not USING ({', '.join(names)}).",
            )
        return
    on = unparen(join.args["on"])
    joined = [*tables, table]
    suggestion = (
        f"Joins are only on the person key: ON {tables[-1].name}.person_id = {table.name}.person_id "
        f"(or USING (person_id)); move other conditions to WHERE."
    )
    if isinstance(on, exp.And):
        parts = flatten_and(on)
        bad = next((p for p in parts if not _is_person_equality(p, table, joined)), parts[-1])
        scope.refuse_node(bad, "non-person join", f"this join condition is not supported. {suggestion}")
    if not _is_person_equality(on, table, joined):
        scope.refuse_node(on, "non-person join", f"this join condition is not supported. {suggestion}")


def _is_person_equality(node: exp.Expr, table: Table, joined: list[Table]) -> bool:
    """``a.person_id = b.person_id`` between the joined ``table`` and another table in ``joined``."""
    node = unparen(node)
    if not isinstance(node, exp.EQ):
        return False
    sides = [unparen(node.this), unparen(node.expression)]
    if not all(isinstance(s, exp.Column) and s.args.get("table") is not None for s in sides):
        return False
    refs = []
    for side in sides:
        qualifier = name_of(side.args["table"])
        found = next((t for t in joined if t.name == qualifier), None)
        if found is None or name_of(side.this) != found.register.person_key:
            return False
        refs.append(found)
    return refs[0] is not refs[1] and table in refs
