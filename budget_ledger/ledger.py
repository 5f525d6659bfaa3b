"""The ledger: projects, budgets, register caps, atomic spends, stored releases and the audit chain.

The service's release flow is::

    result = ledger.reserve_and_commit(...)      # durable, charged (or cached / replayed / pending)
    if result.status == "committed":
        ...execute, add noise...
        ledger.store_release(result.spend_id, release_id, release_json)   # or mark_failed(...)

Every state change and its audit entry are written in one exclusive transaction. A crash after
``reserve_and_commit`` loses budget (the spend stays charged) but can never release an answer that
was not charged.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from . import accounting, caps, events
from .accounting import BudgetStatus
from .audit_chain import AuditEntry, entry_is_authentic, make_entry
from .caps import RegisterStatus
from .errors import (
    ChainBroken,
    IdempotencyConflict,
    InvalidBudget,
    InvalidRequest,
    LedgerInvariantError,
    ProjectExists,
    SpendNotPending,
    UnknownProject,
    UnknownRelease,
    UnknownSpend,
)
from .loss import Amount, Charge, format_amount, to_budget_amount
from .records import Project, ProjectSpec, RegisterState, Spend, StoredRelease, check_register_name
from .spend_result import SpendResult
from .store import LedgerStore, LedgerTxn
from .verify import INTERRUPTED, VerifyReport, verify_ledger

__all__ = ["DEFAULT_PENDING_TIMEOUT", "Ledger"]

DEFAULT_PENDING_TIMEOUT = 300.0
"""Seconds after which a spend with no release and no failure is treated as abandoned."""

ABANDONED = "abandoned"

_TOKEN = re.compile(r"^[\x21-\x7e]{1,200}$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _require_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{what} must be a non-empty text.")
    return value


def _require_token(value: object, what: str) -> str:
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise InvalidRequest(f"{what} must be 1-200 printable ASCII characters without spaces.")
    return value


class Ledger:
    """The public API of the budget ledger. Thread-safe when its store is.

    ``audit_key`` signs the audit chain and is never written to the store. ``clock`` returns an
    aware UTC datetime (injectable for tests). ``pending_timeout`` is how long a charged spend
    without a release counts as in progress before it is treated as abandoned.
    """

    def __init__(
        self,
        store: LedgerStore,
        audit_key: bytes,
        *,
        clock: Callable[[], datetime] = _utcnow,
        pending_timeout: float = DEFAULT_PENDING_TIMEOUT,
    ) -> None:
        if not isinstance(audit_key, bytes | bytearray) or len(audit_key) < 16:
            raise InvalidRequest("The audit key must be at least 16 bytes; use 32 random bytes.")
        self._store = store
        self._key = bytes(audit_key)
        self._clock = clock
        self.pending_timeout = pending_timeout
        with store.snapshot() as tx:
            head = tx.audit_head()
        if head is not None and not entry_is_authentic(self._key, head):
            raise ChainBroken(
                f"The newest audit entry ({head.seq}) does not verify with this audit key. Start with "
                "the key that created this ledger (SUNDSTAT_AUDIT_KEY or the key file in the state "
                "directory), or run 'sundstat ledger verify' to look for tampering."
            )

    @property
    def store(self) -> LedgerStore:
        """The store this ledger writes to."""
        return self._store

    def close(self) -> None:
        """Release the store's connections and files (the ledger is unusable afterwards)."""
        self._store.close()

    # --- helpers --------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise LedgerInvariantError("The ledger clock returned a naive datetime.")
        return now.astimezone(UTC)

    def _append(self, tx: LedgerTxn, kind: str, payload: dict[str, Any], actor: str, ts: str) -> AuditEntry:
        entry = make_entry(self._key, tx.audit_head(), kind, payload, actor, ts)
        tx.append_audit(entry)
        return entry

    @staticmethod
    def _project(tx: LedgerTxn, project_id: str) -> Project:
        project = tx.get_project(project_id)
        if project is None:
            raise UnknownProject(f"There is no project '{project_id}'. Check the id (it is case-sensitive).")
        return project

    # --- projects and budgets -------------------------------------------------------------------

    def create_project(self, spec: ProjectSpec, actor: str) -> Project:
        """Create a project with its budget; the accounting mode is fixed from now on."""
        _require_text(actor, "The actor")
        limits = accounting.budget_limits(spec.mode, spec.epsilon_exact, spec.delta_exact)  # outside the lock
        with self._store.transaction() as tx:
            if tx.get_project(spec.id) is not None:
                raise ProjectExists(f"A project with id '{spec.id}' already exists; choose another id.")
            project = Project(
                id=spec.id,
                title=spec.title,
                purpose=spec.purpose,
                institution=spec.institution,
                summary=spec.summary,
                registers=spec.registers,
                limits=limits,
                expires=spec.expiry_date,
                created_at=self._now().isoformat(),
                created_by=actor,
            )
            tx.insert_project(project)
            self._append(
                tx, events.PROJECT_CREATED, events.project_created(project), actor, project.created_at
            )
        return project

    def get_project(self, project_id: str) -> Project:
        """The project, or ``UnknownProject``."""
        with self._store.snapshot() as tx:
            return self._project(tx, project_id)

    def list_projects(self) -> list[Project]:
        """All projects, ordered by id."""
        with self._store.snapshot() as tx:
            return tx.list_projects()

    def set_budget(
        self, project_id: str, epsilon: Amount, delta: Amount, *, reason: str, actor: str
    ) -> BudgetStatus:
        """Replace a project's budget (with a reason); it may not drop below what is spent."""
        _require_text(reason, "The reason for a budget change")
        _require_text(actor, "The actor")
        try:
            new_epsilon = to_budget_amount(epsilon, "epsilon")
            new_delta = to_budget_amount(delta, "delta")
        except InvalidRequest as exc:
            raise InvalidBudget(exc.message) from None
        mode = self.get_project(project_id).mode
        limits = accounting.budget_limits(mode, new_epsilon, new_delta)  # slow for zcdp: outside the lock
        with self._store.transaction() as tx:
            project = self._project(tx, project_id)
            spent = project.totals
            if limits.mode == "pure" and spent.epsilon > limits.epsilon:
                raise InvalidBudget(
                    f"Project '{project_id}' has already spent epsilon {format_amount(spent.epsilon)}; "
                    f"a budget of {format_amount(limits.epsilon)} would be below that. Give at least "
                    f"{format_amount(spent.epsilon)}."
                )
            if limits.rho is not None and spent.rho > limits.rho:
                raise InvalidBudget(
                    f"Project '{project_id}' has already spent rho {format_amount(spent.rho)}; epsilon "
                    f"{format_amount(limits.epsilon)} at this delta allows only rho "
                    f"{format_amount(limits.rho)}. Give a larger epsilon."
                )
            if spent.delta > limits.delta_thresholding:
                raise InvalidBudget(
                    f"Project '{project_id}' has already spent delta {format_amount(spent.delta)} on "
                    f"thresholding; the new budget leaves only {format_amount(limits.delta_thresholding)} "
                    "for that. Give a larger delta."
                )
            updated = replace(project, limits=limits)
            tx.update_project(updated)
            payload = events.budget_set(project_id, project.limits, limits, reason)
            self._append(tx, events.BUDGET_SET, payload, actor, self._now().isoformat())
        return updated.status()

    def budget(self, project_id: str) -> BudgetStatus:
        """The project's budget: total, spent and remaining (exact; ``to_public()`` for JSON)."""
        project = self.get_project(project_id)
        return project.status()

    # --- register caps --------------------------------------------------------------------------

    def set_register_cap(
        self,
        register: str,
        *,
        epsilon: Amount | None = None,
        rho: Amount | None = None,
        delta: Amount = 0,
        reason: str,
        actor: str,
    ) -> RegisterStatus:
        """Set a register's global cap across all projects, as (epsilon, delta) or (rho, delta).

        A cap below what the register has already borne, in the cap's own unit, is refused; set it
        equal to the spent amounts (see ``register_caps()``) to stop all further use. A pure cap
        (epsilon, delta=0) is refused on a register that has already borne rho or delta.
        """
        check_register_name(register)
        _require_text(reason, "The reason for a cap change")
        _require_text(actor, "The actor")
        cap = caps.cap_from_amounts(epsilon, rho, delta)
        with self._store.transaction() as tx:
            state = tx.get_register(register) or RegisterState(register)
            borne_rho = cap.unit == "epsilon" and any(
                s.charge.rho > 0 for s in tx.list_spends() if register in s.registers
            )
            caps.check_cap_covers_spent(register, cap, state.totals, borne_rho=borne_rho)
            return self._write_cap(tx, state, cap, reason, actor)

    def set_default_register_cap(
        self, register: str, *, epsilon: Amount, delta: Amount, reason: str, actor: str
    ) -> RegisterStatus | None:
        """Give ``register`` the default cap (epsilon, delta) unless it already has a cap.

        Returns the new status, or None when the register kept the cap it had. Checked and written in
        one transaction, so hosts sharing a ledger that start together record one default. A register
        that has already borne more than the default gets the default anyway: it is then closed
        (nothing more fits) until an administrator decides on a cap.
        """
        check_register_name(register)
        _require_text(reason, "The reason for a cap change")
        cap = caps.cap_from_amounts(epsilon, None, delta)
        with self._store.transaction() as tx:
            state = tx.get_register(register) or RegisterState(register)
            if state.cap is not None:
                return None
            return self._write_cap(tx, state, cap, reason, actor)

    def _write_cap(
        self, tx: LedgerTxn, state: RegisterState, cap: caps.CapLimits, reason: str, actor: str
    ) -> RegisterStatus:
        tx.put_register(replace(state, cap=cap))
        payload = events.register_cap_set(state.name, state.cap, cap, reason)
        self._append(tx, events.REGISTER_CAP_SET, payload, actor, self._now().isoformat())
        return caps.register_status(state.name, cap, state.totals)

    def pure_caps_with_rho(self) -> list[str]:
        """Registers whose cap is set as (epsilon, 0) yet bore rho (Gaussian) charges: possible only in
        ledgers written before caps were enforced in their own unit. Their published epsilon does not
        cover those charges; an administrator should give them a cap with a delta."""
        with self._store.snapshot() as tx:
            pure = {s.name for s in tx.list_registers() if s.cap is not None and s.cap.unit == "epsilon"}
            found: set[str] = set()
            if pure:
                for spend in tx.list_spends():
                    if spend.charge.rho > 0:
                        found |= pure.intersection(spend.registers)
        return sorted(found)

    def register_caps(self) -> list[RegisterStatus]:
        """Every register that has a cap or was charged: total loss borne and the cap."""
        with self._store.snapshot() as tx:
            states = tx.list_registers()
        return [caps.register_status(s.name, s.cap, s.totals) for s in states]

    # --- spending -------------------------------------------------------------------------------

    def reserve_and_commit(
        self,
        project_id: str,
        registers: Iterable[str],
        charge: Charge,
        query_hash: str,
        canonical_query: str,
        idempotency_key: str | None = None,
        *,
        actor: str,
    ) -> SpendResult:
        """Atomically charge a query, or return what an earlier identical request got.

        In one exclusive transaction: (a) a seen ``idempotency_key`` returns its spend (release,
        failure, or pending) without charging; (b) a stored release of the same ``query_hash`` in
        the project is returned free; (c) an identical query still in progress returns
        ``pending``; (d) otherwise the project budget and every touched register's cap are checked
        and the spend is committed durably with its audit entry. Raises ``BudgetExceeded`` /
        ``RegisterCapExceeded`` (nothing spent) when it does not fit. First of all the permit is
        checked (``Project.check_permit``): after its expiry nothing is spent or served.
        """
        if not isinstance(charge, Charge):
            raise InvalidRequest("The charge must be a budget_ledger.Charge.")
        if charge.is_zero:
            raise InvalidRequest("A query's privacy loss must be above zero; nothing was charged.")
        touched = tuple(sorted({check_register_name(r) for r in registers}))
        if not touched:
            raise InvalidRequest("A spend must name the registers the query touches.")
        _require_token(query_hash, "The query hash")
        _require_text(canonical_query, "The canonical query")
        _require_text(actor, "The actor")
        if idempotency_key is not None:
            _require_token(idempotency_key, "The idempotency key")

        with self._store.transaction() as tx:
            now = self._now()  # read under the lock, so audit timestamps follow the chain order
            project = self._project(tx, project_id)
            project.check_permit(touched, now.date())
            accounting.check_mode(project_id, project.mode, charge)

            if idempotency_key is not None:
                prior = tx.find_spend_by_idempotency_key(project_id, idempotency_key)
                if prior is not None:
                    if prior.query_hash != query_hash:
                        raise IdempotencyConflict(
                            f"Idempotency key '{idempotency_key}' was already used for a different "
                            "query in this project; use a new key for a new query."
                        )
                    return self._existing(tx, prior, project, now)

            cached = tx.find_latest_release(project_id, query_hash)
            if cached is not None:
                paid_by = tx.get_spend(cached.spend_id)
                if paid_by is None:
                    raise LedgerInvariantError(f"Release {cached.release_id} has no spend.")
                return SpendResult("cached", paid_by, project, cached)

            for running in tx.find_pending_spends(project_id, query_hash):
                if self._is_live(running, now):
                    return SpendResult("pending", running, project)
                self._fail(tx, running, ABANDONED, running.actor, now)

            accounting.admit_project(project_id, project.limits, project.totals, charge)
            states = [tx.get_register(name) or RegisterState(name) for name in touched]
            for state in states:
                caps.admit_register(project_id, state.name, state.cap, state.totals, charge)

            head = tx.audit_head()
            spend = Spend(
                spend_id=f"sp_{secrets.token_hex(12)}",
                project_id=project_id,
                registers=touched,
                charge=charge,
                query_hash=query_hash,
                canonical_query=canonical_query,
                idempotency_key=idempotency_key,
                actor=actor,
                created_at=now.isoformat(),
                created_unix=now.timestamp(),
                audit_seq=1 if head is None else head.seq + 1,
            )
            entry = self._append(
                tx, events.SPEND_COMMITTED, events.spend_committed(spend), actor, spend.created_at
            )
            if entry.seq != spend.audit_seq:
                raise LedgerInvariantError("The audit head moved inside a write transaction.")
            tx.insert_spend(spend)
            updated = replace(project, totals=project.totals.add(charge))
            tx.update_project(updated)
            for state in states:
                tx.put_register(replace(state, totals=state.totals.add(charge)))
        return SpendResult("committed", spend, updated)

    def _is_live(self, spend: Spend, now: datetime) -> bool:
        return now.timestamp() - spend.created_unix < self.pending_timeout

    def _existing(self, tx: LedgerTxn, spend: Spend, project: Project, now: datetime) -> SpendResult:
        if spend.state == "released":
            release = tx.get_release(spend.release_id or "")
            if release is None:
                raise LedgerInvariantError(f"Spend {spend.spend_id} is released but its release is missing.")
            return SpendResult("replayed", spend, project, release)
        if spend.state == "failed":
            return SpendResult("failed", spend, project)
        if self._is_live(spend, now):
            return SpendResult("pending", spend, project)
        return SpendResult("failed", self._fail(tx, spend, ABANDONED, spend.actor, now), project)

    def _fail(self, tx: LedgerTxn, spend: Spend, reason_code: str, actor: str, now: datetime) -> Spend:
        failed = replace(spend, state="failed", failure_code=reason_code)
        tx.update_spend_state(failed)
        self._append(tx, events.SPEND_FAILED, events.spend_failed(spend, reason_code), actor, now.isoformat())
        return failed

    def reconcile_pending(self, *, older_than: float = 0.0, actor: str = "sundstat-startup") -> list[Spend]:
        """Mark spends left pending by a crash as failed (``interrupted``); they stay charged.

        Only spends committed at least ``older_than`` seconds ago are touched. At start-up, before
        any worker runs, every pending spend of a SQLite ledger is a crash's leftover (``0``); hosts
        sharing a PostgreSQL ledger pass ``pending_timeout`` so that queries still running on
        another host are left alone. Never a refund: the charge stays in every total.
        """
        with self._store.transaction() as tx:
            now = self._now()
            stale = [s for s in tx.list_pending_spends() if now.timestamp() - s.created_unix >= older_than]
            return [self._fail(tx, spend, INTERRUPTED, actor, now) for spend in stale]

    def store_release(
        self, spend_id: str, release_id: str, release_json: str, *, actor: str | None = None
    ) -> StoredRelease:
        """Store the release of a committed spend; later identical queries return it free."""
        _require_token(release_id, "The release id")
        try:
            json.loads(release_json)
        except (TypeError, ValueError):
            raise InvalidRequest("The release must be a JSON text.") from None
        with self._store.transaction() as tx:
            now = self._now()
            spend = tx.get_spend(spend_id)
            if spend is None:
                raise UnknownSpend(f"There is no spend '{spend_id}'.")
            if spend.state == "released" and spend.release_id == release_id:
                existing = tx.get_release(release_id)
                if existing is not None and existing.release_json == release_json:
                    return existing
            if spend.state != "pending":
                detail = f"failed ({spend.failure_code})" if spend.state == "failed" else "already released"
                raise SpendNotPending(
                    f"Spend {spend_id} is {detail}; its release cannot be stored. The budget stays spent; "
                    "do not return this answer."
                )
            if tx.get_release(release_id) is not None:
                raise InvalidRequest(f"Release id '{release_id}' is already used; generate a new one.")
            head = tx.audit_head()
            release = StoredRelease(
                release_id=release_id,
                project_id=spend.project_id,
                spend_id=spend_id,
                query_hash=spend.query_hash,
                release_json=release_json,
                created_at=now.isoformat(),
                audit_seq=1 if head is None else head.seq + 1,
            )
            self._append(
                tx,
                events.RELEASE_STORED,
                events.release_stored(release),
                actor or spend.actor,
                release.created_at,
            )
            tx.insert_release(release)
            tx.update_spend_state(replace(spend, state="released", release_id=release_id))
        return release

    def mark_failed(self, spend_id: str, reason_code: str, *, actor: str | None = None) -> Spend:
        """Record that a charged query failed. The budget stays spent (no refund)."""
        _require_token(reason_code, "The reason code")
        with self._store.transaction() as tx:
            now = self._now()
            spend = tx.get_spend(spend_id)
            if spend is None:
                raise UnknownSpend(f"There is no spend '{spend_id}'.")
            if spend.state == "failed":
                return spend
            if spend.state == "released":
                raise SpendNotPending(f"Spend {spend_id} already has a stored release; it cannot fail.")
            return self._fail(tx, spend, reason_code, actor or spend.actor, now)

    def get_spend(self, spend_id: str) -> Spend:
        """The spend, or ``UnknownSpend``."""
        with self._store.snapshot() as tx:
            spend = tx.get_spend(spend_id)
        if spend is None:
            raise UnknownSpend(f"There is no spend '{spend_id}'.")
        return spend

    def get_release(self, project_id: str, release_id: str) -> StoredRelease:
        """A stored release of the project, or ``UnknownRelease``."""
        with self._store.snapshot() as tx:
            self._project(tx, project_id)
            release = tx.get_release(release_id)
        if release is None or release.project_id != project_id:
            raise UnknownRelease(f"Project '{project_id}' has no release '{release_id}'.")
        return release

    def cached_release(self, project_id: str, query_hash: str) -> StoredRelease | None:
        """The newest stored release of this query in the project, or None; a read, never a write.

        It reads one snapshot and takes no write lock, so a repeated query can be answered while
        other requests spend. Releases are append-only, so a release found here is the one
        ``reserve_and_commit`` would return as ``cached`` (free). An unknown project has none.
        """
        with self._store.snapshot() as tx:
            return tx.find_latest_release(project_id, query_hash)

    def spends_since(self, project_id: str, since: datetime) -> int:
        """How many spends (fresh queries: released, failed or pending) the project committed since
        ``since``; cached and replayed answers make no spend. A read, never a write."""
        with self._store.snapshot() as tx:
            return tx.count_spends_since(project_id, since.timestamp())

    def list_releases(self, project_id: str) -> list[StoredRelease]:
        """The project's stored releases, oldest first."""
        with self._store.snapshot() as tx:
            self._project(tx, project_id)
            return tx.list_releases(project_id)

    # --- audit ----------------------------------------------------------------------------------

    def append_event(self, kind: str, payload: Mapping[str, Any], actor: str) -> AuditEntry:
        """Chain a service-owned event (application decided, token issued, request audit, ...)."""
        events.check_service_kind(kind)
        _require_text(actor, "The actor")
        with self._store.transaction() as tx:
            return self._append(tx, kind, dict(payload), actor, self._now().isoformat())

    def audit_head(self) -> tuple[int, str | None]:
        """(entry count, head hash) for publishing; check later with ``verify(expected_...)``."""
        with self._store.snapshot() as tx:
            head = tx.audit_head()
        return (0, None) if head is None else (head.seq, head.hash)

    def audit_entries(self) -> list[AuditEntry]:
        """Every audit entry, oldest first."""
        with self._store.snapshot() as tx:
            return list(tx.audit_entries())

    def verify(self, expected_head: str | None = None, expected_count: int | None = None) -> VerifyReport:
        """Recompute the audit chain and check every row and running total against it."""
        with self._store.snapshot() as tx:
            return verify_ledger(tx, self._key, expected_head=expected_head, expected_count=expected_count)
