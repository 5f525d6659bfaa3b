"""The audit chain: tampering is detected and named; the key file; the verify command."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
from fractions import Fraction
from pathlib import Path

import pytest

from budget_ledger import (
    ChainBroken,
    Charge,
    Ledger,
    SqliteStore,
    UnsafeStore,
    load_or_create_audit_key,
    parse_audit_key,
    verify_command,
)
from tests.budget_ledger.ledger_helpers import attacker_connection, pure_spec

TENTH = Charge(epsilon=Fraction(1, 10))


def fill(ledger: Ledger, spends: int = 4) -> None:
    """Entries: 1 project_created, then per query a spend_committed and a release_stored."""
    ledger.create_project(pure_spec(), "admin")
    for i in range(spends):
        result = ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, f"h{i}", f"q{i}", actor="a")
        ledger.store_release(result.spend_id, f"r_{i}", json.dumps({"value": i}))


def test_untouched_ledger_verifies(ledger: Ledger) -> None:
    fill(ledger)
    report = ledger.verify()
    assert report.ok and report.entries == 9 and report.first_bad_index is None
    assert report.head_hash == ledger.audit_head()[1]


def test_triggers_keep_tables_append_only(ledger: Ledger, db_path: Path) -> None:
    fill(ledger, 1)
    con = sqlite3.connect(db_path, isolation_level=None)
    for statement in (
        "UPDATE audit SET actor = 'x' WHERE seq = 1",
        "DELETE FROM audit WHERE seq = 1",
        "UPDATE spends SET epsilon = '1/1000'",
        "DELETE FROM spends",
        "DELETE FROM releases",
    ):
        with pytest.raises(sqlite3.IntegrityError):
            con.execute(statement)
    con.close()


def test_edited_audit_amount_is_named(ledger: Ledger, db_path: Path) -> None:
    fill(ledger)
    con = attacker_connection(db_path)
    payload = json.loads(con.execute("SELECT payload FROM audit WHERE seq = 4").fetchone()[0])
    payload["charge"]["epsilon"] = "1/1000"
    con.execute("UPDATE audit SET payload = ? WHERE seq = 4", (json.dumps(payload),))
    report = ledger.verify()
    assert not report.ok and report.first_bad_index == 4
    assert "Entry 4 (spend_committed) was altered" in (report.reason or "")


def test_edited_spend_row_amount_is_named(ledger: Ledger, db_path: Path) -> None:
    fill(ledger)
    con = attacker_connection(db_path)
    seq = con.execute("SELECT audit_seq FROM spends ORDER BY audit_seq LIMIT 1 OFFSET 2").fetchone()[0]
    con.execute("UPDATE spends SET epsilon = '1/1000' WHERE audit_seq = ?", (seq,))
    report = ledger.verify()
    assert not report.ok and report.first_bad_index == seq
    assert any("differs from its audit entry" in p for p in report.problems)
    assert any("do not equal the sum of its spend rows" in p for p in report.problems)


@pytest.mark.parametrize(
    ("statement", "bad_index", "reason"),
    [
        pytest.param(
            "UPDATE projects SET epsilon_spent = '1/10'", None, "running totals", id="running_total"
        ),
        pytest.param(
            "UPDATE releases SET release_json = '{\"value\": 99}' WHERE release_id = 'r_1'",
            5,
            "r_1",
            id="release",
        ),
        pytest.param("UPDATE projects SET epsilon = '100'", 1, "", id="raised_budget_in_table"),
        pytest.param("DELETE FROM audit WHERE seq = 5", 5, "missing", id="deleted_entry"),
    ],
)
def test_an_edited_table_is_detected_and_named(
    ledger: Ledger, db_path: Path, statement: str, bad_index: int | None, reason: str
) -> None:
    fill(ledger)
    attacker_connection(db_path).execute(statement)
    report = ledger.verify()
    assert not report.ok and report.first_bad_index == bad_index and reason in (report.reason or "")


def test_deleted_spend_row_is_named(ledger: Ledger, db_path: Path) -> None:
    fill(ledger)
    con = attacker_connection(db_path)
    seq = con.execute("SELECT audit_seq FROM spends ORDER BY audit_seq DESC LIMIT 1").fetchone()[0]
    con.execute("DELETE FROM releases WHERE audit_seq > ?", (seq,))
    con.execute("DELETE FROM spends WHERE audit_seq = ?", (seq,))
    report = ledger.verify()
    assert not report.ok and report.first_bad_index == seq


def test_reordered_entries_are_named(ledger: Ledger, db_path: Path) -> None:
    fill(ledger)
    con = attacker_connection(db_path)
    # The scratch position must pass the schema's check (seq >= 1), as in the PostgreSQL twin of this test.
    con.execute("UPDATE audit SET seq = 1000 WHERE seq = 3")
    con.execute("UPDATE audit SET seq = 3 WHERE seq = 6")
    con.execute("UPDATE audit SET seq = 6 WHERE seq = 1000")
    report = ledger.verify()
    assert not report.ok and report.first_bad_index == 3


def test_truncated_tail_is_detected_with_the_published_head(ledger: Ledger, db_path: Path) -> None:
    fill(ledger)
    ledger.append_event("request_audit", {"n": 1}, "svc")
    ledger.append_event("request_audit", {"n": 2}, "svc")
    count, head = ledger.audit_head()
    assert ledger.verify(expected_head=head, expected_count=count).ok
    attacker_connection(db_path).execute("DELETE FROM audit WHERE seq > ?", (count - 2,))
    # A clean truncation leaves a valid chain: only the published head can reveal it.
    assert ledger.verify().ok
    report = ledger.verify(expected_head=head, expected_count=count)
    assert not report.ok and report.entries == count - 2
    assert report.first_bad_index == count - 1 and "truncation" in (report.reason or "")
    assert not ledger.verify(expected_head=head).ok


def test_published_head_still_verifies_after_more_entries(ledger: Ledger) -> None:
    fill(ledger, 1)
    count, head = ledger.audit_head()
    fill_more = ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, "later", "q", actor="a")
    assert fill_more.charged
    assert ledger.verify(expected_head=head, expected_count=count).ok
    assert not ledger.verify(expected_head=head, expected_count=count + 1).ok


def test_wrong_key_is_refused_at_start_and_by_verify(
    ledger: Ledger, store: SqliteStore, db_path: Path
) -> None:
    fill(ledger, 1)
    other = os.urandom(32)
    with pytest.raises(ChainBroken, match="does not verify with this audit key"):
        Ledger(store, other)
    out = io.StringIO()
    assert verify_command(db_path, other.hex(), out=out) == 1
    assert "first bad: entry 1" in out.getvalue()


def test_key_file_is_created_0600_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit.key"
    key = load_or_create_audit_key(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_audit_key(path) == key
    assert not list(path.parent.glob("*.tmp"))
    path.chmod(0o644)
    with pytest.raises(UnsafeStore, match="chmod 600"):
        load_or_create_audit_key(path)


def test_hex_key_parsing() -> None:
    assert parse_audit_key("ab" * 32) == bytes([0xAB]) * 32
    with pytest.raises(Exception, match="hexadecimal"):
        parse_audit_key("not hex")
    with pytest.raises(Exception, match="at least 16 bytes"):
        parse_audit_key("ab" * 8)


def test_verify_command_reports_ok_and_broken(ledger: Ledger, db_path: Path, tmp_path: Path) -> None:
    fill(ledger)
    key_file = tmp_path / "audit.key"
    out = io.StringIO()
    assert verify_command(db_path, key_file, out=out) == 0
    count, head = ledger.audit_head()
    assert "OK" in out.getvalue() and f"entries:   {count}" in out.getvalue() and str(head) in out.getvalue()
    out = io.StringIO()
    assert verify_command(db_path, key_file.read_bytes().hex(), expected_head=head, out=out) == 0

    attacker_connection(db_path).execute("DELETE FROM audit WHERE seq = 2")
    out = io.StringIO()
    assert verify_command(db_path, key_file, out=out) == 1
    assert "BROKEN" in out.getvalue() and "first bad: entry 2" in out.getvalue()

    out = io.StringIO()
    assert verify_command(tmp_path / "missing.sqlite", key_file, out=out) == 2
    assert verify_command(db_path, "zz", out=io.StringIO()) == 2


def test_verify_command_writes_nothing_and_never_prints_a_url_password(tmp_path: Path) -> None:
    key = os.urandom(32).hex()
    missing = tmp_path / "missing.sqlite"
    out = io.StringIO()
    assert verify_command(missing, key, out=out) == 2
    assert "No ledger database" in out.getvalue() and not missing.exists()

    out = io.StringIO()
    assert verify_command("mysql://auditor:s3cret-pw@db.internal/ledger", key, out=out) == 2
    assert "Unknown ledger URL scheme 'mysql://'" in out.getvalue()
    assert "s3cret-pw" not in out.getvalue()
