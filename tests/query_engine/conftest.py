"""Fixtures of the query engine tests: the fixture catalog and a small random database."""

from __future__ import annotations

from pathlib import Path

import pytest

from query_engine.catalog import Catalog
from tests.query_engine.engine_fixtures import build_fixture_catalog, create_db, random_dataset


@pytest.fixture(scope="session")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return build_fixture_catalog(tmp_path_factory.mktemp("catalog"))


@pytest.fixture(scope="session")
def small_db(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Path:
    path = tmp_path_factory.mktemp("db") / "small.duckdb"
    return create_db(path, catalog, random_dataset(seed=7, persons=400, catalog=catalog))


@pytest.fixture(scope="session")
def generated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic database made by the real generator and build (3,000 persons)."""
    from datasets.build import build
    from datasets.generate import generate

    base = tmp_path_factory.mktemp("generated")
    generate(3000, 11, base / "raw", progress=False)
    build(base / "raw", base / "sundstat.duckdb")
    return base / "sundstat.duckdb"
