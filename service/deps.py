"""FastAPI dependencies: the worker's services, its settings, and the authenticated caller.

Routes declare what they need with these ``Annotated`` aliases and read like typed functions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from .auth import Principal, authenticate
from .runtime import Services
from .settings import Settings

__all__ = [
    "Admin",
    "Caller",
    "ServicesDep",
    "SettingsDep",
    "TokenHolder",
    "get_principal",
    "get_services",
    "get_settings",
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
    """Authenticate the bearer token (none: anonymous) and count the request against its rate limit."""
    client = request.client.host if request.client else "unknown"
    principal = authenticate(authorization, services.tokens, client=client)
    services.rate_check(principal)
    return principal


Caller = Annotated[Principal, Depends(get_principal)]


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
