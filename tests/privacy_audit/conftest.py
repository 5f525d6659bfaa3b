"""Fixtures of the privacy audit: the helpers of the engine and statistical tests, and the database files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent.parent
for _helpers in (_TESTS / "query_engine", _TESTS / "statistical"):
    if str(_helpers) not in sys.path:
        sys.path.append(str(_helpers))

from neighbours import World, build_world  # noqa: E402


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The neighbouring DuckDB files (built once per session)."""
    return build_world(tmp_path_factory.mktemp("privacy-audit"))
