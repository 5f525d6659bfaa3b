"""The Backend protocol: run one compiled query, return an Arrow table; and the time limit that
every backend applies the same way."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pyarrow as pa

from ..compile import CompiledQuery
from ..errors import QueryTimeout

__all__ = ["Backend", "query_timeout", "time_limit"]


@runtime_checkable
class Backend(Protocol):
    """Executes compiled queries; safe to call from several threads at once."""

    dialect: str

    def execute(self, compiled: CompiledQuery, *, timeout_s: float | None = None) -> pa.Table:
        """Run the query with its bound parameters; raise ``ExecutionFailed``/``QueryTimeout``.

        ``timeout_s``, when given, is this query's time limit if shorter than the backend's own.
        """
        ...

    def read_catalog_json(self) -> str:
        """The resolved catalog stored in the database."""
        ...

    def close(self) -> None:
        """Release the connection; further calls fail."""
        ...


def time_limit(backend_limit: float, requested: float | None) -> float:
    """One query's time limit in seconds: the backend's own, or ``requested`` where shorter (never
    longer, never negative)."""
    return backend_limit if requested is None else max(0.0, min(requested, backend_limit))


def query_timeout(limit: float) -> QueryTimeout:
    """The error of a query that was stopped after ``limit`` seconds."""
    return QueryTimeout(
        f"The query ran longer than {limit:g} s and was stopped; narrow it (fewer "
        "groups, a shorter period) or ask an administrator for a longer timeout.",
        stage="execute",
    )
