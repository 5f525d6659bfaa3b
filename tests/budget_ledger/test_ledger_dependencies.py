"""budget_ledger imports only the standard library, OpenDP, pydantic, psycopg (PostgreSQL store) and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import budget_ledger

PACKAGE = Path(budget_ledger.__file__).parent
ALLOWED = set(sys.stdlib_module_names) | {"opendp", "pydantic", "psycopg", "budget_ledger"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_module_imports_only_allowed_packages(path: Path) -> None:
    assert _imports(path) <= ALLOWED, f"{path.name} imports {sorted(_imports(path) - ALLOWED)}"


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from query_engine import plan\nimport service.app\n")
    assert _imports(bad) - ALLOWED == {"query_engine", "service"}


def test_public_api_is_declared() -> None:
    missing = [name for name in budget_ledger.__all__ if not hasattr(budget_ledger, name)]
    assert missing == []
