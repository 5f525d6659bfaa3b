"""Project routes: create (admin), read, budget, releases and tokens.

An analyst token sees only its own project; any other project id answers 404 exactly like an unknown
one. Administrator-only routes answer 403 to analysts whatever the project.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from budget_ledger import ProjectSpec

from ..deps import Admin, ServicesDep, SettingsDep, TokenHolder
from ..errors import InvalidRequest
from ..permits import PERMIT_RECORDED, new_permit_id
from ..public_bodies import budget_public, project_public, token_public
from ..schemas import (
    BudgetPublic,
    BudgetUpdateRequest,
    ProjectCreateRequest,
    ProjectPublic,
    ReleaseListPublic,
    TokenCreateRequest,
    TokenIssuedPublic,
    TokenPublic,
)
from ..tokens import utcnow
from .common import ERRORS, issue_token

__all__ = ["router"]

router = APIRouter(prefix="/v1/projects", tags=["projects"], responses=ERRORS, strict_content_type=False)

ProjectId = Annotated[str, Path(min_length=1, max_length=64, description="The project id")]
ReleaseId = Annotated[str, Path(min_length=1, max_length=200, description="The release id")]


@router.get("", summary="List projects")
def list_projects(services: ServicesDep, caller: TokenHolder) -> list[ProjectPublic]:
    """Every project for administrators; an analyst's own project for analysts."""
    visible = [p for p in services.ledger.list_projects() if caller.can_see(p.id)]
    for project in visible:
        services.audit("project_read", project.id, caller, what="listing")
    return [project_public(p, p.status()) for p in visible]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a project (admin)")
def create_project(
    body: ProjectCreateRequest, services: ServicesDep, settings: SettingsDep, admin: Admin
) -> ProjectPublic:
    """Create a project with its permit (id, purpose, registers, expiry) and budget; the mode is fixed."""
    services.desk.check_registers(body.registers)
    expires = body.expires or (utcnow() + dt.timedelta(days=settings.permit_default_days)).date()
    spec = ProjectSpec(
        **body.model_dump(exclude={"registers", "permit_id", "expires"}),
        registers=tuple(body.registers),
        expires=expires,
    )
    permit_id = body.permit_id or new_permit_id()
    claimed = services.permits.claim(spec.id, permit_id, admin.actor)
    try:
        project = services.ledger.create_project(spec, actor=admin.actor)
    except Exception:
        if claimed:
            services.permits.release(spec.id, permit_id)
        raise
    services.ledger.append_event(
        PERMIT_RECORDED, {"project": project.id, "permit_id": permit_id}, admin.actor
    )
    return project_public(project, services.ledger.budget(project.id)).model_copy(
        update={"permit_id": permit_id}
    )


@router.get("/{project_id}", summary="A project")
def get_project(project_id: ProjectId, services: ServicesDep, caller: TokenHolder) -> ProjectPublic:
    """The project's permit and budget."""
    caller.require_project(project_id)
    project = services.ledger.get_project(project_id)
    services.audit("project_read", project_id, caller, what="project")
    return project_public(project, services.ledger.budget(project_id))


@router.get("/{project_id}/budget", summary="A project's privacy budget")
def get_budget(project_id: ProjectId, services: ServicesDep, caller: TokenHolder) -> BudgetPublic:
    """Mode, totals, spent and remaining epsilon/delta (and rho for zcdp projects)."""
    caller.require_project(project_id)
    status_ = services.ledger.budget(project_id)
    services.audit("project_read", project_id, caller, what="budget")
    return budget_public(status_)


@router.put("/{project_id}/budget", summary="Set a project's budget (admin)")
def set_budget(
    project_id: ProjectId, body: BudgetUpdateRequest, services: ServicesDep, admin: Admin
) -> BudgetPublic:
    """Replace the budget (never below what is spent); the reason goes into the audit chain."""
    status_ = services.ledger.set_budget(
        project_id, body.epsilon, body.delta, reason=body.reason, actor=admin.actor
    )
    return budget_public(status_)


def _release_body(release_json: str, created_at: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(release_json)
    body.setdefault("created_at", created_at)
    return body


@router.get("/{project_id}/releases", summary="A project's past releases")
def list_releases(project_id: ProjectId, services: ServicesDep, caller: TokenHolder) -> ReleaseListPublic:
    """Every stored release of the project, oldest first, exactly as first returned."""
    caller.require_project(project_id)
    stored = services.ledger.list_releases(project_id)
    services.audit("project_read", project_id, caller, what="releases")
    releases = [_release_body(r.release_json, r.created_at) for r in stored]
    return ReleaseListPublic(project=project_id, count=len(releases), releases=releases)


@router.get("/{project_id}/releases/{release_id}", summary="One stored release")
def get_release(
    project_id: ProjectId, release_id: ReleaseId, services: ServicesDep, caller: TokenHolder
) -> dict[str, Any]:
    """One release of the project, exactly as first returned."""
    caller.require_project(project_id)
    stored = services.ledger.get_release(project_id, release_id)
    services.audit("project_read", project_id, caller, what="release", release_id=release_id)
    return _release_body(stored.release_json, stored.created_at)


@router.post(
    "/{project_id}/tokens", status_code=status.HTTP_201_CREATED, summary="Issue an analyst token (admin)"
)
def create_token(
    project_id: ProjectId,
    body: TokenCreateRequest,
    services: ServicesDep,
    settings: SettingsDep,
    admin: Admin,
) -> TokenIssuedPublic:
    """A new analyst token for the project; the token is shown once and stored only as a hash."""
    if body.role != "analyst":
        raise InvalidRequest(
            "Project tokens are analyst tokens; issue administrator tokens at /v1/admin/tokens."
        )
    services.ledger.get_project(project_id)
    return issue_token(body, project_id, services, settings, admin)


@router.get("/{project_id}/tokens", summary="A project's tokens (admin)")
def list_project_tokens(project_id: ProjectId, services: ServicesDep, admin: Admin) -> list[TokenPublic]:
    """The project's tokens (records only, never the tokens)."""
    services.ledger.get_project(project_id)
    services.audit("project_read", project_id, admin, what="tokens")
    return [token_public(t) for t in services.tokens.list(project=project_id)]
