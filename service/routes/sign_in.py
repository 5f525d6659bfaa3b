"""Sign-in routes: OpenID Connect login at the applicant's institution, and its callback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import RedirectResponse

from ..deps import Caller, ServicesDep, SettingsDep
from ..identity_schemas import ApplicantIssuedPublic
from .common import ERRORS
from .institutions import issue_applicant_token

__all__ = ["router"]

router = APIRouter(prefix="/v1/auth", tags=["sign-in"], responses=ERRORS)

_Param = Annotated[str | None, Query(max_length=2000)]


@router.get(
    "/login",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    summary="Sign in with your institution",
)
def login(
    services: ServicesDep,
    caller: Caller,
    institution: Annotated[
        str | None, Query(max_length=40, description="Your institution's id, e.g. ku")
    ] = None,
) -> RedirectResponse:
    """Redirects to the identity provider (authorization code with PKCE); it sends you back to
    ``/v1/auth/callback``, which answers with your applicant token."""
    url = services.sign_in.start(institution)
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


@router.get("/callback", summary="Finish the sign-in (the identity provider redirects here)")
def callback(
    services: ServicesDep,
    settings: SettingsDep,
    caller: Caller,
    code: _Param = None,
    state: _Param = None,
    error: _Param = None,
) -> ApplicantIssuedPublic:
    """Verifies the sign-in and returns a new applicant token, shown this once: send it as
    ``Authorization: Bearer <token>`` with ``POST /v1/applications``."""
    signed_in = services.sign_in.finish(code=code, state=state, error=error)
    actor = f"oidc:{signed_in.applicant.id}"
    return issue_applicant_token(signed_in.applicant, services, settings, actor=actor)
