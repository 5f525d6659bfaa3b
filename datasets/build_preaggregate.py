"""The build's per-person pre-aggregates (``query_engine.preaggregate``): written into the output
database after the registers, in the same file, with a manifest row per table recording the SQL that
defined it and its source register's row count and largest row_key (checked at engine open).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from datasets.build_support import _run
from datasets.ingest_checks import quote
from query_engine.catalog import Catalog
from query_engine.preaggregate import PREAGGREGATE_MANIFEST, catalog_preaggregates, source_digest


def _write_preaggregates(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    """Create every pre-aggregate of the loaded registers and the manifest, in the ``out`` database."""
    con.execute(
        f"CREATE TABLE out.{PREAGGREGATE_MANIFEST} (preaggregate VARCHAR NOT NULL, register VARCHAR NOT NULL, "
        "group_column VARCHAR NOT NULL, definition_sha256 VARCHAR NOT NULL, source_rows BIGINT NOT NULL, "
        "source_max_row_key BIGINT, rows BIGINT NOT NULL)"
    )

    def run(sql: str) -> pa.Table:
        return con.sql(sql).to_arrow_table()

    con.execute("USE out")  # the defining SQL names the register tables unqualified
    try:
        for pre in catalog_preaggregates(catalog):
            _run(
                con,
                f"CREATE TABLE {quote(pre.table)} AS {pre.select_sql}",
                f"build the pre-aggregate of {pre.register}",
            )
            rows, max_row_key = source_digest(run, catalog, pre.register)
            stored = run(f"SELECT count(*) FROM {quote(pre.table)}").column(0)[0].as_py()
            con.execute(
                f"INSERT INTO {PREAGGREGATE_MANIFEST} VALUES (?, ?, ?, ?, ?, ?, ?)",
                [pre.table, pre.register, pre.column, pre.definition_sha256, rows, max_row_key, stored],
            )
    finally:
        con.execute("USE memory")
