"""Neighbouring databases for the privacy audit: real DuckDB files that differ by one person.

Written in the engine's schema by the query-engine test helpers (``engine_fixtures``):

``base``            a few hundred random persons (``engine_fixtures.random_dataset``)
``plus_unique``     ``base`` plus one *heavy* person: 20 hospital contacts of each contact type
                    (60 rows, 365 bed-days each, all with a diagnosis code nobody else has), 60
                    prescriptions and 10 income years
``plus_shared``     ``base`` plus the same heavy person, whose diagnosis code is instead the one
                    shared by the most persons in ``base`` (a key near the release threshold)
``minus_busiest``   ``base`` without its person with the most hospital contacts (the removal neighbour)

Each pair differs by one person with many rows, so contribution bounding (c rows per group, G groups
per person, clamped values) is what limits that person's effect.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from query_engine.catalog import Catalog
from tests.query_engine.engine_fixtures import build_fixture_catalog, create_db, random_dataset

BASE_PERSONS = 300
BASE_SEED = 20261206
HEAVY_ID = 900_001
HEAVY_ROWS_PER_TYPE = 20
UNIQUE_CODE = "DEAUDIT"
CODE_PREFIX = "DE"  # partition selection is audited on the diagnosis codes of this prefix (~10 keys)

Row = dict[str, Any]
Tables = dict[str, list[Row]]


@dataclass(frozen=True)
class World:
    """The neighbouring database files and the fixture catalog they were written with."""

    catalog: Catalog
    paths: dict[str, Path]
    shared_code: str


def heavy_person(catalog: Catalog, diagnosis_code: str) -> Tables:
    """One person with many rows in every event register, at the top of every value range."""
    contact_types = catalog.keyset("contact_types").values
    key = iter(range(2 * 10**9, 2 * 10**9 + 1000))
    day = dt.date(2016, 3, 1)
    lpr = [
        {
            "person_id": HEAVY_ID,
            "row_key": next(key),
            "contact_id": next(key),
            "admission_date": day + dt.timedelta(days=i),
            "discharge_date": day + dt.timedelta(days=i + 365),
            "los_days": 365,
            "icd10": "E11",
            "diagnosis_code": diagnosis_code,
            "contact_type": contact_type,
            "hospital_region": "Hovedstaden",
        }
        for contact_type in contact_types
        for i in range(HEAVY_ROWS_PER_TYPE)
    ]
    lmdb = [
        {
            "person_id": HEAVY_ID,
            "row_key": next(key),
            "date": day + dt.timedelta(days=i),
            "atc": "A10BA02",
            "ddd": 1e6,
            "packages": 3,
        }
        for i in range(60)
    ]
    ind = [
        {"person_id": HEAVY_ID, "row_key": next(key), "year": year, "disposable_income": 10**8}
        for year in range(2015, 2025)
    ]
    cpr = [
        {
            "person_id": HEAVY_ID,
            "row_key": next(key),
            "sex": "F",
            "birth_date": dt.date(1960, 5, 5),
            "region": "Hovedstaden",
            "municipality": catalog.keyset("municipalities").values[0],
            "death_date": None,
        }
    ]
    return {"cpr": cpr, "lpr": lpr, "lmdb": lmdb, "ind": ind}


def _most_shared_code(base: Tables) -> str:
    """The ``CODE_PREFIX`` code that most persons' first such contact (by row key) has in ``base``."""
    first: dict[int, tuple[int, str]] = {}
    for row in base["lpr"]:
        code, pid = row["diagnosis_code"], row["person_id"]
        if code and code.startswith(CODE_PREFIX) and (pid not in first or row["row_key"] < first[pid][0]):
            first[pid] = (row["row_key"], code)
    return Counter(code for _, code in first.values()).most_common(1)[0][0]


def _plus(base: Tables, extra: Tables) -> Tables:
    return {name: rows + extra.get(name, []) for name, rows in base.items()}


def _minus_busiest(base: Tables) -> Tables:
    """``base`` without the person with the most hospital contacts (most bed-days among those)."""
    contacts = Counter(row["person_id"] for row in base["lpr"])
    days = Counter({pid: 0 for pid in contacts})
    for row in base["lpr"]:
        days[row["person_id"]] += row["los_days"] or 0
    busiest = max(contacts, key=lambda pid: (contacts[pid], days[pid]))
    return {name: [row for row in table if row["person_id"] != busiest] for name, table in base.items()}


def build_world(directory: Path, persons: int = BASE_PERSONS, seed: int = BASE_SEED) -> World:
    """Write the four database files (a few hundred persons each) under ``directory``."""
    catalog = build_fixture_catalog(directory)
    base = random_dataset(seed, persons, catalog)
    shared = _most_shared_code(base)
    tables = {
        "base": base,
        "plus_unique": _plus(base, heavy_person(catalog, UNIQUE_CODE)),
        "plus_shared": _plus(base, heavy_person(catalog, shared)),
        "minus_busiest": _minus_busiest(base),
    }
    paths = {name: create_db(directory / f"{name}.duckdb", catalog, rows) for name, rows in tables.items()}
    return World(catalog, paths, shared)
