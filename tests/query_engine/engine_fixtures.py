"""Test helpers: the packaged catalog with small classifications, and small DuckDB files in its layout."""

from __future__ import annotations

import datetime as dt
import random
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from datasets.packaged_catalog import packaged_catalog_dir
from query_engine.catalog import CATALOG_TABLE, SQL_TYPES, Catalog, load_catalog

HERE = Path(__file__).resolve().parent
CLASSIFICATIONS = HERE / "catalog_fixture"

Row = Mapping[str, Any]


def build_fixture_catalog(directory: Path) -> Catalog:
    """The packaged register YAMLs with the small classification files of ``catalog_fixture/``."""
    catalog_dir = directory / "catalog"
    catalog_dir.mkdir(parents=True, exist_ok=True)
    for yaml_file in packaged_catalog_dir().glob("*.yaml"):
        shutil.copy(yaml_file, catalog_dir / yaml_file.name)
    shutil.copytree(CLASSIFICATIONS, directory / "classifications", dirs_exist_ok=True)
    return load_catalog(catalog_dir)


def create_tables(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    """Create the empty register tables (physical columns) and the catalog table."""
    for register in catalog.registers:
        columns = ", ".join(f'"{c.name}" {SQL_TYPES[c.type]}' for c in register.physical_columns)
        con.execute(f'CREATE OR REPLACE TABLE "{register.name}" ({columns})')
    con.execute(f"CREATE OR REPLACE TABLE {CATALOG_TABLE} (catalog VARCHAR)")
    con.execute(f"INSERT INTO {CATALOG_TABLE} VALUES (?)", [catalog.dumps()])


_ARROW_TYPES = {"string": pa.string(), "integer": pa.int64(), "float": pa.float64(), "date": pa.date32()}


def insert_rows(
    con: duckdb.DuckDBPyConnection, catalog: Catalog, tables: Mapping[str, Iterable[Row]]
) -> None:
    """Insert rows (dicts keyed by physical column name; missing columns are NULL), via Arrow."""
    for name, rows in tables.items():
        register = catalog.register(name)
        schema = pa.schema([(c.name, _ARROW_TYPES[c.type]) for c in register.physical_columns])
        table = pa.Table.from_pylist([{n: row.get(n) for n in schema.names} for row in rows], schema=schema)
        if table.num_rows:
            con.register("_rows", table)
            try:
                con.execute(f'INSERT INTO "{name}" SELECT * FROM _rows')
            finally:
                con.unregister("_rows")


def create_db(path: Path, catalog: Catalog, tables: Mapping[str, Iterable[Row]]) -> Path:
    """Write a DuckDB file in the catalog's physical layout."""
    con = duckdb.connect(str(path))
    try:
        create_tables(con, catalog)
        insert_rows(con, catalog, tables)
    finally:
        con.close()
    return path


def random_dataset(seed: int, persons: int, catalog: Catalog) -> dict[str, list[dict[str, Any]]]:
    """A small linked dataset with plausible values (diabetes and metformin made common)."""
    rng = random.Random(seed)
    regions = list(catalog.keyset("regions").values)
    municipalities = list(catalog.keyset("municipalities").values)
    icd10 = list(catalog.keyset("icd10").values)
    atc = list(catalog.keyset("atc5").values)
    row_key = iter(rng.sample(range(1, 10**9), 40 * persons + 100))
    cpr, lpr, lmdb, dar, ind, udda = [], [], [], [], [], []
    start = dt.date(2010, 1, 1)
    for pid in range(1, persons + 1):
        birth = dt.date(1920, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 104))
        died = rng.random() < 0.1
        death = start + dt.timedelta(days=rng.randrange(0, 365 * 15)) if died else None
        if death is not None and death <= birth:
            death = None
        cpr.append(
            {
                "person_id": pid,
                "row_key": next(row_key),
                "sex": rng.choice(["F", "M"]),
                "birth_date": birth,
                "region": rng.choice(regions),
                "municipality": rng.choice(municipalities),
                "death_date": death,
            }
        )
        for _ in range(rng.choice([0, 0, 1, 2, 3, 6])):
            admission = start + dt.timedelta(days=rng.randrange(0, 365 * 15))
            los = rng.choice([0, 1, 2, 5, 30, None])
            lpr.append(
                {
                    "person_id": pid,
                    "row_key": next(row_key),
                    "contact_id": next(row_key),
                    "admission_date": admission,
                    "discharge_date": admission + dt.timedelta(days=los or 0),
                    "los_days": los,
                    "icd10": rng.choice(icd10 + ["E11", "E11", "E11"]),
                    "diagnosis_code": "D" + str(rng.choice(icd10)) + rng.choice(["", "0", "9"]),
                    "contact_type": rng.choice(["inpatient", "outpatient", "emergency"]),
                    "hospital_region": rng.choice(regions),
                }
            )
        for _ in range(rng.choice([0, 0, 1, 4, 12])):
            lmdb.append(
                {
                    "person_id": pid,
                    "row_key": next(row_key),
                    "date": start + dt.timedelta(days=rng.randrange(0, 365 * 15)),
                    "atc": rng.choice(atc + ["A10BA02", "A10BA02"]),
                    "ddd": rng.choice([None, 10.0, 30.5, 90.0, 1e6, float("nan")]),
                    "packages": rng.randint(1, 3),
                }
            )
        if death is not None:
            dar.append(
                {
                    "person_id": pid,
                    "row_key": next(row_key),
                    "death_date": death,
                    "cause_icd10": rng.choice(icd10),
                }
            )
        for year in rng.sample(range(2015, 2025), rng.randint(0, 3)):
            ind.append(
                {
                    "person_id": pid,
                    "row_key": next(row_key),
                    "year": year,
                    "disposable_income": rng.choice([None, -50_000, 150_000, 320_000, 5_000_000]),
                }
            )
            udda.append(
                {"person_id": pid, "row_key": next(row_key), "year": year, "isced_level": rng.randint(0, 8)}
            )
    return {"cpr": cpr, "lpr": lpr, "lmdb": lmdb, "dar": dar, "ind": ind, "udda": udda}
