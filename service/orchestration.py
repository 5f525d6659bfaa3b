"""Preview and release: the query engine and the budget ledger composed, in the order of DESIGN.md §4.

Pure composition, no HTTP::

    visible? -> validate + cost (engine) -> permit (expiry, registers) -> cached? (free, at once)
             -> daily release limit -> rung (response_time) -> reserve_and_commit (ledger)
             -> cached / replayed: the stored release, free
             -> committed: execute + noise (engine, deadline from the rung)
                -> wait -> store_release or mark_failed (ledger) -> wait -> the release, at the rung

Validation errors cost nothing. Once the spend is committed there is no refund: if execution fails the
spend is marked failed and the caller gets one data-free error body, whatever the cause.

Everything before the spend depends only on the query text and public state (catalog, ledger) and
answers at once. From the spend on, the moment of every outcome is fixed by the rung chosen before
the spend: the release is stored (or the failure recorded) at ``commit_at`` and the answer returned at
``deadline``, so neither the response nor a repeated query can see a data-dependent moment. A result
that is not ready by ``commit_at`` is a failure (``missed_rung``), never a late success.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from budget_ledger import (
    BudgetExceeded,
    Ledger,
    LedgerError,
    PermitExpired,
    Project,
    RegisterNotPermitted,
    SpendResult,
    StoredRelease,
    UnknownProject,
)
from query_engine.errors import EngineError, QueryError
from query_engine.plan import Plan
from query_engine.spec import ProjectContext, Query

from .access_log import AccessLog
from .auth import Principal
from .engine_adapter import EngineLike, QueryCost, charge_of, cost_of
from .errors import DailyReleaseLimit, InProgress, ProjectNotFound, QueryFailed
from .preview_facts import fit_problem, preview_facts
from .response_time import ResponseTimeModel, Schedule
from .settings import DEFAULT_DATASET_PERSONS

__all__ = ["EXECUTION_FAILED_MESSAGE", "Orchestrator", "Outcome"]

log = logging.getLogger("sundstat.service")

EXECUTION_FAILED_MESSAGE = (
    "The query could not be executed. Its privacy loss stays charged (there are no refunds, so that "
    "failures reveal nothing). Try again later or simplify the query."
)

Kind = Literal["committed", "cached", "replayed"]


@dataclass(frozen=True)
class Outcome:
    """A release body, its JSON text (as stored and as sent to the analyst) and how it was obtained."""

    kind: Kind
    release: dict[str, Any]
    text: str


def release_text(body: dict[str, Any]) -> str:
    """The one serialisation of a release body: the text the ledger stores and the response sends."""
    return json.dumps(body, ensure_ascii=False, sort_keys=True, allow_nan=False)


def _served(kind: Kind, release: StoredRelease, project: Project) -> Outcome:
    """A stored release as returned again: ``cached: true`` and the project's budget now."""
    body: dict[str, Any] = json.loads(release.release_json)
    body["cached"] = True
    body["budget"] = project.status().to_public()
    return Outcome(kind, body, release_text(body))


def _context(project: Project) -> ProjectContext:
    return ProjectContext(mode=project.mode, delta_available=project.limits.delta_thresholding > 0)


class _MissedRung(Exception):
    """The result was ready after the moment it had to be stored: answered as a failure."""

    code = "missed_rung"


class Orchestrator:
    """Runs previews and releases for authenticated callers.

    ``timing`` fixes each fresh query's response time (None: answer when done); ``max_releases_per_day``
    limits a project's fresh releases per UTC day (0: no limit); ``declared_persons`` is the public
    population size previews compare expected intervals with (``service.preview_facts``).
    """

    def __init__(
        self,
        engine: EngineLike,
        ledger: Ledger,
        access: AccessLog | None = None,
        *,
        timing: ResponseTimeModel | None = None,
        max_releases_per_day: int = 0,
        declared_persons: int = DEFAULT_DATASET_PERSONS,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._access = access
        self._timing = timing
        self._max_releases_per_day = max_releases_per_day
        self._declared_persons = declared_persons

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

    def _refused(self, project: Project, principal: Principal, code: str, query_hash: str | None) -> None:
        self._record("query_refused", project.id, principal, code=code, query_hash=query_hash)

    def _check_release_limit(self, project: Project, query_hash: str) -> None:
        """Refuse a fresh release beyond the project's daily limit (counted from the ledger's spends).

        A query with a stored release (e.g. an Idempotency-Key retry) is served from it, not refused.
        """
        limit = self._max_releases_per_day
        if limit <= 0:
            return
        now = dt.datetime.now(dt.UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        used = self._ledger.spends_since(project.id, midnight)
        if used < limit or self._ledger.cached_release(project.id, query_hash) is not None:
            return
        resets = midnight + dt.timedelta(days=1)
        minutes = max(1, int((resets - now).total_seconds() // 60))
        raise DailyReleaseLimit(
            f"Project '{project.id}' has made {used} fresh releases today, its limit of {limit} per UTC day; "
            f"nothing was spent. The limit resets at {resets:%Y-%m-%d %H:%M} UTC (in {minutes // 60} h "
            f"{minutes % 60} min). A query released before is still answered free from its stored release.",
            retry_after=(resets - now).total_seconds(),
        )

    def _rung(self, plan: Plan | None) -> float | None:
        """The rung a fresh release of this plan answers at (None when response times are not fixed)."""
        if self._timing is None:
            return None
        return self._timing.rung(plan, self._engine.catalog)

    # --- preview --------------------------------------------------------------------------------

    def preview(self, query: Query, principal: Principal) -> dict[str, Any]:
        """Cost and expected accuracy of ``query``; touches no data and spends nothing."""
        project = self._visible_project(query.project, principal)
        context = _context(project)
        preview, engine_cost = self._engine.preview_and_cost(query, context)  # validated and planned once
        body: dict[str, Any] = preview.model_dump(mode="json")
        body["budget"] = project.status().to_public()
        cost = charge_of(query, engine_cost)
        plan = cost.engine_cost.plan
        body["response_seconds"] = self._rung(plan) if self._timing is not None else None
        cached = self._ledger.cached_release(project.id, cost.query_hash) is not None
        problem = None
        try:  # the run's checks in the run's order: the permit, then (unless cached) limit and budget
            project.check_permit(cost.registers, dt.datetime.now(dt.UTC).date())
            if not cached:
                self._check_release_limit(project, cost.query_hash)
                problem = fit_problem(project, self._ledger.register_caps(), cost.registers, cost.charge)
        except (PermitExpired, RegisterNotPermitted, DailyReleaseLimit) as exc:
            problem = exc.message
        body.update(
            preview_facts(
                body,
                plan,
                self._engine.catalog,
                declared_persons=self._declared_persons,
                charge=cost.charge,
                cached=cached,
                problem=problem,
            )
        )
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
            project.check_permit(cost.registers, dt.datetime.now(dt.UTC).date())
            if idempotency_key is None and (cached := self._cached(project.id, cost.query_hash)) is not None:
                stored, current = cached
                self._record(
                    "release_served", project.id, principal, release_id=stored.release_id, how="cached"
                )
                return _served("cached", stored, current)
            self._check_release_limit(project, cost.query_hash)
            rung = self._rung(cost.engine_cost.plan)
            schedule = None
            if self._timing is not None and rung is not None:  # the clock starts before the spend
                schedule = self._timing.schedule(rung, cost.engine_cost.plan)
            result = self._ledger.reserve_and_commit(
                project.id,
                cost.registers,
                cost.charge,
                cost.query_hash,
                cost.canonical_json,
                idempotency_key,
                actor=principal.actor,
            )
        except (PermitExpired, RegisterNotPermitted, BudgetExceeded, DailyReleaseLimit) as exc:
            self._refused(project, principal, exc.code, cost.query_hash)
            raise
        except LedgerError as exc:
            if exc.status == 403:
                self._refused(project, principal, exc.code, cost.query_hash)
            raise

        if result.status in ("cached", "replayed"):
            assert result.release is not None
            served = _served(result.status, result.release, result.project)
            self._record(
                "release_served",
                project.id,
                principal,
                release_id=result.release.release_id,
                how=result.status,
            )
            return served
        if result.status == "pending":
            raise InProgress(
                "The same query (or idempotency key) is still being executed in this project; retry in a "
                "moment to get its release."
            )
        if result.status == "failed":
            if schedule is not None:  # a retry of a failed query fails like the query did: at its rung
                schedule.wait_until(schedule.deadline)
            raise QueryFailed(EXECUTION_FAILED_MESSAGE)
        return self._execute(query, context, cost, result, principal, schedule)

    def _execute(
        self,
        query: Query,
        context: ProjectContext,
        cost: QueryCost,
        result: SpendResult,
        principal: Principal,
        schedule: Schedule | None,
    ) -> Outcome:
        """Execute a committed spend and store its release, each outcome at the schedule's moments."""
        spend_id = result.spend_id
        try:
            if schedule is None:
                fresh = self._engine.run(query, context, cost=cost.engine_cost)
            else:
                timeout = schedule.execute_timeout()
                if timeout <= 0:
                    raise _MissedRung("no time was left to execute")
                fresh = self._engine.run(query, context, cost=cost.engine_cost, timeout_s=timeout)
            body = fresh.model_dump(mode="json")
            release_id = str(body.get("release_id") or f"r_{secrets.token_hex(12)}")
            body["release_id"] = release_id
            body["cached"] = False
            body["budget"] = result.budget().to_public()
            release_json = release_text(body)
            if schedule is not None:
                if schedule.clock() > schedule.commit_at:
                    raise _MissedRung("the release was ready after its rung's commit moment")
                schedule.wait_until(schedule.commit_at)
            self._ledger.store_release(spend_id, release_id, release_json, actor=principal.actor)
        except Exception as exc:
            # Data-dependent failures must look alike: one code, one message, no detail from the data,
            # at the same moment as a success.
            code = exc.code if isinstance(exc, EngineError | LedgerError | _MissedRung) else "unexpected"
            log.warning("release of spend %s failed after the charge (%s)", spend_id, code)
            if schedule is not None:
                schedule.wait_until(schedule.commit_at)
            try:
                self._ledger.mark_failed(spend_id, code, actor=principal.actor)
            except LedgerError:
                log.exception("could not mark spend %s failed; it stays charged and pending", spend_id)
            self._answer_at_deadline(schedule, spend_id)
            raise QueryFailed(EXECUTION_FAILED_MESSAGE) from None
        self._answer_at_deadline(schedule, spend_id)
        return Outcome("committed", body, release_json)

    @staticmethod
    def _answer_at_deadline(schedule: Schedule | None, spend_id: str) -> None:
        if schedule is None:
            return
        schedule.wait_until(schedule.deadline)
        if (late := schedule.late()) > 0.05:
            log.warning("spend %s answered %.3f s after its %g s rung", spend_id, late, schedule.rung)
