"""Errors raised by the service layer, each with a stable ``code`` and an HTTP ``status``.

The mapping from errors to HTTP is one table, kept on the classes: every error class declares its
``(status, code)`` once, here and in the engine's (``query_engine.errors``) and the ledger's
(``budget_ledger.errors``) trees; one handler in ``service.app`` turns any of them into the single
error body ``{"ok": false, "code", "error", "status"}``. Starlette's own HTTP errors (no route, wrong
method, unreadable body) are mapped onto the classes below too, so no code is spelled twice.

::

    ServiceError
    ├── Unauthorized             401  unauthorized            no, unknown, expired or revoked token
    ├── SignInFailed             401  sign_in_failed          the OpenID Connect sign-in did not verify
    ├── SignInRefused            403  sign_in_refused         signed in, but no registered institution
    ├── Forbidden                403  forbidden               the token's role may not use this route
    ├── ProjectNotFound          404  project_not_found       unknown project, or not the token's project
    ├── ApplicationNotFound      404  application_not_found   unknown id or wrong status key
    ├── TokenNotFound            404  token_not_found
    ├── InstitutionNotFound      404  institution_not_found
    ├── SignInNotConfigured      404  sign_in_not_configured  no identity provider on this installation
    ├── RouteNotFound            404  not_found               no such route (Starlette's 404)
    ├── MethodNotAllowed         405  method_not_allowed      (Starlette's 405)
    ├── BadRequest               400  bad_request             the request could not be read
    ├── UnsupportedMediaType     415  unsupported_media_type  the body is not JSON
    ├── InProgress               409  in_progress             the same query is still running
    ├── CohortConflict           409  cohort_conflict         a cohort name already stands for another cohort
    ├── Conflict                 409  conflict                e.g. an application already decided
    ├── PayloadTooLarge          413  payload_too_large
    ├── InvalidRequest           422  invalid_request         the body or parameters do not validate
    ├── UnknownCohort            422  unknown_cohort          no cohort of that name in the project
    ├── RateLimited              429  rate_limited            slow down; see Retry-After
    ├── DailyReleaseLimit        429  daily_release_limit     the project's fresh releases today are used up
    ├── QueryFailed              503  execution_failed        data-free; the spend stays charged
    ├── Busy                     503  busy                    no free query slot; retry later
    ├── SignInUnavailable        503  sign_in_unavailable     the identity provider cannot be reached
    ├── InternalError            500  internal_error          a bug in sundstat
    └── StorageUnavailable       503  storage_unavailable     the ledger or service store cannot be written
"""

from __future__ import annotations

import math

__all__ = [
    "ApplicationNotFound",
    "BadRequest",
    "Busy",
    "CohortConflict",
    "Conflict",
    "DailyReleaseLimit",
    "Forbidden",
    "InstitutionNotFound",
    "InProgress",
    "InternalError",
    "InvalidRequest",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "ProjectNotFound",
    "QueryFailed",
    "RateLimited",
    "RouteNotFound",
    "ServiceError",
    "SignInFailed",
    "SignInNotConfigured",
    "SignInRefused",
    "SignInUnavailable",
    "StorageUnavailable",
    "TokenNotFound",
    "UnknownCohort",
    "UnsupportedMediaType",
    "Unauthorized",
    "error_body",
]


def error_body(code: str, message: str, status: int) -> dict[str, object]:
    """The contract's one error body."""
    return {"ok": False, "code": code, "error": message, "status": status}


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""

    code = "service_error"
    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class Unauthorized(ServiceError):
    """No token, or a token that is unknown, expired or revoked."""

    code = "unauthorized"
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class SignInFailed(ServiceError):
    """The OpenID Connect sign-in could not be verified (state, code or ID token)."""

    code = "sign_in_failed"
    status = 401


class SignInRefused(ServiceError):
    """The sign-in verified, but the account belongs to no registered institution."""

    code = "sign_in_refused"
    status = 403


class Forbidden(ServiceError):
    """The token is valid but its role may not use this route."""

    code = "forbidden"
    status = 403


class ProjectNotFound(ServiceError):
    """Unknown project, or one the token may not see (the two are indistinguishable on purpose)."""

    code = "project_not_found"
    status = 404


class ApplicationNotFound(ServiceError):
    """Unknown application id, or a status key that does not match."""

    code = "application_not_found"
    status = 404


class TokenNotFound(ServiceError):
    """No token with that id."""

    code = "token_not_found"
    status = 404


class InstitutionNotFound(ServiceError):
    """No institution with that id."""

    code = "institution_not_found"
    status = 404


class SignInNotConfigured(ServiceError):
    """This installation has no identity provider: applicant tokens are issued by administrators."""

    code = "sign_in_not_configured"
    status = 404


class RouteNotFound(ServiceError):
    """No route at this path."""

    code = "not_found"
    status = 404


class MethodNotAllowed(ServiceError):
    """The route exists but not with this HTTP method."""

    code = "method_not_allowed"
    status = 405


class BadRequest(ServiceError):
    """The request could not be read (e.g. a malformed body)."""

    code = "bad_request"
    status = 400


class UnsupportedMediaType(ServiceError):
    """The body is not sent as JSON."""

    code = "unsupported_media_type"
    status = 415


class InProgress(ServiceError):
    """The same query (or idempotency key) is still being executed; retry shortly."""

    code = "in_progress"
    status = 409


class Conflict(ServiceError):
    """The request conflicts with the current state (e.g. an application was already decided)."""

    code = "conflict"
    status = 409


class CohortConflict(Conflict):
    """A query names a cohort with a definition other than the one stored under that name."""

    code = "cohort_conflict"


class PayloadTooLarge(ServiceError):
    """The request body is larger than the service accepts."""

    code = "payload_too_large"
    status = 413


class InvalidRequest(ServiceError):
    """The request body or parameters do not validate."""

    code = "invalid_request"
    status = 422


class UnknownCohort(InvalidRequest):
    """A query refers to a cohort name the project has not stored."""

    code = "unknown_cohort"


class RateLimited(ServiceError):
    """Too many requests for this token (or address); the Retry-After header says when to retry."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, round(retry_after + 0.5)))})
        self.retry_after = retry_after


class DailyReleaseLimit(ServiceError):
    """The project made its limit of fresh releases this UTC day; nothing was spent."""

    code = "daily_release_limit"
    status = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


class QueryFailed(ServiceError):
    """Execution failed after the spend was committed; the body is the same whatever the cause."""

    code = "execution_failed"
    status = 503


class Busy(ServiceError):
    """Every query slot stayed taken for the queue timeout; nothing was spent."""

    code = "busy"
    status = 503

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, round(retry_after)))})


class SignInUnavailable(ServiceError):
    """The identity provider does not answer, or answers with something unusable."""

    code = "sign_in_unavailable"
    status = 503


class InternalError(ServiceError):
    """An unexpected failure: this is a bug in sundstat."""

    code = "internal_error"
    status = 500


class StorageUnavailable(ServiceError):
    """The ledger or the service store cannot be written (disk full, I/O error): an operator's problem."""

    code = "storage_unavailable"
    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "30"})
