"""The catalog shipped with sundstat: ``datasets/catalog/*.yaml`` with ``datasets/classifications/*.csv``.

The engine loads whichever catalog directory it is given (``query_engine.catalog.load_catalog``) and
serves the catalog stored inside the built database; only ``sundstat generate``, ``sundstat build``
without ``--catalog``, and tests use this default.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from query_engine.catalog import Catalog, load_catalog

__all__ = ["load_packaged_catalog", "packaged_catalog_dir"]


def packaged_catalog_dir() -> Path:
    """The directory of the shipped catalog (package data of ``datasets``)."""
    return Path(str(importlib.resources.files(__package__ or "datasets").joinpath("catalog")))


def load_packaged_catalog() -> Catalog:
    """The shipped catalog, resolved."""
    return load_catalog(packaged_catalog_dir())
