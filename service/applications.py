"""Applications for a project: automatic approval for signed-in applicants, admin decisions.

An application from a signed-in applicant (an applicant token, see ``service.identity``) that is inside
the published policy (``service.approval_policy``) and within the applicant's and institution's quotas
and the pool (``service.approval_quota``) is approved at once: the project is created in the ledger
(pure mode when delta is 0, else zcdp) and an analyst token is returned once, in the response to the
submission. Anything else, and every anonymous application, waits for an administrator's decision, with
the reasons stored for the administrator. Every submission returns a secret status key with which the
applicant reads its status (an applicant token reads its own applications without one); an application
approved by an administrator hands out its token once, on the first read after the approval.

Submissions and decisions (with the time to decision) are recorded in the audit chain. The applicant's
name and e-mail are kept in the service database only, never in the append-only chain.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from budget_ledger import Ledger, ProjectSpec
from query_engine.suggest import did_you_mean

from .approval_policy import ANONYMOUS_REASON, ApprovalPolicy, Submission
from .approval_quota import ApprovalQuota, lock_quotas
from .errors import ApplicationNotFound, Conflict, InvalidRequest
from .identity import Applicant, IdentityRegistry
from .state import StateConnection, StateStore
from .tokens import TokenStore, hash_token, issue_audited, utcnow

__all__ = [
    "APPLICATION_DECIDED",
    "APPLICATION_SUBMITTED",
    "Application",
    "ApplicationDesk",
    "ApprovalPolicy",
    "ApprovalQuota",
    "Decision",
    "Submission",
    "SubmissionResult",
]

APPLICATION_SUBMITTED = "application_submitted"
APPLICATION_DECIDED = "application_decided"
Status = Literal["pending", "approved", "rejected"]
Route = Literal["auto", "admin"]


@dataclass(frozen=True)
class Decision:
    """An administrator's decision on a pending application."""

    decision: Literal["approve", "reject"]
    epsilon: float | None = None
    delta: float | None = None
    expires: dt.date | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Application:
    """An application as stored."""

    id: str
    submission: Submission
    status: Status
    submitted_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: str | None
    route: Route | None
    reason: str | None
    project: str | None
    granted_epsilon: float | None
    granted_delta: float | None
    expires: dt.date | None
    token_collected: bool
    applicant: str | None = None
    institution_id: str | None = None
    waiting_reasons: tuple[str, ...] = ()

    @property
    def decision_seconds(self) -> float | None:
        """Seconds from submission to decision."""
        if self.decided_at is None:
            return None
        return (self.decided_at - self.submitted_at).total_seconds()


@dataclass(frozen=True)
class SubmissionResult:
    """A new application, its secret status key, and for an automatic approval the analyst token."""

    application: Application
    status_key: str
    policy_reasons: tuple[str, ...]
    token: str | None


_COLUMNS = (
    "id, status_key_hash, body, status, submitted_at, decided_at, decided_by, route, reason, project, "
    "granted_epsilon, granted_delta, expires, token_collected, applicant, institution_id, waiting_reasons"
)


def _ts(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def _row_to_application(row: Any) -> Application:
    submitted = _ts(row["submitted_at"])
    assert submitted is not None
    return Application(
        id=row["id"],
        submission=Submission.from_json(json.loads(row["body"])),
        status=row["status"],
        submitted_at=submitted,
        decided_at=_ts(row["decided_at"]),
        decided_by=row["decided_by"],
        route=row["route"],
        reason=row["reason"],
        project=row["project"],
        granted_epsilon=row["granted_epsilon"],
        granted_delta=row["granted_delta"],
        expires=None if row["expires"] is None else dt.date.fromisoformat(row["expires"]),
        token_collected=bool(row["token_collected"]),
        applicant=row["applicant"],
        institution_id=row["institution_id"],
        waiting_reasons=tuple(json.loads(row["waiting_reasons"] or "[]")),
    )


def _project_id(title: str) -> str:
    """A readable, unique-enough project id from the title, e.g. ``diabetes-in-jutland-3f9a``."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].strip("-") or "project"
    return f"{slug}-{secrets.token_hex(3)}"


def _spec(sub: Submission, *, epsilon: float, delta: float, expires: dt.date) -> ProjectSpec:
    """The project an approval of ``sub`` creates."""
    return ProjectSpec(
        id=_project_id(sub.title),
        title=sub.title,
        purpose=sub.purpose,
        registers=sub.registers,
        mode="pure" if delta == 0 else "zcdp",
        epsilon=epsilon,
        delta=delta,
        institution=sub.institution,
        summary=sub.summary,
        expires=expires,
    )


def _claim(
    conn: StateConnection,
    app_id: str,
    status: Status,
    route: Route,
    actor: str,
    *,
    reason: str | None = None,
    project: str | None = None,
    epsilon: float | None = None,
    delta: float | None = None,
    expires: dt.date | None = None,
    token_collected: bool = False,
) -> None:
    """Record a decision on a still-pending application inside ``conn``'s transaction; ``Conflict`` if
    another decision came first."""
    changed = conn.execute(
        "UPDATE applications SET status = ?, decided_at = ?, decided_by = ?, route = ?, reason = ?, "
        "project = ?, granted_epsilon = ?, granted_delta = ?, expires = ?, token_collected = ? "
        "WHERE id = ? AND status = 'pending'",
        (
            status,
            utcnow().isoformat(),
            actor,
            route,
            reason,
            project,
            epsilon,
            delta,
            None if expires is None else expires.isoformat(),
            int(token_collected),
            app_id,
        ),
    ).rowcount
    if changed != 1:
        raise Conflict(f"Application '{app_id}' was decided meanwhile; a decision cannot be changed.")
    if status == "approved" and project is not None:
        # The application is the project's permit (service.permits); the id is unique, so never taken.
        conn.execute(
            "INSERT INTO project_permits (project, permit_id, created_at, created_by) VALUES (?, ?, ?, ?)",
            (project, app_id, utcnow().isoformat(timespec="seconds"), actor),
        )


class ApplicationDesk:
    """Submit, decide and read applications; creates projects and tokens through the ledger."""

    def __init__(
        self,
        store: StateStore,
        ledger: Ledger,
        tokens: TokenStore,
        policy: ApprovalPolicy,
        known_registers: Sequence[str],
        *,
        token_ttl: dt.timedelta,
        quota: ApprovalQuota | None = None,
        identity: IdentityRegistry | None = None,
        absent_registers: Sequence[str] = (),
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._tokens = tokens
        self.policy = policy
        self.quota = quota or ApprovalQuota.defaults()
        self._identity = identity or IdentityRegistry(store)
        self._known_registers = tuple(known_registers)
        self._absent_registers = tuple(absent_registers)  # declared by the catalog, not loaded here
        self._token_ttl = token_ttl

    # --- submission -----------------------------------------------------------------------------

    def check_registers(self, registers: Sequence[str]) -> None:
        """Raise ``InvalidRequest`` (with a did-you-mean) for a register the catalog does not have."""
        for name in registers:
            if name in self._absent_registers:
                raise InvalidRequest(
                    f"Register '{name}' is not loaded in this installation; loaded: "
                    f"{', '.join(self._known_registers)}. Apply for the loaded registers only."
                )
            if name not in self._known_registers:
                hint = did_you_mean(name, self._known_registers, limit=1)
                raise InvalidRequest(
                    f"Unknown register '{name}'.{hint} Registers: {', '.join(self._known_registers)}."
                )

    def submit(
        self,
        submission: Submission,
        *,
        actor: str,
        applicant: Applicant | None = None,
        now: dt.datetime | None = None,
    ) -> SubmissionResult:
        """File an application; approve it at once when a signed-in applicant asks within the policy
        and the quotas, else keep the reasons it waits for an administrator."""
        self.check_registers(submission.registers)
        now = now or utcnow()
        institution_id: str | None = None
        if applicant is not None:
            # The account, not the form, says who applies and for which institution.
            institution = self._identity.institution(applicant.institution)
            institution_id = institution.id
            submission = replace(
                submission,
                institution=institution.name,
                applicant_name=applicant.name,
                applicant_email=applicant.email,
            )
        app_id = "app_" + secrets.token_hex(8)
        status_key = "sak_" + secrets.token_urlsafe(24)
        reasons = self.policy.outside(submission)
        if applicant is None:
            reasons.append(ANONYMOUS_REASON)
        expires = (now + dt.timedelta(days=submission.duration_days)).date()
        spec = _spec(submission, epsilon=submission.epsilon, delta=submission.delta, expires=expires)
        with self._store.write() as conn:
            if applicant is not None and institution_id is not None and not reasons:
                lock_quotas(conn, self._store.dialect)
                reasons = self.quota.reasons(
                    conn, now, applicant=applicant.id, institution=institution_id, epsilon=submission.epsilon
                )
            conn.execute(
                f"INSERT INTO applications ({_COLUMNS}) VALUES (?, ?, ?, 'pending', ?, NULL, NULL, NULL, "
                "NULL, NULL, NULL, NULL, NULL, 0, ?, ?, ?)",
                (
                    app_id,
                    hash_token(status_key),
                    json.dumps(submission.to_json()),
                    now.isoformat(),
                    None if applicant is None else applicant.id,
                    institution_id,
                    json.dumps(reasons),
                ),
            )
            if not reasons:
                # Claimed in the transaction that checked the quotas: no other worker can take them too.
                _claim(
                    conn,
                    app_id,
                    "approved",
                    "auto",
                    "policy",
                    project=spec.id,
                    epsilon=submission.epsilon,
                    delta=submission.delta,
                    expires=expires,
                    token_collected=True,
                )
        approved = not reasons
        event = {
            "application": app_id,
            "title": submission.title,
            "purpose": submission.purpose,
            "institution": submission.institution,
            "institution_id": institution_id,
            "applicant": None if applicant is None else applicant.id,
            "registers": sorted(submission.registers),
            "epsilon": submission.epsilon,
            "delta": submission.delta,
            "duration_days": submission.duration_days,
        }
        try:
            self._ledger.append_event(APPLICATION_SUBMITTED, event, actor)
            if approved:
                self._ledger.create_project(spec, actor="policy")
        except Exception as exc:
            if approved:  # the claim stands for nothing: give it back to an administrator
                self._reopen(app_id, _ledger_refused(exc))
            raise
        token: str | None = None
        if approved:
            self._audit_decision(self.get(app_id), "policy")
            token = self._issue_token(app_id, spec.id, "policy")
        return SubmissionResult(self.get(app_id), status_key, tuple(reasons), token)

    # --- decisions ------------------------------------------------------------------------------

    def decide(self, app_id: str, decision: Decision, *, actor: str) -> Application:
        """An administrator approves (with a budget) or rejects a pending application."""
        application = self.get(app_id)
        if application.status != "pending":
            raise Conflict(
                f"Application '{app_id}' was already {application.status}; a decision cannot be changed."
            )
        if decision.decision == "reject":
            if not decision.reason or not decision.reason.strip():
                raise InvalidRequest("A rejection needs a reason the applicant can read.")
            self._record_decision(app_id, "rejected", "admin", actor, reason=decision.reason)
            return self.get(app_id)
        sub = application.submission
        epsilon = sub.epsilon if decision.epsilon is None else decision.epsilon
        delta = sub.delta if decision.delta is None else decision.delta
        expires = decision.expires or (utcnow() + dt.timedelta(days=sub.duration_days)).date()
        self._approve(
            app_id, sub, epsilon=epsilon, delta=delta, expires=expires, actor=actor, reason=decision.reason
        )
        return self.get(app_id)

    def _approve(
        self,
        app_id: str,
        sub: Submission,
        *,
        epsilon: float,
        delta: float,
        expires: dt.date,
        actor: str,
        reason: str | None = None,
    ) -> None:
        """Claim an administrator's approval, then create the project (the token waits for the applicant)."""
        spec = _spec(sub, epsilon=epsilon, delta=delta, expires=expires)
        # The decision is claimed first, so two administrators deciding at once create one project.
        self._record_decision(
            app_id,
            "approved",
            "admin",
            actor,
            reason=reason,
            project=spec.id,
            epsilon=epsilon,
            delta=delta,
            expires=expires,
            audit=False,
        )
        self._create_project(app_id, spec, actor=actor)

    def _create_project(self, app_id: str, spec: ProjectSpec, *, actor: str) -> None:
        """Create the claimed application's project (reopening it if the ledger refuses) and chain the
        decision."""
        try:
            self._ledger.create_project(spec, actor=actor)
        except Exception as exc:
            self._reopen(app_id, _ledger_refused(exc))
            raise
        self._audit_decision(self.get(app_id), actor)

    def _issue_token(self, app_id: str, project: str, actor: str) -> str:
        issued = issue_audited(
            self._tokens,
            self._ledger,
            "analyst",
            name=f"applicant:{app_id}",
            project=project,
            ttl=self._token_ttl,
            actor=actor,
        )
        return issued.token

    def _record_decision(
        self,
        app_id: str,
        status: Status,
        route: Route,
        actor: str,
        *,
        audit: bool = True,
        **decision: Any,
    ) -> None:
        """Claim a decision on a pending application in its own transaction (see :func:`_claim`)."""
        with self._store.write() as conn:
            _claim(conn, app_id, status, route, actor, **decision)
        if audit:
            self._audit_decision(self.get(app_id), actor)

    def _reopen(self, app_id: str, why: str) -> None:
        """Put a claimed application back to pending (its project could not be created), saying why."""
        with self._store.write() as conn:
            row = conn.execute("SELECT waiting_reasons FROM applications WHERE id = ?", (app_id,)).fetchone()
            reasons = [*json.loads(row["waiting_reasons"] or "[]"), why]
            conn.execute(
                "UPDATE applications SET status = 'pending', decided_at = NULL, decided_by = NULL, "
                "route = NULL, reason = NULL, project = NULL, granted_epsilon = NULL, granted_delta = NULL, "
                "expires = NULL, token_collected = 0, waiting_reasons = ? WHERE id = ?",
                (json.dumps(reasons), app_id),
            )
            conn.execute("DELETE FROM project_permits WHERE permit_id = ?", (app_id,))

    def _audit_decision(self, application: Application, actor: str) -> None:
        self._ledger.append_event(
            APPLICATION_DECIDED,
            {
                "application": application.id,
                "decision": application.status,
                "route": application.route,
                "project": application.project,
                "epsilon": application.granted_epsilon,
                "delta": application.granted_delta,
                "expires": None if application.expires is None else application.expires.isoformat(),
                "decision_seconds": application.decision_seconds,
                "reason": application.reason,
            },
            actor,
        )

    # --- reading --------------------------------------------------------------------------------

    def get(self, app_id: str) -> Application:
        """An application by id (administrators; applicants go through :meth:`read`)."""
        row = (
            self._store.read()
            .execute(f"SELECT {_COLUMNS} FROM applications WHERE id = ?", (app_id,))
            .fetchone()
        )
        if row is None:
            raise ApplicationNotFound(_not_found(app_id))
        return _row_to_application(row)

    def read(
        self, app_id: str, status_key: str | None, *, is_admin: bool, applicant: str | None = None
    ) -> tuple[Application, str | None]:
        """The application for its applicant (status key, or the applicant token that filed it) or an
        administrator.

        Returns the analyst token once, on the first read by the applicant after an administrator
        approved the application.
        """
        row = (
            self._store.read()
            .execute("SELECT status_key_hash, applicant FROM applications WHERE id = ?", (app_id,))
            .fetchone()
        )
        key_ok = row is not None and (
            (status_key is not None and hmac.compare_digest(row["status_key_hash"], hash_token(status_key)))
            or (applicant is not None and row["applicant"] == applicant)
        )
        if row is None or not (key_ok or is_admin):
            raise ApplicationNotFound(_not_found(app_id))
        application = self.get(app_id)
        if not key_ok or application.status != "approved" or application.token_collected:
            return application, None
        with self._store.write() as conn:
            claimed = conn.execute(
                "UPDATE applications SET token_collected = 1 WHERE id = ? AND token_collected = 0", (app_id,)
            ).rowcount
        if claimed != 1:
            return self.get(app_id), None
        assert application.project is not None
        return self.get(app_id), self._issue_token(app_id, application.project, "applicant")

    def list(self, *, status: Status | None = None, applicant: str | None = None) -> list[Application]:
        """Applications, newest first, optionally only those with ``status`` or of one applicant."""
        conditions: list[str] = []
        params: list[str] = []
        if status is not None:
            conditions.append("status = ?")
            params.append(status)
        if applicant is not None:
            conditions.append("applicant = ?")
            params.append(applicant)
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        rows = (
            self._store.read()
            .execute(f"SELECT {_COLUMNS} FROM applications {where}ORDER BY submitted_at DESC, id", params)
            .fetchall()
        )
        return [_row_to_application(r) for r in rows]

    def by_project(self) -> dict[str, Application]:
        """Approved applications keyed by the project they created."""
        rows = (
            self._store.read()
            .execute(f"SELECT {_COLUMNS} FROM applications WHERE project IS NOT NULL")
            .fetchall()
        )
        return {r["project"]: _row_to_application(r) for r in rows}


def _ledger_refused(exc: Exception) -> str:
    code = getattr(exc, "code", None) or type(exc).__name__
    return f"The ledger could not record the approval ({code}); an administrator decides."


def _not_found(app_id: str) -> str:
    return (
        f"No application '{app_id}' with this status key. Send the key you received at submission in the "
        "X-Status-Key header."
    )
