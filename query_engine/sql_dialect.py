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

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from .catalog import Catalog, Register
from .spec import Measure, Query, parse_query
from .sql_errors import (
    SqlAmbiguousColumn,
    SqlColumnNotQueryable,
    SqlError,
    SqlPosition,
    SqlRegisterNotLoaded,
    SqlSyntaxError,
    SqlTooDeep,
    SqlUnknownColumn,
    SqlUnknownRegister,
    SqlValueError,
    UnsupportedSql,
)
from .validate import not_loaded_message

__all__ = ["DIALECT", "MAX_SQL_CHARS", "MAX_SQL_CONDITIONS", "MAX_SQL_DEPTH", "sql_to_query"]

DIALECT = "postgres"
_Value = str | int | float
MAX_SQL_CHARS = 20_000
# The parser and the translator recurse once (or more) per nesting level; these limits keep every
# accepted text far below Python's recursion limit (sqlglot itself fails near 45 parentheses).
MAX_SQL_DEPTH = 16
MAX_SQL_CONDITIONS = 200
_PREFIX_OPERATORS = {TokenType.NOT, TokenType.DASH, TokenType.PLUS, TokenType.TILDE}

_SUPPORTED_AGGREGATES = (
    "COUNT(*), COUNT(DISTINCT person_id), SUM(col), AVG(col), MEDIAN(col) or "
    "PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col)"
)
_JOIN_WORDS = {
    TokenType.JOIN,
    TokenType.INNER,
    TokenType.OUTER,
    TokenType.LEFT,
    TokenType.RIGHT,
    TokenType.FULL,
    TokenType.CROSS,
    TokenType.NATURAL,
    TokenType.SEMI,
    TokenType.ANTI,
    TokenType.COMMA,
}
# Tokens no statement of the dialect contains (outside string literals and comments).
_FOREIGN_TOKENS = {
    getattr(TokenType, name)
    for name in [
        "PARAMETER",
        "PLACEHOLDER",
        "SESSION_PARAMETER",
        "MOD",
        "HASH",
        "L_BRACE",
        "R_BRACE",
        "CARET",
        "TILDE",
        "AMP",
        "PIPE",
        "DOLLAR",
        "COLON",
        "ARROW",
        "DARROW",
        "FARROW",
        "HASH_ARROW",
        "DHASH_ARROW",
        "LR_ARROW",
        "BACKSLASH",
        "DAT",
        "HEREDOC_STRING",
        "NATIONAL_STRING",
        "BIT_STRING",
        "HEX_STRING",
        "BYTE_STRING",
        "RAW_STRING",
        "UNICODE_STRING",
    ]
    if hasattr(TokenType, name)
}
# A comma between these cannot separate two items (sqlglot would silently drop it).
_NOT_BEFORE_COMMA = {
    TokenType.SELECT,
    TokenType.COMMA,
    TokenType.L_PAREN,
    TokenType.GROUP_BY,
    TokenType.DISTINCT,
}
_NOT_AFTER_COMMA = {
    TokenType.COMMA,
    TokenType.R_PAREN,
    TokenType.FROM,
    TokenType.WHERE,
    TokenType.GROUP_BY,
    TokenType.ORDER_BY,
    TokenType.HAVING,
    TokenType.LIMIT,
    TokenType.SEMICOLON,
    TokenType.AND,
    TokenType.OR,
}
_NAMES = {TokenType.VAR, TokenType.IDENTIFIER}
_KEYWORD_WORDS = {
    "WITHIN",
    "GROUP",
    "CAST",
}  # keywords the tokenizer reads as names; the tree keeps no position
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_MENTIONS_BOUNDS = re.compile(r"\bbounds\s*:", re.IGNORECASE)  # any such comment must be a well-formed hint
_BOUNDS_HINT = re.compile(rf"\s*bounds\s*:\s*({_NUMBER})\s*,\s*({_NUMBER})\s*", re.IGNORECASE)
_COMPARISONS: dict[type[exp.Expr], tuple[str, str]] = {
    # node -> (op with the column on the left, op with the column on the right)
    exp.EQ: ("=", "="),
    exp.NEQ: ("!=", "!="),
    exp.LT: ("<", ">"),
    exp.LTE: ("<=", ">="),
    exp.GT: (">", "<"),
    exp.GTE: (">=", "<="),
}
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

    >>> from query_engine.catalog import load_catalog
    >>> query = sql_to_query(
    ...     "SELECT region, COUNT(*) FROM cpr WHERE sex = 'F' GROUP BY region",
    ...     project="demo", catalog=load_catalog(), epsilon=0.5,
    ... )
    >>> query.measure, query.group_by, query.where[0].column
    ('count_persons', ('cpr.region',), 'cpr.sex')
    """
    try:
        tree, text = _parse(sql)
        fields = _Translator(tree, text, catalog).translate()
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


@dataclass(frozen=True)
class _Text:
    """The SQL text with its tokens, for turning AST nodes and keywords into line and column."""

    sql: str
    tokens: tuple[Token, ...]
    depths: tuple[int, ...]  # parenthesis depth of each token

    @classmethod
    def of(cls, sql: str, tokens: Sequence[Token]) -> _Text:
        depths, depth = [], 0
        for token in tokens:
            if token.token_type == TokenType.R_PAREN:
                depth -= 1
            depths.append(depth)
            if token.token_type == TokenType.L_PAREN:
                depth += 1
        return cls(sql, tuple(tokens), tuple(depths))

    def position(self, offset: int) -> SqlPosition:
        offset = max(0, min(offset, len(self.sql)))
        line_start = self.sql.rfind("\n", 0, offset) + 1
        return {"line": self.sql.count("\n", 0, offset) + 1, "column": offset - line_start + 1}

    def start(self, node: exp.Expr) -> int | None:
        """Offset of the first token of ``node`` that the parser recorded, if any."""
        starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
        return min(starts) if starts else None

    def end(self, node: exp.Expr) -> int | None:
        ends = [n.meta["end"] for n in node.walk() if "end" in n.meta]
        return max(ends) if ends else None

    def offset(self, node: exp.Expr) -> int:
        """Start of ``node`` (its function name, if it has one), else of its nearest positioned ancestor."""
        if self.start(node) is None:
            found = self.keyword_literal(node)
            if found is not None:
                return found
        current: exp.Expr | None = node
        while current is not None:
            start = self.start(current)
            if start is not None:
                name = _call_name(current)
                if name is not None and "start" not in current.meta:
                    return self.call_start(name, start)
                return start
            current = current.parent
        return self.tokens[0].start if self.tokens else 0

    def keyword_literal(self, node: exp.Expr) -> int | None:
        """Start of a one-token node the parser kept no position for (``TRUE``, ``NULL``, ``CURRENT_DATE``).

        The n-th such node in the tree (in text order) is the n-th token with its text.
        """
        word = node.sql(dialect=DIALECT).upper()
        if not word or " " in word:
            return None
        root = node.root()
        same = [
            n
            for n in root.walk(bfs=False)
            if type(n) is type(node) and n.sql(dialect=DIALECT).upper() == word
        ]
        tokens = [t.start for t in self.tokens if t.text.upper() == word]
        index = next((i for i, n in enumerate(same) if n is node), None)
        return tokens[index] if index is not None and index < len(tokens) else None

    def call_start(self, name: str, inner: int) -> int:
        """The ``NAME`` token of ``NAME( ... )`` whose parentheses hold the offset ``inner``."""
        index = next((i for i, t in enumerate(self.tokens) if t.start >= inner), len(self.tokens))
        for i in range(index - 1, 0, -1):
            depth = self.depths[i]
            called = (
                self.tokens[i].text.upper() == name and self.tokens[i + 1].token_type == TokenType.L_PAREN
            )
            if called and all(d > depth for d in self.depths[i + 2 : index]):
                return self.tokens[i].start
        return inner

    def keyword(
        self,
        types: Sequence[TokenType],
        *,
        top_level: bool = False,
        after: int = -1,
        before: int | None = None,
    ) -> int | None:
        """Offset of the first token of one of ``types`` strictly between ``after`` and ``before``."""
        for token, depth in zip(self.tokens, self.depths, strict=True):
            if token.start <= after or (before is not None and token.start >= before):
                continue
            if token.token_type in types and (depth == 0 or not top_level):
                return token.start
        return None

    def last_keyword(self, types: Sequence[TokenType], before: int) -> int | None:
        """Offset of the last token of one of ``types`` that starts before ``before``."""
        found = None
        for token in self.tokens:
            if token.start >= before:
                break
            if token.token_type in types:
                found = token.start
        return found

    def join_start(self, table_offset: int) -> int:
        """Start of the join clause whose table starts at ``table_offset`` (LEFT, CROSS, JOIN, comma)."""
        index = next((i for i, t in enumerate(self.tokens) if t.start >= table_offset), len(self.tokens))
        while index > 0 and self.tokens[index - 1].token_type in _JOIN_WORDS:
            index -= 1
            if self.tokens[index].token_type == TokenType.COMMA:
                break
        return self.tokens[index].start if index < len(self.tokens) else table_offset

    def comments(self) -> list[tuple[str, int]]:
        """Every comment with the offset of its ``/*`` or ``--``."""
        strings = [
            (t.start, t.end) for t in self.tokens if t.token_type in (TokenType.STRING, TokenType.IDENTIFIER)
        ]
        found: list[tuple[str, int]] = []
        searched_from = 0
        for token in self.tokens:
            for body in token.comments:
                for match in re.finditer(re.escape(body), self.sql[searched_from:]):
                    at = searched_from + match.start()
                    opener = self.sql[max(0, at - 2) : at]
                    if opener in ("/*", "--") and not any(s <= at <= e for s, e in strings):
                        found.append((body, at - 2))
                        searched_from = at + len(body)
                        break
        return found


def _parse(sql: str) -> tuple[exp.Expr, _Text]:
    """Tokenize and parse exactly one SELECT statement."""
    if len(sql) > MAX_SQL_CHARS:
        raise UnsupportedSql(
            f"Line 1, column 1: the SQL text has {len(sql)} characters; at most {MAX_SQL_CHARS} are allowed.",
            position={"line": 1, "column": 1},
            construct="length",
        )
    dialect = Dialect.get_or_raise(DIALECT)
    try:
        tokens = dialect.tokenize(sql)
    except TokenError as error:
        offset = _token_error_offset(error, sql)
        text = _Text.of(sql, [])
        raise SqlSyntaxError(
            _at(text, offset, "the SQL text cannot be read here: a quote or comment is not closed."),
            position=text.position(offset),
            construct="token",
        ) from None
    text = _Text.of(sql, tokens)
    _check_nesting(text)
    statements = _statements(text)
    if not statements:
        raise SqlSyntaxError(
            "Line 1, column 1: the SQL text is empty; write one SELECT statement.",
            position={"line": 1, "column": 1},
            construct="empty",
        )
    first = statements[0]
    if first.token_type not in (TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN):
        word = first.text.upper()
        raise UnsupportedSql(
            _at(
                text,
                first.start,
                f"the statement starts with {word}; only SELECT statements are supported.",
            ),
            position=text.position(first.start),
            construct=word,
        )
    if len(statements) > 1:
        second = statements[1]
        raise UnsupportedSql(
            _at(text, second.start, "a second statement starts here; send one SELECT statement per request."),
            position=text.position(second.start),
            construct="multiple statements",
        )
    _lint(text)
    try:
        trees = dialect.parser().parse(list(tokens), sql)
    except ParseError as error:
        raise _syntax_error(text, error) from None
    tree = next(t for t in trees if t is not None)
    return tree, text


def _check_nesting(text: _Text) -> None:
    """Refuse, before parsing, texts whose nesting or AND/OR chains would exhaust the recursion."""
    run = cases = conditions = 0
    for token, depth in zip(text.tokens, text.depths, strict=True):
        run = run + 1 if token.token_type in _PREFIX_OPERATORS else 0
        cases += {TokenType.CASE: 1, TokenType.END: -1}.get(token.token_type, 0)
        if depth + cases + run > MAX_SQL_DEPTH:
            raise SqlTooDeep(
                _at(
                    text,
                    token.start,
                    f"parentheses, CASE and prefix operators (NOT, -, +) nest more than {MAX_SQL_DEPTH} levels "
                    "deep here; write the condition without the extra nesting.",
                ),
                position=text.position(token.start),
                construct="nesting",
            )
        if token.token_type in (TokenType.AND, TokenType.OR):
            conditions += 1
            if conditions > MAX_SQL_CONDITIONS:
                raise SqlTooDeep(
                    _at(
                        text,
                        token.start,
                        f"the SQL text joins more than {MAX_SQL_CONDITIONS} conditions with AND/OR; "
                        "use IN (...) lists or fewer conditions.",
                    ),
                    position=text.position(token.start),
                    construct="conditions",
                )


def _lint(text: _Text) -> None:
    """Refuse token sequences that sqlglot's lenient parser would silently repair or drop."""
    tokens = text.tokens
    for i, token in enumerate(tokens):
        before = tokens[i - 1] if i > 0 else None
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        problem = None
        if token.token_type in _FOREIGN_TOKENS:
            problem = f"{token.text!r} is not part of the dialect; values are written as literals."
        elif token.token_type == TokenType.COMMA and (
            before is None
            or before.token_type in _NOT_BEFORE_COMMA
            or after is None
            or after.token_type in _NOT_AFTER_COMMA
        ):
            problem = "a comma here separates nothing; remove it."
        elif token.token_type == TokenType.DOT and not (
            before is not None
            and before.token_type in _NAMES
            and after is not None
            and after.token_type in (*_NAMES, TokenType.STAR)
        ):
            problem = "a dot here joins no names; write table.column or a number such as 0.5."
        if problem is not None:
            raise SqlSyntaxError(
                _at(text, token.start, f"SQL syntax error near {token.text!r}: {problem}"),
                position=text.position(token.start),
                construct="syntax",
            )


def _statements(text: _Text) -> list[Token]:
    """The first token of each non-empty statement (statements are split at top-level semicolons)."""
    firsts: list[Token] = []
    expecting = True
    for token, depth in zip(text.tokens, text.depths, strict=True):
        if token.token_type == TokenType.SEMICOLON and depth == 0:
            expecting = True
        elif expecting:
            firsts.append(token)
            expecting = False
    return firsts


def _token_error_offset(error: TokenError, sql: str) -> int:
    """Where tokenizing failed: sqlglot's cause says ``Missing ' from line:offset``."""
    match = re.search(r"from \d+:(\d+)\s*$", str(error.__cause__ or ""))
    if match:
        return int(match.group(1))
    return len(sql.rstrip())


def _syntax_error(text: _Text, error: ParseError) -> SqlSyntaxError:
    detail = error.errors[0] if error.errors else {}
    line, end_column = int(detail.get("line") or 1), int(detail.get("col") or 1)
    highlight = str(detail.get("highlight") or "")
    column = max(1, end_column - len(highlight) + 1) if "\n" not in highlight else 1
    description = str(detail.get("description") or "unexpected token")
    description = re.sub(r"<class 'sqlglot\.[\w.]*?(\w+)'>", lambda m: m.group(1).upper(), description)
    description = re.sub(r"<Token token_type: TokenType\.SENTINEL[^>]*>", "the end of the text", description)
    position: SqlPosition = {"line": line, "column": column}
    near = f" near {highlight!r}" if highlight else ""
    return SqlSyntaxError(
        f"Line {line}, column {column}: SQL syntax error{near}: {description}.",
        position=position,
        construct="syntax",
    )


def _at(text: _Text, offset: int, message: str) -> str:
    position = text.position(offset)
    return f"Line {position['line']}, column {position['column']}: {message}"


# --- the translation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """A register in FROM/JOIN, under the name the query refers to it by."""

    name: str
    register: Register
    offset: int  # start of its FROM or JOIN clause


@dataclass(frozen=True)
class _Ref:
    """A resolved catalog column and where it was written."""

    register: str
    column: str
    offset: int

    @property
    def qualified(self) -> str:
        return f"{self.register}.{self.column}"


@dataclass(frozen=True)
class _Aggregate:
    """The one aggregate; COUNT(*) (``measure`` None) becomes count_rows or count_persons by the grain."""

    measure: Measure | None  # None: COUNT(*), decided by the grain
    column: _Ref | None
    bounds: tuple[float, float] | None
    quantile: float | None
    offset: int


@dataclass(frozen=True)
class _Condition:
    """One WHERE condition, in the JSON API's operators."""

    ref: _Ref
    op: str
    value: _Value | list[_Value]


@dataclass(frozen=True)
class _Item:
    """One selected group column."""

    ref: _Ref
    alias: str | None


class _Translator:
    """Walks one parsed statement against the whitelist and collects the Query fields."""

    def __init__(self, tree: exp.Expr, text: _Text, catalog: Catalog) -> None:
        self.tree = tree
        self.text = text
        self.catalog = catalog
        self.tables: list[_Table] = []

    # errors

    def refuse(
        self, offset: int, construct: str, message: str, cls: type[SqlError] = UnsupportedSql
    ) -> NoReturn:
        raise cls(_at(self.text, offset, message), position=self.text.position(offset), construct=construct)

    def refuse_node(self, node: exp.Expr, construct: str, message: str) -> NoReturn:
        self.refuse(self.text.offset(node), construct, message)

    # the statement

    def translate(self) -> dict[str, Any]:
        select = self.statement()
        self.clauses(select)
        self.tables = self.from_clause(select)
        groups, aggregate = self.select_list(select)
        conditions = self.where(select)
        self.group_by(select, groups)
        aggregate = self.apply_hint(aggregate)
        fields = self.assemble(groups, aggregate, conditions)
        self.every_word_used()
        return fields

    def every_word_used(self) -> None:
        """Refuse names and literals the parser skipped: every one must be in the tree."""
        used = {n.meta["start"] for n in self.tree.walk() if "start" in n.meta}
        for token in self.text.tokens:
            word = token.token_type == TokenType.VAR and token.text.upper() in _KEYWORD_WORDS
            if (
                token.token_type in (*_NAMES, TokenType.NUMBER, TokenType.STRING)
                and token.start not in used
                and not word
            ):
                self.refuse(
                    token.start,
                    "syntax",
                    f"SQL syntax error near {token.text!r}: it is not part of any clause.",
                    SqlSyntaxError,
                )

    def statement(self) -> exp.Select:
        tree = self.tree
        if isinstance(tree, exp.Select):
            return tree
        if isinstance(tree, exp.SetOperation):
            word = type(tree).__name__.upper()
            offset = self.text.keyword(
                (TokenType.UNION, TokenType.INTERSECT, TokenType.EXCEPT), top_level=True
            )
            self.refuse(
                offset if offset is not None else self.text.offset(tree),
                word,
                f"{word} is not supported; run each SELECT as its own query.",
            )
        if isinstance(tree, exp.Subquery):
            self.refuse(
                self.text.tokens[0].start,
                "parenthesized query",
                "a parenthesized query is not supported; remove the outer parentheses.",
            )
        word = self.text.tokens[0].text.upper() if self.text.tokens else type(tree).__name__.upper()
        self.refuse_node(tree, word, f"{word} statements are not supported; only SELECT is.")

    def clauses(self, select: exp.Select) -> None:
        for arg, name, keywords, suggestion in _CLAUSES:
            if select.args.get(arg):
                offset = self.text.keyword(keywords, top_level=True)
                if offset is not None and arg in ("limit", "order"):  # FETCH for LIMIT; ORDER BY as written
                    written = next(t.text for t in self.text.tokens if t.start == offset)
                    name = " ".join(written.upper().split())
                node = select.args[arg]
                at = (
                    offset
                    if offset is not None
                    else self.text.offset(node if isinstance(node, exp.Expr) else select)
                )
                self.refuse(at, name, f"{name} is not supported. {suggestion}")
        for arg, value in select.args.items():
            if value and arg not in _ALLOWED_SELECT_ARGS:
                node = value[0] if isinstance(value, list) else value
                at = self.text.offset(node) if isinstance(node, exp.Expr) else self.text.offset(select)
                name = arg.strip("_").replace("_", " ").upper()
                self.refuse(at, name, f"the {name} clause is not supported.")
        if not select.args.get("from_"):
            self.refuse_node(select, "SELECT without FROM", "a query needs FROM <register>, e.g. FROM cpr.")

    # FROM and JOIN

    def from_clause(self, select: exp.Select) -> list[_Table]:
        source = select.args["from_"].this
        tables = [self.table(source, self.text.offset(source), [])]
        for join in select.args.get("joins") or []:
            start = self.text.join_start(self.text.offset(join.this))
            self.join_kind(join, start)
            table = self.table(join.this, start, tables)
            self.join_condition(join, table, tables, start)
            tables.append(table)
        return tables

    def table(self, node: exp.Expr, start: int, tables: list[_Table]) -> _Table:
        if isinstance(node, exp.Subquery) and not node.find(exp.Select):
            at = self.text.last_keyword((TokenType.L_PAREN,), self.text.offset(node) + 1)
            self.refuse(
                at if at is not None else self.text.offset(node),
                "parenthesized table",
                "parentheses around a table are not supported; write FROM <register>.",
            )
        if isinstance(node, exp.Subquery):
            self.subquery(node)
        if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
            self.refuse_node(
                node,
                "table expression",
                f"only register names may appear in FROM and JOIN ({', '.join(self.catalog.register_names)}); "
                f"{node.sql(dialect=DIALECT)!r} is not one.",
            )
        extra = [k for k, v in node.args.items() if v and k not in ("this", "alias")]
        if extra:
            what = "a schema-qualified name" if extra[0] in ("db", "catalog") else f"table option {extra[0]}"
            self.refuse_node(
                node, what, f"{what} is not supported; write the register name only, e.g. FROM lpr."
            )
        alias = node.args.get("alias")
        if alias is not None and not isinstance(alias.this, exp.Identifier):
            at = self.text.offset(alias)
            self.refuse(at, "syntax", "SQL syntax error: a table alias must be a name.", SqlSyntaxError)
        if alias is not None and alias.args.get("columns"):
            self.refuse_node(alias, "column aliases", "column aliases on a table are not supported.")
        name = _name(node.this)
        if name in self.catalog.absent_registers:
            message = not_loaded_message(self.catalog, name)
            self.refuse(self.text.offset(node), "table", message, SqlRegisterNotLoaded)
        if not self.catalog.has_register(name):
            self.refuse(
                self.text.offset(node),
                "table",
                f"unknown register {name!r}.{_did_you_mean(name, self.catalog.register_names)} "
                f"Registers: {', '.join(self.catalog.register_names)}.",
                SqlUnknownRegister,
            )
        register = self.catalog.register(name)
        reference = _name(alias.this) if alias is not None else name
        for other in tables:
            if other.register.name == register.name:
                self.refuse(
                    start,
                    "repeated register",
                    f"register {name} appears twice. Conditions on one register hold on the same row; "
                    "joining it again (to ask for two different rows) is not supported.",
                )
            if other.name == reference:
                self.refuse(
                    start,
                    "repeated table name",
                    f"two tables are called {reference!r}; give them different aliases.",
                )
        return _Table(reference, register, start)

    def join_kind(self, join: exp.Join, start: int) -> None:
        side, kind, method = join.args.get("side"), join.args.get("kind"), join.args.get("method")
        word = None
        if side:
            word = f"{str(side).upper()} JOIN"
        elif method:
            word = f"{str(method).upper()} JOIN"
        elif kind and str(kind).upper() != "INNER":
            word = f"{str(kind).upper()} JOIN"
        elif not join.args.get("on") and not join.args.get("using"):
            comma = self.text.tokens[self.token_index(start)].token_type == TokenType.COMMA
            word = "a comma join" if comma else "a JOIN without a join condition"
        if word is None:
            extra = [k for k, v in join.args.items() if v and k not in ("this", "on", "using", "kind")]
            if extra:
                word = f"join option {extra[0]}"
        if word is not None:
            target = join.this.name if isinstance(join.this, exp.Table) else "register"
            self.refuse(
                start,
                word,
                f"{word} is not supported: registers are linked by an inner join on the person key. "
                f"Write JOIN {target} USING (person_id).",
            )

    def token_index(self, offset: int) -> int:
        return next((i for i, t in enumerate(self.text.tokens) if t.start >= offset), 0)

    def join_condition(self, join: exp.Join, table: _Table, tables: list[_Table], start: int) -> None:
        using = join.args.get("using")
        if using:
            names = [_name(u.this if isinstance(u, exp.Column) else u) for u in using]
            if names != [table.register.person_key]:
                key = table.register.person_key
                bad = next((u for u, n in zip(using, names, strict=True) if n != key), using[0])
                self.refuse_node(
                    bad,
                    "non-person join",
                    f"joins are only on the person key: JOIN {table.register.name} USING "
                    f"({table.register.person_key}), not USING ({', '.join(names)}).",
                )
            return
        on = _unparen(join.args["on"])
        scope = [*tables, table]
        suggestion = (
            f"Joins are only on the person key: ON {tables[-1].name}.person_id = {table.name}.person_id "
            f"(or USING (person_id)); move other conditions to WHERE."
        )
        if isinstance(on, exp.And):
            parts = _flatten_and(on)
            bad = next((p for p in parts if not self.is_person_equality(p, table, scope)), parts[-1])
            self.refuse_node(bad, "non-person join", f"this join condition is not supported. {suggestion}")
        if not self.is_person_equality(on, table, scope):
            self.refuse_node(on, "non-person join", f"this join condition is not supported. {suggestion}")

    def is_person_equality(self, node: exp.Expr, table: _Table, scope: list[_Table]) -> bool:
        node = _unparen(node)
        if not isinstance(node, exp.EQ):
            return False
        sides = [_unparen(node.this), _unparen(node.expression)]
        if not all(isinstance(s, exp.Column) and s.args.get("table") is not None for s in sides):
            return False
        refs = []
        for side in sides:
            qualifier = _name(side.args["table"])
            found = next((t for t in scope if t.name == qualifier), None)
            if found is None or _name(side.this) != found.register.person_key:
                return False
            refs.append(found)
        return refs[0] is not refs[1] and table in refs

    # SELECT list

    def select_list(self, select: exp.Select) -> tuple[list[_Item], _Aggregate]:
        groups: list[_Item] = []
        aggregate: _Aggregate | None = None
        for item in select.expressions:
            node, alias = (item.this, item.alias) if isinstance(item, exp.Alias) else (item, None)
            if isinstance(node, exp.Star) or (
                isinstance(node, exp.Column) and isinstance(node.this, exp.Star)
            ):
                self.refuse_node(
                    node,
                    "SELECT *",
                    f"SELECT * is not supported; select the group columns and one aggregate: {_SUPPORTED_AGGREGATES}.",
                )
            if isinstance(node, exp.Column):
                ref = self.resolve(node)
                if any(g.ref.qualified == ref.qualified for g in groups):
                    self.refuse(
                        ref.offset, "repeated column", f"{ref.qualified} is selected twice; select it once."
                    )
                groups.append(_Item(ref, alias))
            elif _is_aggregate(node):
                if aggregate is not None:
                    self.refuse_node(
                        node,
                        "multiple aggregates",
                        "a query has exactly one aggregate; run one query per aggregate.",
                    )
                aggregate = self.aggregate(node)
            else:
                self.not_a_select_item(node)
        if aggregate is None:
            self.refuse(
                self.text.offset(select.expressions[0]) if select.expressions else self.text.tokens[0].start,
                "no aggregate",
                f"the query needs exactly one aggregate: {_SUPPORTED_AGGREGATES}. Person-level values are never released.",
            )
        return groups, aggregate

    def not_a_select_item(self, node: exp.Expr) -> NoReturn:
        if isinstance(node, exp.Subquery) or node.find(exp.Select):
            self.subquery(node.find(exp.Select) or node)
        if isinstance(node, exp.Window) or node.find(exp.Window):
            self.refuse_node(node, "window function", "window functions (OVER) are not supported.")
        if node.find(exp.AggFunc):
            self.refuse_node(
                node,
                "expression on an aggregate",
                f"only a bare aggregate can be selected, not {node.sql(dialect=DIALECT)!r}; compute with the released "
                "value instead (AVG(col) gives a mean).",
            )
        if isinstance(node, exp.Literal | exp.Boolean | exp.Null):
            self.refuse_node(
                node, "constant", "constants cannot be selected; select group columns and one aggregate."
            )
        self.refuse_node(
            node,
            _describe(node),
            f"{_describe(node)} is not supported in SELECT; select catalog columns (derived columns such as "
            f"age_band by name) and one aggregate: {_SUPPORTED_AGGREGATES}.{self.derived_hint(node)}",
        )

    # the aggregate

    def aggregate(self, node: exp.Expr) -> _Aggregate:
        offset = self.text.offset(node)
        if isinstance(node, exp.Window):
            self.refuse(offset, "window function", "window functions (OVER) are not supported.")
        if isinstance(node, exp.Filter):
            self.refuse(
                offset, "FILTER", "an aggregate FILTER clause is not supported; put the condition in WHERE."
            )
        if isinstance(node, exp.Count):
            return self.count(node, offset)
        if isinstance(node, exp.Sum | exp.Avg | exp.Median):
            ref, bounds = self.measured(node.this, node)
            measure: Measure = (
                "sum" if isinstance(node, exp.Sum) else "mean" if isinstance(node, exp.Avg) else "quantile"
            )
            return _Aggregate(measure, ref, bounds, 0.5 if measure == "quantile" else None, offset)
        if isinstance(node, exp.WithinGroup):
            return self.percentile(node, offset)
        name = _describe(node)
        why = " (it would release one person's value)" if isinstance(node, exp.Min | exp.Max) else ""
        self.refuse(
            offset, name, f"{name} is not supported{why}; the aggregates are {_SUPPORTED_AGGREGATES}."
        )

    def count(self, node: exp.Count, offset: int) -> _Aggregate:
        arg = node.this
        if node.args.get("expressions"):
            self.refuse(
                offset,
                "COUNT with several arguments",
                "COUNT takes one argument: COUNT(*) or COUNT(DISTINCT person_id).",
            )
        if isinstance(arg, exp.Star):
            return _Aggregate(None, None, None, None, offset)
        if isinstance(arg, exp.Distinct):
            columns = arg.expressions
            if len(columns) == 1 and isinstance(columns[0], exp.Column) and self.is_person_key(columns[0]):
                return _Aggregate("count_persons", None, None, None, offset)
            at = self.text.last_keyword(
                (TokenType.DISTINCT,), self.text.offset(columns[0]) if columns else offset + 1
            )
            self.refuse(
                at if at is not None else offset,
                "DISTINCT on other columns",
                "COUNT(DISTINCT ...) is only for the person key: write COUNT(DISTINCT person_id), or group by "
                "the column to count per value.",
            )
        if isinstance(arg, exp.Column):
            self.refuse_node(
                arg,
                "COUNT(column)",
                "COUNT(column) is not supported: write COUNT(*) for rows of the FROM register or "
                "COUNT(DISTINCT person_id) for persons.",
            )
        self.inside_aggregate(arg)

    def percentile(self, node: exp.WithinGroup, offset: int) -> _Aggregate:
        function, order = node.this, node.expression
        if not isinstance(function, exp.PercentileCont | exp.PercentileDisc) or function.args.get(
            "expression"
        ):
            self.refuse(
                offset,
                _describe(function),
                f"{_describe(function)} WITHIN GROUP is not supported; write PERCENTILE_CONT(q).",
            )
        level = self.number(function.this, "the percentile level")
        if not 0 < level < 1:
            self.refuse_node(
                function.this,
                "percentile level",
                f"the percentile level must be between 0 and 1 (exclusive), got {level}.",
            )
        ordered = order.expressions if isinstance(order, exp.Order) else []
        if len(ordered) != 1:
            self.refuse(offset, "WITHIN GROUP", "WITHIN GROUP needs exactly one column: (ORDER BY col).")
        item = ordered[0]
        if item.args.get("desc"):
            self.refuse_node(
                item,
                "ORDER BY ... DESC",
                f"descending order is not supported; write PERCENTILE_CONT({_show_number(1 - level)}) WITHIN GROUP (ORDER BY col).",
            )
        ref, bounds = self.measured(item.this, node)
        return _Aggregate("quantile", ref, bounds, float(level), offset)

    def measured(self, node: exp.Expr, aggregate: exp.Expr) -> tuple[_Ref, tuple[float, float] | None]:
        """The aggregated column, with bounds if it is wrapped in CLAMP(col, lo, hi)."""
        if isinstance(node, exp.Column):
            return self.resolve(node), None
        if isinstance(node, exp.Anonymous) and node.name.upper() == "CLAMP":
            args = node.expressions
            if len(args) != 3 or not isinstance(args[0], exp.Column):
                self.refuse_node(node, "CLAMP", "CLAMP takes a column and two numbers: CLAMP(col, lo, hi).")
            lo = self.number(args[1], "a CLAMP bound")
            hi = self.number(args[2], "a CLAMP bound")
            return self.resolve(args[0]), (float(lo), float(hi))
        if isinstance(node, exp.Distinct):
            keyword = self.text.last_keyword((TokenType.DISTINCT,), self.text.offset(node) + 1)
            self.refuse(
                keyword if keyword is not None else self.text.offset(node),
                "DISTINCT on other columns",
                f"DISTINCT inside {_describe(aggregate)} is not supported; aggregate every row of the grain register.",
            )
        self.inside_aggregate(node)

    def inside_aggregate(self, node: exp.Expr) -> NoReturn:
        if node.find(exp.Select):
            self.subquery(node.find(exp.Select) or node)
        self.refuse_node(
            node,
            "expression inside an aggregate",
            f"{node.sql(dialect=DIALECT)!r} inside an aggregate is not supported; aggregate a catalog column, "
            "optionally as CLAMP(col, lo, hi) to narrow its bounds.",
        )

    def is_person_key(self, column: exp.Column) -> bool:
        name = _name(column.this)
        qualifier = column.args.get("table")
        if qualifier is None:
            return any(t.register.person_key == name for t in self.tables)
        table = self.table_for(column, _name(qualifier))
        return table.register.person_key == name

    def number(self, node: exp.Expr, what: str) -> int | float:
        value = _literal(node)
        if isinstance(value, int | float):
            return value
        self.refuse_node(
            node, "non-numeric literal", f"{what} must be a number, not {node.sql(dialect=DIALECT)!r}."
        )

    # columns

    def table_for(self, column: exp.Column, qualifier: str) -> _Table:
        table = next((t for t in self.tables if t.name == qualifier), None)
        if table is not None:
            return table
        offset = self.text.offset(column)
        aliased = next((t for t in self.tables if t.register.name == qualifier), None)
        if aliased is not None:
            self.refuse(
                offset,
                "table name",
                f"register {qualifier} is called {aliased.name!r} in this query; write {aliased.name}.{_name(column.this)}.",
                SqlUnknownRegister,
            )
        if self.catalog.has_register(qualifier):
            self.refuse(
                offset,
                "table name",
                f"register {qualifier} is not in FROM; add JOIN {qualifier} USING (person_id).",
                SqlUnknownRegister,
            )
        names = [t.name for t in self.tables]
        self.refuse(
            offset,
            "table name",
            f"unknown table {qualifier!r}.{_did_you_mean(qualifier, names)} Tables of this query: {', '.join(names)}.",
            SqlUnknownRegister,
        )

    def resolve(self, column: exp.Column, *, queryable: bool = True) -> _Ref:
        """Resolve a column against the FROM/JOIN registers; refuse unknown, ambiguous and key columns."""
        offset = self.text.offset(column)
        if column.args.get("db") or column.args.get("catalog"):
            self.refuse(offset, "qualified name", "write columns as column or table.column.")
        name = _name(column.this)
        qualifier = column.args.get("table")
        if qualifier is not None:
            table = self.table_for(column, _name(qualifier))
            if not table.register.has_column(name):
                queryable_names = [c.name for c in table.register.columns if c.queryable]
                self.refuse(
                    offset,
                    "column",
                    f"unknown column {name!r} in register {table.register.name}.{_did_you_mean(name, queryable_names)} "
                    f"Columns of {table.register.name}: {', '.join(queryable_names)}.",
                    SqlUnknownColumn,
                )
        else:
            candidates = [t for t in self.tables if t.register.has_column(name)]
            if len(candidates) > 1:
                options = " or ".join(f"{t.name}.{name}" for t in candidates)
                self.refuse(
                    offset,
                    "column",
                    f"column {name!r} is on {', '.join(t.register.name for t in candidates)}; qualify it: {options}.",
                    SqlAmbiguousColumn,
                )
            if not candidates:
                self.unknown_column(column, name, offset)
            table = candidates[0]
        catalog_column = table.register.column(name)
        if queryable and not catalog_column.queryable:
            if catalog_column.role == "person_key":
                what = "the person key: it links registers (JOIN ... USING (person_id)) and is counted with "
                what += "COUNT(DISTINCT person_id), but"
            else:
                what = "a row key" if catalog_column.role == "row_key" else "an identifier"
                what += ": keys and identifiers"
            self.refuse(
                offset,
                "column",
                f"{table.register.name}.{name} is {what} cannot be filtered, grouped or aggregated.",
                SqlColumnNotQueryable,
            )
        return _Ref(table.register.name, name, offset)

    def unknown_column(self, column: exp.Column, name: str, offset: int) -> NoReturn:
        names = sorted({c.name for t in self.tables for c in t.register.columns if c.queryable})
        elsewhere = [
            r.name
            for r in self.catalog.registers
            if r.has_column(name) and r.name not in {t.register.name for t in self.tables}
        ]
        hint = (
            f" It is a column of {' and '.join(elsewhere)}: add JOIN {elsewhere[0]} USING (person_id)."
            if elsewhere
            else ""
        )
        if isinstance(column.this, exp.Identifier) and column.this.quoted and not elsewhere:
            hint += f" Double quotes name a column; write text values in single quotes: '{name}'."
        registers = ", ".join(t.register.name for t in self.tables)
        self.refuse(
            offset,
            "column",
            f"unknown column {name!r} (registers in FROM: {registers}).{_did_you_mean(name, names)}{hint}",
            SqlUnknownColumn,
        )

    def derived_hint(self, node: exp.Expr) -> str:
        """For a function over a column: the derived catalog columns computed from that column."""
        inner = node.find(exp.Column)
        if inner is None or isinstance(inner.this, exp.Star):
            return ""
        try:
            ref = self.resolve(inner, queryable=False)
        except SqlError:
            return ""
        register = self.catalog.register(ref.register)
        derived = [
            c.name for c in register.columns if c.derivation is not None and c.derivation.source == ref.column
        ]
        if not derived:
            return ""
        return f" Derived columns of {ref.register} computed from {ref.column}: {', '.join(derived)}."

    # WHERE

    def where(self, select: exp.Select) -> list[_Condition]:
        where = select.args.get("where")
        if where is None:
            return []
        return [self.condition(part) for part in _flatten_and(where.this)]

    def condition(self, node: exp.Expr) -> _Condition:
        node = _unparen(node)
        if isinstance(node, exp.Or):
            self.or_condition(node)
        if isinstance(node, exp.Is):
            column_end = self.text.end(node.this)
            at = self.text.keyword((TokenType.IS,), after=column_end if column_end is not None else -1)
            word = "IS NOT NULL" if node.args.get("negate") else "IS NULL"
            self.refuse(
                at if at is not None else self.text.offset(node),
                word,
                f"{word} is not supported; a missing value counts as its column's declared constant.",
            )
        if isinstance(node, exp.Not) or node.args.get("negate"):
            self.not_condition(node)
        if node.find(exp.Select):
            self.subquery(node.find(exp.Select) or node)
        comparison = _COMPARISONS.get(type(node))
        if comparison is not None:
            return self.comparison(node, comparison)
        if isinstance(node, exp.In):
            extra = [k for k, v in node.args.items() if v and k not in ("this", "expressions")]
            if extra:
                self.refuse_node(
                    node, f"IN {extra[0]}", "IN takes a list of literal values: col IN ('a', 'b')."
                )
            ref = self.condition_column(node.this, node)
            return _Condition(ref, "in", [self.value(v, ref) for v in node.expressions])
        if isinstance(node, exp.Between):
            if node.args.get("symmetric"):
                self.refuse_node(node, "BETWEEN SYMMETRIC", "write BETWEEN low AND high.")
            low_end, high_start = self.text.end(node.args["low"]), self.text.start(node.args["high"])
            if (
                low_end is None
                or high_start is None
                or self.text.keyword((TokenType.AND,), after=low_end, before=high_start) is None
            ):
                at = self.text.offset(node.args["high"])
                self.refuse(
                    at, "syntax", "SQL syntax error: BETWEEN needs AND: BETWEEN low AND high.", SqlSyntaxError
                )
            ref = self.condition_column(node.this, node)
            return _Condition(
                ref, "between", [self.value(node.args["low"], ref), self.value(node.args["high"], ref)]
            )
        if isinstance(node, exp.Like):
            return self.like(node)
        if isinstance(node, exp.Escape):
            self.refuse_node(node, "LIKE ... ESCAPE", "LIKE takes a prefix with one trailing %: LIKE 'E11%'.")
        if isinstance(node, exp.ILike):
            self.refuse_node(
                node,
                "ILIKE",
                "ILIKE is not supported; codes are upper case: write LIKE 'E11%'.",
            )
        self.refuse_node(
            node,
            _describe(node),
            f"the condition {node.sql(dialect=DIALECT)!r} is not supported; conditions compare a column with "
            "literals: =, <>, <, <=, >, >=, IN (...), BETWEEN ... AND ..., LIKE 'prefix%'.",
        )

    def or_condition(self, node: exp.Or) -> NoReturn:
        left_end = self.text.end(node.this)
        at = self.text.keyword(
            (TokenType.OR,), after=left_end if left_end is not None else self.text.offset(node)
        )
        alternatives = _flatten(node, exp.Or)
        same_column = (
            all(
                isinstance(a, exp.EQ)
                and isinstance(_unparen(a.this), exp.Column)
                and _literal(_unparen(a.expression)) is not None
                for a in alternatives
            )
            and len({_unparen(a.this).sql().lower() for a in alternatives}) == 1
        )
        if same_column:
            column = _unparen(alternatives[0].this).sql(dialect=DIALECT)
            values = ", ".join(_unparen(a.expression).sql(dialect=DIALECT) for a in alternatives)
            suggestion = f"For alternatives on one column write IN: {column} IN ({values})."
        else:
            suggestion = (
                "OR across columns or registers cannot be expressed; run one query per alternative "
                "(each costs its own privacy loss)."
            )
        self.refuse(
            at if at is not None else self.text.offset(node),
            "OR",
            f"OR is not supported; conditions combine with AND. {suggestion}",
        )

    def not_condition(self, node: exp.Expr) -> NoReturn:
        inner = node.this if isinstance(node, exp.Not) else node
        inner = _unparen(inner)
        start = self.text.start(inner)
        end = self.text.end(inner)
        at = None
        if start is not None and end is not None:
            at = self.text.keyword((TokenType.NOT,), after=start, before=end)
            if at is None:
                at = self.text.last_keyword((TokenType.NOT,), start)
        if isinstance(inner, exp.EQ):
            suggestion = (
                f" Write {inner.this.sql(dialect=DIALECT)} <> {inner.expression.sql(dialect=DIALECT)}."
            )
        elif isinstance(inner, exp.In):
            suggestion = " List the values you want with IN (...) instead."
        else:
            suggestion = ""
        self.refuse(
            at if at is not None else self.text.offset(node),
            "NOT",
            f"NOT is not supported.{suggestion}",
        )

    def comparison(self, node: exp.Expr, ops: tuple[str, str]) -> _Condition:
        left, right = _unparen(node.this), _unparen(node.expression)
        if isinstance(left, exp.Column) and isinstance(right, exp.Column):
            self.resolve(left)
            self.resolve(right)
            self.refuse_node(
                node,
                "column comparison",
                "comparing two columns is not supported; compare a column with a literal. Registers are "
                "linked by JOIN ... USING (person_id).",
            )
        if isinstance(left, exp.Column):
            ref = self.condition_column(left, node)
            return _Condition(ref, ops[0], self.value(right, ref))
        if isinstance(right, exp.Column) and _literal(left) is not None:
            ref = self.condition_column(right, node)
            return _Condition(ref, ops[1], self.value(left, ref))
        for side in (left, right):
            if isinstance(side, exp.Func) or side.find(exp.Select):
                self.bad_condition_side(side, node)
        self.refuse_node(
            node,
            _describe(node),
            f"the condition {node.sql(dialect=DIALECT)!r} is not supported; compare a column with a literal.",
        )

    def condition_column(self, node: exp.Expr, condition: exp.Expr) -> _Ref:
        node = _unparen(node)
        if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
            return self.resolve(node)
        self.bad_condition_side(node, condition)

    def bad_condition_side(self, node: exp.Expr, condition: exp.Expr) -> NoReturn:
        if node.find(exp.Select):
            self.subquery(node.find(exp.Select) or node)
        if isinstance(node, exp.Func):
            self.refuse_node(
                node,
                _describe(node),
                f"functions in WHERE are not supported ({_describe(node)}); compare a catalog column with "
                f"literals.{self.derived_hint(node)}",
            )
        self.refuse_node(
            node,
            _describe(node),
            f"the condition {condition.sql(dialect=DIALECT)!r} is not supported; compare a column with a literal.",
        )

    def like(self, node: exp.Like) -> _Condition:
        ref = self.condition_column(node.this, node)
        pattern_node = _unparen(node.expression)
        pattern = _literal(pattern_node)
        if not isinstance(pattern, str) or not (
            isinstance(pattern_node, exp.Literal) and pattern_node.is_string
        ):
            self.refuse_node(pattern_node, "LIKE pattern", "LIKE takes a text prefix: LIKE 'E11%'.")
        body = pattern[:-1] if pattern.endswith("%") else pattern
        if "%" in body or "_" in body or not pattern.endswith("%"):
            if "%" not in pattern and "_" not in pattern:
                hint = f"For an exact match write {ref.column} = '{pattern}'."
            else:
                hint = "Only a prefix with one trailing % is supported: LIKE 'E11%'."
            self.refuse_node(
                pattern_node, "LIKE pattern", f"the LIKE pattern {pattern!r} is not supported. {hint}"
            )
        if not body:
            self.refuse_node(
                pattern_node, "LIKE pattern", "LIKE '%' matches everything; remove the condition."
            )
        return _Condition(ref, "prefix", body)

    def value(self, node: exp.Expr, ref: _Ref) -> _Value:
        """A literal converted to the column's type (PostgreSQL reads '2019' as a number for a number column)."""
        node = _unparen(node)
        column = self.catalog.register(ref.register).column(ref.column)
        offset = self.text.offset(node)
        if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.DATE):
            text_value = _literal(node.this)
            if isinstance(text_value, str) and column.type == "date":
                return text_value
            self.refuse(
                offset,
                "CAST",
                f"{ref.qualified} is a {column.type} column; compare it with a literal.",
                SqlValueError,
            )
        value = _literal(node)
        if value is None:
            if isinstance(node, exp.Null):
                self.refuse(offset, "NULL", "conditions on NULL are not supported.")
            if isinstance(node, exp.Select | exp.Subquery) or node.find(exp.Select):
                self.subquery(node.find(exp.Select) or node)
            self.refuse(
                offset,
                _describe(node),
                f"values in conditions must be literals such as 'E11', 2019 or DATE '2019-01-01', not "
                f"{node.sql(dialect=DIALECT)!r}.",
            )
        if column.is_numeric:
            if isinstance(value, str):
                number = _number(value)
                if number is None:
                    self.refuse(
                        offset, "value", f"{ref.qualified} is a number; {value!r} is not one.", SqlValueError
                    )
                return number
            return value
        if not isinstance(value, str):
            example = "'2019-01-01'" if column.type == "date" else f"'{value}'"
            self.refuse(
                offset,
                "value",
                f"{ref.qualified} is a {column.type} column; write the value in single quotes: {example}.",
                SqlValueError,
            )
        return value

    # GROUP BY

    def group_by(self, select: exp.Select, groups: list[_Item]) -> None:
        group = select.args.get("group")
        if group is None:
            if groups:
                first = groups[0].ref
                self.refuse(
                    first.offset,
                    "column without GROUP BY",
                    f"{first.qualified} is neither aggregated nor grouped; add GROUP BY "
                    f"{', '.join(g.ref.column for g in groups)}.",
                )
            return
        for arg in ("all", "rollup", "cube", "grouping_sets", "totals"):
            if group.args.get(arg):
                at = self.text.keyword((TokenType.GROUP_BY,), top_level=True)
                word = "GROUP BY ALL" if arg == "all" else arg.replace("_", " ").upper()
                listed = ", ".join(g.ref.column for g in groups) or "<columns>"
                self.refuse(
                    at if at is not None else self.text.offset(group),
                    word,
                    f"{word} is not supported; list the group columns: GROUP BY {listed}.",
                )
        if not group.expressions:
            at = self.text.keyword((TokenType.GROUP_BY,), top_level=True)
            at = at if at is not None else self.text.offset(select)
            self.refuse(at, "syntax", "SQL syntax error: GROUP BY needs the group columns.", SqlSyntaxError)
        grouped: list[str] = []
        for node in group.expressions:
            ref = self.group_item(_unparen(node), select, groups)
            selected = [g.ref.qualified for g in groups]
            if ref.qualified not in selected:
                self.refuse(
                    ref.offset,
                    "GROUP BY column not selected",
                    f"{ref.qualified} is grouped but not selected; add it to SELECT (every group column is a "
                    "column of the released table).",
                )
            grouped.append(ref.qualified)
        for item in groups:
            if item.ref.qualified not in grouped:
                self.refuse(
                    item.ref.offset,
                    "column not in GROUP BY",
                    f"{item.ref.qualified} is selected but not in GROUP BY; add it to GROUP BY.",
                )

    def group_item(self, node: exp.Expr, select: exp.Select, groups: list[_Item]) -> _Ref:
        ordinal = _literal(node)
        if isinstance(ordinal, int) and not isinstance(node, exp.Neg):
            items = select.expressions
            if not 1 <= ordinal <= len(items):
                self.refuse_node(
                    node, "GROUP BY ordinal", f"GROUP BY {ordinal}: the SELECT list has {len(items)} items."
                )
            target = items[ordinal - 1]
            target = target.this if isinstance(target, exp.Alias) else target
            if not isinstance(target, exp.Column):
                self.refuse_node(
                    node,
                    "GROUP BY ordinal",
                    f"GROUP BY {ordinal} refers to the aggregate; group by columns only.",
                )
            ref = self.resolve(target)
            return _Ref(ref.register, ref.column, self.text.offset(node))
        if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
            name = _name(node.this)
            if node.args.get("table") is None and not any(t.register.has_column(name) for t in self.tables):
                aliased = next((g for g in groups if g.alias is not None and g.alias == node.name), None)
                if aliased is not None:
                    return _Ref(aliased.ref.register, aliased.ref.column, self.text.offset(node))
            return self.resolve(node)
        if isinstance(node, exp.Rollup | exp.Cube | exp.GroupingSets):
            word = "GROUPING SETS" if isinstance(node, exp.GroupingSets) else type(node).__name__.upper()
            listed = ", ".join(g.ref.column for g in groups) or "<columns>"
            self.refuse_node(
                node,
                word,
                f"{word} is not supported; list the group columns (GROUP BY {listed}) and run one query per grouping.",
            )
        self.refuse_node(
            node,
            _describe(node),
            f"GROUP BY takes catalog columns, not {node.sql(dialect=DIALECT)!r}.{self.derived_hint(node)}",
        )

    # the bounds hint

    def apply_hint(self, aggregate: _Aggregate) -> _Aggregate:
        hints = [(body, at) for body, at in self.text.comments() if _MENTIONS_BOUNDS.search(body)]
        if not hints:
            return aggregate
        if len(hints) > 1:
            self.refuse(hints[1][1], "bounds hint", "give one bounds hint per query.")
        body, at = hints[0]
        match = _BOUNDS_HINT.fullmatch(body)
        if match is None:
            self.refuse(
                at,
                "bounds hint",
                f"the bounds hint {body.strip()!r} is malformed; write /* bounds: 0, 30 */.",
            )
        if aggregate.measure not in ("sum", "mean", "quantile"):
            self.refuse(
                at,
                "bounds hint",
                "bounds apply to SUM, AVG, MEDIAN and PERCENTILE_CONT only; counts take none.",
            )
        if aggregate.bounds is not None:
            self.refuse(at, "bounds hint", "the aggregate already has CLAMP bounds; give bounds once.")
        bounds = (float(match.group(1)), float(match.group(2)))
        return _Aggregate(aggregate.measure, aggregate.column, bounds, aggregate.quantile, aggregate.offset)

    # the Query

    def assemble(
        self, groups: list[_Item], aggregate: _Aggregate, conditions: list[_Condition]
    ) -> dict[str, Any]:
        grain = self.tables[0].register
        person = self.catalog.person_register
        measure = aggregate.measure or ("count_persons" if grain.name == person else "count_rows")
        filtered = {c.ref.register for c in conditions}
        if aggregate.column is not None and aggregate.column.register != grain.name:
            self.refuse(
                aggregate.column.offset,
                "aggregate off the grain",
                f"the aggregate's column {aggregate.column.qualified} must be on the FROM register {grain.name} "
                f"(the grain: the rows that are aggregated); write FROM {aggregate.column.register} JOIN "
                f"{grain.name} USING (person_id).",
            )
        if measure == "count_persons":
            register = self.person_count_register(groups, filtered)
        else:
            register = grain.name
            for item in groups:
                if item.ref.register not in (grain.name, person):
                    self.refuse(
                        item.ref.offset,
                        "group column off the grain",
                        f"group columns of a {measure} over {grain.name} rows must be on {grain.name} or {person} "
                        f"(one value per person); {item.ref.qualified} is not.",
                    )
            for table in self.tables[1:]:
                if table.register.name != person and table.register.name not in filtered:
                    self.unused_join(table)
        return {
            "measure": measure,
            "register": register,
            "column": aggregate.column.qualified if aggregate.column else None,
            "bounds": list(aggregate.bounds) if aggregate.bounds else None,
            "quantile": aggregate.quantile,
            "where": [{"column": c.ref.qualified, "op": c.op, "value": c.value} for c in conditions],
            "group_by": [g.ref.qualified for g in groups],
        }

    def person_count_register(self, groups: list[_Item], filtered: set[str]) -> str:
        """``register`` of a count_persons: the person register, or a joined register the person must be in."""
        person = self.catalog.person_register
        grouped: list[str] = []
        for item in groups:
            if item.ref.register != person and item.ref.register not in grouped:
                if grouped:
                    self.refuse(
                        item.ref.offset,
                        "groups on two registers",
                        f"persons can be grouped by {person} columns and columns of one other register; "
                        f"{item.ref.qualified} is on a second one ({grouped[0]} is the first).",
                    )
                grouped.append(item.ref.register)
        unused = [
            t
            for t in self.tables
            if t.register.name != person and t.register.name not in filtered | set(grouped)
        ]
        if not unused:
            return person
        if grouped or len(unused) > 1:
            self.unused_join(unused[0] if grouped else unused[1])
        return unused[0].register.name

    def unused_join(self, table: _Table) -> NoReturn:
        name = table.register.name
        self.refuse(
            table.offset,
            "join without conditions",
            f"{name} is joined but nothing in WHERE or GROUP BY uses it. A joined register restricts the "
            f"query to persons who have a {name} row satisfying its conditions; with no condition on {name} "
            f"that cannot be expressed here. Add a condition on {name} or remove the join.",
        )

    def subquery(self, node: exp.Expr) -> NoReturn:
        start = self.text.start(node)
        at = self.text.last_keyword((TokenType.SELECT,), start + 1) if start is not None else None
        self.refuse(
            at if at is not None else self.text.offset(node),
            "subquery",
            "subqueries are not supported. Join registers USING (person_id): a condition on a joined "
            "register already means 'the person has such a row'.",
        )


# --- small helpers ------------------------------------------------------------------------------


def _name(identifier: exp.Expr) -> str:
    """An identifier's name: unquoted names are case-insensitive (lower case), quoted ones exact."""
    if isinstance(identifier, exp.Identifier):
        return identifier.this if identifier.quoted else identifier.this.lower()
    return identifier.name.lower()


def _unparen(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _flatten(node: exp.Expr, kind: type[exp.Expr]) -> list[exp.Expr]:
    node = _unparen(node)
    if isinstance(node, kind):
        return _flatten(node.this, kind) + _flatten(node.expression, kind)
    return [node]


def _flatten_and(node: exp.Expr) -> list[exp.Expr]:
    return _flatten(node, exp.And)


def _is_aggregate(node: exp.Expr) -> bool:
    return isinstance(node, exp.AggFunc | exp.WithinGroup | exp.Window | exp.Filter) and not node.find(
        exp.Select
    )


def _literal(node: exp.Expr) -> _Value | None:
    """The value of a literal (string, number, negative number), else None."""
    node = _unparen(node)
    if isinstance(node, exp.Neg):
        inner = _literal(node.this)
        return -inner if isinstance(inner, int | float) else None
    if not isinstance(node, exp.Literal):
        return None
    if node.is_string:
        return str(node.this)
    return _number(str(node.this))


def _number(text: str) -> int | float | None:
    text = text.strip()
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(_NUMBER, text):
        return float(text)
    return None


def _show_number(value: float) -> str:
    return f"{round(value, 10):g}"


def _call_name(node: exp.Expr) -> str | None:
    """The keyword a call-like node is written with (``EXTRACT``, ``ROLLUP``), if any."""
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    if isinstance(node, exp.Func):
        return node.sql_name()
    if isinstance(node, exp.Rollup | exp.Cube | exp.Any | exp.All):
        return type(node).__name__.upper()
    return None


def _describe(node: exp.Expr) -> str:
    """A short name for a construct in a message: ``YEAR(...)``, ``CASE``, ``expression 'a + 1'``."""
    if isinstance(node, exp.Func):
        name = node.name.upper() if isinstance(node, exp.Anonymous) else node.sql_name()
        return f"{name}(...)"
    if isinstance(node, exp.Case):
        return "CASE"
    return f"expression {node.sql(dialect=DIALECT)!r}"


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=3, cutoff=0.6)]
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?" if close else ""
