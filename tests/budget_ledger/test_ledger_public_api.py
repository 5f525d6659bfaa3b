"""budget_ledger's public names (``__all__``) all exist. Its allowed imports are an import contract in
pyproject.toml (``lint-imports``)."""

from __future__ import annotations

import budget_ledger


def test_public_api_is_declared() -> None:
    missing = [name for name in budget_ledger.__all__ if not hasattr(budget_ledger, name)]
    assert missing == []
