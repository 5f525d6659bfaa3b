"""The data catalog: its types (``types``) and the loading of its YAML definition (``load``)."""

from query_engine.catalog import types
from query_engine.catalog.load import load_catalog
from query_engine.catalog.types import *  # noqa: F403  (the public names of ``types``, listed there once)

__all__ = [*types.__all__, "load_catalog"]
