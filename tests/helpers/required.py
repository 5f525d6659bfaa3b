"""The suite's optional system parts: a test that needs a missing one skips, or fails when it is required.

``make test`` sets every switch (``SUNDSTAT_REQUIRE_POSTGRES``, ``_OIDC``, ``_SPARK``, ``_BROWSER``), so a
machine without PostgreSQL, node, Java or chromium fails the suite instead of passing it with skips;
a bare ``pytest`` on a laptop without them skips those tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

SPARK_ENV = "SUNDSTAT_REQUIRE_SPARK"
BROWSER_ENV = "SUNDSTAT_REQUIRE_BROWSER"
CHROMIUM = Path("/usr/bin/chromium")


def missing(message: str, require_env: str) -> NoReturn:
    """Skip the calling test because ``message`` names a missing part; fail if ``require_env`` is set."""
    if os.environ.get(require_env):
        pytest.fail(f"{message} ({require_env} is set, so this is an error, not a skip.)")
    pytest.skip(message)


def require_spark(problem: str | None = None) -> None:
    """pyspark and Java 17+ (Spark local); ``problem`` names another missing Spark part (a cluster)."""
    if problem is not None:
        missing(problem, SPARK_ENV)
    if importlib.util.find_spec("pyspark") is None:
        missing("pyspark is not installed (pip install 'sundstat[spark]')", SPARK_ENV)
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        missing("Java 17+ is needed for Spark and was not found (make system-deps installs it)", SPARK_ENV)


def require_chromium() -> Path:
    """Debian's chromium, which drives the Playwright tests (Playwright cannot download its own here)."""
    if not CHROMIUM.exists():
        missing("Debian chromium is not installed (make system-deps installs it)", BROWSER_ENV)
    if importlib.util.find_spec("playwright") is None:
        missing("playwright is not installed (pip install -e '.[dev]')", BROWSER_ENV)
    return CHROMIUM
