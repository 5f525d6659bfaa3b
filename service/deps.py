"""FastAPI dependencies: the worker's services, its settings, and the authenticated caller.

Routes declare what they need with these ``Annotated`` aliases and read like typed functions.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Header, Request

from .auth import Principal, authenticate
from .denied_access import ProjectNotVisible
from .errors import Unauthorized
from .settings import Settings
from .storage_errors import storage_failure
from .worker_services import Services

log = logging.getLogger("sundstat.service")

__all__ = [
    "Admin",
    "Caller",
    "HealthCaller",
    "ServicesDep",
    "SettingsDep",
    "TokenHolder",
    "get_principal",
    "get_services",
    "get_settings",
    "note_denied",
]


def get_services(request: Request) -> Services:
    """The worker's services, opened at startup."""
    services: Services = request.app.state.services
    return services


def get_settings(request: Request) -> Settings:
    """The validated settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_principal(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
) -> Principal:
    """Authenticate the bearer token (none: anonymous) and count the request against its rate limit.

    An address that used up its failed authentications gets 429 for every token, good or bad, until
    its bucket refills: a guesser learns nothing from the answers.
    """
    client = request.client.host if request.client else "unknown"
    if authorization is not None:
        services.auth_failures.ensure_open(client)
    try:
        principal = authenticate(authorization, services.tokens, client=client)
    except Unauthorized:
        services.auth_failures.check(client)
        raise
    request.state.principal = principal
    services.rate_check(principal)
    return principal


def get_health_caller(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
) -> Principal | None:
    """Like :data:`Caller`, except that a rate counter the storage cannot take (a full disk) does not
    stop ``/v1/health`` from answering: reporting that trouble is its job. Limits still apply."""
    try:
        return get_principal(request, services, authorization)
    except Exception as exc:
        reason = storage_failure(exc)
        if reason is None:
            raise
        log.warning("health answered without counting its rate limit: %s", reason)
        return None


def note_denied(request: Request, exc: Exception) -> None:
    """Count a denied request (401, 403, or a project the caller may not see) for the audit chain."""
    status = int(getattr(exc, "status", 0))
    if status not in (401, 403) and not isinstance(exc, ProjectNotVisible):
        return
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        return
    principal: Principal | None = getattr(request.state, "principal", None)
    client = request.client.host if request.client else "unknown"
    route = getattr(request.scope.get("route"), "path", None) or "(unknown route)"
    project = getattr(exc, "project", None) or request.path_params.get("project_id")
    actor = principal.actor if principal is not None else "anonymous"
    services.denied.record(actor, client, route, project, status, str(getattr(exc, "code", "")))


Caller = Annotated[Principal, Depends(get_principal)]
HealthCaller = Annotated[Principal | None, Depends(get_health_caller)]


def require_admin(principal: Caller) -> Principal:
    """The caller, who must be an administrator (401 without a token, 403 for analysts)."""
    principal.require_admin()
    return principal


def require_token(principal: Caller) -> Principal:
    """The caller, who must present a valid token."""
    principal.require_token()
    return principal


Admin = Annotated[Principal, Depends(require_admin)]
TokenHolder = Annotated[Principal, Depends(require_token)]
