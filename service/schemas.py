"""Request and response bodies of the HTTP API, named by role (``...Request``, ``...Public``).

The query body is the engine's own ``Query`` model; the release and preview bodies are the engine's
``Release`` and ``Preview``. Everything else the service defines here.
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from query_engine.release_models import Preview, Release
from query_engine.spec import FiniteNumber, Query

from .settings import EHDS_PURPOSES

__all__ = [
    "ApplicantPublic",
    "ApplicationPublic",
    "ApplicationRequest",
    "ApplicationSubmitted",
    "BudgetPublic",
    "BudgetUpdateRequest",
    "CapUpdateRequest",
    "CohortListPublic",
    "CohortPublic",
    "DecisionRequest",
    "ErrorBody",
    "HealthPublic",
    "LedgerHeadPublic",
    "PolicyPublic",
    "ProjectCreateRequest",
    "ProjectPublic",
    "PreviewPublic",
    "QueryRequest",
    "RegisterCapPublic",
    "ReleaseListPublic",
    "ReleasePublic",
    "SqlRequest",
    "TokenCreateRequest",
    "TokenIssuedPublic",
    "TokenPublic",
    "TransparencyProjectPublic",
    "TransparencyPublic",
    "VerifyPublic",
    "WhoAmIPublic",
]

Purpose = Literal[
    "public_health", "policy", "official_statistics", "education", "research", "care_improvement"
]
assert set(Purpose.__args__) == set(EHDS_PURPOSES)  # type: ignore[attr-defined]

_STRICT = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """The one error body of every error response."""

    ok: Literal[False] = False
    code: str = Field(description="Stable machine-readable code, e.g. budget_exceeded.")
    error: str = Field(description="A sentence a person can act on.")
    status: int = Field(description="The HTTP status, repeated.")


QueryRequest: TypeAlias = Query
"""A statistics query (body of POST /v1/queries and /v1/queries/preview): the engine's ``Query`` itself.

An alias, not a subclass: on a pydantic subclass the field ``register`` resolves to the metaclass's
``register`` method, so the engine's model is used as is (its OpenAPI name is ``Query``).
"""


_QUERY_FIELDS: dict[str, Any] = dict(Query.model_fields)  # FieldInfo, typed like Field()


class SqlRequest(BaseModel):
    """Body of POST /v1/sql and /v1/sql/preview: one SELECT in sundstat's SQL dialect (docs/sql.md).

    The privacy loss is given beside the SQL, never in it: exactly one of epsilon, rho or target_ci.
    """

    model_config = _STRICT

    # The fields a query has beside its SQL are the engine's Query fields, constraints and all.
    project: str = _QUERY_FIELDS["project"]
    sql: str = Field(min_length=1, max_length=20_000)
    epsilon: FiniteNumber | None = _QUERY_FIELDS["epsilon"]
    rho: FiniteNumber | None = _QUERY_FIELDS["rho"]
    target_ci: FiniteNumber | None = _QUERY_FIELDS["target_ci"]
    confidence: float = _QUERY_FIELDS["confidence"]  # FiniteNumber: its check comes with the field
    max_groups: StrictInt | None = _QUERY_FIELDS["max_groups"]
    max_rows: StrictInt | None = _QUERY_FIELDS["max_rows"]


class PreviewPublic(Preview):
    """Response of POST /v1/queries/preview: the engine's preview plus the project's budget now."""

    budget: BudgetPublic | None = None
    response_seconds: float | None = Field(
        default=None,
        description="Seconds a fresh release of this query takes to answer (fixed before it runs, the "
        "same for success and failure); null when the server does not fix response times.",
    )
    cached: bool = Field(
        default=False,
        description="True when this exact query has a stored release in the project: running it is free "
        "and returns that release.",
    )
    cost_if_run: dict[str, float] | None = Field(
        default=None,
        description="What running the query now would charge ({epsilon, rho, delta}); all zero when cached.",
    )
    fits: bool | None = Field(
        default=None,
        description="Whether running it now fits the project's budget, its permit, its daily release limit "
        "and every touched register's cap (always true when cached).",
    )
    fit_problem: str | None = Field(
        default=None, description="When it does not fit: the refusal a run would get, with the numbers."
    )
    reference_count: float | None = Field(
        default=None,
        description="The count a cell would hold if the declared population (SUNDSTAT_DECLARED_PERSONS "
        "times the register's declared_rows_per_person) spread evenly over the cells before any filter; "
        "public, never read from data. A mean's expected_half_width is stated at this count.",
    )
    mean_half_width_by_count: list[dict[str, float]] | None = Field(
        default=None,
        description="Mean only: the interval half-width a cell would have at 10, 100, 1,000, 10,000 and "
        "100,000 rows ([{count, half_width}]); a mean's interval depends on its (private) count.",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Sentences for an interval likely too wide to be useful (compared with reference_count "
        "or the column's bounds).",
    )


class ReleasePublic(Release):
    """Response of POST /v1/queries: the engine's release with ``cached`` and ``budget`` filled in."""

    budget: BudgetPublic | None = None  # type: ignore[assignment]


class HealthPublic(BaseModel):
    """Liveness and what is being served."""

    ok: bool
    status: Literal["ok", "degraded"]
    version: str
    registers: list[str]
    ledger_entries: int
    storage: Literal["ok", "unavailable"] = Field(
        "ok", description="'unavailable' when the state directory cannot take a write (e.g. disk full)"
    )
    storage_problem: str | None = None


class BudgetPublic(BaseModel):
    """A project's privacy budget: total, spent and remaining (totals rounded down, spent up)."""

    project: str
    mode: Literal["pure", "zcdp"]
    epsilon_total: float
    epsilon_spent: float
    epsilon_remaining: float
    delta_total: float
    delta_spent: float
    delta_remaining: float
    delta_thresholding: float
    delta_conversion: float | None
    rho_total: float | None
    rho_spent: float | None
    rho_remaining: float | None
    largest_laplace_epsilon: float
    spends: int


def _each_once(registers: list[str]) -> list[str]:
    """Refuse a register named twice: a permit lists each register once."""
    seen: set[str] = set()
    for name in registers:
        if name in seen:
            raise ValueError(f"'{name}' is listed more than once; name each register once")
        seen.add(name)
    return registers


RegisterList = Annotated[list[str], Field(min_length=1, max_length=20), AfterValidator(_each_once)]
"""The registers of a project or an application: at least one, each named once."""


class ProjectCreateRequest(BaseModel):
    """Body of POST /v1/projects (administrators)."""

    model_config = _STRICT

    id: str = Field(min_length=1, max_length=64, examples=["diabetes-2026"])
    title: str = Field(min_length=1, max_length=300)
    purpose: Purpose
    registers: RegisterList
    mode: Literal["pure", "zcdp"] = "pure"
    epsilon: float = Field(ge=0, allow_inf_nan=False)
    delta: float = Field(default=0.0, ge=0, lt=1, allow_inf_nan=False)
    expires: dt.date | None = Field(
        default=None, description="The permit's last day; unset: permit_default_days from today."
    )
    institution: str = Field(default="", max_length=300)
    summary: str = Field(default="", max_length=5000)
    permit_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
        description="The data permit behind the project (e.g. the permit authority's case number); "
        "unset: a generated id.",
    )


class _ProjectAboutPublic(BaseModel):
    """The fields every public view of a project starts with: what it is about and its mode."""

    id: str
    title: str
    purpose: str
    institution: str
    summary: str
    registers: list[str]
    mode: Literal["pure", "zcdp"]


class ProjectPublic(_ProjectAboutPublic):
    """A project: its permit (purpose, registers, expiry) and its budget."""

    expires: dt.date | None
    created_at: str
    budget: BudgetPublic
    permit_id: str | None = Field(default=None, description="The permit behind the project.")


class BudgetUpdateRequest(BaseModel):
    """Body of PUT /v1/projects/{id}/budget (administrators)."""

    model_config = _STRICT

    epsilon: float = Field(ge=0, allow_inf_nan=False)
    delta: float = Field(default=0.0, ge=0, lt=1, allow_inf_nan=False)
    reason: str = Field(min_length=1, max_length=2000)


class TokenCreateRequest(BaseModel):
    """Body of POST /v1/projects/{id}/tokens and POST /v1/admin/tokens (administrators)."""

    model_config = _STRICT

    name: str = Field(min_length=1, max_length=200, examples=["analyst-1"])
    role: Literal["analyst", "admin"] = "analyst"
    ttl_days: int | None = Field(
        default=None, ge=1, le=3650, description="Lifetime; default from the settings."
    )


class TokenPublic(BaseModel):
    """A token's record; never the token itself."""

    id: str
    prefix: str
    role: Literal["admin", "analyst", "applicant"]
    project: str | None
    applicant: str | None = Field(default=None, description="The applicant account of an applicant token.")
    name: str
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    active: bool


class TokenIssuedPublic(TokenPublic):
    """A new token: ``token`` is shown this once and is stored only as a hash."""

    token: str


class CapUpdateRequest(BaseModel):
    """Body of PUT /v1/registers/{name}/cap: a global cap across all projects."""

    model_config = _STRICT

    epsilon: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    rho: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    delta: float = Field(default=0.0, ge=0, lt=1, allow_inf_nan=False)
    reason: str = Field(min_length=1, max_length=2000)


class RegisterCapPublic(BaseModel):
    """The total privacy loss a register bears across projects, and its cap if one is set."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    name: str = Field(alias="register", description="The register.")
    epsilon_spent: float = Field(
        description="Pure-DP epsilon borne across projects: the sum of the epsilon of every charge "
        "(discrete Laplace, noisy max) that touched the register, rounded up. Gaussian charges count "
        "only in rho_spent."
    )
    rho_spent: float = Field(
        description="zCDP loss borne across projects (rho + epsilon^2/2 of every charge); caps are checked "
        "against it."
    )
    delta_spent: float
    spends: int
    cap_rho: float | None = Field(
        description="The cap's zCDP rho: the currency of epsilon_delta and rho caps; for an epsilon cap the "
        "epsilon^2/2 it implies (information only)."
    )
    cap_delta: float | None = Field(description="Delta that thresholding charges may use in total.")
    cap_epsilon_requested: float | None = Field(description="The cap's epsilon as the administrator set it.")
    rho_remaining: float | None
    delta_remaining: float | None
    cap_unit: Literal["epsilon", "epsilon_delta", "rho"] | None = Field(
        description="How the cap was set and is enforced: 'epsilon' (delta 0: the sum of pure epsilon over "
        "every charge), 'epsilon_delta' (delta > 0: every charge as zCDP rho, converted with OpenDP), "
        "'rho' (as given), or null without a cap."
    )
    cap_delta_requested: float | None = Field(description="The cap's delta as the administrator set it.")
    epsilon_remaining: float | None = Field(
        description="Epsilon left in the cap's own terms: pure epsilon (epsilon caps) or the epsilon of the "
        "remaining rho at the conversion delta (epsilon_delta caps)."
    )
    epsilon_equivalent_spent: float | None = Field(
        description="For epsilon_delta caps: the epsilon of rho_spent at the conversion delta (OpenDP)."
    )
    promise: str = Field(
        description="In plain words: what everyone in the register is promised across all projects together."
    )


class ReleaseListPublic(BaseModel):
    """A project's stored releases, oldest first."""

    project: str
    count: int
    releases: list[dict[str, Any]]


class CohortPublic(BaseModel):
    """A named cohort: its definition (the query JSON's ``cohort`` object) and who stored it when."""

    name: str
    definition: dict[str, Any]
    created_at: str
    created_by: str


class CohortListPublic(BaseModel):
    """A project's named cohorts, oldest first."""

    project: str
    count: int
    cohorts: list[CohortPublic]


class ApplicantPublic(BaseModel):
    """Who applies."""

    model_config = _STRICT

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ApplicationRequest(BaseModel):
    """Body of POST /v1/applications: an application for a project (no account needed)."""

    model_config = _STRICT

    title: str = Field(min_length=1, max_length=300)
    purpose: Purpose
    institution: str = Field(min_length=1, max_length=300)
    summary: str = Field(min_length=1, max_length=5000, description="A lay summary of the project.")
    registers: RegisterList
    epsilon: float = Field(gt=0, le=100, allow_inf_nan=False)
    delta: float = Field(default=0.0, ge=0, lt=1e-3, allow_inf_nan=False)
    duration_days: int = Field(ge=1, le=3650)
    applicant: ApplicantPublic


class ApplicationPublic(BaseModel):
    """An application's state, as its applicant or an administrator sees it."""

    id: str
    status: Literal["pending", "approved", "rejected"]
    title: str
    purpose: str
    institution: str
    summary: str
    registers: list[str]
    epsilon: float
    delta: float
    duration_days: int
    submitted_at: dt.datetime
    decided_at: dt.datetime | None
    decision_seconds: float | None
    route: Literal["auto", "admin"] | None
    reason: str | None
    project: str | None
    granted_epsilon: float | None
    granted_delta: float | None
    expires: dt.date | None
    applicant: dict[str, str] | None = Field(default=None, description="Shown to administrators only.")
    token: str | None = Field(default=None, description="The analyst token, returned exactly once.")
    applicant_id: str | None = Field(
        default=None, description="The signed-in applicant's account (null: an anonymous application)."
    )
    institution_id: str | None = Field(default=None, description="The applicant's registered institution.")
    waiting_reasons: list[str] = Field(
        default_factory=list, description="Why the application waited for an administrator."
    )


class ApplicationSubmitted(ApplicationPublic):
    """Response to a submission: keep ``status_key`` to read the status later (X-Status-Key header)."""

    status_key: str
    policy_reasons: list[str] = Field(description="Why the application waits for an administrator.")


class DecisionRequest(BaseModel):
    """Body of POST /v1/applications/{id}/decision (administrators)."""

    model_config = _STRICT

    decision: Literal["approve", "reject"]
    epsilon: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    delta: float | None = Field(default=None, ge=0, lt=1, allow_inf_nan=False)
    expires: dt.date | None = None
    reason: str | None = Field(default=None, max_length=2000)


class PolicyPublic(BaseModel):
    """The published approval policy: applications within it are approved automatically."""

    max_epsilon: float
    max_delta: float
    max_duration_days: int
    allowed_registers: list[str]
    allowed_purposes: list[str]
    purposes: list[str]
    mode: str


class TransparencyProjectPublic(_ProjectAboutPublic):
    """One approved project as the public sees it."""

    created_at: str
    expires: dt.date | None
    epsilon_total: float
    epsilon_spent: float
    delta_total: float
    delta_spent: float
    releases: int
    approval_route: Literal["auto", "admin"]
    decision_seconds: float | None
    permit_id: str = Field(description="The permit behind the project: its application id or the given id.")
    analysts: list[str] = Field(description="The names of the project's active analyst tokens.")


class LedgerHeadPublic(BaseModel):
    """The audit chain's head: publish it, and check it later with ``sundstat ledger verify``."""

    entries: int
    head_hash: str | None


class TransparencyPublic(BaseModel):
    """Every approved project, the loss each register bears, and the audit chain's head."""

    generated_at: dt.datetime
    projects: list[TransparencyProjectPublic]
    registers: list[RegisterCapPublic]
    promise: str = Field(
        description="In plain words: what a person in the registers is promised in total, across all projects."
    )
    ledger: LedgerHeadPublic


class VerifyPublic(BaseModel):
    """Result of recomputing the audit chain and checking every ledger table against it."""

    ok: bool
    entries: int
    head_hash: str
    first_bad_index: int | None
    reason: str | None
    problems: list[str]


class WhoAmIPublic(BaseModel):
    """The caller, as the service sees the token."""

    role: Literal["admin", "analyst", "applicant", "anonymous"]
    token_id: str | None
    project: str | None
    name: str
    applicant: str | None = Field(default=None, description="The applicant account of an applicant token.")


class QueryLimitsPublic(BaseModel):
    """The engine's per-query limits on this installation (its settings; the same for every project)."""

    max_group_columns: int = Field(description="Most group-by columns in one query.")
    max_cells: int = Field(description="Most output cells (product of the group columns' key-set sizes).")
    max_epsilon: float
    max_rho: float
    min_epsilon: float
    min_rho: float


# ``register`` is a field name of the contract; it shadows ABCMeta.register on the class only.
warnings.filterwarnings(
    "ignore", message='Field name "register" in "BoundingOptionPublic" shadows', category=UserWarning
)


class BoundingOptionPublic(BaseModel):
    """A contribution bound the query may tighten (``max_groups`` or ``max_rows``) on its grain register."""

    name: Literal["max_groups", "max_rows"]
    register: str
    default: int = Field(description="What the query uses when it leaves the bound out.")
    maximum: int = Field(description="The catalog's largest allowed value.")


class QueryOptionsPublic(BaseModel):
    """What a query form may offer: the installation's limits and the bounds this query may set."""

    limits: QueryLimitsPublic
    bounding: list[BoundingOptionPublic]
