"""The FastAPI application: ``create_app(settings)`` and the uvicorn factory ``app_from_env``.

One exception layer maps every error (the service's, the engine's, the ledger's, FastAPI's own
validation errors, unknown routes and methods, and unexpected exceptions) onto the one error body
``{"ok": false, "code", "error", "status"}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from budget_ledger import LedgerError
from query_engine.errors import EngineError

from . import API_VERSION
from .deps import note_denied
from .errors import ServiceError, error_body
from .routes import admin, applications, projects, public, queries
from .runtime import Services, open_services
from .settings import Settings

__all__ = ["MAX_BODY_BYTES", "app_from_env", "create_app"]

MAX_BODY_BYTES = 1_000_000

log = logging.getLogger("sundstat.service")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_HTTP_CODES = {
    400: ("bad_request", "The request could not be read."),
    404: ("not_found", "There is no route {method} {path}. The routes are listed at /docs."),
    405: ("method_not_allowed", "The route {path} does not accept {method}. The routes are listed at /docs."),
    413: ("payload_too_large", "The request body is larger than the service accepts."),
    415: ("unsupported_media_type", "Send the body as application/json."),
}


def _json_error(
    code: str,
    message: str,
    status: int,
    headers: dict[str, str] | None = None,
    *,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {**error_body(code, message, status), **(extra or {})}, status_code=status, headers=headers
    )


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "The request is not valid."
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    where = ".".join(loc) or "body"
    message = str(first.get("msg", "is not valid")).removeprefix("Value error, ")
    more = f" ({len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"Invalid field '{where}': {message}.{more}"


def _install_error_handlers(app: FastAPI) -> None:
    async def coded(request: Request, exc: Exception) -> JSONResponse:
        code = str(getattr(exc, "code", "internal_error"))
        status = int(getattr(exc, "status", 500))
        message = str(getattr(exc, "message", None) or exc)
        headers = getattr(exc, "headers", None) if isinstance(exc, ServiceError) else None
        note_denied(request, exc)
        if status >= 500:
            log.warning("%s %s -> %s %s", request.method, request.url.path, status, code)
        position = getattr(exc, "position", None)
        # SQL errors say where in the text: the one extra field an error body may have.
        extra = (
            {"position": position} if isinstance(exc, EngineError) and isinstance(position, dict) else None
        )
        return _json_error(code, message, status, headers or None, extra=extra)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        query_route = request.url.path.startswith(("/v1/queries", "/v1/sql"))
        code = "invalid_query" if query_route else "invalid_request"
        return _json_error(code, _validation_message(exc), 422)

    async def http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code, template = _HTTP_CODES.get(exc.status_code, ("http_error", "The request failed."))
        message = template.format(method=request.method, path=request.url.path)
        headers = dict(exc.headers) if exc.headers else None
        return _json_error(code, message, exc.status_code, headers)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _json_error(
            "internal_error",
            "An unexpected error occurred; this is a bug in sundstat and has been logged. Nothing was "
            "released.",
            500,
        )

    app.add_exception_handler(ServiceError, coded)
    app.add_exception_handler(EngineError, coded)
    app.add_exception_handler(LedgerError, coded)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(Exception, unexpected)


class _Hardening:
    """ASGI middleware: refuse oversized bodies (413) and mark responses as not cacheable."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            response = _json_error(
                "payload_too_large", f"The request body is larger than {self.max_body} bytes.", 413
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers") or [])
                raw.append((b"cache-control", b"no-store"))
                raw.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """The API for ``settings``; each worker opens its own services at startup (or uses ``services``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = services is None
        app.state.services = services if services is not None else open_services(settings)
        try:
            yield
        finally:
            if opened:
                app.state.services.close()

    app = FastAPI(
        title="sundstat",
        version=API_VERSION,
        summary="Differentially private statistics over linked Danish health registers.",
        description=(
            "Every answer is protected by differential privacy; each project has a privacy budget that "
            "the ledger enforces. Errors always have the body "
            '`{"ok": false, "code": "...", "error": "...", "status": 400}`.'
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    _install_error_handlers(app)
    for router in (public.router, queries.router, projects.router, applications.router, admin.router):
        app.include_router(router)
    app.add_middleware(_Hardening)
    return app


def app_from_env() -> FastAPI:
    """Uvicorn factory: settings from ``SUNDSTAT_*`` environment variables, so every worker is identical."""
    return create_app(Settings())
