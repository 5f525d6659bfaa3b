"""HTTP bodies of the identity routes: institutions, applicant accounts and sign-in."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ApplicantCreateRequest",
    "ApplicantIssuedPublic",
    "ApplicantPublic",
    "InstitutionCreateRequest",
    "InstitutionPublic",
]

_STRICT = ConfigDict(extra="forbid")


class InstitutionCreateRequest(BaseModel):
    """Body of POST /v1/institutions (administrators)."""

    model_config = _STRICT

    id: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$", examples=["ku"])
    name: str = Field(min_length=1, max_length=300, examples=["University of Copenhagen"])
    oidc_issuer: str | None = Field(
        default=None,
        max_length=500,
        description="Issuer whose sign-ins may name members; unset: the configured provider.",
    )
    email_domains: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Verified e-mail domains of members, e.g. ku.dk.",
        examples=[["ku.dk"]],
    )
    org_values: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Values of the organisation claim (SUNDSTAT_OIDC_ORG_CLAIM) that name members.",
        examples=[["ku"]],
    )


class InstitutionPublic(BaseModel):
    """A registered institution."""

    id: str
    name: str
    oidc_issuer: str | None
    email_domains: list[str]
    org_values: list[str]
    created_at: dt.datetime


class ApplicantCreateRequest(BaseModel):
    """Body of POST /v1/institutions/{id}/applicants: an account issued by hand (no identity provider)."""

    model_config = _STRICT

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    ttl_days: int | None = Field(
        default=None, ge=1, le=3650, description="Token lifetime; default SUNDSTAT_APPLICANT_TOKEN_TTL_DAYS."
    )


class ApplicantPublic(BaseModel):
    """An applicant account."""

    id: str
    institution: str
    name: str
    email: str
    signed_in_with: str | None = Field(description="The OpenID Connect issuer; null for accounts by hand.")
    created_at: dt.datetime


class ApplicantIssuedPublic(BaseModel):
    """An applicant account with a new applicant token, shown this once (stored only as a hash)."""

    applicant: ApplicantPublic
    institution: InstitutionPublic
    token: str
    token_id: str
    expires_at: dt.datetime | None
