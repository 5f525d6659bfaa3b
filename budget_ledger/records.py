"""The ledger's records: project specs, projects, register state, spends and stored releases.

All are frozen dataclasses; a change is a new record (``dataclasses.replace``) written by the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any, Literal

from .accounting import MODES, BudgetLimits, BudgetStatus, Mode, Totals, budget_status
from .caps import CapLimits
from .errors import InvalidBudget, InvalidRequest, PermitExpired, RegisterNotPermitted
from .loss import Amount, Charge, fraction_to_text, to_budget_amount

__all__ = [
    "Project",
    "ProjectSpec",
    "RegisterState",
    "Spend",
    "SpendState",
    "StoredRelease",
    "check_register_name",
]

_PROJECT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_REGISTER = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

SpendState = Literal["pending", "released", "failed"]


def check_register_name(name: object) -> str:
    """Return ``name`` if it is a valid register name, else raise ``InvalidRequest``."""
    if not isinstance(name, str) or not _REGISTER.match(name):
        raise InvalidRequest(
            f"Register name {name!r} is not valid: use lowercase letters, digits and '_' (e.g. 'lpr')."
        )
    return name


@dataclass(frozen=True)
class ProjectSpec:
    """What an administrator (or an approved application) asks for when creating a project.

    ``epsilon`` and ``delta`` accept floats (rounded DOWN, a budget never grows by conversion),
    ints, decimal strings, ``Decimal`` or ``Fraction``; they are normalised to ``Fraction``.
    """

    id: str
    title: str
    purpose: str
    registers: tuple[str, ...]
    mode: Mode
    epsilon: Amount
    delta: Amount = 0
    institution: str = ""
    summary: str = ""
    expires: date | str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _PROJECT_ID.match(self.id):
            raise InvalidRequest(
                f"Project id {self.id!r} is not valid: use 1-64 lowercase letters, digits, '.', '_' "
                "or '-', starting with a letter or digit (e.g. 'diabetes-2026')."
            )
        if not self.title.strip():
            raise InvalidRequest("A project needs a title.")
        if not self.purpose.strip():
            raise InvalidRequest("A project needs a purpose (e.g. 'research').")
        if isinstance(self.registers, str) or not self.registers:
            raise InvalidRequest("A project needs a list of at least one register (e.g. ['cpr', 'lpr']).")
        registers = tuple(sorted({check_register_name(r) for r in self.registers}))
        object.__setattr__(self, "registers", registers)
        if self.mode not in MODES:
            raise InvalidBudget(f"Accounting mode must be 'pure' or 'zcdp', got {self.mode!r}.")
        try:
            object.__setattr__(self, "epsilon", to_budget_amount(self.epsilon, "epsilon"))
            object.__setattr__(self, "delta", to_budget_amount(self.delta, "delta"))
        except InvalidRequest as exc:
            raise InvalidBudget(exc.message) from None
        if isinstance(self.expires, str):
            try:
                object.__setattr__(self, "expires", date.fromisoformat(self.expires))
            except ValueError:
                raise InvalidRequest(
                    f"Expiry date {self.expires!r} is not an ISO date such as 2027-12-31."
                ) from None

    @property
    def epsilon_exact(self) -> Fraction:
        """The budget epsilon as normalised by the constructor."""
        assert isinstance(self.epsilon, Fraction)
        return self.epsilon

    @property
    def delta_exact(self) -> Fraction:
        """The budget delta as normalised by the constructor."""
        assert isinstance(self.delta, Fraction)
        return self.delta

    @property
    def expiry_date(self) -> date | None:
        """The last day the project may spend, as normalised by the constructor."""
        assert not isinstance(self.expires, str)
        return self.expires


@dataclass(frozen=True)
class Project:
    """A project as stored: its spec, budget limits and running totals."""

    id: str
    title: str
    purpose: str
    institution: str
    summary: str
    registers: tuple[str, ...]
    limits: BudgetLimits
    expires: date | None
    created_at: str
    created_by: str
    totals: Totals = field(default_factory=Totals)

    @property
    def mode(self) -> Mode:
        """The accounting mode, fixed at creation."""
        return self.limits.mode

    def status(self) -> BudgetStatus:
        """The budget: total, spent and remaining (exact; zcdp epsilons from OpenDP's conversion)."""
        return budget_status(self.id, self.limits, self.totals)

    def check_permit(self, registers: Iterable[str], today: date) -> None:
        """Refuse a query the permit does not allow: after its expiry day, or on a register outside it.

        The one owner of the permit rule: the ledger checks it inside the spend's transaction (so
        nothing is ever spent on an ended permit) and the service before it serves a stored release.
        Raises ``PermitExpired`` or ``RegisterNotPermitted``.
        """
        if self.expires is not None and today > self.expires:
            raise PermitExpired(
                f"The permit of project '{self.id}' ended on {self.expires.isoformat()}; it can no "
                "longer spend budget. Its stored releases stay available; ask an administrator for an "
                "extension."
            )
        outside = sorted(set(registers) - set(self.registers))
        if outside:
            raise RegisterNotPermitted(
                f"The query touches register(s) {', '.join(outside)}, but project '{self.id}' is approved "
                f"only for {', '.join(self.registers)}. Apply for a project that includes them."
            )

    def describe(self) -> dict[str, Any]:
        """The project's fixed facts and budget as exact JSON (as recorded in the audit chain)."""
        return {
            "id": self.id,
            "title": self.title,
            "purpose": self.purpose,
            "institution": self.institution,
            "summary": self.summary,
            "registers": list(self.registers),
            "mode": self.mode,
            "epsilon": fraction_to_text(self.limits.epsilon),
            "delta": fraction_to_text(self.limits.delta),
            "rho": None if self.limits.rho is None else fraction_to_text(self.limits.rho),
            "expires": None if self.expires is None else self.expires.isoformat(),
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class RegisterState:
    """A register's running totals across all projects, and its global cap if one is set."""

    name: str
    cap: CapLimits | None = None
    totals: Totals = field(default_factory=Totals)


@dataclass(frozen=True)
class Spend:
    """One committed charge. The amounts never change; only ``state`` moves on from ``pending``."""

    spend_id: str
    project_id: str
    registers: tuple[str, ...]
    charge: Charge
    query_hash: str
    canonical_query: str
    idempotency_key: str | None
    actor: str
    created_at: str
    created_unix: float
    audit_seq: int
    state: SpendState = "pending"
    release_id: str | None = None
    failure_code: str | None = None


@dataclass(frozen=True)
class StoredRelease:
    """A release as stored: the service's JSON text, exactly as it was returned to the analyst."""

    release_id: str
    project_id: str
    spend_id: str
    query_hash: str
    release_json: str
    created_at: str
    audit_seq: int
