"""Every error message the engine and the catalog write is a sentence: it starts with a capital letter.

The check reads the source: for each ``raise SomeError(<literal or f-string>, ...)`` in the
``query_engine`` modules, the text must begin with literal text that starts with a capital letter
(so a message cannot begin with a lowercase name such as ``rho`` or a column). Messages built
elsewhere (SQL errors get their ``Line L, column C:`` prefix from one helper) are checked by the
corpus tests instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import query_engine

PACKAGE = Path(query_engine.__file__).resolve().parent
MODULES = sorted([*PACKAGE.glob("*.py"), *(PACKAGE / "catalog").glob("*.py")])


def _messages(path: Path) -> list[tuple[int, ast.expr]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
            continue
        found.append((node.lineno, node.exc.args[0]))
    return found


def _opening(message: ast.expr) -> str | None:
    """The literal text a message starts with ('' when it starts with a placeholder); None if computed."""
    while isinstance(message, ast.BinOp):
        message = message.left
    if isinstance(message, ast.Constant) and isinstance(message.value, str):
        return message.value
    if isinstance(message, ast.JoinedStr):
        first = message.values[0] if message.values else None
        return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""
    return None


def test_the_scan_finds_the_messages() -> None:
    assert sum(len(_messages(path)) for path in MODULES) > 150


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_error_messages_start_with_a_capital_letter(path: Path) -> None:
    bad = []
    for line, message in _messages(path):
        opening = _opening(message)
        if opening is not None and not opening[:1].isupper():
            bad.append(f"{path.name}:{line}: {opening[:60]!r}")
    assert not bad, "Error messages must be sentences starting with a capital letter:\n" + "\n".join(bad)
