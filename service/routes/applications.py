"""Application routes: the published policy, submission, status (by status key or applicant token) and
decisions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, status

from ..applications import Decision, Submission
from ..deps import Admin, Caller, ServicesDep, TokenHolder
from ..public_bodies import application_public
from ..schemas import (
    ApplicationPublic,
    ApplicationRequest,
    ApplicationSubmitted,
    DecisionRequest,
    PolicyPublic,
)
from .common import ERRORS

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/applications", tags=["applications"], responses=ERRORS, strict_content_type=False
)

ApplicationId = Annotated[str, Path(min_length=1, max_length=100, description="The application id")]


@router.get("/policy", summary="The published approval policy")
def policy(services: ServicesDep, caller: Caller) -> PolicyPublic:
    """Applications within these limits are approved automatically, within a second."""
    return PolicyPublic.model_validate(services.desk.policy.to_json())


@router.post("", status_code=status.HTTP_201_CREATED, summary="Apply for a project")
def submit(body: ApplicationRequest, services: ServicesDep, caller: Caller) -> ApplicationSubmitted:
    """File an application. With an applicant token (sign in at ``/v1/auth/login``), inside the policy
    and within the quotas, it is approved at once and the analyst token is in this response, once.
    Anonymous applications (no token needed; any token other than an applicant token counts as none)
    and everything else wait for an administrator, with the reasons in ``policy_reasons``. Keep
    ``status_key`` to read the status later."""
    services.application_rate_check(caller)
    applicant = None if caller.applicant is None else services.identity.applicant(caller.applicant)
    submission = Submission(
        **body.model_dump(exclude={"registers", "applicant"}),
        registers=tuple(body.registers),
        applicant_name=body.applicant.name,
        applicant_email=body.applicant.email,
    )
    result = services.desk.submit(submission, actor=caller.actor, applicant=applicant)
    public = application_public(result.application, token=result.token)
    return ApplicationSubmitted(
        **public.model_dump(), status_key=result.status_key, policy_reasons=list(result.policy_reasons)
    )


@router.get("", summary="List applications (admin; an applicant token: its own)")
def list_applications(
    services: ServicesDep,
    caller: TokenHolder,
    status_: Annotated[Literal["pending", "approved", "rejected"] | None, Query(alias="status")] = None,
) -> list[ApplicationPublic]:
    """Applications, newest first; ``?status=pending`` for those waiting for a decision. An applicant
    token lists its own applications."""
    if caller.role == "applicant":
        mine = services.desk.list(status=status_, applicant=caller.applicant)
        return [application_public(a) for a in mine]
    caller.require_admin()
    return [application_public(a, for_admin=True) for a in services.desk.list(status=status_)]


@router.get("/{application_id}", summary="An application's status")
def read(
    application_id: ApplicationId,
    services: ServicesDep,
    caller: Caller,
    x_status_key: Annotated[
        str | None, Header(max_length=200, description="The key from the submission")
    ] = None,
) -> ApplicationPublic:
    """The applicant reads the status with the status key or the applicant token that filed it (an
    administrator needs neither). After an administrator's approval the first read by the applicant
    returns the analyst token, once."""
    app, token = services.desk.read(
        application_id, x_status_key, is_admin=caller.is_admin, applicant=caller.applicant
    )
    return application_public(app, token=token, for_admin=caller.is_admin)


@router.post("/{application_id}/decision", summary="Approve or reject an application (admin)")
def decide(
    application_id: ApplicationId, body: DecisionRequest, services: ServicesDep, admin: Admin
) -> ApplicationPublic:
    """Approve (optionally with a different budget or expiry) or reject (with a reason)."""
    app = services.desk.decide(application_id, Decision(**body.model_dump()), actor=admin.actor)
    return application_public(app, for_admin=True)
