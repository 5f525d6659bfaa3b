"""Who is calling: principals, bearer tokens, authentication (rate limits and query slots are in
:mod:`service.admission`).

Roles: ``admin`` (every route), ``analyst`` (one project; other projects look exactly like unknown
ones), ``applicant`` (submits applications and reads its own; no project) and ``anonymous`` (public
routes only). The service's rate limits are token buckets in the state store
(:mod:`service.state.rate_limits`), one per token, per client address without a token, per address for
failed authentications, and per address for applications (loopback included, with or without a token),
so each holds across workers and hosts; :class:`service.admission.RateLimiter` is the in-memory form
of the same bucket. Requests without a token from a loopback address may be exempted (``trust_loopback_anonymous``,
off by default).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import Literal

from .denied_access import ProjectNotVisible
from .errors import Forbidden, Unauthorized
from .tokens import TokenRecord, TokenStore

__all__ = [
    "Principal",
    "authenticate",
    "bearer_token",
    "is_loopback_client",
]

PrincipalRole = Literal["admin", "analyst", "applicant", "anonymous"]


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    role: PrincipalRole
    token_id: str | None = None
    project: str | None = None
    name: str = "anonymous"
    client: str = "unknown"
    applicant: str | None = None

    @classmethod
    def from_token(cls, record: TokenRecord, client: str) -> Principal:
        """The principal holding ``record``'s token."""
        return cls(record.role, record.id, record.project, record.name, client, record.applicant)

    @property
    def actor(self) -> str:
        """How the caller is named in the audit chain (never the token itself)."""
        if self.token_id is None:
            return "anonymous"
        return f"{self.role}:{self.token_id}"

    @property
    def rate_key(self) -> str:
        """The bucket this caller's requests are counted in."""
        return f"token:{self.token_id}" if self.token_id else f"addr:{self.client}"

    @property
    def is_admin(self) -> bool:
        """True for administrators."""
        return self.role == "admin"

    def can_see(self, project_id: str) -> bool:
        """Administrators see every project; an analyst only their own."""
        return self.is_admin or (self.role == "analyst" and self.project == project_id)

    def require_project(self, project_id: str) -> None:
        """Raise ``ProjectNotFound`` (never 403) for a project this caller may not see."""
        if not self.can_see(project_id):
            raise ProjectNotVisible(_project_not_found(project_id), project_id)

    def require_admin(self) -> None:
        """Raise ``Unauthorized`` without a token and ``Forbidden`` for non-administrators."""
        if self.role == "anonymous":
            raise Unauthorized(
                "This route needs an administrator token: send 'Authorization: Bearer <token>'."
            )
        if not self.is_admin:
            raise Forbidden(f"This route is for administrators; your token is an {self.role} token.")

    def require_token(self) -> None:
        """Raise ``Unauthorized`` for anonymous callers."""
        if self.role == "anonymous":
            raise Unauthorized("This route needs a token: send 'Authorization: Bearer <token>'.")


def _project_not_found(project_id: str) -> str:
    return (
        f"No project '{project_id}' is visible to this token. Check the project id; an analyst token "
        "sees only its own project."
    )


def is_loopback_client(address: str) -> bool:
    """True when a client address is on this host (127.0.0.0/8, ::1, or IPv4-mapped 127.x)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # not an address: a Unix socket, a test client, "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None if absent."""
    if authorization is None or not authorization.strip():
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def authenticate(
    authorization: str | None, tokens: TokenStore, *, client: str, now: dt.datetime | None = None
) -> Principal:
    """Resolve the Authorization header to a principal; a bad token is 401, never anonymous."""
    token = bearer_token(authorization)
    if token is None:
        return Principal("anonymous", client=client)
    if len(token) > 200:
        raise Unauthorized("The token is not valid. Ask an administrator for a new one.")
    record = tokens.authenticate(token, now=now)
    if record is None:
        raise Unauthorized(
            "The token is unknown, expired or revoked. Ask an administrator for a new one "
            "(sundstat admin create-token)."
        )
    return Principal.from_token(record, client)
