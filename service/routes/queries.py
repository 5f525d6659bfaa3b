"""Query routes: preview (free) and release (spends budget; Idempotency-Key honoured), as JSON
queries or as SQL (parsed into the same query, then the same code path).

These are the hot routes: the orchestrator's JSON-ready bodies are returned as they are (a release
as the very text the ledger stored, serialised once; ``response_model`` documents them) instead of
being validated into the models a second time.

A fresh release answers at the rung of ``response_ladder`` that the public cost model picked before
it ran (success, failure and time-out alike; see ``service.response_time`` and the orchestrator);
the query slot is held until then, so the queue in front of other queries says nothing either. On
top of that every response of ``POST /v1/queries`` and ``POST /v1/sql`` is padded to at least
``min_response_seconds``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from query_engine.spec import Query
from query_engine.sql import sql_to_query

from ..auth import Principal
from ..deps import ServicesDep, TokenHolder
from ..named_cohorts import COHORT_NAMED, CohortRegistry
from ..orchestration import Outcome
from ..schemas import PreviewPublic, QueryRequest, ReleasePublic, SqlRequest
from ..worker_services import Services
from .common import ERRORS

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["queries"], responses=ERRORS, strict_content_type=False)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="A retry with the same key returns the stored release, never fresh noise.",
    ),
]


@router.post(
    "/queries/preview", response_model=PreviewPublic, summary="Cost and expected accuracy of a query (free)"
)
async def preview(body: QueryRequest, services: ServicesDep, caller: TokenHolder) -> Response:
    """The privacy loss the query would be charged and its expected accuracy; touches no data."""
    return await _preview(services, body, caller)


@router.post(
    "/queries", response_model=ReleasePublic, summary="Run a query: spends budget and returns a release"
)
async def run(
    body: QueryRequest,
    services: ServicesDep,
    caller: TokenHolder,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Validate, charge the project's budget, execute, add noise and return the release.

    The same query in the same project returns its stored release free (``cached: true``).
    """
    return await _release(services, lambda: body, caller, idempotency_key)


def _resolve_and_preview(services: Services, query: Query, caller: Principal) -> dict[str, Any]:
    """A named cohort resolved (checked, never stored: previews change nothing), then the preview."""
    caller.require_project(query.project)
    resolved = CohortRegistry(services.store).resolve(query, caller.actor)
    return services.orchestrator.preview(resolved.query, caller)


def _resolve_and_run(
    services: Services, query: Query, caller: Principal, idempotency_key: str | None
) -> Outcome:
    """A named cohort resolved, a new name claimed, the query released; the claim is forgotten when
    the query is refused or fails (see ``service.named_cohorts``)."""
    caller.require_project(query.project)
    cohorts = CohortRegistry(services.store)
    resolved = cohorts.resolve(query, caller.actor)
    new = resolved.new_name
    claimed = new is not None and cohorts.claim(new)
    try:
        outcome = services.orchestrator.run_outcome(resolved.query, caller, idempotency_key)
    except BaseException:
        if claimed and new is not None:
            cohorts.forget(new)
        raise
    if new is not None and (claimed or cohorts.claim(new)):
        digest = hashlib.sha256(new.canonical.encode("utf-8")).hexdigest()
        services.ledger.append_event(
            COHORT_NAMED, {"project": new.project, "name": new.name, "cohort_sha256": digest}, caller.actor
        )
    return outcome


async def _preview(services: Services, query: Query, caller: Principal) -> Response:
    """Preview in the thread pool: free, and no query slot (it touches no data)."""
    return JSONResponse(await run_in_threadpool(_resolve_and_preview, services, query, caller))


async def _release(
    services: Services, build: Callable[[], Query], caller: Principal, idempotency_key: str | None
) -> Response:
    """Run in a query slot (held until the rung's moment), padded to the minimum response time."""
    started = time.monotonic()
    try:
        query = build()
        async with services.slots.slot():
            outcome = await run_in_threadpool(_resolve_and_run, services, query, caller, idempotency_key)
        return Response(outcome.text, media_type="application/json")  # the text the ledger stored
    finally:
        remaining = services.settings.min_response_seconds - (time.monotonic() - started)
        if remaining > 0:
            await anyio.sleep(remaining)


def _sql_query(body: SqlRequest, services: Services) -> Query:
    return sql_to_query(
        body.sql,
        project=body.project,
        catalog=services.catalog,
        epsilon=body.epsilon,
        rho=body.rho,
        target_ci=body.target_ci,
        confidence=body.confidence,
        max_groups=body.max_groups,
        max_rows=body.max_rows,
    )


@router.post(
    "/sql/preview", response_model=PreviewPublic, summary="Cost and expected accuracy of an SQL query (free)"
)
async def sql_preview(body: SqlRequest, services: ServicesDep, caller: TokenHolder) -> Response:
    """The SQL is parsed into the same query as the JSON API; then exactly like /v1/queries/preview."""
    caller.require_project(body.project)
    return await _preview(services, _sql_query(body, services), caller)


@router.post(
    "/sql", response_model=ReleasePublic, summary="Run an SQL query: spends budget and returns a release"
)
async def sql_run(
    body: SqlRequest,
    services: ServicesDep,
    caller: TokenHolder,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The SQL is parsed into the same query as the JSON API; then exactly like /v1/queries (same
    charge, same cache: the same question in SQL or JSON returns the same stored release)."""
    caller.require_project(body.project)
    return await _release(services, lambda: _sql_query(body, services), caller, idempotency_key)
