"""The data catalog: its types (``types``) and the loading of its YAML definition (``load``)."""

from query_engine.catalog.load import load_catalog
from query_engine.catalog.types import (
    CATALOG_TABLE,
    SQL_TYPES,
    Bounds,
    Catalog,
    CatalogError,
    Column,
    ColumnType,
    Derivation,
    KeySet,
    Register,
    Text,
    atc_prefix_length,
)

__all__ = [
    "Bounds",
    "Catalog",
    "CatalogError",
    "Column",
    "ColumnType",
    "Derivation",
    "KeySet",
    "Register",
    "Text",
    "CATALOG_TABLE",
    "SQL_TYPES",
    "atc_prefix_length",
    "load_catalog",
]
