"""The Backend protocol: run one compiled query, return an Arrow table."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pyarrow as pa

from ..compile import CompiledQuery

__all__ = ["Backend"]


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
