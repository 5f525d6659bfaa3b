"""Fixtures of the privacy audit: the helpers of the engine and statistical tests, and the database files."""

from __future__ import annotations

import pytest

from tests.privacy_audit.neighbours import World, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The neighbouring DuckDB files (built once per session)."""
    return build_world(tmp_path_factory.mktemp("privacy-audit"))
