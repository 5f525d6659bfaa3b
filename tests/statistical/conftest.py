"""Fixtures of the statistical tests: the 1,000,000-person database of the analysis accuracy tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.statistical.national_db import national_db


@pytest.fixture(scope="session")
def analyses_db(request: pytest.FixtureRequest) -> Path:
    """1,000,000 synthetic persons, generated and built once and kept in pytest's cache (national_db)."""
    return national_db(request.config)
