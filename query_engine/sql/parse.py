"""Tokenize, check and parse exactly one SELECT: limits, nesting depth, lint, syntax errors.

Everything here runs before (or instead of) sqlglot's parser: the text's length, how deeply it
nests, how many AND/OR conditions it chains, and token sequences the lenient parser would repair.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from .errors import SqlPosition, SqlSyntaxError, SqlTooDeep, UnsupportedSql
from .text import DIALECT, SqlText

__all__ = ["MAX_SQL_CHARS", "MAX_SQL_CONDITIONS", "MAX_SQL_DEPTH", "NAMES", "parse"]

MAX_SQL_CHARS = 20_000
# The parser and the translator recurse once (or more) per nesting level; these limits keep every
# accepted text far below Python's recursion limit (sqlglot itself fails near 45 parentheses).
MAX_SQL_DEPTH = 16
MAX_SQL_CONDITIONS = 200
_PREFIX_OPERATORS = {TokenType.NOT, TokenType.DASH, TokenType.PLUS, TokenType.TILDE}
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
NAMES = {TokenType.VAR, TokenType.IDENTIFIER}


def parse(sql: str) -> tuple[exp.Expr, SqlText]:
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
        text = SqlText.of(sql, [])
        raise text.error(
            SqlSyntaxError,
            offset,
            "token",
            "the SQL text cannot be read here: a quote or comment is not closed.",
        ) from None
    text = SqlText.of(sql, tokens)
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
        raise text.error(
            UnsupportedSql,
            first.start,
            word,
            f"the statement starts with {word}; only SELECT statements are supported.",
        )
    if len(statements) > 1:
        second = statements[1]
        raise text.error(
            UnsupportedSql,
            second.start,
            "multiple statements",
            "a second statement starts here; send one SELECT statement per request.",
        )
    _lint(text)
    try:
        trees = dialect.parser().parse(list(tokens), sql)
    except ParseError as error:
        raise _syntax_error(text, error) from None
    tree = next(t for t in trees if t is not None)
    return tree, text


def _check_nesting(text: SqlText) -> None:
    """Refuse, before parsing, texts whose nesting or AND/OR chains would exhaust the recursion."""
    run = cases = conditions = 0
    for token, depth in zip(text.tokens, text.depths, strict=True):
        run = run + 1 if token.token_type in _PREFIX_OPERATORS else 0
        cases += {TokenType.CASE: 1, TokenType.END: -1}.get(token.token_type, 0)
        if depth + cases + run > MAX_SQL_DEPTH:
            raise text.error(
                SqlTooDeep,
                token.start,
                "nesting",
                f"parentheses, CASE and prefix operators (NOT, -, +) nest more than {MAX_SQL_DEPTH} levels "
                "deep here; write the condition without the extra nesting.",
            )
        if token.token_type in (TokenType.AND, TokenType.OR):
            conditions += 1
            if conditions > MAX_SQL_CONDITIONS:
                raise text.error(
                    SqlTooDeep,
                    token.start,
                    "conditions",
                    f"the SQL text joins more than {MAX_SQL_CONDITIONS} conditions with AND/OR; "
                    "use IN (...) lists or fewer conditions.",
                )


def _lint(text: SqlText) -> None:
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
            and before.token_type in NAMES
            and after is not None
            and after.token_type in (*NAMES, TokenType.STAR)
        ):
            problem = "a dot here joins no names; write table.column or a number such as 0.5."
        if problem is not None:
            raise text.error(
                SqlSyntaxError, token.start, "syntax", f"SQL syntax error near {token.text!r}: {problem}"
            )


def _statements(text: SqlText) -> list[Token]:
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


def _syntax_error(text: SqlText, error: ParseError) -> SqlSyntaxError:
    """sqlglot's parse error as an ``SqlSyntaxError`` at the line and column it names."""
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
