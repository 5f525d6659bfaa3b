"""Conversions from domain records to the public response bodies."""

from __future__ import annotations

import datetime as dt
from typing import Any

from budget_ledger import BudgetStatus, Ledger, Project, RegisterStatus, VerifyReport

from .applications import Application, ApplicationDesk, Submission
from .permits import PermitRegistry
from .schemas import (
    ApplicationPublic,
    BudgetPublic,
    ProjectPublic,
    RegisterCapPublic,
    TokenIssuedPublic,
    TokenPublic,
    TransparencyProjectPublic,
    VerifyPublic,
)
from .tokens import IssuedToken, TokenRecord, TokenStore, utcnow

__all__ = [
    "POPULATION_PROMISE",
    "application_public",
    "budget_public",
    "project_public",
    "register_public",
    "token_issued_public",
    "token_public",
    "transparency_projects",
    "verify_public",
]


def budget_public(status: BudgetStatus) -> BudgetPublic:
    """A budget status as the contract's floats."""
    return BudgetPublic.model_validate(status.to_public())


def _about(subject: Project | Submission) -> dict[str, Any]:
    """What a project or an application is about: title, purpose, institution, summary, registers."""
    return {
        "title": subject.title,
        "purpose": subject.purpose,
        "institution": subject.institution,
        "summary": subject.summary,
        "registers": list(subject.registers),
    }


def _permit(project: Project) -> dict[str, Any]:
    """A project's permit, the fields every public view of a project starts with."""
    return {
        "id": project.id,
        **_about(project),
        "mode": project.mode,
        "expires": project.expires,
        "created_at": project.created_at,
    }


def project_public(project: Project, status: BudgetStatus) -> ProjectPublic:
    """A project with its budget."""
    return ProjectPublic(**_permit(project), budget=budget_public(status))


POPULATION_PROMISE = (
    "Each register has a cap on the total privacy loss of the people in it, summed over every query of "
    "every project for the life of the database. A query that would go over a register's cap is refused "
    "and costs nothing; only an administrator can change a cap, with a reason recorded in the audit "
    "chain. A cap set as epsilon (delta 0) bounds the sum of the pure epsilon of every query; a cap set "
    "as (epsilon, delta) means the whole history of releases together is (epsilon, delta)-differentially "
    "private for each person. Each register's 'promise' says what its cap is and how much of it is spent."
)


def register_public(status: RegisterStatus) -> RegisterCapPublic:
    """A register's borne loss and cap."""
    return RegisterCapPublic.model_validate(status.to_public())


def verify_public(report: VerifyReport) -> VerifyPublic:
    """The outcome of verifying the ledger and its audit chain."""
    return VerifyPublic.model_validate(report, from_attributes=True)


def token_public(record: TokenRecord, now: dt.datetime | None = None) -> TokenPublic:
    """A token record (never the token)."""
    return TokenPublic(
        id=record.id,
        prefix=record.prefix,
        role=record.role,
        project=record.project,
        applicant=record.applicant,
        name=record.name,
        created_at=record.created_at,
        created_by=record.created_by,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
        active=record.is_active(now or utcnow()),
    )


def token_issued_public(issued: IssuedToken) -> TokenIssuedPublic:
    """A new token with its secret, shown once."""
    return TokenIssuedPublic(**token_public(issued.record).model_dump(), token=issued.token)


def application_public(
    app: Application, *, token: str | None = None, for_admin: bool = False
) -> ApplicationPublic:
    """An application's state; the applicant's contact details only for administrators."""
    sub = app.submission
    return ApplicationPublic(
        id=app.id,
        status=app.status,
        **_about(sub),
        epsilon=sub.epsilon,
        delta=sub.delta,
        duration_days=sub.duration_days,
        submitted_at=app.submitted_at,
        decided_at=app.decided_at,
        decision_seconds=app.decision_seconds,
        route=app.route,
        reason=app.reason,
        project=app.project,
        granted_epsilon=app.granted_epsilon,
        granted_delta=app.granted_delta,
        expires=app.expires,
        applicant={"name": sub.applicant_name, "email": sub.applicant_email} if for_admin else None,
        token=token,
        applicant_id=app.applicant,
        institution_id=app.institution_id,
        waiting_reasons=list(app.waiting_reasons),
    )


def transparency_projects(
    ledger: Ledger, desk: ApplicationDesk, permits: PermitRegistry, tokens: TokenStore
) -> list[TransparencyProjectPublic]:
    """Every project with its permit (id, named analysts), budget, spend and how it was approved."""
    by_project = desk.by_project()
    projects = ledger.list_projects()
    permit_ids = permits.for_projects(
        {p.id: by_project[p.id].id if p.id in by_project else None for p in projects}
    )
    now = utcnow()
    analysts: dict[str, set[str]] = {}
    for token in tokens.list():
        if token.role == "analyst" and token.project is not None and token.is_active(now):
            analysts.setdefault(token.project, set()).add(token.name)
    out: list[TransparencyProjectPublic] = []
    for project in projects:
        budget = budget_public(ledger.budget(project.id))
        app = by_project.get(project.id)
        out.append(
            TransparencyProjectPublic(
                **_permit(project),
                epsilon_total=budget.epsilon_total,
                epsilon_spent=budget.epsilon_spent,
                delta_total=budget.delta_total,
                delta_spent=budget.delta_spent,
                releases=len(ledger.list_releases(project.id)),
                approval_route=app.route if app is not None and app.route is not None else "admin",
                decision_seconds=None if app is None else app.decision_seconds,
                permit_id=permit_ids[project.id],
                analysts=sorted(analysts.get(project.id, ())),
            )
        )
    return out
