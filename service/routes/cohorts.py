"""Named cohorts of a project: ``GET /v1/projects/{id}/cohorts`` (members of the project only).

Cohorts are named and stored by the queries that define them (``service.named_cohorts``); this route
lists them with their definitions, so an analyst can reuse one by name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ..deps import ServicesDep, TokenHolder
from ..named_cohorts import CohortRegistry
from ..schemas import CohortListPublic, CohortPublic
from .common import ERRORS

__all__ = ["router"]

router = APIRouter(prefix="/v1/projects", tags=["projects"], responses=ERRORS, strict_content_type=False)

ProjectId = Annotated[str, Path(min_length=1, max_length=64, description="The project id")]


@router.get("/{project_id}/cohorts", summary="A project's named cohorts")
def list_cohorts(project_id: ProjectId, services: ServicesDep, caller: TokenHolder) -> CohortListPublic:
    """Every cohort stored under a name in the project, oldest first, with its definition."""
    caller.require_project(project_id)
    services.ledger.get_project(project_id)
    cohorts = CohortRegistry(services.store).list(project_id)
    services.audit("project_read", project_id, caller, what="cohorts")
    return CohortListPublic(
        project=project_id,
        count=len(cohorts),
        cohorts=[CohortPublic.model_validate(cohort.to_public()) for cohort in cohorts],
    )
