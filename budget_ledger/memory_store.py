"""An in-memory :class:`~budget_ledger.store.LedgerStore` for tests of code that uses the ledger.

Transactions are serialised by one lock and roll back by restoring a copy of the state. Nothing is
durable and nothing is shared between processes: never use it to serve.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .audit_chain import AuditEntry
from .records import Project, RegisterState, Spend, StoredRelease

__all__ = ["MemoryStore"]


@dataclass
class _State:
    projects: dict[str, Project] = field(default_factory=dict)
    registers: dict[str, RegisterState] = field(default_factory=dict)
    spends: dict[str, Spend] = field(default_factory=dict)
    releases: dict[str, StoredRelease] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)

    def copy(self) -> _State:
        # Records are immutable, so copying the containers is a full snapshot.
        return _State(
            dict(self.projects),
            dict(self.registers),
            dict(self.spends),
            dict(self.releases),
            list(self.audit),
        )


class _MemoryTxn:
    """:class:`~budget_ledger.store.LedgerTxn` over a ``_State``."""

    def __init__(self, state: _State) -> None:
        self._s = state

    def get_project(self, project_id: str) -> Project | None:
        return self._s.projects.get(project_id)

    def list_projects(self) -> list[Project]:
        return [self._s.projects[key] for key in sorted(self._s.projects)]

    def insert_project(self, project: Project) -> None:
        self._s.projects[project.id] = project

    def update_project(self, project: Project) -> None:
        self._s.projects[project.id] = project

    def get_register(self, name: str) -> RegisterState | None:
        return self._s.registers.get(name)

    def list_registers(self) -> list[RegisterState]:
        return [self._s.registers[key] for key in sorted(self._s.registers)]

    def put_register(self, register: RegisterState) -> None:
        self._s.registers[register.name] = register

    def get_spend(self, spend_id: str) -> Spend | None:
        return self._s.spends.get(spend_id)

    def find_spend_by_idempotency_key(self, project_id: str, key: str) -> Spend | None:
        for spend in self._s.spends.values():
            if spend.project_id == project_id and spend.idempotency_key == key:
                return spend
        return None

    def find_pending_spends(self, project_id: str, query_hash: str) -> list[Spend]:
        return [
            s
            for s in self.list_spends()
            if s.project_id == project_id and s.query_hash == query_hash and s.state == "pending"
        ]

    def list_pending_spends(self) -> list[Spend]:
        return [s for s in self.list_spends() if s.state == "pending"]

    def insert_spend(self, spend: Spend) -> None:
        self._s.spends[spend.spend_id] = spend

    def update_spend_state(self, spend: Spend) -> None:
        self._s.spends[spend.spend_id] = spend

    def list_spends(self) -> Iterator[Spend]:
        return iter(sorted(self._s.spends.values(), key=lambda s: s.audit_seq))

    def count_spends_since(self, project_id: str, since_unix: float) -> int:
        return sum(
            1 for s in self._s.spends.values() if s.project_id == project_id and s.created_unix >= since_unix
        )

    def get_release(self, release_id: str) -> StoredRelease | None:
        return self._s.releases.get(release_id)

    def find_latest_release(self, project_id: str, query_hash: str) -> StoredRelease | None:
        matches = [r for r in self.list_releases(project_id) if r.query_hash == query_hash]
        return matches[-1] if matches else None

    def list_releases(self, project_id: str | None = None) -> list[StoredRelease]:
        releases = sorted(self._s.releases.values(), key=lambda r: r.audit_seq)
        return [r for r in releases if project_id is None or r.project_id == project_id]

    def insert_release(self, release: StoredRelease) -> None:
        self._s.releases[release.release_id] = release

    def audit_head(self) -> AuditEntry | None:
        return self._s.audit[-1] if self._s.audit else None

    def append_audit(self, entry: AuditEntry) -> None:
        self._s.audit.append(entry)

    def audit_entries(self) -> Iterator[AuditEntry]:
        return iter(list(self._s.audit))

    def audit_entries_from(self, seq: int) -> list[AuditEntry]:
        return [entry for entry in self._s.audit if entry.seq >= seq]


class MemoryStore:
    """A fake store: one process, no durability, same semantics as :class:`SqliteStore`."""

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[_MemoryTxn]:
        """Serialised by a lock; an exception restores the state as it was."""
        with self._lock:
            working = self._state.copy()
            yield _MemoryTxn(working)
            self._state = working

    @contextmanager
    def snapshot(self) -> Iterator[_MemoryTxn]:
        """A read view of the committed state."""
        with self._lock:
            yield _MemoryTxn(self._state.copy())

    def integrity_problems(self) -> list[str]:
        """Nothing can be damaged in memory."""
        return []

    def close(self) -> None:
        """Nothing to release."""
