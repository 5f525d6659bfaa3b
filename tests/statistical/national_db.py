"""The 1,000,000-person synthetic database of the analysis accuracy tests, built once and kept.

Generating and building 1M persons takes about a minute on a loaded 2-core machine, so the built
database is kept in pytest's cache directory under a key made of the person count, the seed and a
digest of every file of ``datasets/`` (the generator, its truths, the catalog and the build): a
change to the generator makes a new database, an unchanged tree reuses the old one. Older keys are
removed when a new one is built. The build writes into a scratch directory and renames it into
place, so an interrupted run leaves nothing half-built behind.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PERSONS = 1_000_000
SEED = 20261206
PREFIX = "sundstat-analyses"


def datasets_digest() -> str:
    """A digest of every source and data file of ``datasets/`` (what the database is made from)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "datasets").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def national_db(config: pytest.Config, persons: int = PERSONS, seed: int = SEED) -> Path:
    """The built database of ``persons`` synthetic persons, from the cache or made now."""
    from datasets.build import build
    from datasets.generate import generate

    assert config.cache is not None, "the analysis accuracy tests need pytest's cache plugin"
    key = f"{PREFIX}-{persons}-{seed}-{datasets_digest()}"
    home = config.cache.mkdir(PREFIX)
    db = home / key / "sundstat.duckdb"
    if db.is_file():
        return db
    scratch = home / f"{key}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    generate(persons, seed, scratch / "raw", progress=False)
    build(scratch / "raw", scratch / "sundstat.duckdb")
    shutil.rmtree(scratch / "raw")  # the database holds every row; the Parquet files are not needed
    scratch.rename(home / key)
    for old in home.iterdir():
        if old.name != key and not old.name.endswith(".partial"):  # another run may be building
            shutil.rmtree(old, ignore_errors=True)
    return db
