"""A missing optional part (PostgreSQL, node, Spark, chromium) skips its tests, or fails them when required."""

from __future__ import annotations

import pytest

from tests.helpers.required import missing


def test_a_missing_part_skips_when_not_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUNDSTAT_REQUIRE_TEST_PART", raising=False)
    with pytest.raises(pytest.skip.Exception, match="the part is gone"):
        missing("the part is gone", "SUNDSTAT_REQUIRE_TEST_PART")


def test_a_missing_part_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNDSTAT_REQUIRE_TEST_PART", "1")
    with pytest.raises(pytest.fail.Exception, match="SUNDSTAT_REQUIRE_TEST_PART is set"):
        missing("the part is gone", "SUNDSTAT_REQUIRE_TEST_PART")
