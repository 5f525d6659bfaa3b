"""Execution backends behind one Protocol: DuckDB (embedded default); Spark compiles the same plan."""

from .base import Backend
from .duckdb_backend import DuckDBBackend

__all__ = ["Backend", "DuckDBBackend"]
