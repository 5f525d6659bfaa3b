"""/docs and /redoc render in a real browser (Debian's chromium) under their Content-Security-Policy, from
assets on this host only: no request to another origin gets through."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.helpers.browser import browser_fixture  # noqa: F401
from tests.service.svc_helpers import Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize(
    ("page_path", "ready"),
    [
        pytest.param("/docs", ".swagger-ui .opblock-summary-path", id="swagger_ui"),
        pytest.param("/redoc", "[data-section-id] h2", id="redoc"),
    ],
)
def test_docs_render_from_this_host_only(
    browser: Browser, server: Server, page_path: str, ready: str
) -> None:
    page = browser.new_page()
    loaded_elsewhere: list[str] = []
    page.on(
        "requestfinished",
        lambda request: (
            loaded_elsewhere.append(request.url)
            if not request.url.startswith((server.url, "blob:", "data:"))
            else None
        ),
    )
    try:
        page.goto(server.url + page_path)
        page.wait_for_selector(ready, timeout=60_000)
        assert page.locator(ready).count() > 5  # the routes of the OpenAPI description are listed
        assert "sundstat" in page.title()
    finally:
        page.close()
    assert loaded_elsewhere == []
