"""The SQL text and its tokens: turning tree nodes and keywords into line and column."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from .errors import SqlError, SqlPosition

__all__ = ["DIALECT", "JOIN_WORDS", "SqlText", "call_name"]

_Error = TypeVar("_Error", bound=SqlError)

DIALECT = "postgres"
# Tokens that can start a join clause (walked back from the joined table).
JOIN_WORDS = {
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


@dataclass(frozen=True)
class SqlText:
    """The SQL text with its tokens, for turning AST nodes and keywords into line and column."""

    sql: str
    tokens: tuple[Token, ...]
    depths: tuple[int, ...]  # parenthesis depth of each token

    @classmethod
    def of(cls, sql: str, tokens: Sequence[Token]) -> SqlText:
        """The text with its tokens and their parenthesis depths."""
        depths, depth = [], 0
        for token in tokens:
            if token.token_type == TokenType.R_PAREN:
                depth -= 1
            depths.append(depth)
            if token.token_type == TokenType.L_PAREN:
                depth += 1
        return cls(sql, tuple(tokens), tuple(depths))

    def at(self, offset: int, message: str) -> str:
        """``message`` prefixed with the line and column of ``offset``."""
        position = self.position(offset)
        return f"Line {position['line']}, column {position['column']}: {message}"

    def error(self, cls: type[_Error], offset: int, construct: str, message: str) -> _Error:
        """A ``cls`` error with ``message`` at the line and column of ``offset``."""
        return cls(self.at(offset, message), position=self.position(offset), construct=construct)

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
                name = call_name(current)
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
        while index > 0 and self.tokens[index - 1].token_type in JOIN_WORDS:
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


def call_name(node: exp.Expr) -> str | None:
    """The keyword a call-like node is written with (``EXTRACT``, ``ROLLUP``), if any."""
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    if isinstance(node, exp.Func):
        return node.sql_name()
    if isinstance(node, exp.Rollup | exp.Cube | exp.Any | exp.All):
        return type(node).__name__.upper()
    return None
