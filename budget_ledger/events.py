"""The ledger's own audit events: their kinds and payloads.

Each payload holds enough to recompute the ledger's state from the chain alone, so ``verify`` can
compare every table row and running total against what the chain says.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .accounting import BudgetLimits
from .caps import CapLimits
from .errors import InvalidRequest
from .loss import fraction_to_text
from .records import Project, Spend, StoredRelease

__all__ = [
    "BUDGET_SET",
    "LEDGER_KINDS",
    "PROJECT_CREATED",
    "REGISTER_CAP_SET",
    "RELEASE_STORED",
    "SPEND_COMMITTED",
    "SPEND_FAILED",
    "budget_set",
    "check_service_kind",
    "project_created",
    "register_cap_set",
    "release_stored",
    "sha256_text",
    "spend_committed",
    "spend_failed",
]

PROJECT_CREATED = "project_created"
BUDGET_SET = "budget_set"
REGISTER_CAP_SET = "register_cap_set"
SPEND_COMMITTED = "spend_committed"
RELEASE_STORED = "release_stored"
SPEND_FAILED = "spend_failed"
LEDGER_KINDS = frozenset(
    {PROJECT_CREATED, BUDGET_SET, REGISTER_CAP_SET, SPEND_COMMITTED, RELEASE_STORED, SPEND_FAILED}
)

_KIND = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")


def check_service_kind(kind: str) -> str:
    """Validate the kind of a service-owned event (not one of the ledger's own kinds)."""
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise InvalidRequest(
            f"Event kind {kind!r} is not valid: use lowercase letters, digits, '_' and '.' "
            "(e.g. 'application_decided')."
        )
    if kind in LEDGER_KINDS:
        raise InvalidRequest(f"Event kind {kind!r} is reserved for the ledger's own records.")
    return kind


def sha256_text(text: str) -> str:
    """Hex SHA-256 of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def limits_json(limits: BudgetLimits) -> dict[str, Any]:
    """A budget as exact JSON."""
    return {
        "epsilon": fraction_to_text(limits.epsilon),
        "delta": fraction_to_text(limits.delta),
        "rho": None if limits.rho is None else fraction_to_text(limits.rho),
    }


def cap_json(cap: CapLimits | None) -> dict[str, Any] | None:
    """A register cap as exact JSON."""
    if cap is None:
        return None
    return {
        "rho": fraction_to_text(cap.rho),
        "delta": fraction_to_text(cap.delta),
        "epsilon_requested": None
        if cap.epsilon_requested is None
        else fraction_to_text(cap.epsilon_requested),
        "delta_requested": fraction_to_text(cap.delta_requested),
    }


def project_created(project: Project) -> dict[str, Any]:
    """Payload of ``project_created``."""
    return {"project": project.describe()}


def budget_set(project_id: str, old: BudgetLimits, new: BudgetLimits, reason: str) -> dict[str, Any]:
    """Payload of ``budget_set``."""
    return {"project": project_id, "budget": limits_json(new), "previous": limits_json(old), "reason": reason}


def register_cap_set(register: str, old: CapLimits | None, new: CapLimits, reason: str) -> dict[str, Any]:
    """Payload of ``register_cap_set``."""
    return {"register": register, "cap": cap_json(new), "previous": cap_json(old), "reason": reason}


def spend_committed(spend: Spend) -> dict[str, Any]:
    """Payload of ``spend_committed``: everything about the spend except its later state."""
    return {
        "spend_id": spend.spend_id,
        "project": spend.project_id,
        "registers": list(spend.registers),
        "charge": spend.charge.to_json(),
        "query_hash": spend.query_hash,
        "canonical_query_sha256": sha256_text(spend.canonical_query),
        "idempotency_key": spend.idempotency_key,
        "created_unix": spend.created_unix,
    }


def release_stored(release: StoredRelease) -> dict[str, Any]:
    """Payload of ``release_stored``."""
    return {
        "spend_id": release.spend_id,
        "release_id": release.release_id,
        "project": release.project_id,
        "query_hash": release.query_hash,
        "release_sha256": sha256_text(release.release_json),
    }


def spend_failed(spend: Spend, reason_code: str) -> dict[str, Any]:
    """Payload of ``spend_failed``."""
    return {"spend_id": spend.spend_id, "project": spend.project_id, "reason_code": reason_code}
