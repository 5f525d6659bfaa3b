"""The ledger transaction both SQL stores share: rows to records and back, and the queries.

Both stores keep the same five tables (``projects``, ``registers``, ``spends``, ``releases``,
``audit``), declared once in :mod:`budget_ledger.schema`, whose columns are named after the records'
fields, with amounts as exact fraction text (``"1/8"``). What differs is the store's dialect: the
parameter marker, how a list of registers and a date are stored (:class:`Dialect`), how a register
row is upserted, how statements are sent (at once, or queued and pipelined) and how a whole table is
read (one cursor, or pages). :class:`SqlTxn`
implements :class:`~budget_ledger.store.LedgerTxn` once over those; each store module keeps its own
SQL dialect, locking and connections.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date
from fractions import Fraction
from functools import cache
from typing import Any, ClassVar, Protocol

from .accounting import BudgetLimits, Totals
from .audit_chain import AuditEntry, canonical_json
from .caps import CapLimits
from .errors import LedgerInvariantError
from .loss import Charge, fraction_from_text, fraction_to_text
from .records import Project, RegisterState, Spend, StoredRelease
from .schema import TABLES

__all__ = [
    "REGISTER_COLUMNS",
    "Dialect",
    "Row",
    "SqlTxn",
    "check_one_row",
    "column_list",
    "register_values",
]

_COLUMNS = {table.name: table.column_names for table in TABLES}
_PROJECT_COLUMNS = _COLUMNS["projects"]
_PROJECT_BUDGET_COLUMNS = ("epsilon", "delta", "rho", "epsilon_spent", "rho_spent", "delta_spent", "spends")
REGISTER_COLUMNS = _COLUMNS["registers"]
_SPEND_COLUMNS = _COLUMNS["spends"]
_RELEASE_COLUMNS = _COLUMNS["releases"]
_AUDIT_COLUMNS = _COLUMNS["audit"]


def column_list(columns: Sequence[str]) -> str:
    """``columns`` as SQL: ``"id, title, ..."``."""
    return ", ".join(columns)


class Row(Protocol):
    """A result row read by column name (``sqlite3.Row``, psycopg's ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True)
class Dialect:
    """What a store spells its own way: the parameter marker and two column types."""

    marker: str
    """The parameter marker: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    registers_to_db: Callable[[tuple[str, ...]], Any]
    registers_from_db: Callable[[Any], tuple[str, ...]]
    date_to_db: Callable[[date], Any]
    date_from_db: Callable[[Any], date]

    def markers(self, columns: Sequence[str]) -> str:
        """One parameter marker per column: ``"?, ?, ?"``."""
        return ", ".join(self.marker for _ in columns)


def check_one_row(what: str | None, rowcount: int) -> None:
    """Raise ``LedgerInvariantError`` unless a write that must change one ``what`` row changed one."""
    if what is not None and rowcount != 1:
        raise LedgerInvariantError(f"Expected to write one {what} row, wrote {rowcount}.")


# --- rows <-> records -------------------------------------------------------------------------------


def _optional_fraction(text: str | None) -> Fraction | None:
    return None if text is None else fraction_from_text(text)


def _optional_text(value: Fraction | None) -> str | None:
    return None if value is None else fraction_to_text(value)


@cache
def _field_names(record_type: type) -> tuple[str, ...]:
    return tuple(field.name for field in fields(record_type))


def _record_arguments(record_type: type, row: Row, **read: Any) -> dict[str, Any]:
    """Keyword arguments for ``record_type``: ``read`` where given, else the row's column of that name."""
    return {name: read[name] if name in read else row[name] for name in _field_names(record_type)}


def _values(record: object, columns: Sequence[str], **stored: Any) -> tuple[Any, ...]:
    """Parameters for ``columns``: ``stored`` where given, else the record's attribute of that name."""
    return tuple(stored[name] if name in stored else getattr(record, name) for name in columns)


def _totals_from_row(row: Row) -> Totals:
    return Totals(
        fraction_from_text(row["epsilon_spent"]),
        fraction_from_text(row["rho_spent"]),
        fraction_from_text(row["delta_spent"]),
        row["spends"],
    )


def _totals_values(totals: Totals) -> dict[str, Any]:
    return {
        "epsilon_spent": fraction_to_text(totals.epsilon),
        "rho_spent": fraction_to_text(totals.rho),
        "delta_spent": fraction_to_text(totals.delta),
        "spends": totals.spends,
    }


def _limits_values(limits: BudgetLimits) -> dict[str, Any]:
    return {
        "epsilon": fraction_to_text(limits.epsilon),
        "delta": fraction_to_text(limits.delta),
        "rho": _optional_text(limits.rho),
    }


def _project_from_row(row: Row, dialect: Dialect) -> Project:
    limits = BudgetLimits(
        row["mode"],
        fraction_from_text(row["epsilon"]),
        fraction_from_text(row["delta"]),
        _optional_fraction(row["rho"]),
    )
    expires = row["expires"]
    return Project(
        **_record_arguments(
            Project,
            row,
            registers=dialect.registers_from_db(row["registers"]),
            limits=limits,
            expires=None if expires is None else dialect.date_from_db(expires),
            totals=_totals_from_row(row),
        )
    )


def _project_values(project: Project, dialect: Dialect) -> tuple[Any, ...]:
    # ``mode`` is the project's property (its limits' mode).
    return _values(
        project,
        _PROJECT_COLUMNS,
        registers=dialect.registers_to_db(project.registers),
        expires=None if project.expires is None else dialect.date_to_db(project.expires),
        **_limits_values(project.limits),
        **_totals_values(project.totals),
    )


def _register_from_row(row: Row) -> RegisterState:
    cap = None
    if row["cap_rho"] is not None:
        cap = CapLimits(
            fraction_from_text(row["cap_rho"]),
            fraction_from_text(row["cap_delta"]),
            _optional_fraction(row["cap_epsilon_requested"]),
            fraction_from_text(row["cap_delta_requested"]),
        )
    return RegisterState(row["name"], cap, _totals_from_row(row))


def register_values(register: RegisterState) -> tuple[Any, ...]:
    """Parameters for ``REGISTER_COLUMNS`` (the stores upsert a register each in its own SQL)."""
    cap = register.cap
    return _values(
        register,
        REGISTER_COLUMNS,
        cap_rho=None if cap is None else fraction_to_text(cap.rho),
        cap_delta=None if cap is None else fraction_to_text(cap.delta),
        cap_epsilon_requested=None if cap is None else _optional_text(cap.epsilon_requested),
        cap_delta_requested=None if cap is None else fraction_to_text(cap.delta_requested),
        **_totals_values(register.totals),
    )


def _spend_from_row(row: Row, dialect: Dialect) -> Spend:
    charge = Charge(
        fraction_from_text(row["epsilon"]), fraction_from_text(row["rho"]), fraction_from_text(row["delta"])
    )
    return Spend(
        **_record_arguments(Spend, row, registers=dialect.registers_from_db(row["registers"]), charge=charge)
    )


def _spend_values(spend: Spend, dialect: Dialect) -> tuple[Any, ...]:
    charge = spend.charge
    return _values(
        spend,
        _SPEND_COLUMNS,
        registers=dialect.registers_to_db(spend.registers),
        epsilon=fraction_to_text(charge.epsilon),
        rho=fraction_to_text(charge.rho),
        delta=fraction_to_text(charge.delta),
    )


def _release_from_row(row: Row) -> StoredRelease:
    return StoredRelease(**_record_arguments(StoredRelease, row))


def _audit_from_row(row: Row) -> AuditEntry:
    return AuditEntry(**_record_arguments(AuditEntry, row, payload=json.loads(row["payload"])))


def _audit_values(entry: AuditEntry) -> tuple[Any, ...]:
    return _values(entry, _AUDIT_COLUMNS, payload=canonical_json(entry.payload).decode("utf-8"))


# --- the queries ------------------------------------------------------------------------------------

_PROJECTS = column_list(_PROJECT_COLUMNS)
_REGISTERS = column_list(REGISTER_COLUMNS)
_SPENDS = column_list(_SPEND_COLUMNS)
_RELEASES = column_list(_RELEASE_COLUMNS)
_AUDIT = column_list(_AUDIT_COLUMNS)


class SqlTxn(ABC):
    """:class:`~budget_ledger.store.LedgerTxn` over the ledger's tables, in a store's ``dialect``.

    A store's transaction class says how statements run: ``_one`` and ``_all`` read, ``_write``
    writes (``one`` names the row kind a statement must change exactly once, checked with
    :func:`check_one_row`), ``_scan`` reads a whole table in key order; and it upserts registers.
    """

    dialect: ClassVar[Dialect]

    @abstractmethod
    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        """The first row of a query, or None."""

    @abstractmethod
    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> Sequence[Row]:
        """All rows of a query."""

    @abstractmethod
    def _write(self, sql: str, params: tuple[Any, ...], one: str | None = None) -> None:
        """Run (or queue) a write; with ``one``, it must change exactly one row."""

    @abstractmethod
    def _scan(self, columns: str, table: str, key: str) -> Iterator[Row]:
        """Every row of ``table`` ordered by ``key`` (a unique integer column)."""

    @abstractmethod
    def put_register(self, register: RegisterState) -> None:
        """Insert or replace a register's cap and totals (an upsert, in the store's dialect)."""

    def _insert(self, table: str, columns: Sequence[str], values: tuple[Any, ...]) -> None:
        self._write(
            f"INSERT INTO {table} ({column_list(columns)}) VALUES ({self.dialect.markers(columns)})", values
        )

    def get_project(self, project_id: str) -> Project | None:
        row = self._one(f"SELECT {_PROJECTS} FROM projects WHERE id = {self.dialect.marker}", (project_id,))
        return None if row is None else _project_from_row(row, self.dialect)

    def list_projects(self) -> list[Project]:
        rows = self._all(f"SELECT {_PROJECTS} FROM projects ORDER BY id")
        return [_project_from_row(row, self.dialect) for row in rows]

    def insert_project(self, project: Project) -> None:
        self._insert("projects", _PROJECT_COLUMNS, _project_values(project, self.dialect))

    def update_project(self, project: Project) -> None:
        mark = self.dialect.marker
        assignments = ", ".join(f"{column} = {mark}" for column in _PROJECT_BUDGET_COLUMNS)
        self._write(
            f"UPDATE projects SET {assignments} WHERE id = {mark}",
            _values(
                project,
                (*_PROJECT_BUDGET_COLUMNS, "id"),
                **_limits_values(project.limits),
                **_totals_values(project.totals),
            ),
            "project",
        )

    def get_register(self, name: str) -> RegisterState | None:
        row = self._one(f"SELECT {_REGISTERS} FROM registers WHERE name = {self.dialect.marker}", (name,))
        return None if row is None else _register_from_row(row)

    def list_registers(self) -> list[RegisterState]:
        rows = self._all(f"SELECT {_REGISTERS} FROM registers ORDER BY name")
        return [_register_from_row(row) for row in rows]

    def get_spend(self, spend_id: str) -> Spend | None:
        row = self._one(f"SELECT {_SPENDS} FROM spends WHERE spend_id = {self.dialect.marker}", (spend_id,))
        return None if row is None else _spend_from_row(row, self.dialect)

    def find_spend_by_idempotency_key(self, project_id: str, key: str) -> Spend | None:
        mark = self.dialect.marker
        row = self._one(
            f"SELECT {_SPENDS} FROM spends WHERE project_id = {mark} AND idempotency_key = {mark}",
            (project_id, key),
        )
        return None if row is None else _spend_from_row(row, self.dialect)

    def find_pending_spends(self, project_id: str, query_hash: str) -> list[Spend]:
        mark = self.dialect.marker
        rows = self._all(
            f"SELECT {_SPENDS} FROM spends WHERE project_id = {mark} AND query_hash = {mark} "
            "AND state = 'pending' ORDER BY audit_seq",
            (project_id, query_hash),
        )
        return [_spend_from_row(row, self.dialect) for row in rows]

    def list_pending_spends(self) -> list[Spend]:
        rows = self._all(f"SELECT {_SPENDS} FROM spends WHERE state = 'pending' ORDER BY audit_seq")
        return [_spend_from_row(row, self.dialect) for row in rows]

    def insert_spend(self, spend: Spend) -> None:
        self._insert("spends", _SPEND_COLUMNS, _spend_values(spend, self.dialect))

    def update_spend_state(self, spend: Spend) -> None:
        mark = self.dialect.marker
        self._write(
            f"UPDATE spends SET state = {mark}, release_id = {mark}, failure_code = {mark} "
            f"WHERE spend_id = {mark}",
            (spend.state, spend.release_id, spend.failure_code, spend.spend_id),
            "spend",
        )

    def list_spends(self) -> Iterator[Spend]:
        for row in self._scan(_SPENDS, "spends", "audit_seq"):
            yield _spend_from_row(row, self.dialect)

    def count_spends_since(self, project_id: str, since_unix: float) -> int:
        mark = self.dialect.marker
        row = self._one(
            f"SELECT count(*) AS n FROM spends WHERE project_id = {mark} AND created_unix >= {mark}",
            (project_id, since_unix),
        )
        return 0 if row is None else int(row["n"])

    def get_release(self, release_id: str) -> StoredRelease | None:
        mark = self.dialect.marker
        row = self._one(f"SELECT {_RELEASES} FROM releases WHERE release_id = {mark}", (release_id,))
        return None if row is None else _release_from_row(row)

    def find_latest_release(self, project_id: str, query_hash: str) -> StoredRelease | None:
        mark = self.dialect.marker
        row = self._one(
            f"SELECT {_RELEASES} FROM releases WHERE project_id = {mark} AND query_hash = {mark} "
            "ORDER BY audit_seq DESC LIMIT 1",
            (project_id, query_hash),
        )
        return None if row is None else _release_from_row(row)

    def list_releases(self, project_id: str | None = None) -> list[StoredRelease]:
        if project_id is None:
            rows = self._all(f"SELECT {_RELEASES} FROM releases ORDER BY audit_seq")
        else:
            mark = self.dialect.marker
            rows = self._all(
                f"SELECT {_RELEASES} FROM releases WHERE project_id = {mark} ORDER BY audit_seq",
                (project_id,),
            )
        return [_release_from_row(row) for row in rows]

    def insert_release(self, release: StoredRelease) -> None:
        self._insert("releases", _RELEASE_COLUMNS, _values(release, _RELEASE_COLUMNS))

    def audit_head(self) -> AuditEntry | None:
        row = self._one(f"SELECT {_AUDIT} FROM audit ORDER BY seq DESC LIMIT 1")
        return None if row is None else _audit_from_row(row)

    def append_audit(self, entry: AuditEntry) -> None:
        self._insert("audit", _AUDIT_COLUMNS, _audit_values(entry))

    def audit_entries(self) -> Iterator[AuditEntry]:
        for row in self._scan(_AUDIT, "audit", "seq"):
            yield _audit_from_row(row)

    def audit_entries_from(self, seq: int) -> list[AuditEntry]:
        rows = self._all(
            f"SELECT {_AUDIT} FROM audit WHERE seq >= {self.dialect.marker} ORDER BY seq", (seq,)
        )
        return [_audit_from_row(row) for row in rows]
