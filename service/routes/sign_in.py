"""Sign-in routes: OpenID Connect login at the applicant's institution, and its callback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Query, status
from fastapi.responses import RedirectResponse

from ..deps import Caller, ServicesDep, SettingsDep
from ..identity_schemas import ApplicantIssuedPublic
from ..oidc import LOGIN_COOKIE, LOGIN_LIFETIME
from .common import ERRORS
from .institutions import issue_applicant_token

__all__ = ["router"]

router = APIRouter(prefix="/v1/auth", tags=["sign-in"], responses=ERRORS, strict_content_type=False)

_Param = Annotated[str | None, Query(max_length=2000)]


@router.get(
    "/login",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    summary="Sign in with your institution",
)
def login(
    services: ServicesDep,
    settings: SettingsDep,
    caller: Caller,
    institution: Annotated[
        str | None, Query(max_length=40, description="Your institution's id, e.g. ku")
    ] = None,
) -> RedirectResponse:
    """Redirects to the identity provider (authorization code with PKCE); it sends you back to
    ``/v1/auth/callback``, which answers with your applicant token."""
    url, state = services.sign_in.start(institution)
    response = RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        LOGIN_COOKIE,
        state,
        max_age=int(LOGIN_LIFETIME.total_seconds()),
        path="/v1/auth",
        secure=settings.oidc_callback_url.startswith("https://"),
        httponly=True,
        samesite="lax",  # sent when the provider redirects the browser back (a top-level GET)
    )
    return response


@router.get("/callback", summary="Finish the sign-in (the identity provider redirects here)")
def callback(
    services: ServicesDep,
    settings: SettingsDep,
    caller: Caller,
    code: _Param = None,
    state: _Param = None,
    error: _Param = None,
    browser_state: Annotated[
        str | None, Cookie(alias=LOGIN_COOKIE, max_length=200, include_in_schema=False)
    ] = None,
) -> ApplicantIssuedPublic:
    """Verifies the sign-in and returns a new applicant token, shown this once: send it as
    ``Authorization: Bearer <token>`` with ``POST /v1/applications``."""
    signed_in = services.sign_in.finish(code=code, state=state, browser_state=browser_state, error=error)
    actor = f"oidc:{signed_in.applicant.id}"
    return issue_applicant_token(signed_in.applicant, services, settings, actor=actor)
