"""Verification: recompute the audit chain, then check every table against it.

The chain alone determines the ledger's state (projects and budgets, caps, spends with their amounts
and outcomes, stored releases). ``verify_ledger`` replays it and compares, row by row, what the tables
hold, and checks that each running total equals both the sum of its spend rows and the chain's sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import events
from .accounting import Totals
from .audit_chain import verify_chain
from .loss import Charge
from .records import Project
from .store import LedgerTxn

__all__ = ["INTERRUPTED", "VerifyReport", "verify_ledger"]

INTERRUPTED = "interrupted"
"""Failure code of a spend left pending by a crash and marked failed at start-up (still charged)."""


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of ``Ledger.verify``.

    ``first_bad_index`` is the seq of the first audit entry that is altered, missing or out of order,
    or whose recorded state no longer matches the tables (None when no entry can be named).
    """

    ok: bool
    entries: int
    head_hash: str
    first_bad_index: int | None
    reason: str | None
    problems: tuple[str, ...] = field(default=())
    pending: tuple[str, ...] = field(default=())
    """Spends charged without a release or failure yet: running now, or left by a crash."""
    interrupted: tuple[str, ...] = field(default=())
    """Spends a crash left pending, marked failed (``interrupted``, still charged) at a start-up."""


@dataclass
class _Replay:
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    project_seq: dict[str, int] = field(default_factory=dict)
    caps: dict[str, tuple[int, dict[str, Any] | None]] = field(default_factory=dict)
    spends: dict[str, tuple[int, str, dict[str, Any]]] = field(default_factory=dict)
    outcome: dict[str, tuple[int, str, str | None, str | None]] = field(default_factory=dict)
    releases: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)


def _replay(tx: LedgerTxn) -> _Replay:
    state = _Replay()
    for entry in tx.audit_entries():
        p = entry.payload
        if entry.kind == events.PROJECT_CREATED:
            state.projects[p["project"]["id"]] = dict(p["project"])
            state.project_seq[p["project"]["id"]] = entry.seq
        elif entry.kind == events.BUDGET_SET:
            state.projects[p["project"]].update(p["budget"])
            state.project_seq[p["project"]] = entry.seq
        elif entry.kind == events.REGISTER_CAP_SET:
            state.caps[p["register"]] = (entry.seq, p["cap"])
        elif entry.kind == events.SPEND_COMMITTED:
            state.spends[p["spend_id"]] = (entry.seq, entry.actor, p)
            state.outcome[p["spend_id"]] = (entry.seq, "pending", None, None)
        elif entry.kind == events.RELEASE_STORED:
            state.releases[p["release_id"]] = (entry.seq, p)
            state.outcome[p["spend_id"]] = (entry.seq, "released", p["release_id"], None)
        elif entry.kind == events.SPEND_FAILED:
            state.outcome[p["spend_id"]] = (entry.seq, "failed", None, p["reason_code"])
    return state


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[int | None, str]] = []

    def add(self, seq: int | None, message: str) -> None:
        self.items.append((seq, message))

    def first(self) -> tuple[int | None, str | None]:
        if not self.items:
            return None, None
        numbered = [item for item in self.items if item[0] is not None]
        seq, message = min(numbered, key=lambda item: item[0] or 0) if numbered else self.items[0]
        return seq, message


def _check_state(tx: LedgerTxn, replay: _Replay, problems: _Problems) -> None:
    projects: dict[str, Project] = {p.id: p for p in tx.list_projects()}
    for project_id in sorted(set(projects) | set(replay.projects)):
        seq = replay.project_seq.get(project_id)
        if project_id not in replay.projects:
            problems.add(None, f"Project '{project_id}' is in the table but was never created in the chain.")
        elif project_id not in projects:
            problems.add(seq, f"Project '{project_id}' (entry {seq}) is missing from the table.")
        elif projects[project_id].describe() != replay.projects[project_id]:
            problems.add(seq, f"Project '{project_id}' differs from its last audit entry ({seq}).")

    from_rows: dict[str, Totals] = {}
    from_chain: dict[str, Totals] = {}
    register_rows: dict[str, Totals] = {}
    register_chain: dict[str, Totals] = {}
    seen: set[str] = set()
    for spend in tx.list_spends():
        seen.add(spend.spend_id)
        from_rows[spend.project_id] = from_rows.get(spend.project_id, Totals()).add(spend.charge)
        for name in spend.registers:
            register_rows[name] = register_rows.get(name, Totals()).add(spend.charge)
        recorded = replay.spends.get(spend.spend_id)
        if recorded is None:
            problems.add(None, f"Spend {spend.spend_id} is in the table but not in the audit chain.")
            continue
        seq, actor, p = recorded
        expected = (
            p["project"],
            tuple(p["registers"]),
            p["charge"],
            p["query_hash"],
            p["canonical_query_sha256"],
            p["idempotency_key"],
            p["created_unix"],
            actor,
            seq,
        )
        actual = (
            spend.project_id,
            spend.registers,
            spend.charge.to_json(),
            spend.query_hash,
            events.sha256_text(spend.canonical_query),
            spend.idempotency_key,
            spend.created_unix,
            spend.actor,
            spend.audit_seq,
        )
        if expected != actual:
            problems.add(
                seq, f"Spend {spend.spend_id} differs from its audit entry {seq} (amount or query altered)."
            )
        out_seq, state, release_id, failure = replay.outcome[spend.spend_id]
        if (spend.state, spend.release_id, spend.failure_code) != (state, release_id, failure):
            problems.add(out_seq, f"Spend {spend.spend_id}'s outcome differs from audit entry {out_seq}.")
    for spend_id, (seq, _, p) in replay.spends.items():
        charge = Charge.from_json(p["charge"])
        from_chain[p["project"]] = from_chain.get(p["project"], Totals()).add(charge)
        for name in p["registers"]:
            register_chain[name] = register_chain.get(name, Totals()).add(charge)
        if spend_id not in seen:
            problems.add(seq, f"Spend {spend_id} (entry {seq}) is missing from the table.")

    for project_id, project in projects.items():
        rows, chain = from_rows.get(project_id, Totals()), from_chain.get(project_id, Totals())
        if project.totals != rows:
            problems.add(
                None, f"Project '{project_id}''s running totals do not equal the sum of its spend rows."
            )
        if rows != chain:
            problems.add(
                None, f"Project '{project_id}''s spend rows do not add up to the audit chain's spends."
            )

    registers = {r.name: r for r in tx.list_registers()}
    for name in sorted(set(registers) | set(register_chain) | set(replay.caps)):
        register = registers.get(name)
        cap_seq, cap = replay.caps.get(name, (None, None))
        if register is None:
            problems.add(cap_seq, f"Register '{name}' is missing from the table.")
            continue
        if register.totals != register_rows.get(name, Totals()) or register.totals != register_chain.get(
            name, Totals()
        ):
            problems.add(None, f"Register '{name}''s running totals do not equal the sum of its spends.")
        if events.cap_json(register.cap) != cap:
            problems.add(cap_seq, f"Register '{name}''s cap differs from its last audit entry ({cap_seq}).")

    releases = {r.release_id: r for r in tx.list_releases()}
    for release_id in sorted(set(releases) | set(replay.releases)):
        recorded_release = replay.releases.get(release_id)
        release = releases.get(release_id)
        if recorded_release is None:
            problems.add(None, f"Release {release_id} is in the table but not in the audit chain.")
            continue
        seq, p = recorded_release
        if release is None:
            problems.add(seq, f"Release {release_id} (entry {seq}) is missing from the table.")
        elif events.release_stored(release) != p or release.audit_seq != seq:
            problems.add(seq, f"Release {release_id} differs from its audit entry {seq} (altered release).")


def verify_ledger(
    tx: LedgerTxn, key: bytes, *, expected_head: str | None = None, expected_count: int | None = None
) -> VerifyReport:
    """Verify the chain (and the published head, if given), then the tables against the chain."""
    chain = verify_chain(tx.audit_entries(), key, expected_head=expected_head, expected_count=expected_count)
    if not chain.ok:
        broken = chain.reason or "The audit chain does not verify."
        return VerifyReport(False, chain.entries, chain.head_hash, chain.first_bad_seq, broken, (broken,))
    problems = _Problems()
    pending: tuple[str, ...] = ()
    interrupted: tuple[str, ...] = ()
    try:
        replay = _replay(tx)
        _check_state(tx, replay, problems)
        pending = tuple(spend_id for spend_id, out in replay.outcome.items() if out[1] == "pending")
        interrupted = tuple(
            spend_id for spend_id, out in replay.outcome.items() if out[1:] == ("failed", None, INTERRUPTED)
        )
    except (KeyError, TypeError, ValueError) as exc:
        problems.add(None, f"An audit payload has an unexpected shape ({exc!r}).")
    if not problems.items:
        return VerifyReport(
            True, chain.entries, chain.head_hash, None, None, pending=pending, interrupted=interrupted
        )
    seq, reason = problems.first()
    return VerifyReport(
        False,
        chain.entries,
        chain.head_hash,
        seq,
        reason,
        tuple(message for _, message in problems.items),
        pending=pending,
        interrupted=interrupted,
    )
