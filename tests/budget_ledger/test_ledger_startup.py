"""The start-up check: a damaged ledger is refused, the chain is verified from a checkpoint, and
spends a crash left pending are marked failed (still charged); ``ledger verify`` never tracebacks."""

from __future__ import annotations

import io
import json
import os
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from budget_ledger import ChainBroken, Charge, Ledger, SpendResult, SqliteStore, UnsafeStore, verify_command
from budget_ledger.startup import StartupReport, start_ledger
from tests.budget_ledger.ledger_helpers import Clock, attacker_connection, pure_spec

TENTH = Charge(epsilon=Fraction(1, 10))


def fill(ledger: Ledger, spends: int, *, pending: int = 0) -> list[str]:
    """A project, ``spends`` released queries, then ``pending`` charged queries without a release."""
    ledger.create_project(pure_spec(epsilon=1000), "admin")
    ids = []
    for i in range(spends + pending):
        result = ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, f"h{i}", f"q{i}", actor="a")
        if i < spends:
            ledger.store_release(result.spend_id, f"r_{i}", json.dumps({"value": i, "pad": "x" * 400}))
        ids.append(result.spend_id)
    return ids[spends:]


def start(db_path: Path, key: bytes) -> tuple[Ledger, StartupReport]:
    """The service's start on the file at ``db_path``, with its checkpoint beside it."""
    return start_ledger(
        lambda: SqliteStore(db_path),
        key,
        db_path.parent / "ledger.checkpoint",
        where=str(db_path),
        reconcile_older_than=0.0,
    )


def corrupt_middle(path: Path, size: int = 4000) -> None:
    """Overwrite ``size`` bytes in the middle of the file with (reproducible) random bytes."""
    length = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(length // 2)
        handle.write(random.Random(12).randbytes(size))


def verify_text(db_path: Path, key: bytes) -> tuple[int, str]:
    out = io.StringIO()
    code = verify_command(db_path, key.hex(), out=out)
    return code, out.getvalue()


@dataclass(frozen=True)
class Files:
    """The ledger under test, its file and the audit key: what every start and ``verify`` needs."""

    ledger: Ledger
    path: Path
    key: bytes

    @property
    def checkpoint(self) -> Path:
        return self.path.parent / "ledger.checkpoint"

    def filled(self, spends: int, *, pending: int = 0) -> list[str]:
        """``fill`` the ledger and close it, as a stopped service leaves it; the pending spends' ids."""
        left = fill(self.ledger, spends, pending=pending)
        self.ledger.close()
        return left

    def start(self) -> tuple[Ledger, StartupReport]:
        return start(self.path, self.key)

    def verify_text(self) -> tuple[int, str]:
        return verify_text(self.path, self.key)


@pytest.fixture
def files(ledger: Ledger, db_path: Path, audit_key: bytes) -> Files:
    return Files(ledger, db_path, audit_key)


def test_a_corrupted_file_is_refused_at_start_and_reported_broken(files: Files) -> None:
    files.filled(120)
    assert files.path.stat().st_size > 100_000  # many pages: the middle one holds ledger rows
    corrupt_middle(files.path)
    with pytest.raises(UnsafeStore, match="damaged|cannot be read") as refused:
        files.start()
    assert "restore the last backup" in refused.value.message
    assert "Backup and restore" in refused.value.message
    code, text = files.verify_text()
    assert code == 1
    assert "BROKEN" in text and "reason:" in text and "Traceback" not in text


def test_an_unreadable_file_is_broken_not_a_traceback(tmp_path: Path, audit_key: bytes) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not a database" * 500)
    code, text = verify_text(path, audit_key)
    assert code == 1 and "BROKEN" in text and "cannot be opened" in text
    with pytest.raises(UnsafeStore, match="cannot be read"):
        start(path, audit_key)


def test_a_sound_ledger_starts_and_later_starts_verify_only_new_entries(files: Files) -> None:
    files.filled(3)
    first, report = files.start()
    assert report.entries == 7 and report.verified_from == 1 and report.reconciled == ()
    first.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "new", "new", actor="a")
    first.close()
    checkpoint = json.loads(files.checkpoint.read_text())
    assert checkpoint["seq"] == 7
    assert os.stat(files.checkpoint).st_mode & 0o777 == 0o600
    second, report = files.start()
    assert report.verified_from == 8  # entries 1-7 were verified at the first start
    assert report.entries == 8 and len(report.reconciled) == 1  # the new spend, left pending: now failed
    second.close()


def _started_once(files: Files) -> tuple[Ledger, SpendResult]:
    """Two spends (entries 1-5), a first start (checkpoint at entry 5), then one more spend (entry 6)."""
    files.filled(2)
    started, _ = files.start()
    return started, started.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "x", "x", actor="a")


def test_an_altered_entry_after_the_checkpoint_is_refused(files: Files) -> None:
    started, spent = _started_once(files)
    started.store_release(spent.spend_id, "r_x", "{}")
    started.close()
    # An entry after the checkpoint (entry 5).
    attacker_connection(files.path).execute("UPDATE audit SET actor = 'mallory' WHERE seq = 6")
    with pytest.raises(ChainBroken, match="Entry 6"):
        files.start()


def test_the_checkpoint_entry_itself_and_a_shorter_chain_are_refused(files: Files) -> None:
    started, _ = _started_once(files)
    started.close()
    # The checkpoint's entry.
    attacker_connection(files.path).execute("UPDATE audit SET hash = prev_hash WHERE seq = 5")
    with pytest.raises(ChainBroken, match="no longer has the hash"):
        files.start()
    # Truncation below the checkpoint.
    attacker_connection(files.path).execute("DELETE FROM audit WHERE seq >= 4")
    with pytest.raises(UnsafeStore, match="entries were removed"):
        files.start()


def test_a_checkpoint_not_signed_with_the_key_means_the_whole_chain(files: Files) -> None:
    files.filled(2)
    files.checkpoint.write_text(json.dumps({"seq": 5, "hash": "00" * 32, "mac": "ab"}))
    started, report = files.start()
    assert report.verified_from == 1 and report.entries == 5
    started.close()


def test_pending_spends_are_failed_still_charged_and_shown_by_verify(files: Files) -> None:
    left = fill(files.ledger, 2, pending=2)
    spent = files.ledger.budget("diabetes-2026").to_public()
    files.ledger.close()
    code, text = files.verify_text()
    assert code == 0 and "pending:     2" in text and all(spend_id in text for spend_id in left)
    started, report = files.start()
    assert set(report.reconciled) == set(left)
    assert all(started.get_spend(s).state == "failed" for s in left)
    assert all(started.get_spend(s).failure_code == "interrupted" for s in left)
    assert started.budget("diabetes-2026").to_public() == spent  # never refunded
    assert started.verify().ok
    started.close()
    code, text = files.verify_text()
    assert code == 0 and "pending:     0" in text and "interrupted: 2" in text
    assert all(spend_id in text for spend_id in left)


def test_only_old_pending_spends_are_reconciled_when_hosts_share_the_ledger(
    db_path: Path, audit_key: bytes, clock: Clock
) -> None:
    ledger = Ledger(SqliteStore(db_path), audit_key, clock=clock)
    old = fill(ledger, 0, pending=1)
    clock.advance(600)
    fresh = ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "fresh", "fresh", actor="a")
    failed = ledger.reconcile_pending(older_than=300)
    assert [s.spend_id for s in failed] == old
    assert ledger.get_spend(fresh.spend_id).state == "pending"
    ledger.close()
