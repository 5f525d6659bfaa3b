"""The storage boundary of the service's own state: a ``StateStore`` hands out connections.

Tokens, applications, permits and rate-limit counters live behind it; the budget ledger keeps its own
store (``budget_ledger.store``). Code above this seam writes portable SQL with ``?`` parameters (the
PostgreSQL store translates them) and reads rows by column name or position.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from .schema import Dialect

__all__ = ["RATE_TAKE_SQL", "Cursor", "StateConnection", "StateStore"]


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int:
        """Rows changed by an INSERT, UPDATE or DELETE."""
        ...

    def fetchone(self) -> Any:
        """The next row (indexable by column name and position), or None."""
        ...

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        ...


class StateConnection(Protocol):
    """Runs portable SQL with ``?`` parameters."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor:
        """Run one statement."""
        ...


class StateStore(Protocol):
    """Where the service keeps its state; shared by every worker (and every host on PostgreSQL)."""

    dialect: Dialect
    where: str

    def write(self) -> AbstractContextManager[StateConnection]:
        """A write transaction, committed durably on success and rolled back on error."""
        ...

    def read(self) -> StateConnection:
        """A connection for single-statement reads (each statement sees committed data)."""
        ...

    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table."""
        ...

    def rate_take(self, key: str, now: float, interval: float, tolerance: float) -> float | None:
        """Count one request of ``key`` atomically (GCRA); None if allowed, else the key's stored
        theoretical arrival time (nothing is counted then)."""
        ...

    def rate_peek(self, key: str) -> float | None:
        """The stored theoretical arrival time of ``key`` (None: never limited or forgotten)."""
        ...

    def rate_forget(self, now: float) -> int:
        """Delete counters that have refilled completely by ``now``; returns how many."""
        ...

    def close(self) -> None:
        """Release this process's connections."""
        ...


def rate_take_sql(greatest: str) -> str:
    """The one-statement GCRA step, with the dialect's two-argument maximum function.

    Parameters: key, now + interval, then (now, interval) twice, now, tolerance. A new key is
    inserted (allowed); an existing one advances only when the advanced time stays within the
    tolerance; ``RETURNING`` yields a row exactly when the request is allowed.
    """
    advanced = f"{greatest}(rate_limits.tat, ?) + ?"
    return (
        "INSERT INTO rate_limits (key, tat) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
        f"SET tat = {advanced} WHERE {advanced} - ? <= ? RETURNING tat"
    )


RATE_TAKE_SQL: dict[Dialect, str] = {"sqlite": rate_take_sql("max"), "postgresql": rate_take_sql("greatest")}


def rate_take_params(key: str, now: float, interval: float, tolerance: float) -> tuple[Any, ...]:
    """The parameters of :data:`RATE_TAKE_SQL` in order."""
    return (key, now + interval, now, interval, now, interval, now, tolerance)
