"""Public routes (no token needed): health, catalog (JSON and DCAT-AP), query options, transparency,
whoami."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from query_engine.spec import Measure

from .. import API_VERSION
from ..catalog_public import catalog_dcat
from ..deps import Caller, HealthCaller, ServicesDep
from ..engine_adapter import engine_settings
from ..errors import InvalidRequest
from ..public_bodies import POPULATION_PROMISE, register_public, transparency_projects
from ..query_options import query_options
from ..schemas import HealthPublic, LedgerHeadPublic, QueryOptionsPublic, TransparencyPublic, WhoAmIPublic
from ..storage_errors import storage_problem
from ..tokens import utcnow
from .common import ERRORS

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["public"], responses=ERRORS, strict_content_type=False)

_JSON_LD = "application/ld+json"


@router.get("/health", summary="Liveness")
def health(services: ServicesDep, caller: HealthCaller) -> HealthPublic:
    """The service is up; which registers it serves, how long the audit chain is, and whether the state
    directory can take a write (``status: degraded``, ``storage: unavailable`` when it cannot);
    rate-limited per client address like every public route."""
    entries, _ = services.ledger.audit_head()
    problem = storage_problem(services.settings.state_dir)
    return HealthPublic(
        ok=True,
        status="ok" if problem is None else "degraded",
        version=API_VERSION,
        registers=list(services.catalog.register_names),
        ledger_entries=entries,
        storage="ok" if problem is None else "unavailable",
        storage_problem=problem,
    )


def _base_url(request: Request, configured: str | None) -> str:
    return configured.rstrip("/") if configured else str(request.base_url).rstrip("/")


@router.get(
    "/catalog",
    summary="The data catalog",
    responses={200: {"content": {"application/json": {}, _JSON_LD: {}}}},
)
def catalog(
    request: Request,
    services: ServicesDep,
    caller: Caller,
    format: Annotated[
        Literal["json", "dcat"], Query(description="json (default) or dcat (JSON-LD)")
    ] = "json",
) -> Response:
    """Every register, column, key set (with labels), controller and coverage; ``?format=dcat`` for DCAT-AP."""
    if format == "dcat":
        return _dcat(request, services)
    return Response(services.catalog_bytes(), media_type="application/json")


@router.get("/catalog/dcat", summary="The data catalog as DCAT-AP JSON-LD")
def catalog_dcat_route(request: Request, services: ServicesDep, caller: Caller) -> Response:
    """A ``dcat:Catalog`` with one ``dcat:Dataset`` per register (HealthDCAT-AP fields where they apply)."""
    return _dcat(request, services)


def _dcat(request: Request, services: ServicesDep) -> Response:
    body = catalog_dcat(services.catalog, _base_url(request, services.settings.public_url))
    return Response(json.dumps(body, ensure_ascii=False), media_type=_JSON_LD)


_MAX_GROUP_BY = 20  # as many as a query may name (``Query.group_by``)


@router.get("/query-options", summary="The limits and contribution bounds a query form may offer")
def query_options_route(
    services: ServicesDep,
    caller: Caller,
    measure: Measure = "count_persons",
    register: Annotated[str, Query(min_length=1, max_length=100)] = "cpr",
    group_by: Annotated[list[str] | None, Query(description="a group column; repeat for several")] = None,
) -> QueryOptionsPublic:
    """The engine's per-query limits (e.g. ``max_group_columns``) and which of ``max_groups`` and
    ``max_rows`` a query of this measure, register and grouping may set, with their catalog default and
    maximum; from the settings and the declared catalog only."""
    columns = group_by or []
    if len(columns) > _MAX_GROUP_BY:
        raise InvalidRequest(f"Give at most {_MAX_GROUP_BY} group_by columns, not {len(columns)}.")
    settings = engine_settings(services.settings)
    return query_options(services.catalog, settings, measure, register, columns)


@router.get("/transparency", summary="Who uses which registers, and how much privacy budget was spent")
def transparency(services: ServicesDep, caller: Caller) -> TransparencyPublic:
    """Every approved project, the privacy loss each register bears across projects, and the ledger head."""
    entries, head = services.ledger.audit_head()
    return TransparencyPublic(
        generated_at=utcnow(),
        projects=transparency_projects(services.ledger, services.desk, services.permits, services.tokens),
        registers=[register_public(r) for r in services.ledger.register_caps()],
        promise=POPULATION_PROMISE,
        ledger=LedgerHeadPublic(entries=entries, head_hash=head),
    )


@router.get("/me", summary="Who am I")
def whoami(caller: Caller) -> WhoAmIPublic:
    """The caller as the service sees the token (anonymous without one)."""
    return WhoAmIPublic.model_validate(caller, from_attributes=True)
