"""Helpers shared by the budget ledger tests (a uniquely named module, importable from tests)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from budget_ledger import ProjectSpec


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def pure_spec(
    project_id: str = "diabetes-2026", epsilon: object = 1, delta: object = 0, **extra: object
) -> ProjectSpec:
    """A pure-DP project on cpr, lpr and lmdb."""
    fields: dict[str, object] = {
        "id": project_id,
        "title": "Type 2 diabetes by region",
        "purpose": "research",
        "registers": ("cpr", "lpr", "lmdb"),
        "mode": "pure",
        "epsilon": epsilon,
        "delta": delta,
        "institution": "Aarhus Universitet",
    }
    fields.update(extra)
    return ProjectSpec(**fields)  # type: ignore[arg-type]


def zcdp_spec(
    project_id: str = "heart-2026", epsilon: object = 1, delta: object = "1e-6", **extra: object
) -> ProjectSpec:
    """A zCDP project on cpr and lpr."""
    return pure_spec(project_id, epsilon, delta, mode="zcdp", registers=("cpr", "lpr"), **extra)


def attacker_connection(db_path: Path) -> sqlite3.Connection:
    """A connection to the SQLite ledger with the append-only triggers dropped: an attacker's edits."""
    con = sqlite3.connect(db_path, isolation_level=None)
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        con.execute(f"DROP TRIGGER {name}")
    return con
