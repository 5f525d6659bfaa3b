"""The API documentation pages (/docs: Swagger UI, /redoc: ReDoc), served from this host only.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google), which would
let a third party run script on a page that holds an administrator's token. Here the assets come from
the ``fastapi-offline`` package, mounted under ``/docs/assets``, and the pages carry no inline script,
so their Content-Security-Policy allows scripts from this origin only. ``/openapi.json`` is FastAPI's.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_CSP", "install_docs"]

ASSETS = "/docs/assets"
# Swagger UI and ReDoc style their elements inline and ReDoc searches in a blob: worker.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline").joinpath("static")))


def _page(title: str, head: str, body: str) -> HTMLResponse:
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        f'<link rel="icon" href="{ASSETS}/favicon.png">{head}</head><body>{body}</body></html>'
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CSP})


def install_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to ``app`` (created with ``docs_url=None, redoc_url=None``)."""
    openapi_url = app.openapi_url or "/openapi.json"
    init = (
        "window.onload = function () {\n"
        f"  window.ui = SwaggerUIBundle({{url: {json.dumps(openapi_url)}, dom_id: '#swagger-ui',\n"
        "    layout: 'BaseLayout', deepLinking: true, showExtensions: true, showCommonExtensions: true,\n"
        "    validatorUrl: null,\n"
        "    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]});\n"
        "};\n"
    )
    app.mount(ASSETS, StaticFiles(directory=_assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _page(
            f"{app.title} - Swagger UI",
            f'<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">',
            f'<div id="swagger-ui"></div><script src="{ASSETS}/swagger-ui-bundle.js"></script>'
            '<script src="/docs/swagger-init.js"></script>',
        )

    @app.get("/docs/swagger-init.js", include_in_schema=False)
    def swagger_init() -> Response:
        return Response(init, media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _page(
            f"{app.title} - ReDoc",
            "",
            f'<redoc spec-url="{html.escape(openapi_url)}"></redoc>'
            f'<script src="{ASSETS}/redoc.standalone.js"></script>',
        )
