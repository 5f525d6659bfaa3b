"""The FastAPI application: ``create_app(settings)`` and the uvicorn factory ``app_from_env``.

One exception layer maps every error (the service's, the engine's, the ledger's, FastAPI's own
validation errors, unknown routes and methods) onto the one error body
``{"ok": false, "code", "error", "status"}``; unexpected exceptions and storage failures reach
``service.http_guard``, the outermost layer, which answers them (500 or 503) and logs one line each.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from budget_ledger import LedgerError
from query_engine.errors import EngineError, QueryError

from . import API_VERSION
from .deps import note_denied
from .docs_pages import install_docs
from .errors import (
    BadRequest,
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    RouteNotFound,
    ServiceError,
    StorageUnavailable,
    UnsupportedMediaType,
    error_body,
)
from .http_guard import MAX_BODY_BYTES, HttpGuard, request_id_of
from .routes import admin, applications, cohorts, institutions, projects, public, queries, sign_in
from .settings import Settings
from .storage_errors import storage_failure, storage_message
from .worker_services import Services, open_services

__all__ = ["MAX_BODY_BYTES", "app_from_env", "create_app"]

log = logging.getLogger("sundstat.service")

# Starlette's own HTTP errors, by status, as the service's error classes (which own the codes).
_HTTP_ERRORS: dict[int, tuple[type[ServiceError], str]] = {
    kind.status: (kind, template)
    for kind, template in (
        (BadRequest, "The request could not be read."),
        (RouteNotFound, "There is no route {method} {path}. The routes are listed at /docs."),
        (MethodNotAllowed, "The route {path} does not accept {method}. The routes are listed at /docs."),
        (PayloadTooLarge, "The request body is larger than the service accepts."),
        (UnsupportedMediaType, "Send the body as application/json."),
    )
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


_ADD_JSON_HEADER = "add the header -H 'Content-Type: application/json' (curl -d alone sends a form)"


def _unreadable_body(content_type: str | None, exc: RequestValidationError) -> tuple[str, str, int] | None:
    """A body that is not JSON: 415 when it was sent as another media type, 400 naming line and column
    when it is malformed JSON; None for a JSON body whose fields are invalid (a 422).

    A body without a Content-Type is read as JSON (FastAPI does), so ``curl`` without ``-H`` works
    when the body is JSON; ``curl -d`` sends ``application/x-www-form-urlencoded``, which is refused.
    """
    errors = exc.errors()
    media = (content_type or "").split(";")[0].strip().lower()
    is_json = not media or media == "application/json" or media.endswith("+json")
    if not is_json and any(tuple(error.get("loc", ()))[:1] == ("body",) for error in errors):
        return (
            "unsupported_media_type",
            f"The body was sent as '{media}'; send it as JSON: {_ADD_JSON_HEADER}.",
            415,
        )
    for error in errors:
        if error.get("type") != "json_invalid":
            continue
        text = exc.body if isinstance(exc.body, str) else ""
        loc = tuple(error.get("loc", ()))
        position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        reason = str((error.get("ctx") or {}).get("error", "not valid JSON"))
        return (
            "bad_request",
            f"The body is not valid JSON: {reason} at line {line}, column {column}. Send one JSON object, "
            'e.g. {"project": "demo", "measure": "count_persons", "epsilon": 0.5}.',
            400,
        )
    return None


def _install_error_handlers(app: FastAPI) -> None:
    async def coded(request: Request, exc: Exception) -> JSONResponse:
        reason = storage_failure(exc) if isinstance(exc, LedgerError) else None
        if reason is not None:  # e.g. PostgreSQL's disk_full, wrapped by the ledger as unavailable
            exc = StorageUnavailable(storage_message(reason))
        code = str(getattr(exc, "code", "internal_error"))
        status = int(getattr(exc, "status", 500))
        message = str(getattr(exc, "message", None) or exc)
        headers = getattr(exc, "headers", None) if isinstance(exc, ServiceError) else None
        note_denied(request, exc)
        if status >= 500:
            log.warning(
                "%s %s -> %s %s [request %s]",
                request.method,
                request.url.path,
                status,
                code,
                request_id_of(request.scope),
            )
        position = getattr(exc, "position", None)
        # SQL errors say where in the text: the one extra field an error body may have.
        extra = (
            {"position": position} if isinstance(exc, EngineError) and isinstance(position, dict) else None
        )
        return _json_error(code, message, status, headers or None, extra=extra)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        unreadable = _unreadable_body(request.headers.get("content-type"), exc)
        if unreadable is not None:
            code, message, status = unreadable
            return _json_error(code, message, status)
        query_route = request.url.path.startswith(("/v1/queries", "/v1/sql"))
        code = QueryError.code if query_route else InvalidRequest.code
        return _json_error(code, _validation_message(exc), 422)

    async def http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind, template = _HTTP_ERRORS.get(exc.status_code, (None, "The request failed."))
        code = kind.code if kind is not None else "http_error"
        message = template.format(method=request.method, path=request.url.path)
        headers = dict(exc.headers) if exc.headers else None
        return _json_error(code, message, exc.status_code, headers)

    app.add_exception_handler(ServiceError, coded)
    app.add_exception_handler(EngineError, coded)
    app.add_exception_handler(LedgerError, coded)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http)
    # No handler for Exception: Starlette would answer it and then re-raise it, and uvicorn would log a
    # traceback per request. HttpGuard answers it instead (one log line).


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
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    _install_error_handlers(app)
    for router in (
        public.router,
        queries.router,
        projects.router,
        cohorts.router,
        applications.router,
        institutions.router,
        sign_in.router,
        admin.router,
    ):
        app.include_router(router)
    install_docs(app)
    app.add_middleware(HttpGuard)
    return app


def app_from_env() -> FastAPI:
    """Uvicorn factory: settings from ``SUNDSTAT_*`` environment variables, so every worker is identical."""
    return create_app(Settings())
