"""Institution routes (administrators): register institutions and issue applicant accounts by hand."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, status

from ..deps import Admin, ServicesDep, SettingsDep
from ..identity import Applicant
from ..identity_schemas import (
    ApplicantCreateRequest,
    ApplicantIssuedPublic,
    ApplicantPublic,
    InstitutionCreateRequest,
    InstitutionPublic,
)
from ..settings import Settings
from ..tokens import issue_audited
from ..worker_services import Services
from .common import ERRORS

__all__ = ["issue_applicant_token", "router"]

router = APIRouter(
    prefix="/v1/institutions", tags=["institutions"], responses=ERRORS, strict_content_type=False
)

InstitutionId = Annotated[str, Path(min_length=1, max_length=40, description="The institution id, e.g. ku")]


def issue_applicant_token(
    applicant: Applicant, services: Services, settings: Settings, *, actor: str, ttl_days: int | None = None
) -> ApplicantIssuedPublic:
    """A new applicant token for ``applicant`` (chained in the audit chain), shown this once."""
    issued = issue_audited(
        services.tokens,
        services.ledger,
        "applicant",
        name=f"applicant:{applicant.email}",
        applicant=applicant.id,
        ttl=dt.timedelta(days=ttl_days or settings.applicant_token_ttl_days),
        actor=actor,
    )
    institution = services.identity.institution(applicant.institution)
    return ApplicantIssuedPublic(
        applicant=ApplicantPublic.model_validate(applicant.to_json()),
        institution=InstitutionPublic.model_validate(institution.to_json()),
        token=issued.token,
        token_id=issued.record.id,
        expires_at=issued.record.expires_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, summary="Register an institution (admin)")
def create_institution(
    body: InstitutionCreateRequest, services: ServicesDep, admin: Admin
) -> InstitutionPublic:
    """An institution whose members may apply with automatic approval; members are recognised at sign-in
    by a verified e-mail domain or a value of the organisation claim."""
    institution = services.identity.create_institution(
        body.id,
        body.name,
        oidc_issuer=body.oidc_issuer,
        email_domains=body.email_domains,
        org_values=body.org_values,
        actor=admin.actor,
    )
    services.ledger.append_event(
        "institution_registered", {"institution": institution.id, "name": institution.name}, admin.actor
    )
    return InstitutionPublic.model_validate(institution.to_json())


@router.get("", summary="List institutions (admin)")
def list_institutions(services: ServicesDep, admin: Admin) -> list[InstitutionPublic]:
    """Every registered institution, by id."""
    return [InstitutionPublic.model_validate(i.to_json()) for i in services.identity.institutions()]


@router.post(
    "/{institution_id}/applicants",
    status_code=status.HTTP_201_CREATED,
    summary="Issue an applicant account and token (admin)",
)
def create_applicant(
    institution_id: InstitutionId,
    body: ApplicantCreateRequest,
    services: ServicesDep,
    settings: SettingsDep,
    admin: Admin,
) -> ApplicantIssuedPublic:
    """For installations without an identity provider: an applicant account of the institution and its
    applicant token, shown once."""
    applicant = services.identity.create_applicant(
        institution_id, name=body.name, email=body.email, actor=admin.actor
    )
    return issue_applicant_token(applicant, services, settings, actor=admin.actor, ttl_days=body.ttl_days)


@router.get("/{institution_id}/applicants", summary="List an institution's applicants (admin)")
def list_applicants(
    institution_id: InstitutionId, services: ServicesDep, admin: Admin
) -> list[ApplicantPublic]:
    """The institution's applicant accounts, oldest first."""
    services.identity.institution(institution_id)
    return [ApplicantPublic.model_validate(a.to_json()) for a in services.identity.applicants(institution_id)]
