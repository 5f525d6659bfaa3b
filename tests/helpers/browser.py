"""The ``browser`` fixture of the Playwright tests: Debian's chromium, one per test module.

A module imports ``browser_fixture`` to register it (Playwright cannot download its own browser here).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.helpers.required import require_chromium


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    """Debian's chromium under Playwright; skipped (or failed when required) if either is missing."""
    chromium = require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()
