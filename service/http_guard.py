"""The outermost layer of every HTTP exchange: request ids, security headers, the body limit, and the
one answer (and one log line) for any exception that no handler took.

- Every response, the ones written here included (413, 500, 503), carries ``X-Request-ID``,
  ``Cache-Control: no-store``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
  ``X-Frame-Options: DENY`` and a ``Content-Security-Policy`` with ``frame-ancestors 'none'`` (the API's
  allows nothing else; the documentation pages set their own, still framing-proof).
- The body limit counts the bytes as they arrive, so a chunked (streamed) body is refused the moment
  it passes the limit, like one whose ``Content-Length`` says it is too large: the 413 is sent at once
  and the rest of the body never reaches the app (uvicorn discards what still arrives, unbuffered, so
  the client can read the answer; closing at once would reset the connection under its answer).
- An exception that reaches this layer is logged as ONE line (type, method, route, request id; never
  its message, which could quote data) and answered with the error body: ``503 storage_unavailable``
  when the storage failed (``service.storage_errors``), else ``500 internal_error`` naming the
  request id. No traceback per request.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

from .errors import InternalError, PayloadTooLarge, ServiceError, StorageUnavailable, error_body
from .storage_errors import storage_failure, storage_message

__all__ = ["API_CSP", "MAX_BODY_BYTES", "HttpGuard", "error_response", "request_id_of"]

MAX_BODY_BYTES = 1_000_000
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

log = logging.getLogger("sundstat.service")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{8,64}")
_SECURITY_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def error_response(error: ServiceError) -> JSONResponse:
    """The one error body for ``error``, with its headers."""
    return JSONResponse(
        error_body(error.code, error.message, error.status), status_code=error.status, headers=error.headers
    )


def request_id_of(scope: Scope) -> str:
    """The id this layer gave the request (``-`` outside it)."""
    return str((scope.get("state") or {}).get("request_id", "-"))


@dataclass
class _Exchange:
    request_id: str
    received: int = 0
    started: bool = False
    answered: bool = False  # this layer sent the response; whatever the app sends is dropped


class HttpGuard:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"")
        exchange = _Exchange(given.decode() if _REQUEST_ID.fullmatch(given) else secrets.token_hex(8))
        scope.setdefault("state", {})["request_id"] = exchange.request_id

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.started = True
                message["headers"] = _with_security_headers(message.get("headers"), exchange.request_id)
            await send(message)

        async def send_from_app(message: Message) -> None:
            if not exchange.answered:
                await send_secured(message)

        async def answer(response: JSONResponse) -> None:
            exchange.answered = True
            await response(scope, receive, send_secured)

        async def receive_counted() -> Message:
            if exchange.answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                exchange.received += len(message.get("body", b""))
                if exchange.received > self.max_body:
                    await answer(self._too_large())
                    return {"type": "http.disconnect"}
            return message

        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await answer(self._too_large())
            return
        try:
            await self.app(scope, receive_counted, send_from_app)
        except Exception as exc:
            if exchange.answered:
                return  # the app noticed the cut-off body; the 413 is already sent
            response = self._failure(exc, scope, exchange.request_id)
            if not exchange.started:
                await answer(response)

    def _too_large(self) -> JSONResponse:
        return error_response(
            PayloadTooLarge(
                f"The request body is larger than {self.max_body} bytes; send a smaller body (the limit "
                "applies to chunked bodies too)."
            )
        )

    @staticmethod
    def _failure(exc: Exception, scope: Scope, request_id: str) -> JSONResponse:
        route = getattr(scope.get("route"), "path", None) or scope.get("path", "?")
        method = scope.get("method", "?")
        reason = storage_failure(exc)
        if reason is not None:
            log.error(
                "storage unavailable (%s, %s) on %s %s [request %s]",
                type(exc).__name__,
                reason,
                method,
                route,
                request_id,
            )
            return error_response(StorageUnavailable(storage_message(reason)))
        log.error("unexpected %s on %s %s [request %s]", type(exc).__name__, method, route, request_id)
        return error_response(
            InternalError(
                f"An unexpected error occurred; this is a bug in sundstat and has been logged under request id "
                f"{request_id}. Nothing was released."
            )
        )


def _with_security_headers(raw: Any, request_id: str) -> list[tuple[bytes, bytes]]:
    headers = [(bytes(k), bytes(v)) for k, v in (raw or [])]
    present = {k.lower() for k, _ in headers}
    headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
    if b"content-security-policy" not in present:
        headers.append((b"content-security-policy", API_CSP.encode()))
    headers.append((b"x-request-id", request_id.encode()))
    return headers
