"""What the routers share: the documented error responses, and issuing a token asked for by a request."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..auth import Principal
from ..public_bodies import token_issued_public
from ..schemas import ErrorBody, TokenCreateRequest, TokenIssuedPublic
from ..settings import Settings
from ..tokens import issue_audited
from ..worker_services import Services

__all__ = ["ERRORS", "issue_token"]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "The body is not valid JSON; the message names line and column."),
        (401, "No token, or an unknown, expired or revoked token."),
        (403, "The token may not do this (role, permit, or budget exceeded)."),
        (404, "Unknown, or not visible to this token."),
        (409, "Conflict: in progress, already decided, or already exists."),
        (413, "The request body is larger than 1 MB (chunked bodies included)."),
        (415, "The body was sent as another media type than JSON: add Content-Type: application/json."),
        (422, "The request does not validate."),
        (429, "Rate limited; see Retry-After."),
        (500, "A bug in sundstat; the message names the request id."),
        (503, "Busy, execution failed (the spend stays charged), or storage unavailable (disk full)."),
    )
}


def issue_token(
    body: TokenCreateRequest, project: str | None, services: Services, settings: Settings, admin: Principal
) -> TokenIssuedPublic:
    """Issue the token ``body`` asks for (its lifetime, else the settings' default), chained in the audit
    chain by ``admin``; the response is the only time the token is shown."""
    issued = issue_audited(
        services.tokens,
        services.ledger,
        body.role,
        name=body.name,
        project=project,
        ttl=dt.timedelta(days=body.ttl_days or settings.token_ttl_days),
        actor=admin.actor,
    )
    return token_issued_public(issued)
