"""Build-time per-person pre-aggregates of event registers, and when a query may use one.

A pre-aggregate of register R by group column K holds, per (person, group): ``n``, the person's row
count in the group; ``grk``, the group's smallest stored row_key; and ``gn``, the group's dense rank
within the person by ``(grk, group)``: exactly the rows of the compiler's ``person_groups`` /
``rows_weighted`` and ``groups_ranked`` steps for an unfiltered bounded count over R by K. Only rows
whose key is in K's public key set are in it, as in the compiler's ``kept`` step. So for any G and c,
``sum(LEAST(n, c)) where gn <= G`` is the bounded row count and ``count(*) where gn <= G`` the
bounded person count, and which rows a person keeps still depends only on that person's own rows
and the stored random row_key (the guarantee of the bounding is unchanged; docs/engine.md).

A sliced pre-aggregate (R by K, sliced by S, e.g. contacts by chapter and year) holds per (person, S
value, group) ``n``, ``grk`` and ``gn``, the group's rank within the person's slice. A count over R by K
whose row conditions are all on S keeps the slices the conditions select and sums them per (person,
group): ``SUM(n)`` and ``MIN(grk)`` are then the count and smallest row_key of the person's matching
rows in the group, i.e. the compiler's ``rows_weighted`` rows for the filtered query, which are ranked
per person as on the register path. A single ``S = v`` selects one slice, whose stored rank is that rank.

The build (``datasets.build``) creates the tables in the same database file as the registers and
records in ``sundstat_preaggregates`` the SQL that defined each one and a digest of its source (row
count and largest row_key). ``usable_preaggregates`` checks both at engine open: a pre-aggregate whose
definition differs from the current catalog's or whose register changed is never used.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
from sqlglot import exp

from .catalog import Catalog
from .sql_ast import sql_col, sql_ident, sql_lit, sql_ref, sql_window
from .sql_columns import ColumnSql

__all__ = [
    "COMMON_GROUPS",
    "PREAGGREGATE_MANIFEST",
    "Preaggregate",
    "catalog_preaggregates",
    "usable_preaggregates",
]

PREAGGREGATE_MANIFEST = "sundstat_preaggregates"
# The (register, group column) pairs most queries group event rows by; one table each.
COMMON_GROUPS: tuple[tuple[str, str], ...] = (("lpr", "icd10_chapter"),)
# The same, sliced by a column most queries filter them by (contacts of some years by chapter): per
# (person, slice value, group) the count and smallest row_key, without the rank (it depends on the slice).
SLICED_GROUPS: tuple[tuple[str, str, str], ...] = (("lpr", "icd10_chapter", "year"),)


@dataclass(frozen=True)
class Preaggregate:
    """One pre-aggregate: its table, source register and group column (and slice column, if sliced),
    and its defining SQL."""

    register: str
    column: str
    table: str
    select_sql: str  # DuckDB SQL over the unqualified register table
    slice_column: str | None = None

    @property
    def definition_sha256(self) -> str:
        return hashlib.sha256(self.select_sql.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=16)
def catalog_preaggregates(catalog: Catalog) -> tuple[Preaggregate, ...]:
    """The pre-aggregates this catalog's loaded event registers get (``COMMON_GROUPS``, ``SLICED_GROUPS``).

    Cached: writing their defining SQL takes about 20 ms, and every compiled count asks for them.
    """
    wanted = [(r, c, None) for r, c in COMMON_GROUPS] + list(SLICED_GROUPS)
    found = []
    for register_name, column_name, slice_name in wanted:
        if register_name not in catalog.register_names:
            continue
        register = catalog.register(register_name)
        columns = {c.name: c for c in register.columns}
        column = columns.get(column_name)
        if register.grain == "person" or column is None or column.keyset is None:
            continue
        if slice_name is not None and slice_name not in columns:
            continue
        sliced = "" if slice_name is None else f"{slice_name}_"
        found.append(
            Preaggregate(
                register_name,
                column_name,
                f"__preagg_{register_name}_{sliced}{column_name}",
                _select(catalog, register_name, column_name, slice_name),
                slice_name,
            )
        )
    return tuple(found)


def _select(catalog: Catalog, register_name: str, column_name: str, slice_name: str | None) -> str:
    register = catalog.register(register_name)
    column = register.column(column_name)
    assert column.keyset is not None
    sql = ColumnSql(catalog)
    key = sql.column("r", register, column)
    keys = [sql_lit(k) for k in catalog.keyset(column.keyset).values]
    outputs = [
        exp.alias_(sql_col("r", register.person_key), "pid"),
        exp.alias_(sql_col("r", register.row_key), "rk"),
        exp.alias_(key, "g"),
    ]
    if slice_name is not None:
        outputs.append(exp.alias_(sql.column("r", register, register.column(slice_name)), "s"))
    rows = (
        exp.select(*outputs)
        .from_(exp.alias_(exp.Table(this=sql_ident(register.name)), "r", table=True))
        .where(exp.In(this=key.copy(), expressions=keys))
    )
    by = [sql_ref("rows", "pid"), *([sql_ref("rows", "s")] if slice_name else []), sql_ref("rows", "g")]
    groups = (
        exp.select(
            *by,
            exp.alias_(exp.cast(exp.Count(this=exp.Star()), "BIGINT"), "n"),
            exp.alias_(exp.Min(this=sql_ref("rows", "rk")), "grk"),
        )
        .from_("rows")
        .group_by(*[c.copy() for c in by])
    )
    if slice_name is not None:
        # The rank within one slice answers a condition selecting that slice alone without a window.
        in_slice = sql_window(
            exp.Anonymous(this="DENSE_RANK"),
            [sql_ref("groups", "pid"), sql_ref("groups", "s")],
            [sql_ref("groups", "grk"), sql_ref("groups", "g")],
        )
        return (
            exp.select("pid", "s", "g", "n", "grk", exp.alias_(exp.cast(in_slice, "BIGINT"), "gn"))
            .from_("groups")
            .order_by(sql_ref("groups", "pid"), sql_ref("groups", "s"))
            .with_("rows", as_=rows)
            .with_("groups", as_=groups)
            .sql(dialect="duckdb")
        )
    order = [sql_ref("groups", "grk"), sql_ref("groups", "g")]
    rank = sql_window(exp.Anonymous(this="DENSE_RANK"), [sql_ref("groups", "pid")], order)
    final = (
        exp.select("pid", "g", "n", "grk", exp.alias_(exp.cast(rank, "BIGINT"), "gn"))
        .from_("groups")
        .order_by(sql_ref("groups", "pid"), sql_ref("groups", "grk"))
        .with_("rows", as_=rows)
        .with_("groups", as_=groups)
    )
    return final.sql(dialect="duckdb")


class _Sql(Protocol):
    def __call__(self, sql: str) -> pa.Table: ...


def usable_preaggregates(run: _Sql, catalog: Catalog) -> frozenset[str]:
    """The tables of the catalog's pre-aggregates that are present and current in the database.

    ``run`` executes read-only SQL. Current means: recorded in the manifest with this catalog's
    defining SQL, and the source register's row count and largest row_key as recorded at build.
    """
    tables = {str(t) for t in run("SELECT table_name FROM information_schema.tables").column(0).to_pylist()}
    if PREAGGREGATE_MANIFEST not in tables:
        return frozenset()
    manifest = run(
        f"SELECT preaggregate, definition_sha256, source_rows, source_max_row_key FROM {PREAGGREGATE_MANIFEST}"
    ).to_pylist()
    recorded = {row["preaggregate"]: row for row in manifest}
    usable = set()
    for pre in catalog_preaggregates(catalog):
        row = recorded.get(pre.table)
        if row is None or pre.table not in tables or row["definition_sha256"] != pre.definition_sha256:
            continue
        if source_digest(run, catalog, pre.register) == (row["source_rows"], row["source_max_row_key"]):
            usable.add(pre.table)
    return frozenset(usable)


def source_digest(run: _Sql, catalog: Catalog, register_name: str) -> tuple[int, int | None]:
    """(row count, largest row_key) of a register table: what a pre-aggregate was built from."""
    register = catalog.register(register_name)
    table = run(f'SELECT count(*) AS n, max("{register.row_key}") AS m FROM "{register.name}"').to_pylist()[0]
    return int(table["n"]), None if table["m"] is None else int(table["m"])
