"""Preview and release: the query engine and the budget ledger composed, in the order of DESIGN.md §4.

Pure composition, no HTTP::

    visible? -> validate + cost (engine) -> permit (expiry, registers) -> reserve_and_commit (ledger)
             -> cached / replayed: the stored release, free
             -> committed: execute + noise (engine) -> store_release (ledger) -> the release

Validation errors cost nothing. Once the spend is committed there is no refund: if execution fails the
spend is marked failed and the caller gets one data-free error body, whatever the cause.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from budget_ledger import BudgetExceeded, Ledger, LedgerError, Project, StoredRelease, UnknownProject
from budget_ledger.accounting import budget_status
from query_engine.errors import EngineError, QueryError
from query_engine.spec import ProjectContext, Query

from .access_log import AccessLog
from .auth import Principal
from .engine_adapter import EngineLike, QueryCost, cost_of
from .errors import InProgress, PermitExpired, ProjectNotFound, QueryFailed, RegisterNotPermitted

__all__ = ["EXECUTION_FAILED_MESSAGE", "Orchestrator", "Outcome"]

log = logging.getLogger("sundstat.service")

EXECUTION_FAILED_MESSAGE = (
    "The query could not be executed. Its privacy loss stays charged (there are no refunds, so that "
    "failures reveal nothing). Try again later or simplify the query."
)

Kind = Literal["committed", "cached", "replayed"]


@dataclass(frozen=True)
class Outcome:
    """A release body (as returned to the analyst) and how it was obtained."""

    kind: Kind
    release: dict[str, Any]


def _served(release: StoredRelease, project: Project) -> dict[str, Any]:
    """A stored release as returned again: ``cached: true`` and the project's budget now."""
    body: dict[str, Any] = json.loads(release.release_json)
    body["cached"] = True
    body["budget"] = budget_status(project.id, project.limits, project.totals).to_public()
    return body


def _context(project: Project) -> ProjectContext:
    return ProjectContext(mode=project.mode, delta_available=project.limits.delta_thresholding > 0)


class Orchestrator:
    """Runs previews and releases for authenticated callers."""

    def __init__(self, engine: EngineLike, ledger: Ledger, access: AccessLog | None = None) -> None:
        self._engine = engine
        self._ledger = ledger
        self._access = access

    def _record(self, kind: str, project: str, principal: Principal, **details: Any) -> None:
        """An access record (refusal, preview, cached serve) for the audit chain, if recording is on."""
        if self._access is not None:
            self._access.record(kind, project, principal.actor, **details)

    # --- shared steps ---------------------------------------------------------------------------

    def _visible_project(self, project_id: str, principal: Principal) -> Project:
        principal.require_project(project_id)
        try:
            return self._ledger.get_project(project_id)
        except UnknownProject:
            # An administrator asking for an unknown project: the same code as "not visible".
            raise ProjectNotFound(
                f"There is no project '{project_id}'. Check the id (it is case-sensitive)."
            ) from None

    @staticmethod
    def _check_permit(project: Project, cost: QueryCost, today: dt.date) -> None:
        if project.expires is not None and today > project.expires:
            raise PermitExpired(
                f"The permit of project '{project.id}' ended on {project.expires.isoformat()}; it can no "
                "longer spend budget. Its stored releases stay available; ask an administrator for an "
                "extension."
            )
        outside = sorted(set(cost.registers) - set(project.registers))
        if outside:
            raise RegisterNotPermitted(
                f"The query touches register(s) {', '.join(outside)}, but project '{project.id}' is approved "
                f"only for {', '.join(project.registers)}. Apply for a project that includes them."
            )

    def _refused(self, project: Project, principal: Principal, code: str, query_hash: str | None) -> None:
        self._record("query_refused", project.id, principal, code=code, query_hash=query_hash)

    # --- preview --------------------------------------------------------------------------------

    def preview(self, query: Query, principal: Principal) -> dict[str, Any]:
        """Cost and expected accuracy of ``query``; touches no data and spends nothing."""
        project = self._visible_project(query.project, principal)
        preview = self._engine.preview(query, _context(project))
        body: dict[str, Any] = preview.model_dump(mode="json")
        body["budget"] = budget_status(project.id, project.limits, project.totals).to_public()
        self._record("query_previewed", project.id, principal, query_hash=query.query_hash())
        return body

    # --- release --------------------------------------------------------------------------------

    def _cached(self, project_id: str, query_hash: str) -> tuple[StoredRelease, Project] | None:
        """The stored release of this query and the project as it is now, without the write lock.

        ``Ledger.cached_release`` reads a snapshot; ``reserve_and_commit`` would return the same
        release (its ``cached`` case). The project is read after the release, so the budget shown
        includes the spend that paid for it.
        """
        release = self._ledger.cached_release(project_id, query_hash)
        if release is None:
            return None
        return release, self._ledger.get_project(project_id)

    def run(self, query: Query, principal: Principal, idempotency_key: str | None = None) -> dict[str, Any]:
        """Charge, execute and return the release of ``query`` (a stored one when cached or replayed)."""
        return self.run_outcome(query, principal, idempotency_key).release

    def run_outcome(self, query: Query, principal: Principal, idempotency_key: str | None = None) -> Outcome:
        """Like :meth:`run`, also saying whether the release was fresh, cached or replayed."""
        project = self._visible_project(query.project, principal)
        context = _context(project)
        try:
            cost = cost_of(self._engine, query, context)
        except QueryError as exc:
            self._refused(project, principal, exc.code, None)
            raise
        try:
            self._check_permit(project, cost, dt.datetime.now(dt.UTC).date())
            if idempotency_key is None and (cached := self._cached(project.id, cost.query_hash)) is not None:
                stored, current = cached
                self._record(
                    "release_served", project.id, principal, release_id=stored.release_id, how="cached"
                )
                return Outcome("cached", _served(stored, current))
            result = self._ledger.reserve_and_commit(
                project.id,
                cost.registers,
                cost.charge,
                cost.query_hash,
                cost.canonical_json,
                idempotency_key,
                actor=principal.actor,
            )
        except (PermitExpired, RegisterNotPermitted, BudgetExceeded) as exc:
            self._refused(project, principal, exc.code, cost.query_hash)
            raise
        except LedgerError as exc:
            if exc.status == 403:
                self._refused(project, principal, exc.code, cost.query_hash)
            raise

        if result.status in ("cached", "replayed"):
            assert result.release is not None
            body = _served(result.release, result.project)
            self._record(
                "release_served",
                project.id,
                principal,
                release_id=result.release.release_id,
                how=result.status,
            )
            return Outcome(result.status, body)
        if result.status == "pending":
            raise InProgress(
                "The same query (or idempotency key) is still being executed in this project; retry in a "
                "moment to get its release."
            )
        if result.status == "failed":
            raise QueryFailed(EXECUTION_FAILED_MESSAGE)

        spend_id = result.spend_id
        try:
            fresh = self._engine.run(query, context, cost=cost.engine_cost)
            body = fresh.model_dump(mode="json")
            release_id = str(body.get("release_id") or f"r_{secrets.token_hex(12)}")
            body["release_id"] = release_id
            body["cached"] = False
            body["budget"] = result.budget().to_public()
            self._ledger.store_release(
                spend_id,
                release_id,
                json.dumps(body, ensure_ascii=False, sort_keys=True),
                actor=principal.actor,
            )
        except Exception as exc:
            # Data-dependent failures must look alike: one code, one message, no detail from the data.
            code = exc.code if isinstance(exc, EngineError | LedgerError) else "unexpected"
            log.warning("release of spend %s failed after the charge (%s)", spend_id, code)
            try:
                self._ledger.mark_failed(spend_id, code, actor=principal.actor)
            except LedgerError:
                log.exception("could not mark spend %s failed; it stays charged and pending", spend_id)
            raise QueryFailed(EXECUTION_FAILED_MESSAGE) from None
        return Outcome("committed", body)
