"""The examples in docstrings run and give what they show.

Every module of the five packages whose source holds ``>>>`` is run through ``doctest``; a module that
has examples but runs none (an example doctest cannot find) fails as well as a wrong result.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("query_engine", "budget_ledger", "service", "dashboard", "datasets")


def _modules_with_examples() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>> " in path.read_text(encoding="utf-8"):
                found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


MODULES = _modules_with_examples()


def test_the_examples_are_found() -> None:
    """The scan is not vacuous: the modules known to carry examples are among those found."""
    assert {"query_engine.suggest", "query_engine.sql.statement", "service.client"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module} has '>>> ' in its source but doctest ran no example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (output above)"
