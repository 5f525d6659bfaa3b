"""Ordered migrations of the service's state, applied once each at start-up, in both dialects.

The version is the ``schema_version`` row of the ``meta`` table. A state directory written before
versions existed (tables ``meta``, ``tokens`` and ``applications`` but no version) is version 1: the
tables of migration 1 are exactly the ones that code created. A database newer than this code is
refused rather than guessed at. A state directory written by the release that added institutions and
applicants before versions existed (its own in-place change: ``applicant`` tokens, three more columns
of ``applications``) is also version 1: migration 3 adds only the columns that are missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import schema
from .schema import Column, Dialect, Index, Table

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "StateSchemaError", "apply_migrations"]

VERSION_KEY = "schema_version"


class StateSchemaError(RuntimeError):
    """The state database's schema is newer than this code, or cannot be upgraded."""


@dataclass(frozen=True)
class Migration:
    """One step, rendered per dialect and applied in this order: the tables it creates, the columns it
    adds to existing tables (each only where missing), the existing tables it rebuilds from their
    changed declaration (rows kept; see :func:`service.state.schema.rebuild_table`), and the indexes
    it adds to existing tables."""

    version: int
    description: str
    tables: tuple[Table, ...] = ()
    rebuilt: tuple[Table, ...] = ()
    columns: tuple[tuple[Table, Column], ...] = ()
    indexes: tuple[tuple[Table, Index], ...] = ()

    def statements(
        self, dialect: Dialect, column_exists: Callable[[str, str], bool] = lambda _t, _c: False
    ) -> list[str]:
        """The DDL of this step for ``dialect`` (``column_exists(table, column)`` skips added columns
        that are there already)."""
        created = [sql for table in self.tables for sql in schema.create_table(table, dialect)]
        added = [
            schema.add_column(table.name, column, dialect)
            for table, column in self.columns
            if not column_exists(table.name, column.name)
        ]
        rebuilt = [
            sql
            for table in self.rebuilt
            for sql in schema.rebuild_table(table, dialect, version=self.version)
        ]
        indexed = [schema.create_index(table, index) for table, index in self.indexes]
        return created + added + rebuilt + indexed


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "meta, tokens and applications", (schema.META, schema.TOKENS, schema.APPLICATIONS)),
    Migration(2, "shared rate limits and project permits", (schema.RATE_LIMITS, schema.PROJECT_PERMITS)),
    Migration(
        3,
        "institutions, applicants, OpenID Connect sign-ins, applicant tokens, application windows",
        (schema.INSTITUTIONS, schema.APPLICANTS, schema.OIDC_LOGINS, schema.RATE_EVENTS),
        rebuilt=(schema.TOKENS,),
        columns=(
            (schema.TOKENS, schema.Column("applicant", "text")),
            *((schema.APPLICATIONS, column) for column in schema.APPLICATION_IDENTITY_COLUMNS),
        ),
        indexes=schema.IDENTITY_INDEXES,
    ),
    Migration(4, "named cohorts of a project", (schema.COHORTS,)),
)
SCHEMA_VERSION = MIGRATIONS[-1].version

Execute = Callable[[str, Sequence[Any]], Any]


def apply_migrations(
    execute: Execute,
    dialect: Dialect,
    *,
    table_exists: Callable[[str], bool],
    column_exists: Callable[[str, str], bool] = lambda _t, _c: False,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Bring the schema to the last of ``migrations`` inside the caller's (exclusive) transaction.

    Returns the version found before upgrading (0 for an empty database).
    """
    newest = migrations[-1].version
    for sql in schema.create_table(schema.META, dialect):
        execute(sql, ())
    row = execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
    # Without a version row, a database that has the tokens table was written before versions existed.
    unversioned = 1 if table_exists("tokens") else 0
    found = int(row[0]) if row is not None else unversioned
    if found > newest:
        raise StateSchemaError(
            f"The service state has schema version {found}; this sundstat knows versions up to "
            f"{newest}. Upgrade sundstat on this host."
        )
    for migration in migrations:
        if migration.version > found:
            for sql in migration.statements(dialect, column_exists):
                execute(sql, ())
    if row is None or found < newest:
        execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (VERSION_KEY, str(newest)),
        )
    return found
