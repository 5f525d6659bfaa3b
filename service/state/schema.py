"""The service's tables, declared once and rendered for SQLite and PostgreSQL.

Each table is a list of columns with a portable type (``text``, ``integer``, ``bigint``, ``real``) and
constraints written in the SQL both databases share; :func:`create_table` renders it for a dialect
(``real`` is SQLite's 8-byte REAL and PostgreSQL's DOUBLE PRECISION, never the 4-byte ``real``).
The migrations in :mod:`service.state.migrations` create these tables in order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = [
    "APPLICANTS",
    "APPLICATIONS",
    "APPLICATION_IDENTITY_COLUMNS",
    "COHORTS",
    "IDENTITY_INDEXES",
    "INSTITUTIONS",
    "META",
    "OIDC_LOGINS",
    "PROJECT_PERMITS",
    "RATE_EVENTS",
    "RATE_LIMITS",
    "TOKENS",
    "Column",
    "Dialect",
    "Index",
    "Table",
    "create_index",
    "create_table",
    "rebuild_table",
]

Dialect = Literal["sqlite", "postgresql"]
ColumnType = Literal["text", "integer", "bigint", "real"]

_TYPES: dict[Dialect, dict[ColumnType, str]] = {
    "sqlite": {"text": "TEXT", "integer": "INTEGER", "bigint": "INTEGER", "real": "REAL"},
    "postgresql": {"text": "TEXT", "integer": "INTEGER", "bigint": "BIGINT", "real": "DOUBLE PRECISION"},
}


@dataclass(frozen=True)
class Column:
    """One column: name, portable type, and constraints in SQL common to both dialects."""

    name: str
    type: ColumnType
    constraints: str = ""


@dataclass(frozen=True)
class Index:
    """A secondary index."""

    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table: columns, table-level CHECKs, secondary indexes, multi-column UNIQUE constraints."""

    name: str
    columns: tuple[Column, ...]
    checks: tuple[str, ...] = ()
    indexes: tuple[Index, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()


def create_table(table: Table, dialect: Dialect) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` and its indexes, for ``dialect``."""
    types = _TYPES[dialect]
    lines = [
        f"    {c.name} {types[c.type]}{' ' + c.constraints if c.constraints else ''}" for c in table.columns
    ]
    lines += [f"    CHECK ({check})" for check in table.checks]
    lines += [f"    UNIQUE ({', '.join(columns)})" for columns in table.unique]
    body = ",\n".join(lines)
    statements = [f"CREATE TABLE IF NOT EXISTS {table.name} (\n{body}\n)"]
    statements += [create_index(table, index) for index in table.indexes]
    return statements


def add_column(table: str, column: Column, dialect: Dialect) -> str:
    """``ALTER TABLE ... ADD COLUMN`` for ``dialect`` (run only when the column is missing)."""
    constraints = f" {column.constraints}" if column.constraints else ""
    return f"ALTER TABLE {table} ADD COLUMN {column.name} {_TYPES[dialect][column.type]}{constraints}"


def rebuild_table(table: Table, dialect: Dialect, *, version: int = 0) -> list[str]:
    """Re-create an existing table from its (changed) declaration, keeping its rows.

    For changes ``ALTER TABLE`` cannot make in SQLite, such as a CHECK that allows a new token role:
    a new table from the declaration, every row copied (the declaration's columns must all exist in
    the old table; add new columns with a default in a step of their own), the old table dropped, the
    new one renamed, its indexes re-created. Run inside the migration's transaction. The staging name
    carries the migration's ``version``: PostgreSQL keeps the staging table's constraint index names
    (``<staging>_pkey``) after the rename, so a later rebuild must not reuse them.
    """
    staging = replace(table, name=f"{table.name}__rebuild{version or ''}", indexes=())
    columns = ", ".join(c.name for c in table.columns)
    return [
        *create_table(staging, dialect),
        f"INSERT INTO {staging.name} ({columns}) SELECT {columns} FROM {table.name}",
        f"DROP TABLE {table.name}",
        f"ALTER TABLE {staging.name} RENAME TO {table.name}",
        *(create_index(table, index) for index in table.indexes),
    ]


def create_index(table: Table, index: Index) -> str:
    """``CREATE INDEX IF NOT EXISTS`` (the same text in both dialects)."""
    return f"CREATE INDEX IF NOT EXISTS {index.name} ON {table.name} ({', '.join(index.columns)})"


META = Table(
    "meta",
    (Column("key", "text", "PRIMARY KEY"), Column("value", "text", "NOT NULL")),
)
"""Service metadata, e.g. ``bootstrapped_at`` and ``schema_version``."""

# The role CHECK lists every token role. A new role is added here (new databases get it from migration
# 1) and by a migration that rebuilds the table (``Migration(n, ..., rebuilt=(TOKENS,))``) for
# existing ones, as migration 3 did for ``applicant`` (with the ``applicant`` column it added first).
# Indexes on columns a later migration adds are not declared here (migration 1 would create them on a
# table without those columns): see IDENTITY_INDEXES.
TOKENS = Table(
    "tokens",
    (
        Column("id", "text", "PRIMARY KEY"),
        Column("hash", "text", "NOT NULL UNIQUE"),
        Column("prefix", "text", "NOT NULL"),
        Column("role", "text", "NOT NULL CHECK (role IN ('admin', 'analyst', 'applicant'))"),
        Column("project", "text"),
        Column("applicant", "text"),
        Column("name", "text", "NOT NULL"),
        Column("created_at", "text", "NOT NULL"),
        Column("created_by", "text", "NOT NULL"),
        Column("expires_at", "text"),
        Column("revoked_at", "text"),
    ),
    checks=("(role = 'analyst') = (project IS NOT NULL)", "(role = 'applicant') = (applicant IS NOT NULL)"),
    indexes=(Index("tokens_project", ("project",)),),
)

APPLICATION_IDENTITY_COLUMNS = (
    Column("applicant", "text"),
    Column("institution_id", "text"),
    Column("waiting_reasons", "text"),
)
"""What ties an application to its signed-in applicant (added by migration 3)."""

APPLICATIONS = Table(
    "applications",
    (
        Column("id", "text", "PRIMARY KEY"),
        Column("status_key_hash", "text", "NOT NULL"),
        Column("body", "text", "NOT NULL"),
        Column("status", "text", "NOT NULL CHECK (status IN ('pending', 'approved', 'rejected'))"),
        Column("submitted_at", "text", "NOT NULL"),
        Column("decided_at", "text"),
        Column("decided_by", "text"),
        Column("route", "text"),
        Column("reason", "text"),
        Column("project", "text"),
        Column("granted_epsilon", "real"),
        Column("granted_delta", "real"),
        Column("expires", "text"),
        Column("token_collected", "integer", "NOT NULL DEFAULT 0"),
        *APPLICATION_IDENTITY_COLUMNS,
    ),
)

RATE_LIMITS = Table(
    "rate_limits",
    (Column("key", "text", "PRIMARY KEY"), Column("tat", "real", "NOT NULL")),
)
"""One row per rate-limited key: its theoretical arrival time (GCRA), in Unix seconds."""

PROJECT_PERMITS = Table(
    "project_permits",
    (
        Column("project", "text", "PRIMARY KEY"),
        Column("permit_id", "text", "NOT NULL UNIQUE"),
        Column("created_at", "text", "NOT NULL"),
        Column("created_by", "text", "NOT NULL"),
    ),
)
"""The permit behind each project: the application id, or an administrator-given id."""

RATE_EVENTS = Table(
    "rate_events",
    (Column("key", "text", "NOT NULL"), Column("at", "real", "NOT NULL")),
    indexes=(Index("rate_events_key", ("key", "at")),),
)
"""One row per counted event of a sliding-window limit (applications per address), in Unix seconds."""

INSTITUTIONS = Table(
    "institutions",
    (
        Column("id", "text", "PRIMARY KEY"),
        Column("name", "text", "NOT NULL"),
        Column("oidc_issuer", "text"),
        Column("email_domains", "text", "NOT NULL"),
        Column("org_values", "text", "NOT NULL"),
        Column("created_at", "text", "NOT NULL"),
        Column("created_by", "text", "NOT NULL"),
    ),
)
"""Institutions whose signed-in members may apply (e-mail domains and org values as JSON lists)."""

APPLICANTS = Table(
    "applicants",
    (
        Column("id", "text", "PRIMARY KEY"),
        Column("institution", "text", "NOT NULL REFERENCES institutions (id)"),
        Column("name", "text", "NOT NULL"),
        Column("email", "text", "NOT NULL"),
        Column("issuer", "text"),
        Column("subject", "text"),
        Column("created_at", "text", "NOT NULL"),
        Column("created_by", "text", "NOT NULL"),
    ),
    unique=(("issuer", "subject"),),
)
"""Applicant accounts: one per OpenID Connect subject, or issued by an administrator."""

OIDC_LOGINS = Table(
    "oidc_logins",
    (
        Column("state", "text", "PRIMARY KEY"),
        Column("nonce", "text", "NOT NULL"),
        Column("code_verifier", "text", "NOT NULL"),
        Column("institution", "text"),
        Column("created_at", "text", "NOT NULL"),
    ),
)
"""Pending OpenID Connect sign-ins (used once, expire after a few minutes)."""

IDENTITY_INDEXES: tuple[tuple[Table, Index], ...] = (
    (TOKENS, Index("tokens_applicant", ("applicant",))),
    (APPLICATIONS, Index("applications_applicant", ("applicant", "route", "submitted_at"))),
    (APPLICATIONS, Index("applications_institution", ("institution_id", "route", "submitted_at"))),
)
"""Indexes on the columns migration 3 added (created by it, after the columns exist)."""

COHORTS = Table(
    "cohorts",
    (
        Column("project", "text", "NOT NULL"),
        Column("name", "text", "NOT NULL"),
        Column("definition", "text", "NOT NULL"),
        Column("canonical", "text", "NOT NULL"),
        Column("created_at", "text", "NOT NULL"),
        Column("created_by", "text", "NOT NULL"),
    ),
    unique=(("project", "name"),),
)
"""Named cohorts of a project (issue 15): the definition as given (JSON) and its canonical form, which
decides whether a later definition under the same name is the same cohort."""
