"""What ``Ledger.reserve_and_commit`` decided about a spend: charged, returned free, or refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .accounting import BudgetStatus
from .loss import Charge
from .records import Project, Spend, StoredRelease

__all__ = ["SpendResult", "SpendStatus"]

SpendStatus = Literal["committed", "cached", "replayed", "pending", "failed"]


@dataclass(frozen=True)
class SpendResult:
    """What ``reserve_and_commit`` decided.

    ``status`` is one of:

    - ``committed``: charged now; execute the query, then ``store_release`` or ``mark_failed``.
    - ``cached``: the same query already has a release in this project; returned free.
    - ``replayed``: this idempotency key was seen and its release is stored; returned free.
    - ``pending``: an identical request is still running (charged, no release yet); retry later.
    - ``failed``: this idempotency key's spend failed; the failure is returned, never fresh noise.
    """

    status: SpendStatus
    spend: Spend
    project: Project
    release: StoredRelease | None = None

    @property
    def spend_id(self) -> str:
        """The spend this result is about (for ``cached``: the spend that paid for the release)."""
        return self.spend.spend_id

    @property
    def charge(self) -> Charge:
        """What that spend cost when it was committed."""
        return self.spend.charge

    @property
    def charged(self) -> bool:
        """True only when this call spent budget."""
        return self.status == "committed"

    @property
    def release_id(self) -> str | None:
        """The stored release's id, if one is returned."""
        return None if self.release is None else self.release.release_id

    @property
    def release_json(self) -> str | None:
        """The stored release's JSON text, if one is returned."""
        return None if self.release is None else self.release.release_json

    @property
    def failure_code(self) -> str | None:
        """Why the spend failed (``failed`` only)."""
        return self.spend.failure_code

    def budget(self) -> BudgetStatus:
        """The project's budget right after this call (zcdp epsilons computed on demand)."""
        return self.project.status()
