"""The build's stored row ranks, and which registers of an open database carry them.

``sundstat build`` writes, for every event-grain register, ``ROW_RANK_COLUMN``: the row's rank among its
person's rows by the stored random row_key (1 = the smallest). It is exactly the ``ROW_NUMBER()`` the
compiled SQL would compute to keep a person's first c rows, so for a query whose rows are not filtered
row by row (whole-person conditions keep or drop all of a person's rows, so the ranks stand), keeping
``rank <= c`` keeps the same rows without sorting the register. Which rows a person keeps still depends
only on that person's own rows and the random key. Written in the same statement as the rows, it
cannot go stale while the file is served read-only.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from .catalog import ROW_RANK_COLUMN, Catalog

__all__ = ["row_ranked_registers"]


def row_ranked_registers(run: Callable[[str], pa.Table], catalog: Catalog) -> tuple[str, ...]:
    """The catalog's event registers whose table in the database has the stored rank column."""
    found = run(
        "SELECT table_name FROM information_schema.columns "
        f"WHERE column_name = '{ROW_RANK_COLUMN}' AND data_type = 'BIGINT'"
    )
    tables = {str(t) for t in found.column(0).to_pylist()}
    return tuple(r.name for r in catalog.registers if r.grain != "person" and r.name in tables)
