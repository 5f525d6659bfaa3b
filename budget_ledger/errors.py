"""Errors raised by the budget ledger.

Every error has a stable machine-readable ``code`` and an HTTP-ish ``status`` that the service maps
onto the single error body ``{"ok": false, "code", "error", "status"}``. Messages are sentences a
person can act on and never contain private data.

::

    LedgerError                      ledger_error            500
    ├── BudgetExceeded               budget_exceeded         403
    │   └── RegisterCapExceeded      budget_exceeded         403  (names the register)
    │       └── RegisterCapPureOnly  register_cap_pure_only  403  (rho charge on a delta=0 cap)
    ├── PermitExpired                permit_expired          403
    ├── RegisterNotPermitted         register_not_permitted  403
    ├── UnknownProject               project_not_found       404
    ├── UnknownSpend                 spend_not_found         404
    ├── UnknownRelease               release_not_found       404
    ├── ProjectExists                conflict                409
    ├── IdempotencyConflict          idempotency_conflict    409
    ├── SpendNotPending              conflict                409
    ├── ModeMismatch                 mode_mismatch           422
    ├── InvalidBudget                invalid_budget          422
    ├── InvalidRequest               invalid_request         422
    ├── LedgerUnavailable            ledger_busy             503  (lock wait timed out; retry)
    ├── UnsafeStore                  unsafe_store            500  (refuses to start)
    ├── ChainBroken                  chain_broken            500
    └── LedgerInvariantError         internal_error          500  (a bug in sundstat)
"""

from __future__ import annotations

from fractions import Fraction

__all__ = [
    "BudgetExceeded",
    "ChainBroken",
    "IdempotencyConflict",
    "InvalidBudget",
    "InvalidRequest",
    "LedgerError",
    "LedgerInvariantError",
    "LedgerUnavailable",
    "ModeMismatch",
    "PermitExpired",
    "ProjectExists",
    "RegisterCapExceeded",
    "RegisterCapPureOnly",
    "RegisterNotPermitted",
    "SpendNotPending",
    "UnknownProject",
    "UnknownRelease",
    "UnknownSpend",
    "UnsafeStore",
]


class LedgerError(Exception):
    """Base class of every error the ledger raises on purpose."""

    code: str = "ledger_error"
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, object]:
        """Return the contract's error body for this error."""
        return {"ok": False, "code": self.code, "error": self.message, "status": self.status}


class BudgetExceeded(LedgerError):
    """The charge does not fit in what the project has left; nothing was spent."""

    code = "budget_exceeded"
    status = 403

    def __init__(
        self,
        message: str,
        *,
        project_id: str,
        measure: str,
        requested: Fraction,
        remaining: Fraction,
    ) -> None:
        super().__init__(message)
        self.project_id = project_id
        self.measure = measure
        self.requested = requested
        self.remaining = remaining
        self.shortfall = requested - remaining


class RegisterCapExceeded(BudgetExceeded):
    """The charge does not fit under the global cap of one register; nothing was spent."""

    def __init__(
        self,
        message: str,
        *,
        project_id: str,
        register: str,
        measure: str,
        requested: Fraction,
        remaining: Fraction,
    ) -> None:
        super().__init__(
            message, project_id=project_id, measure=measure, requested=requested, remaining=remaining
        )
        self.register = register


class RegisterCapPureOnly(RegisterCapExceeded):
    """A rho (zCDP) charge against a register cap set as (epsilon, delta=0): that cap bounds the sum of
    pure epsilon, so no rho can be admitted against it; nothing was spent."""

    code = "register_cap_pure_only"


class PermitExpired(LedgerError):
    """The project's permit has ended; it can no longer spend (``Project.check_permit``)."""

    code = "permit_expired"
    status = 403


class RegisterNotPermitted(LedgerError):
    """The query touches a register the project is not approved for (``Project.check_permit``)."""

    code = "register_not_permitted"
    status = 403


class UnknownProject(LedgerError):
    """No project with that id."""

    code = "project_not_found"
    status = 404


class UnknownSpend(LedgerError):
    """No spend with that id."""

    code = "spend_not_found"
    status = 404


class UnknownRelease(LedgerError):
    """No release with that id in that project."""

    code = "release_not_found"
    status = 404


class ProjectExists(LedgerError):
    """A project with that id already exists."""

    code = "conflict"
    status = 409


class IdempotencyConflict(LedgerError):
    """An idempotency key was reused for a different query."""

    code = "idempotency_conflict"
    status = 409


class SpendNotPending(LedgerError):
    """The spend already has a stored release or was marked failed."""

    code = "conflict"
    status = 409


class ModeMismatch(LedgerError):
    """The charge's kind of privacy loss does not fit the project's accounting mode."""

    code = "mode_mismatch"
    status = 422


class InvalidBudget(LedgerError):
    """A budget or cap value is not acceptable (negative, below what is spent, ...)."""

    code = "invalid_budget"
    status = 422


class InvalidRequest(LedgerError):
    """An argument to the ledger is malformed (bad id, empty reason, negative charge, ...)."""

    code = "invalid_request"
    status = 422


class LedgerUnavailable(LedgerError):
    """The ledger database stayed locked for longer than the busy timeout."""

    code = "ledger_busy"
    status = 503


class UnsafeStore(LedgerError):
    """The store cannot guarantee durability or isolation; the ledger refuses to start."""

    code = "unsafe_store"
    status = 500


class ChainBroken(LedgerError):
    """The audit chain does not verify (tampering, or the wrong audit key)."""

    code = "chain_broken"
    status = 500


class LedgerInvariantError(LedgerError):
    """An internal invariant failed. This is a bug in sundstat; please report it."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(f"{message} This is a bug in sundstat's budget ledger; please report it.")
