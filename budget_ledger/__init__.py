"""budget_ledger: privacy-loss values, accounting, projects and budgets, the append-only ledger and
its audit chain.

Depends only on the standard library and OpenDP; never on ``query_engine`` or ``service``.
"""

from .accounting import (
    BudgetLimits,
    BudgetStatus,
    Mode,
    Totals,
    budget_limits,
    epsilon_at,
    rho_budget,
)
from .audit_chain import AuditEntry, ChainReport, load_or_create_audit_key, parse_audit_key, verify_chain
from .caps import CapLimits, CapUnit, RegisterStatus, cap_limits
from .cli import verify_command
from .errors import (
    BudgetExceeded,
    ChainBroken,
    IdempotencyConflict,
    InvalidBudget,
    InvalidRequest,
    LedgerError,
    LedgerInvariantError,
    LedgerUnavailable,
    ModeMismatch,
    PermitExpired,
    ProjectExists,
    RegisterCapExceeded,
    RegisterCapPureOnly,
    RegisterNotPermitted,
    SpendNotPending,
    UnknownProject,
    UnknownRelease,
    UnknownSpend,
    UnsafeStore,
)
from .ledger import DEFAULT_PENDING_TIMEOUT, Ledger
from .loss import Amount, Charge
from .memory_store import MemoryStore
from .records import Project, ProjectSpec, RegisterState, Spend, StoredRelease
from .spend_result import SpendResult, SpendStatus
from .sqlite_store import SqliteStore
from .startup import StartupReport, start_ledger
from .store import LedgerStore, LedgerTxn, open_store
from .verify import VerifyReport

__all__ = [
    "open_store",
    "DEFAULT_PENDING_TIMEOUT",
    "Amount",
    "AuditEntry",
    "BudgetExceeded",
    "BudgetLimits",
    "BudgetStatus",
    "CapLimits",
    "CapUnit",
    "ChainBroken",
    "ChainReport",
    "Charge",
    "IdempotencyConflict",
    "InvalidBudget",
    "InvalidRequest",
    "Ledger",
    "LedgerError",
    "LedgerInvariantError",
    "LedgerStore",
    "LedgerTxn",
    "LedgerUnavailable",
    "MemoryStore",
    "Mode",
    "ModeMismatch",
    "Project",
    "ProjectExists",
    "PermitExpired",
    "ProjectSpec",
    "RegisterCapExceeded",
    "RegisterCapPureOnly",
    "RegisterNotPermitted",
    "RegisterState",
    "RegisterStatus",
    "Spend",
    "SpendNotPending",
    "SpendResult",
    "SpendStatus",
    "SqliteStore",
    "StartupReport",
    "StoredRelease",
    "Totals",
    "UnknownProject",
    "UnknownRelease",
    "UnknownSpend",
    "UnsafeStore",
    "VerifyReport",
    "budget_limits",
    "cap_limits",
    "epsilon_at",
    "load_or_create_audit_key",
    "parse_audit_key",
    "rho_budget",
    "start_ledger",
    "verify_chain",
    "verify_command",
]
