"""Administrator routes: tokens, register caps and ledger verification."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from ..deps import Admin, ServicesDep, SettingsDep
from ..errors import InvalidRequest
from ..public_bodies import register_public, token_public, verify_public
from ..schemas import (
    CapUpdateRequest,
    RegisterCapPublic,
    TokenCreateRequest,
    TokenIssuedPublic,
    TokenPublic,
    VerifyPublic,
)
from .common import ERRORS, issue_token

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["admin"], responses=ERRORS, strict_content_type=False)

TokenId = Annotated[str, Path(min_length=1, max_length=100, description="The token id (tok_...)")]
RegisterName = Annotated[str, Path(min_length=1, max_length=32, description="The register, e.g. lpr")]


@router.get("/admin/tokens", summary="List every token (admin)")
def list_tokens(services: ServicesDep, admin: Admin) -> list[TokenPublic]:
    """Every token's record (never the token), oldest first."""
    return [token_public(t) for t in services.tokens.list()]


@router.post(
    "/admin/tokens", status_code=status.HTTP_201_CREATED, summary="Issue an administrator token (admin)"
)
def create_admin_token(
    body: TokenCreateRequest, services: ServicesDep, settings: SettingsDep, admin: Admin
) -> TokenIssuedPublic:
    """A new administrator token, shown once; analyst tokens are issued per project."""
    if body.role != "admin":
        raise InvalidRequest("Analyst tokens belong to a project: use POST /v1/projects/{id}/tokens.")
    return issue_token(body, None, services, settings, admin)


@router.delete("/admin/tokens/{token_id}", summary="Revoke a token (admin)")
def revoke_token(token_id: TokenId, services: ServicesDep, admin: Admin) -> TokenPublic:
    """Revoke a token; it stops working at once in every worker."""
    record = services.tokens.revoke(token_id)
    services.ledger.append_event(
        "token_revoked", {"project": record.project, "token_id": record.id}, admin.actor
    )
    return token_public(record)


@router.put("/registers/{register}/cap", summary="Set a register's global cap (admin)")
def set_register_cap(
    register: RegisterName, body: CapUpdateRequest, services: ServicesDep, admin: Admin
) -> RegisterCapPublic:
    """A cap on the total privacy loss one register bears across all projects (replaces the default cap
    every register gets at start-up); the reason is recorded in the audit chain."""
    services.desk.check_registers([register])
    if (body.epsilon is None) == (body.rho is None):
        raise InvalidRequest("Give the cap as exactly one of epsilon or rho, with delta.")
    status_ = services.ledger.set_register_cap(
        register, epsilon=body.epsilon, rho=body.rho, delta=body.delta, reason=body.reason, actor=admin.actor
    )
    return register_public(status_)


@router.get("/admin/ledger/verify", summary="Verify the ledger and audit chain (admin)")
def verify_ledger(services: ServicesDep, admin: Admin) -> VerifyPublic:
    """Recompute the audit chain and check every ledger table against it."""
    return verify_public(services.ledger.verify())
