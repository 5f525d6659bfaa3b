"""What every router shares: the documented error responses."""

from __future__ import annotations

from typing import Any

from ..schemas import ErrorBody

__all__ = ["ERRORS"]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (401, "No token, or an unknown, expired or revoked token."),
        (403, "The token may not do this (role, permit, or budget exceeded)."),
        (404, "Unknown, or not visible to this token."),
        (409, "Conflict: in progress, already decided, or already exists."),
        (422, "The request does not validate."),
        (429, "Rate limited; see Retry-After."),
        (500, "A bug in sundstat."),
        (503, "Busy, or execution failed (the spend stays charged)."),
    )
}
