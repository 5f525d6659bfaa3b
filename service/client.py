"""A small synchronous Python client for the sundstat HTTP API.

Every route has a method; responses are the JSON bodies as dicts. Every error response raises an
:class:`ApiError` subclass chosen by status (and by code for ``budget_exceeded``) that carries the
error body's ``code``, ``error`` and ``status``. Pass ``transport=httpx.MockTransport(handler)`` to test
code that uses the client without a server.

>>> from service.client import Client
>>> with Client("http://127.0.0.1:8000", token="sst_analyst_...") as api:   # doctest: +SKIP
...     release = api.run({"project": "demo", "measure": "count_persons", "epsilon": 0.1})

This module imports only httpx and the standard library, so the dashboard can use it alone; the
analysis methods (``rates``, ``survival``, ``prevalence``, ``cohorts``) return pandas frames from
:mod:`service.client_frames`, imported when first used.

::

    ApiError
    ├── Unauthorized        401
    ├── Forbidden           403
    │   └── BudgetExceeded  403 budget_exceeded, register_cap_pure_only
    ├── NotFound            404
    ├── Conflict            409
    ├── InvalidQuery        422
    ├── RateLimited         429 (retry_after)
    └── ServerError         5xx
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import httpx

if TYPE_CHECKING:
    import pandas as pd

    from .client_frames import PrevalenceFrames, RateFrames, SurvivalFrames
    from .model_frames import ModelFrames, Table1Frames

__all__ = [
    "ApiError",
    "BudgetExceeded",
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidQuery",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Unauthorized",
]

JSON = dict[str, Any]


class _RequestOptions(TypedDict, total=False):
    """What a request may carry besides its method and path."""

    json: Any
    params: Mapping[str, Any] | None
    headers: Mapping[str, str] | None


class ApiError(Exception):
    """An error response of the API: ``code``, ``error`` (a sentence) and ``status``."""

    def __init__(self, status: int, code: str, error: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {error}")
        self.status = status
        self.code = code
        self.error = error
        self.body = (
            dict(body) if body is not None else {"ok": False, "code": code, "error": error, "status": status}
        )


class Unauthorized(ApiError):
    """401: no token, or an unknown, expired or revoked token."""


class Forbidden(ApiError):
    """403: the token may not do this."""


class BudgetExceeded(Forbidden):
    """403 ``budget_exceeded`` (or ``register_cap_pure_only``): the query does not fit in what the project
    (or a register cap) has left."""


class NotFound(ApiError):
    """404: unknown, or not visible to this token."""


class Conflict(ApiError):
    """409: in progress, already decided, or already exists."""


class InvalidQuery(ApiError):
    """422: the query or request body is not valid."""


class RateLimited(ApiError):
    """429: too many requests; ``retry_after`` is the server's hint in seconds."""

    def __init__(
        self,
        status: int,
        code: str,
        error: str,
        body: Mapping[str, Any] | None = None,
        retry_after: float = 1.0,
    ) -> None:
        super().__init__(status, code, error, body)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the service failed (or is busy); a failed release stays charged."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidQuery,
    429: RateLimited,
}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "code" not in body:
        body = {
            "ok": False,
            "code": "http_error",
            "error": response.text[:500],
            "status": response.status_code,
        }
    status, code, error = response.status_code, str(body.get("code")), str(body.get("error"))
    if status == 429:
        retry = float(response.headers.get("Retry-After", "1") or 1)
        raise RateLimited(status, code, error, body, retry_after=retry)
    if status == 403 and code in ("budget_exceeded", "register_cap_pure_only"):
        raise BudgetExceeded(status, code, error, body)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    raise cls(status, code, error, body)


def _drop_none(values: Mapping[str, Any]) -> JSON:
    return {k: v for k, v in values.items() if v is not None}


def _analysis(query: Mapping[str, Any], measure: str) -> JSON:
    """``query`` with its measure set to ``measure`` (an explicit other measure is a mistake)."""
    given = query.get("measure", measure)
    if given != measure:
        raise ValueError(
            f"This method runs measure {measure!r}, but the query says {given!r}; use run() instead."
        )
    return {**query, "measure": measure}


class Client:
    """The sundstat API. ``token`` is an analyst or administrator token (none for public routes)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, transport=transport, timeout=timeout
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _request(self, method: str, path: str, **options: Unpack[_RequestOptions]) -> Any:
        response = self._http.request(method, path, **options)
        _raise_for(response)
        return response.json()

    def _object(self, method: str, path: str, **options: Unpack[_RequestOptions]) -> JSON:
        """``_request`` for a route that answers with one JSON object."""
        result: JSON = self._request(method, path, **options)
        return result

    # --- public ---------------------------------------------------------------------------------

    def health(self) -> JSON:
        """``GET /v1/health``."""
        return self._object("GET", "/v1/health")

    def catalog(self) -> JSON:
        """``GET /v1/catalog``: registers, columns, key sets, controllers, coverage."""
        return self._object("GET", "/v1/catalog")

    def query_options(
        self, measure: str = "count_persons", register: str = "cpr", group_by: Sequence[str] = ()
    ) -> JSON:
        """``GET /v1/query-options``: the engine's per-query limits and the bounds this query may set."""
        params = {"measure": measure, "register": register, "group_by": list(group_by)}
        return self._object("GET", "/v1/query-options", params=params)

    def catalog_dcat(self) -> JSON:
        """``GET /v1/catalog/dcat``: the catalog as DCAT-AP JSON-LD."""
        return self._object("GET", "/v1/catalog/dcat")

    def transparency(self) -> JSON:
        """``GET /v1/transparency``: projects, per-register loss and the ledger head."""
        return self._object("GET", "/v1/transparency")

    def me(self) -> JSON:
        """``GET /v1/me``: the role and project of this client's token."""
        return self._object("GET", "/v1/me")

    # --- queries --------------------------------------------------------------------------------

    def preview(self, query: Mapping[str, Any]) -> JSON:
        """``POST /v1/queries/preview``: cost and expected accuracy; spends nothing."""
        return self._object("POST", "/v1/queries/preview", json=dict(query))

    def run(self, query: Mapping[str, Any], idempotency_key: str | None = None) -> JSON:
        """``POST /v1/queries``: spend budget and return the release (a retry with the same key is free)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._object("POST", "/v1/queries", json=dict(query), headers=headers)

    def sql_preview(self, sql: str, *, project: str, **loss: Any) -> JSON:
        """``POST /v1/sql/preview``: like :meth:`preview` for an SQL text (loss as ``epsilon=...``)."""
        return self._object("POST", "/v1/sql/preview", json={"project": project, "sql": sql, **loss})

    def sql(self, sql: str, *, project: str, idempotency_key: str | None = None, **loss: Any) -> JSON:
        """``POST /v1/sql``: like :meth:`run` for an SQL text; same charge and cache as the JSON query."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = {"project": project, "sql": sql, **loss}
        return self._object("POST", "/v1/sql", json=body, headers=headers)

    # --- analyses (pandas frames; the raw release is kept as ``.release``) ----------------------

    def rates(self, query: Mapping[str, Any], idempotency_key: str | None = None) -> RateFrames:
        """Run an incidence-rate query (``measure`` ``rate``, a ``cohort``): the rates table and, with a
        ``standard_population``, the standardised beside the crude rates, as frames."""
        from .client_frames import rate_frames

        return rate_frames(self.run(_analysis(query, "rate"), idempotency_key))

    def survival(self, query: Mapping[str, Any], idempotency_key: str | None = None) -> SurvivalFrames:
        """Run a Kaplan-Meier query (``measure`` ``survival``, a ``cohort``): the curve, the horizons and
        the median survival per group, as frames."""
        from .client_frames import survival_frames

        return survival_frames(self.run(_analysis(query, "survival"), idempotency_key))

    def prevalence(self, query: Mapping[str, Any], idempotency_key: str | None = None) -> PrevalenceFrames:
        """Run a prevalence query (``measure`` ``prevalence``, a ``condition``): proportions per group."""
        from .client_frames import prevalence_frames

        return prevalence_frames(self.run(_analysis(query, "prevalence"), idempotency_key))

    def list_cohorts(self, project: str) -> JSON:
        """``GET /v1/projects/{id}/cohorts``: ``{"project", "count", "cohorts": [...]}``."""
        return self._object("GET", f"/v1/projects/{project}/cohorts")

    def cohorts(self, project: str) -> pd.DataFrame:
        """The project's named cohorts as a frame (one row per name; ``definition`` holds the whole)."""
        from .client_frames import cohort_frame

        return cohort_frame(self.list_cohorts(project))

    # --- projects -------------------------------------------------------------------------------

    def list_projects(self) -> list[JSON]:
        """``GET /v1/projects``: all projects (admin) or this token's project (analyst)."""
        result: list[JSON] = self._request("GET", "/v1/projects")
        return result

    def project(self, project: str) -> JSON:
        """``GET /v1/projects/{id}``."""
        return self._object("GET", f"/v1/projects/{project}")

    def budget(self, project: str) -> JSON:
        """``GET /v1/projects/{id}/budget``."""
        return self._object("GET", f"/v1/projects/{project}/budget")

    def releases(self, project: str) -> JSON:
        """``GET /v1/projects/{id}/releases``: ``{"project", "count", "releases": [...]}``."""
        return self._object("GET", f"/v1/projects/{project}/releases")

    def release(self, project: str, release_id: str) -> JSON:
        """``GET /v1/projects/{id}/releases/{release_id}``."""
        return self._object("GET", f"/v1/projects/{project}/releases/{release_id}")

    def create_project(
        self,
        id: str,
        *,
        title: str,
        purpose: str,
        registers: list[str],
        epsilon: float,
        delta: float = 0.0,
        mode: str = "pure",
        expires: dt.date | str | None = None,
        institution: str = "",
        summary: str = "",
        permit_id: str | None = None,
    ) -> JSON:
        """``POST /v1/projects`` (admin); without ``permit_id`` the service generates one."""
        body = {
            "id": id,
            "title": title,
            "purpose": purpose,
            "registers": registers,
            "mode": mode,
            "epsilon": epsilon,
            "delta": delta,
            "expires": None if expires is None else str(expires),
            "institution": institution,
            "summary": summary,
            "permit_id": permit_id,
        }
        return self._object("POST", "/v1/projects", json=body)

    def set_budget(self, project: str, *, epsilon: float, delta: float = 0.0, reason: str) -> JSON:
        """``PUT /v1/projects/{id}/budget`` (admin)."""
        body = {"epsilon": epsilon, "delta": delta, "reason": reason}
        return self._object("PUT", f"/v1/projects/{project}/budget", json=body)

    # --- tokens and caps ------------------------------------------------------------------------

    def create_token(self, project: str, name: str, *, ttl_days: int | None = None) -> JSON:
        """``POST /v1/projects/{id}/tokens`` (admin): a new analyst token, shown once."""
        body = _drop_none({"name": name, "role": "analyst", "ttl_days": ttl_days})
        return self._object("POST", f"/v1/projects/{project}/tokens", json=body)

    def create_admin_token(self, name: str, *, ttl_days: int | None = None) -> JSON:
        """``POST /v1/admin/tokens`` (admin): a new administrator token, shown once."""
        body = _drop_none({"name": name, "role": "admin", "ttl_days": ttl_days})
        return self._object("POST", "/v1/admin/tokens", json=body)

    def list_tokens(self, project: str | None = None) -> list[JSON]:
        """``GET /v1/admin/tokens`` or ``GET /v1/projects/{id}/tokens`` (admin)."""
        path = "/v1/admin/tokens" if project is None else f"/v1/projects/{project}/tokens"
        result: list[JSON] = self._request("GET", path)
        return result

    def revoke_token(self, token_id: str) -> JSON:
        """``DELETE /v1/admin/tokens/{token_id}`` (admin)."""
        return self._object("DELETE", f"/v1/admin/tokens/{token_id}")

    def set_register_cap(
        self,
        register: str,
        *,
        reason: str,
        epsilon: float | None = None,
        rho: float | None = None,
        delta: float = 0.0,
    ) -> JSON:
        """``PUT /v1/registers/{name}/cap`` (admin): a global cap across all projects."""
        body = _drop_none({"epsilon": epsilon, "rho": rho, "delta": delta, "reason": reason})
        return self._object("PUT", f"/v1/registers/{register}/cap", json=body)

    def ledger_verify(self) -> JSON:
        """``GET /v1/admin/ledger/verify`` (admin)."""
        return self._object("GET", "/v1/admin/ledger/verify")

    # --- applications ---------------------------------------------------------------------------

    def policy(self) -> JSON:
        """``GET /v1/applications/policy``: the published approval policy."""
        return self._object("GET", "/v1/applications/policy")

    def apply(self, application: Mapping[str, Any], *, applicant_token: str | None = None) -> JSON:
        """``POST /v1/applications``: keep ``status_key``; ``token`` is set when approved at once (only
        with an applicant token: ``applicant_token``, else this client's token)."""
        headers = {"Authorization": f"Bearer {applicant_token}"} if applicant_token else None
        return self._object("POST", "/v1/applications", json=dict(application), headers=headers)

    # --- institutions and applicants (admin) ----------------------------------------------------

    def create_institution(
        self,
        institution_id: str,
        name: str,
        *,
        oidc_issuer: str | None = None,
        email_domains: list[str] | None = None,
        org_values: list[str] | None = None,
    ) -> JSON:
        """``POST /v1/institutions`` (admin): register an institution and how its members are recognised."""
        body = _drop_none(
            {
                "id": institution_id,
                "name": name,
                "oidc_issuer": oidc_issuer,
                "email_domains": email_domains or [],
                "org_values": org_values or [],
            }
        )
        return self._object("POST", "/v1/institutions", json=body)

    def list_institutions(self) -> list[JSON]:
        """``GET /v1/institutions`` (admin)."""
        result: list[JSON] = self._request("GET", "/v1/institutions")
        return result

    def create_applicant(
        self, institution_id: str, *, name: str, email: str, ttl_days: int | None = None
    ) -> JSON:
        """``POST /v1/institutions/{id}/applicants`` (admin): an applicant account and its token (once)."""
        body = _drop_none({"name": name, "email": email, "ttl_days": ttl_days})
        return self._object("POST", f"/v1/institutions/{institution_id}/applicants", json=body)

    def application_status(self, application_id: str, status_key: str | None = None) -> JSON:
        """``GET /v1/applications/{id}`` with the status key (administrators need none)."""
        headers = {"X-Status-Key": status_key} if status_key else None
        return self._object("GET", f"/v1/applications/{application_id}", headers=headers)

    def list_applications(self, status: str | None = None) -> list[JSON]:
        """``GET /v1/applications`` (admin), optionally only ``pending``/``approved``/``rejected``."""
        params = {"status": status} if status else None
        result: list[JSON] = self._request("GET", "/v1/applications", params=params)
        return result

    def decide(
        self,
        application_id: str,
        decision: str,
        *,
        epsilon: float | None = None,
        delta: float | None = None,
        expires: dt.date | str | None = None,
        reason: str | None = None,
    ) -> JSON:
        """``POST /v1/applications/{id}/decision`` (admin): ``approve`` or ``reject``."""
        body = _drop_none(
            {
                "decision": decision,
                "epsilon": epsilon,
                "delta": delta,
                "expires": None if expires is None else str(expires),
                "reason": reason,
            }
        )
        return self._object("POST", f"/v1/applications/{application_id}/decision", json=body)

    # --- models and Table 1 (pandas frames from service.model_frames, imported when first used) ------

    def poisson_regression(self, query: Mapping[str, Any], idempotency_key: str | None = None) -> ModelFrames:
        """Run a Poisson regression of a cohort's rates: rate ratios per term (``.terms``) with noise-aware
        and naive intervals, and the released rate table (``.table``)."""
        from .model_frames import model_frames

        return model_frames(self.run(_analysis(query, "poisson_regression"), idempotency_key))

    def logistic_regression(
        self, query: Mapping[str, Any], idempotency_key: str | None = None
    ) -> ModelFrames:
        """Run a logistic regression of ``cohort.event``: odds ratios per term and the released histogram."""
        from .model_frames import model_frames

        return model_frames(self.run(_analysis(query, "logistic_regression"), idempotency_key))

    def linear_regression(self, query: Mapping[str, Any], idempotency_key: str | None = None) -> ModelFrames:
        """Run a linear regression from noisy moments: coefficients per term with both intervals."""
        from .model_frames import model_frames

        return model_frames(self.run(_analysis(query, "linear_regression"), idempotency_key))

    def table1(self, query: Mapping[str, Any], idempotency_key: str | None = None) -> Table1Frames:
        """Run a Table 1: ``.long`` (numbers), ``.wide`` (the familiar table), ``.to_csv()``, ``.to_html()``."""
        from .model_frames import table1_frames

        return table1_frames(self.run(_analysis(query, "table1"), idempotency_key))
