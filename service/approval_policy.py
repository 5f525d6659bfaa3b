"""The published approval policy, and what an applicant asks for.

An application inside the policy (purpose, registers, epsilon, delta and duration within the published
limits) may be approved automatically, if its applicant is signed in and within the quotas
(``service.approval_quota``); anything else waits for an administrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from budget_ledger.loss import format_amount

from .settings import EHDS_PURPOSES, Settings

__all__ = ["ANONYMOUS_REASON", "ApprovalPolicy", "Submission"]

ANONYMOUS_REASON = (
    "Anonymous applications are decided by an administrator: sign in with your institution "
    "(GET /v1/auth/login) and send the applicant token for automatic approval."
)


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
                f"Epsilon {format_amount(submission.epsilon)} is above the automatic limit "
                f"{format_amount(self.max_epsilon)}."
            )
        if submission.delta > self.max_delta:
            reasons.append(
                f"Delta {format_amount(submission.delta)} is above the automatic limit {format_amount(self.max_delta)}."
            )
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
