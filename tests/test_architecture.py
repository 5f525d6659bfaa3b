"""The dependency rule of DESIGN.md: imports point one way between the top-level packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"query_engine", "budget_ledger", "service", "dashboard", "datasets"}
ALLOWED = {
    "query_engine": set(),
    "budget_ledger": set(),
    "service": {"query_engine", "budget_ledger", "datasets"},
    "dashboard": {"service"},  # only the HTTP client, checked below
    "datasets": {"query_engine"},  # only the catalog types, checked below
}


def _imports(package: str) -> list[tuple[Path, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found += [(path, node.module)]
    return found


def _violations(package: str, found: list[tuple[Path, str]]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path, name in found
        if name.split(".")[0] in OURS - {package} - ALLOWED[package]
    ]


@pytest.mark.parametrize("package", sorted(OURS))
def test_package_imports_only_allowed_packages(package: str) -> None:
    bad = _violations(package, _imports(package))
    assert not bad, "dependency rule broken:\n" + "\n".join(bad)


def test_datasets_uses_only_catalog_types_of_the_engine() -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path, name in _imports("datasets")
        if name.startswith("query_engine") and name != "query_engine.catalog"
    ]
    assert not bad, "\n".join(bad)


def test_dashboard_talks_to_the_api_only() -> None:
    forbidden = ("duckdb", "query_engine", "budget_ledger", "sqlite3", "datasets")
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path, name in _imports("dashboard")
        if name.split(".")[0] in forbidden or (name.startswith("service") and name != "service.client")
    ]
    assert not bad, "\n".join(bad)


def test_rule_checker_sees_a_violation() -> None:
    """The checker is not vacuous: a planted forbidden import is reported, an allowed one is not."""
    planted = [(ROOT / "query_engine" / "x.py", "budget_ledger.ledger"), (ROOT / "service" / "y.py", "numpy")]
    assert _violations("query_engine", planted) == ["query_engine/x.py imports budget_ledger.ledger"]
    assert _violations("service", [(ROOT / "service" / "y.py", "query_engine.engine")]) == []
