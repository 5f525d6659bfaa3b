"""Tampering with a PostgreSQL ledger is detected and named, as on SQLite.

The attacker is the database superuser with the append-only triggers switched off for the session
(``session_replication_role = replica``): everything in the database can change, only the audit key
is out of reach.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from fractions import Fraction

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from budget_ledger import ChainBroken, Charge, InvalidRequest, Ledger, verify_command
from budget_ledger.postgres_store import PostgresLedgerStore, describe_url
from budget_ledger.store import open_store
from budget_ledger.verify import verify_ledger
from tests.budget_ledger.ledger_helpers import pure_spec
from tests.budget_ledger.pg_ledger import postgres_store_fixture  # noqa: F401
from tests.helpers.pg_server import TemporaryPostgres, pg_url_fixture, postgres_server_fixture  # noqa: F401

TENTH = Charge(epsilon=Fraction(1, 10))


@pytest.fixture
def attacker(postgres_server: TemporaryPostgres, pg_url: str) -> Iterator[psycopg.Connection]:
    """A superuser connection to the ledger's schema that bypasses the triggers."""
    with postgres_server.admin_connect(pg_url) as con:
        con.execute("SET session_replication_role = replica")
        yield con


def fill(ledger: Ledger, spends: int = 4) -> None:
    """Entries: 1 project_created, then per query a spend_committed (even) and a release_stored (odd)."""
    ledger.create_project(pure_spec(), "admin")
    for i in range(spends):
        result = ledger.reserve_and_commit("diabetes-2026", ["cpr"], TENTH, f"h{i}", f"q{i}", actor="a")
        ledger.store_release(result.spend_id, f"r_{i}", json.dumps({"value": i}))


def _edit_audit_amount(con: psycopg.Connection) -> None:
    row = con.execute("SELECT payload FROM audit WHERE seq = 4").fetchone()
    assert row is not None
    payload = json.loads(row[0])
    payload["charge"]["epsilon"] = "1/1000"
    con.execute("UPDATE audit SET payload = %s WHERE seq = 4", (json.dumps(payload),))


@pytest.mark.parametrize(
    ("tamper", "first_bad", "reason"),
    [
        pytest.param(_edit_audit_amount, 4, "Entry 4 (spend_committed) was altered", id="audit_amount"),
        pytest.param(
            "UPDATE spends SET epsilon = '1/1000' WHERE audit_seq = 6",
            6,
            "differs from its audit entry",
            id="spend_amount",
        ),
        pytest.param(
            "UPDATE spends SET state = 'failed', release_id = NULL, failure_code = 'x' WHERE audit_seq = 4",
            5,
            "outcome differs",
            id="spend_outcome",
        ),
        pytest.param(
            "UPDATE projects SET epsilon_spent = '1/10'", None, "running totals", id="running_total"
        ),
        pytest.param("UPDATE registers SET rho_spent = '0'", None, "running totals", id="register_total"),
        pytest.param(
            "UPDATE releases SET release_json = '{\"value\": 99}' WHERE release_id = 'r_1'",
            5,
            "r_1",
            id="release",
        ),
        pytest.param(
            "UPDATE projects SET epsilon = '100'", 1, "differs from its last audit entry", id="budget"
        ),
        pytest.param("DELETE FROM audit WHERE seq = 5", 5, "missing", id="deleted_entry"),
        pytest.param(
            "DELETE FROM releases WHERE audit_seq > 8; DELETE FROM spends WHERE audit_seq = 8",
            8,
            "missing from the table",
            id="deleted_spend",
        ),
        pytest.param(
            "UPDATE audit SET seq = 1000 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 6; "
            "UPDATE audit SET seq = 6 WHERE seq = 1000",
            3,
            "",
            id="reordered",
        ),
    ],
)
def test_tampering_is_named(
    ledger: Ledger, attacker: psycopg.Connection, tamper: object, first_bad: int | None, reason: str
) -> None:
    fill(ledger)
    assert ledger.verify().ok
    if callable(tamper):
        tamper(attacker)
    else:
        attacker.execute(str(tamper).encode())
    report = ledger.verify()
    assert not report.ok and report.first_bad_index == first_bad
    assert reason in " ".join(report.problems)


def test_truncated_tail_is_detected_with_the_published_head(
    ledger: Ledger, attacker: psycopg.Connection
) -> None:
    fill(ledger)
    ledger.append_event("request_audit", {"n": 1}, "svc")
    ledger.append_event("request_audit", {"n": 2}, "svc")
    count, head = ledger.audit_head()
    attacker.execute("DELETE FROM audit WHERE seq > %s", (count - 2,))
    assert ledger.verify().ok  # a clean truncation leaves a valid chain
    report = ledger.verify(expected_head=head, expected_count=count)
    assert not report.ok and report.first_bad_index == count - 1 and "truncation" in (report.reason or "")


def test_wrong_key_is_refused_at_start_and_by_verify(ledger: Ledger, store: PostgresLedgerStore) -> None:
    fill(ledger, 1)
    other = os.urandom(32)
    with pytest.raises(ChainBroken, match="does not verify with this audit key"):
        Ledger(store, other)
    with store.snapshot() as tx:
        report = verify_ledger(tx, other)
    assert not report.ok and report.first_bad_index == 1


def test_the_key_is_not_in_the_database(
    ledger: Ledger, attacker: psycopg.Connection, audit_key: bytes
) -> None:
    fill(ledger, 1)
    tables = [
        row[0]
        for row in attacker.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    ]
    assert "audit" in tables
    for table in tables:
        dump = "".join(str(row) for row in attacker.execute(f"SELECT * FROM {table}").fetchall())
        assert audit_key.hex() not in dump and repr(audit_key) not in dump


# --- sundstat ledger verify on a PostgreSQL URL -----------------------------------------------------


def test_verify_command_on_a_postgres_url(
    ledger: Ledger, audit_key: bytes, pg_url: str, attacker: psycopg.Connection
) -> None:
    fill(ledger, 2)
    count, head = ledger.audit_head()
    password = conninfo_to_dict(pg_url)["password"]
    out = io.StringIO()
    assert verify_command(pg_url, audit_key.hex(), expected_head=head, expected_count=count, out=out) == 0
    report = out.getvalue()
    assert f"Ledger {describe_url(pg_url)} (PostgreSQL): OK" in report and f"entries:   {count}" in report
    assert password not in report

    attacker.execute("DELETE FROM audit WHERE seq = 3")
    out = io.StringIO()
    assert verify_command(pg_url, audit_key.hex(), out=out) == 1
    assert "BROKEN" in out.getvalue() and "first bad: entry 3" in out.getvalue()
    assert password not in out.getvalue()


def test_verify_command_refuses_an_empty_database_and_creates_nothing(
    postgres_server: TemporaryPostgres, audit_key: bytes
) -> None:
    url = postgres_server.schema_url()  # a fresh schema: no ledger in it
    out = io.StringIO()
    assert verify_command(url, audit_key.hex(), out=out) == 2
    assert "There is no ledger in" in out.getvalue()
    tables = postgres_server.sql("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()", url)
    assert tables == [(0,)]
    with pytest.raises(InvalidRequest, match="There is no ledger in"):
        open_store(url, create=False)


def test_verify_command_on_an_unreachable_server_names_it_without_the_password(
    postgres_server: TemporaryPostgres, audit_key: bytes
) -> None:
    url = postgres_server.url("ledger_missing_db", password="not-the-password")
    out = io.StringIO()
    assert verify_command(url, audit_key.hex(), out=out) == 2
    assert "Cannot open the ledger" in out.getvalue() and "sundstat@127.0.0.1" in out.getvalue()
    assert "not-the-password" not in out.getvalue()
