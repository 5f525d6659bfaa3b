"""The ledger's tables, declared once and rendered for SQLite and for PostgreSQL.

Both stores keep the same five tables with the same columns, keys, uniqueness and checks; only the
spelling differs (:func:`sqlite_statements`, :func:`postgres_script`):

============  =====================================  =====================================
kind          SQLite                                 PostgreSQL
============  =====================================  =====================================
fraction      ``TEXT`` + CHECK by GLOB               domain ``ledger_fraction`` (a regex)
hash          ``TEXT`` + CHECK (64 hex digits)       domain ``ledger_hash``
registers     ``TEXT`` (a JSON list)                 ``TEXT[]``
date          ``TEXT`` (ISO)                         ``DATE``
integer       ``INTEGER``                            ``BIGINT``
real          ``REAL``                               ``DOUBLE PRECISION``
============  =====================================  =====================================

The append-only rules are declared here too (:data:`APPEND_ONLY`, :data:`NO_DELETE`,
:data:`SPEND_FIXED_COLUMNS`: a spend's amounts never change and its state changes only from
``pending``) and rendered as each dialect's triggers.

Versions: the PostgreSQL store records applied migrations (version 1 is this schema); the SQLite store
keeps ``meta.schema_version``. SQLite version 1 lacked the checks and uniqueness that PostgreSQL had
from the start; version 2 is this schema, and ``sqlite_store`` rebuilds a version-1 file into it in
one transaction (see there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "APPEND_ONLY",
    "NO_DELETE",
    "SPEND_FIXED_COLUMNS",
    "TABLES",
    "Column",
    "Index",
    "Table",
    "postgres_script",
    "sqlite_index",
    "sqlite_table",
    "sqlite_triggers",
]

Kind = Literal["text", "fraction", "hash", "registers", "date", "integer", "real"]


@dataclass(frozen=True)
class Column:
    """One column: its kind, and the constraints both dialects enforce."""

    name: str
    kind: Kind = "text"
    nullable: bool = False
    key: bool = False
    unique: bool = False
    references: str | None = None  # "table (column)"
    one_of: tuple[str, ...] = ()
    minimum: int | None = None


@dataclass(frozen=True)
class Index:
    """A secondary index, optionally unique and partial."""

    name: str
    columns: tuple[str, ...]
    unique: bool = False
    where: str | None = None


@dataclass(frozen=True)
class Table:
    """A ledger table: its columns (in the order records are read and written) and indexes."""

    name: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        """The columns' names, in table order."""
        return tuple(column.name for column in self.columns)


def _fractions(*names: str, nullable: bool = False) -> tuple[Column, ...]:
    return tuple(Column(name, "fraction", nullable=nullable) for name in names)


_TOTALS = (*_fractions("epsilon_spent", "rho_spent", "delta_spent"), Column("spends", "integer", minimum=0))

TABLES: tuple[Table, ...] = (
    Table(
        "projects",
        (
            Column("id", key=True),
            *(Column(name) for name in ("title", "purpose", "institution", "summary")),
            Column("registers", "registers"),
            Column("mode", one_of=("pure", "zcdp")),
            *_fractions("epsilon", "delta"),
            Column("rho", "fraction", nullable=True),
            Column("expires", "date", nullable=True),
            Column("created_at"),
            Column("created_by"),
            *_TOTALS,
        ),
    ),
    Table(
        "registers",
        (
            Column("name", key=True),
            *_fractions(
                "cap_rho", "cap_delta", "cap_epsilon_requested", "cap_delta_requested", nullable=True
            ),
            *_TOTALS,
        ),
    ),
    Table(
        "spends",
        (
            Column("spend_id", key=True),
            Column("project_id", references="projects (id)"),
            Column("registers", "registers"),
            *_fractions("epsilon", "rho", "delta"),
            Column("query_hash"),
            Column("canonical_query"),
            Column("idempotency_key", nullable=True),
            Column("actor"),
            Column("created_at"),
            Column("created_unix", "real"),
            Column("audit_seq", "integer", unique=True),
            Column("state", one_of=("pending", "released", "failed")),
            Column("release_id", nullable=True),
            Column("failure_code", nullable=True),
        ),
        (
            Index(
                "spends_idempotency",
                ("project_id", "idempotency_key"),
                unique=True,
                where="idempotency_key IS NOT NULL",
            ),
            Index("spends_pending", ("project_id", "query_hash"), where="state = 'pending'"),
        ),
    ),
    Table(
        "releases",
        (
            Column("release_id", key=True),
            Column("project_id", references="projects (id)"),
            Column("spend_id", unique=True, references="spends (spend_id)"),
            Column("query_hash"),
            Column("release_json"),
            Column("created_at"),
            Column("audit_seq", "integer", unique=True),
        ),
        (Index("releases_query", ("project_id", "query_hash", "audit_seq")),),
    ),
    Table(
        "audit",
        (
            Column("seq", "integer", key=True, minimum=1),
            Column("kind"),
            Column("payload"),
            Column("actor"),
            Column("ts"),
            Column("prev_hash", "hash"),
            Column("hash", "hash"),
        ),
    ),
)
"""In creation order: a table comes after the tables it references."""

APPEND_ONLY = ("audit", "releases")
"""Tables whose rows are never updated or deleted."""
NO_DELETE = ("spends",)
"""Tables whose rows are never deleted (a spend's state moves on once, from ``pending``)."""
SPEND_FIXED_COLUMNS = tuple(
    name for name in next(t for t in TABLES if t.name == "spends").column_names
    if name not in ("state", "release_id", "failure_code")
)  # fmt: skip
"""The columns of a spend that never change after it is written."""


def _check(column: Column, kind_check: str | None) -> str | None:
    checks = []
    if kind_check is not None:
        checks.append(kind_check)
    if column.one_of:
        checks.append(f"{column.name} IN ({', '.join(repr(v) for v in column.one_of)})")
    if column.minimum is not None:
        checks.append(f"{column.name} >= {column.minimum}")
    return " AND ".join(checks) if checks else None


def _column_sql(column: Column, type_sql: str, kind_check: str | None) -> str:
    parts = [column.name, type_sql, "PRIMARY KEY" if column.key else "" if column.nullable else "NOT NULL"]
    if column.unique:
        parts.append("UNIQUE")
    if column.references:
        parts.append(f"REFERENCES {column.references}")
    check = _check(column, kind_check)
    if check is not None:
        parts.append(f"CHECK ({check})")
    return " ".join(part for part in parts if part)


def _index_sql(index: Index, table: str, if_not_exists: str) -> str:
    unique = "UNIQUE " if index.unique else ""
    where = f" WHERE {index.where}" if index.where else ""
    return f"CREATE {unique}INDEX {if_not_exists}{index.name} ON {table} ({', '.join(index.columns)}){where}"


# --- SQLite -----------------------------------------------------------------------------------------

_SQLITE_TYPES: dict[Kind, str] = {
    "text": "TEXT",
    "fraction": "TEXT",
    "hash": "TEXT",
    "registers": "TEXT",
    "date": "TEXT",
    "integer": "INTEGER",
    "real": "REAL",
}


def _sqlite_kind_check(column: Column) -> str | None:
    name = column.name
    if column.kind == "fraction":  # ^[0-9]+(/[0-9]+)?$, as PostgreSQL's ledger_fraction
        return (
            f"{name} GLOB '[0-9]*' AND {name} NOT GLOB '*[^0-9/]*' "
            f"AND {name} NOT GLOB '*/*/*' AND {name} NOT GLOB '*/'"
        )
    if column.kind == "hash":  # ^[0-9a-f]{64}$, as PostgreSQL's ledger_hash
        return f"length({name}) = 64 AND {name} NOT GLOB '*[^0-9a-f]*'"
    return None


def sqlite_table(table: Table, name: str | None = None) -> str:
    """``CREATE TABLE`` for SQLite, under ``name`` (a rebuild's temporary name) or the table's own."""
    columns = ",\n    ".join(
        _column_sql(c, _SQLITE_TYPES[c.kind], _sqlite_kind_check(c)) for c in table.columns
    )
    return f"CREATE TABLE {name or table.name} (\n    {columns}\n)"


def sqlite_index(index: Index, table: Table) -> str:
    """``CREATE INDEX IF NOT EXISTS`` for SQLite."""
    return _index_sql(index, table.name, "IF NOT EXISTS ")


def _sqlite_raise(name: str, when: str, message: str, condition: str = "") -> str:
    quoted = message.replace("'", "''")
    return (
        f"CREATE TRIGGER IF NOT EXISTS {name} {when}{condition}\n"
        f"    BEGIN SELECT RAISE(ABORT, '{quoted}'); END"
    )


def sqlite_triggers() -> list[str]:
    """The append-only rules as SQLite triggers (dropped with their table, so created after a rebuild)."""
    triggers = []
    for table in APPEND_ONLY:
        for op in ("UPDATE", "DELETE"):
            message = "the audit chain is append-only" if table == "audit" else f"{table} are append-only"
            triggers.append(_sqlite_raise(f"{table}_no_{op.lower()}", f"BEFORE {op} ON {table}", message))
    for table in NO_DELETE:
        triggers.append(
            _sqlite_raise(f"{table}_no_delete", f"BEFORE DELETE ON {table}", f"{table} are append-only")
        )
    triggers.append(
        _sqlite_raise(
            "spends_amounts_fixed",
            f"BEFORE UPDATE OF {', '.join(SPEND_FIXED_COLUMNS)} ON spends",
            "a spend's amounts never change",
        )
    )
    triggers.append(
        _sqlite_raise(
            "spends_state_final",
            "BEFORE UPDATE ON spends",
            "a spend's state never changes again once it is released or failed",
            " WHEN OLD.state <> 'pending'",
        )
    )
    return triggers


# --- PostgreSQL -------------------------------------------------------------------------------------

_POSTGRES_TYPES: dict[Kind, str] = {
    "text": "TEXT",
    "fraction": "ledger_fraction",
    "hash": "ledger_hash",
    "registers": "TEXT[]",
    "date": "DATE",
    "integer": "BIGINT",
    "real": "DOUBLE PRECISION",
}

_POSTGRES_DOMAINS = r"""
CREATE DOMAIN ledger_fraction AS TEXT CHECK (VALUE ~ '^[0-9]+(/[0-9]+)?$');
CREATE DOMAIN ledger_hash AS TEXT CHECK (VALUE ~ '^[0-9a-f]{64}$');
"""

_POSTGRES_FUNCTIONS = r"""
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger table % is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE FUNCTION ledger_spend_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF ({new})
       IS DISTINCT FROM
       ({old}) THEN
        RAISE EXCEPTION 'a spend''s amounts never change' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.state <> 'pending' THEN
        RAISE EXCEPTION 'spend % is already %; its state never changes again', OLD.spend_id, OLD.state
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
"""


def _postgres_triggers() -> list[str]:
    refuse = "EXECUTE FUNCTION ledger_refuse_change()"
    triggers = []
    for table in APPEND_ONLY:
        triggers.append(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW {refuse}"
        )
    for table in NO_DELETE:
        triggers.append(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} FOR EACH ROW {refuse}")
    for table in (*APPEND_ONLY, *NO_DELETE):
        triggers.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT {refuse}"
        )
    triggers.append(
        "CREATE TRIGGER spends_amounts_fixed BEFORE UPDATE ON spends "
        "FOR EACH ROW EXECUTE FUNCTION ledger_spend_update()"
    )
    return triggers


def postgres_script() -> str:
    """The whole schema as one PostgreSQL script (domains, tables, indexes, trigger functions, triggers)."""
    statements = []
    for table in TABLES:
        columns = ",\n    ".join(_column_sql(c, _POSTGRES_TYPES[c.kind], None) for c in table.columns)
        statements.append(f"CREATE TABLE {table.name} (\n    {columns}\n)")
        statements.extend(_index_sql(index, table.name, "") for index in table.indexes)
    functions = _POSTGRES_FUNCTIONS.format(
        new=", ".join(f"NEW.{name}" for name in SPEND_FIXED_COLUMNS),
        old=", ".join(f"OLD.{name}" for name in SPEND_FIXED_COLUMNS),
    )
    body = ";\n".join(statements) + ";\n"
    return _POSTGRES_DOMAINS + "\n" + body + functions + ";\n".join(_postgres_triggers()) + ";\n"
