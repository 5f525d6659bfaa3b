"""Fixtures of the datasets tests: one synthetic register set, generated once per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from datasets.packaged_catalog import load_packaged_catalog
from query_engine.catalog import Catalog

SYNTHETIC_PERSONS = 20_000
SYNTHETIC_SEED = 20_261_128


@dataclass(frozen=True)
class Synthetic:
    """A generated register set: its directory, the catalog and a DuckDB connection with one view per
    register plus ``persons`` (cpr with ``age``: age at the reference date or at death)."""

    out: Path
    persons: int
    catalog: Catalog
    db: duckdb.DuckDBPyConnection

    def row(self, sql: str) -> tuple[Any, ...]:
        """The one row ``sql`` returns."""
        row = self.db.execute(sql).fetchone()
        assert row is not None, sql
        return row

    def scalar(self, sql: str) -> object:
        return self.row(sql)[0]

    @staticmethod
    def age_sql(birth: str, at: str) -> str:
        """Exact age in whole years (DuckDB's date_diff counts year boundaries, not birthdays)."""
        return (
            f"(year({at}) - year({birth}) - CASE WHEN month({at}) * 32 + day({at}) "
            f"< month({birth}) * 32 + day({birth}) THEN 1 ELSE 0 END)"
        )


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthetic]:
    from datasets.generate import generate

    out = tmp_path_factory.mktemp("synthetic") / "raw"
    generate(SYNTHETIC_PERSONS, SYNTHETIC_SEED, out, progress=False)
    catalog = load_packaged_catalog()
    db = duckdb.connect()
    for name in catalog.register_names:
        db.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{out / name}.parquet')")
    end = f"coalesce(death_date, DATE '{catalog.reference_date}')"
    db.execute(f"CREATE VIEW persons AS SELECT *, {Synthetic.age_sql('birth_date', end)} AS age FROM cpr")
    yield Synthetic(out, SYNTHETIC_PERSONS, catalog, db)
    db.close()
