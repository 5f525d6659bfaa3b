"""Applications for a project: a published approval policy, automatic approval, admin decisions.

An application inside the policy (purpose, registers, epsilon, delta and duration all within the
published limits) is approved at once: the project is created in the ledger (pure mode when delta is 0,
else zcdp) and an analyst token is returned once, in the response to the submission. Anything else waits
for an administrator's decision. Applicants need no account: the submission returns a secret status key
with which they read their application's status; an application approved by an administrator hands out
its token once, on the first read after the approval.

Submissions and decisions (with the time to decision) are recorded in the audit chain. The applicant's
name and e-mail are kept in the service database only, never in the append-only chain.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from budget_ledger import Ledger, ProjectSpec

from .errors import ApplicationNotFound, Conflict, InvalidRequest
from .settings import EHDS_PURPOSES, Settings
from .state import StateStore
from .tokens import TokenStore, hash_token, issue_audited, utcnow

__all__ = [
    "APPLICATION_DECIDED",
    "APPLICATION_SUBMITTED",
    "Application",
    "ApplicationDesk",
    "ApprovalPolicy",
    "Decision",
    "Submission",
    "SubmissionResult",
]

APPLICATION_SUBMITTED = "application_submitted"
APPLICATION_DECIDED = "application_decided"
Status = Literal["pending", "approved", "rejected"]
Route = Literal["auto", "admin"]


@dataclass(frozen=True)
class Submission:
    """What an applicant asks for (already shape-checked by the HTTP schema)."""

    title: str
    purpose: str
    institution: str
    summary: str
    registers: tuple[str, ...]
    epsilon: float
    delta: float
    duration_days: int
    applicant_name: str
    applicant_email: str

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "title": self.title,
            "purpose": self.purpose,
            "institution": self.institution,
            "summary": self.summary,
            "registers": list(self.registers),
            "epsilon": self.epsilon,
            "delta": self.delta,
            "duration_days": self.duration_days,
            "applicant": {"name": self.applicant_name, "email": self.applicant_email},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Submission:
        """Inverse of :meth:`to_json`."""
        return cls(
            title=data["title"],
            purpose=data["purpose"],
            institution=data["institution"],
            summary=data["summary"],
            registers=tuple(data["registers"]),
            epsilon=float(data["epsilon"]),
            delta=float(data["delta"]),
            duration_days=int(data["duration_days"]),
            applicant_name=data["applicant"]["name"],
            applicant_email=data["applicant"]["email"],
        )


@dataclass(frozen=True)
class ApprovalPolicy:
    """The published limits within which applications are approved automatically."""

    max_epsilon: float
    max_delta: float
    max_duration_days: int
    allowed_registers: tuple[str, ...]
    allowed_purposes: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ApprovalPolicy:
        """The policy configured by the ``SUNDSTAT_POLICY_*`` settings."""
        return cls(
            max_epsilon=settings.policy_max_epsilon,
            max_delta=settings.policy_max_delta,
            max_duration_days=settings.policy_max_duration_days,
            allowed_registers=tuple(settings.policy_allowed_registers),
            allowed_purposes=tuple(settings.policy_allowed_purposes),
        )

    def outside(self, submission: Submission) -> list[str]:
        """Every way ``submission`` falls outside the policy (empty: approve automatically)."""
        reasons: list[str] = []
        if submission.purpose not in self.allowed_purposes:
            reasons.append(
                f"Purpose '{submission.purpose}' is decided by an administrator (automatic: "
                f"{', '.join(self.allowed_purposes) or 'none'})."
            )
        extra = sorted(set(submission.registers) - set(self.allowed_registers))
        if extra:
            reasons.append(f"Register(s) {', '.join(extra)} are decided by an administrator.")
        if submission.epsilon > self.max_epsilon:
            reasons.append(
                f"Epsilon {submission.epsilon:g} is above the automatic limit {self.max_epsilon:g}."
            )
        if submission.delta > self.max_delta:
            reasons.append(f"Delta {submission.delta:g} is above the automatic limit {self.max_delta:g}.")
        if submission.duration_days > self.max_duration_days:
            reasons.append(
                f"{submission.duration_days} days is longer than the automatic limit of "
                f"{self.max_duration_days} days."
            )
        return reasons

    def to_json(self) -> dict[str, Any]:
        """The policy as published at ``GET /v1/applications/policy``."""
        return {
            "max_epsilon": self.max_epsilon,
            "max_delta": self.max_delta,
            "max_duration_days": self.max_duration_days,
            "allowed_registers": list(self.allowed_registers),
            "allowed_purposes": list(self.allowed_purposes),
            "purposes": list(EHDS_PURPOSES),
            "mode": "pure when delta is 0, else zcdp",
        }


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
    "granted_epsilon, granted_delta, expires, token_collected"
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
    )


def _project_id(title: str) -> str:
    """A readable, unique-enough project id from the title, e.g. ``diabetes-in-jutland-3f9a``."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].strip("-") or "project"
    return f"{slug}-{secrets.token_hex(3)}"


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
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._tokens = tokens
        self.policy = policy
        self._known_registers = tuple(known_registers)
        self._token_ttl = token_ttl

    # --- submission -----------------------------------------------------------------------------

    def check_registers(self, registers: Sequence[str]) -> None:
        """Raise ``InvalidRequest`` (with a did-you-mean) for a register the catalog does not have."""
        for name in registers:
            if name not in self._known_registers:
                close = difflib.get_close_matches(name, self._known_registers, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise InvalidRequest(
                    f"Unknown register '{name}'.{hint} Registers: {', '.join(self._known_registers)}."
                )

    def submit(
        self, submission: Submission, *, actor: str, now: dt.datetime | None = None
    ) -> SubmissionResult:
        """File an application; approve it at once when it is inside the policy."""
        self.check_registers(submission.registers)
        now = now or utcnow()
        app_id = "app_" + secrets.token_hex(8)
        status_key = "sak_" + secrets.token_urlsafe(24)
        with self._store.write() as conn:
            conn.execute(
                f"INSERT INTO applications ({_COLUMNS}) VALUES (?, ?, ?, 'pending', ?, NULL, NULL, NULL, "
                "NULL, NULL, NULL, NULL, NULL, 0)",
                (app_id, hash_token(status_key), json.dumps(submission.to_json()), now.isoformat()),
            )
        self._ledger.append_event(
            APPLICATION_SUBMITTED,
            {
                "application": app_id,
                "title": submission.title,
                "purpose": submission.purpose,
                "institution": submission.institution,
                "registers": sorted(submission.registers),
                "epsilon": submission.epsilon,
                "delta": submission.delta,
                "duration_days": submission.duration_days,
            },
            actor,
        )
        reasons = self.policy.outside(submission)
        token: str | None = None
        if not reasons:
            expires = (now + dt.timedelta(days=submission.duration_days)).date()
            token = self._approve(
                app_id,
                submission,
                epsilon=submission.epsilon,
                delta=submission.delta,
                expires=expires,
                route="auto",
                actor="policy",
                issue_token=True,
            )
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
            app_id,
            sub,
            epsilon=epsilon,
            delta=delta,
            expires=expires,
            route="admin",
            actor=actor,
            issue_token=False,
            reason=decision.reason,
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
        route: Route,
        actor: str,
        issue_token: bool,
        reason: str | None = None,
    ) -> str | None:
        """Create the project, record the decision, and (automatic route) issue the token."""
        spec = ProjectSpec(
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
        # The decision is claimed first, so two administrators deciding at once create one project.
        self._record_decision(
            app_id,
            "approved",
            route,
            actor,
            reason=reason,
            project=spec.id,
            epsilon=epsilon,
            delta=delta,
            expires=expires,
            token_collected=issue_token,
            audit=False,
        )
        try:
            self._ledger.create_project(spec, actor=actor)
        except Exception:
            self._reopen(app_id)
            raise
        self._audit_decision(self.get(app_id), actor)
        if not issue_token:
            return None
        return self._issue_token(app_id, spec.id, actor)

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
        reason: str | None = None,
        project: str | None = None,
        epsilon: float | None = None,
        delta: float | None = None,
        expires: dt.date | None = None,
        token_collected: bool = False,
        audit: bool = True,
    ) -> None:
        now = utcnow()
        with self._store.write() as conn:
            changed = conn.execute(
                "UPDATE applications SET status = ?, decided_at = ?, decided_by = ?, route = ?, reason = ?, "
                "project = ?, granted_epsilon = ?, granted_delta = ?, expires = ?, token_collected = ? "
                "WHERE id = ? AND status = 'pending'",
                (
                    status,
                    now.isoformat(),
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
        if audit:
            self._audit_decision(self.get(app_id), actor)

    def _reopen(self, app_id: str) -> None:
        with self._store.write() as conn:
            conn.execute(
                "UPDATE applications SET status = 'pending', decided_at = NULL, decided_by = NULL, "
                "route = NULL, reason = NULL, project = NULL, granted_epsilon = NULL, granted_delta = NULL, "
                "expires = NULL, token_collected = 0 WHERE id = ?",
                (app_id,),
            )

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

    def read(self, app_id: str, status_key: str | None, *, is_admin: bool) -> tuple[Application, str | None]:
        """The application for its applicant (status key) or an administrator.

        Returns the analyst token once, on the first read by the applicant after an administrator
        approved the application.
        """
        row = (
            self._store.read()
            .execute("SELECT status_key_hash FROM applications WHERE id = ?", (app_id,))
            .fetchone()
        )
        key_ok = (
            row is not None
            and status_key is not None
            and hmac.compare_digest(row["status_key_hash"], hash_token(status_key))
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

    def list(self, *, status: Status | None = None) -> list[Application]:
        """Applications, newest first, optionally only those with ``status``."""
        conn = self._store.read()
        if status is None:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM applications ORDER BY submitted_at DESC, id"
            ).fetchall()
        else:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM applications WHERE status = ? ORDER BY submitted_at DESC, id",
                (status,),
            ).fetchall()
        return [_row_to_application(r) for r in rows]

    def by_project(self) -> dict[str, Application]:
        """Approved applications keyed by the project they created."""
        rows = (
            self._store.read()
            .execute(f"SELECT {_COLUMNS} FROM applications WHERE project IS NOT NULL")
            .fetchall()
        )
        return {r["project"]: _row_to_application(r) for r in rows}


def _not_found(app_id: str) -> str:
    return (
        f"No application '{app_id}' with this status key. Send the key you received at submission in the "
        "X-Status-Key header."
    )
