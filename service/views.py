"""Conversions from domain records to the public response bodies."""

from __future__ import annotations

import datetime as dt

from budget_ledger import BudgetStatus, Ledger, Project, RegisterStatus

from .applications import Application, ApplicationDesk
from .schemas import (
    ApplicationPublic,
    BudgetPublic,
    ProjectPublic,
    RegisterCapPublic,
    TokenIssuedPublic,
    TokenPublic,
    TransparencyProjectPublic,
)
from .tokens import IssuedToken, TokenRecord, utcnow

__all__ = [
    "application_public",
    "budget_public",
    "project_public",
    "register_public",
    "token_issued_public",
    "token_public",
    "transparency_projects",
]


def budget_public(status: BudgetStatus) -> BudgetPublic:
    """A budget status as the contract's floats."""
    return BudgetPublic.model_validate(status.to_public())


def project_public(project: Project, status: BudgetStatus) -> ProjectPublic:
    """A project with its budget."""
    return ProjectPublic(
        id=project.id,
        title=project.title,
        purpose=project.purpose,
        institution=project.institution,
        summary=project.summary,
        registers=list(project.registers),
        mode=project.mode,
        expires=project.expires,
        created_at=project.created_at,
        budget=budget_public(status),
    )


def register_public(status: RegisterStatus) -> RegisterCapPublic:
    """A register's borne loss and cap."""
    return RegisterCapPublic.model_validate(status.to_public())


def token_public(record: TokenRecord, now: dt.datetime | None = None) -> TokenPublic:
    """A token record (never the token)."""
    return TokenPublic(
        id=record.id,
        prefix=record.prefix,
        role=record.role,
        project=record.project,
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
        title=sub.title,
        purpose=sub.purpose,
        institution=sub.institution,
        summary=sub.summary,
        registers=list(sub.registers),
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
    )


def transparency_projects(ledger: Ledger, desk: ApplicationDesk) -> list[TransparencyProjectPublic]:
    """Every project with its permit, budget, spend and how it was approved."""
    by_project = desk.by_project()
    out: list[TransparencyProjectPublic] = []
    for project in ledger.list_projects():
        budget = budget_public(ledger.budget(project.id))
        app = by_project.get(project.id)
        out.append(
            TransparencyProjectPublic(
                id=project.id,
                title=project.title,
                purpose=project.purpose,
                institution=project.institution,
                summary=project.summary,
                registers=list(project.registers),
                mode=project.mode,
                created_at=project.created_at,
                expires=project.expires,
                epsilon_total=budget.epsilon_total,
                epsilon_spent=budget.epsilon_spent,
                delta_total=budget.delta_total,
                delta_spent=budget.delta_spent,
                releases=len(ledger.list_releases(project.id)),
                approval_route=app.route if app is not None and app.route is not None else "admin",
                decision_seconds=None if app is None else app.decision_seconds,
            )
        )
    return out
